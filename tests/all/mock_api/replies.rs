//! Replies: the SSE event grammar, the whole-message shape, thinking blocks, `max_tokens`,
//! timing at the configured token rate, and the seed that fixes the reply.

use std::time::Duration;

use backchat::api::types::Thinking;
use backchat::mock::{MockConfig, choose_reply};
use backchat::tokens::count_text;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::harness::{Harness, KEY, body, instant, names, request, simple, text_of};

#[tokio::test(start_paused = true)]
async fn a_streamed_reply_follows_the_event_grammar_exactly() {
    let h = Harness::start(MockConfig::default()).await;
    let req = request("Explain token buckets, please.", true);
    let t0 = Instant::now();
    let r = h.post(&body(&req)).await;
    let elapsed = t0.elapsed();
    assert_eq!(r.status, 200);
    assert!(!r.broken);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
    );
    assert!(
        r.header("request-id")
            .is_some_and(|id| id.starts_with("req_"))
    );

    let ev = r.events();
    let n = names(&ev);
    assert_eq!(&n[..3], ["message_start", "ping", "content_block_start"]);
    assert_eq!(
        &n[n.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let middle: Vec<&str> = n[3..n.len() - 3]
        .iter()
        .copied()
        .filter(|e| *e != "ping")
        .collect();
    assert!(middle.iter().all(|e| *e == "content_block_delta"), "{n:?}");
    assert!(
        n.iter().filter(|e| **e == "ping").count() >= 2,
        "an early ping and periodic ones: {n:?}"
    );

    let start = &ev[0].1["message"];
    assert!(start["id"].as_str().is_some_and(|i| i.starts_with("msg_")));
    assert_eq!(start["type"], "message");
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["model"], "claude-sonnet-4-6");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(
        start["usage"]["input_tokens"],
        req.estimated_input_tokens(),
        "the mock counts input exactly as the client estimates it"
    );
    assert!(
        start["usage"]["output_tokens"]
            .as_u64()
            .is_some_and(|o| (1..=3).contains(&o))
    );
    assert_eq!(
        ev[2].1["content_block"],
        json!({"type": "text", "text": ""})
    );

    let text = text_of(&ev);
    let expected = choose_reply(None, "Explain token buckets, please.").text;
    assert_eq!(text, expected);
    for (name, v) in &ev {
        if name == "content_block_delta" {
            assert_eq!(v["index"], 0);
            let chunk = v["delta"]["text"].as_str().expect("text");
            assert!((1..=6).contains(&count_text(chunk)), "{chunk:?}");
        }
    }
    let delta = &ev[ev.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["delta"]["stop_sequence"], Value::Null);
    let output = count_text(expected);
    assert_eq!(delta["usage"]["output_tokens"], output);

    // 60 tokens/s after a 200 ms time to first token.
    let want = 0.2 + output as f64 / 60.0;
    assert!(
        (elapsed.as_secs_f64() - want).abs() < 0.5,
        "took {elapsed:?}, expected about {want} s"
    );

    let stats = h.server.control().stats();
    assert_eq!(stats.messages_requests, 1);
    assert_eq!((stats.streams_started, stats.streams_completed), (1, 1));
    assert_eq!(stats.output_tokens_charged, output);
    assert_eq!(stats.input_tokens_charged, req.estimated_input_tokens());
    assert_eq!(stats.requests[0].status, 200);
    assert!(stats.requests[0].stream);
}

#[tokio::test(start_paused = true)]
async fn the_clients_decoder_reads_the_mock_stream() {
    use backchat::api::sse::decode_stream;
    use backchat::api::types::StreamEvent;
    use futures::StreamExt;

    let h = Harness::start(instant()).await;
    let resp = h
        .client
        .post(h.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .body(body(&request("decode me", true)).to_string())
        .send()
        .await
        .expect("response");
    let events: Vec<_> = decode_stream(resp.bytes_stream(), Duration::from_mins(1))
        .collect()
        .await;
    assert!(events.iter().all(Result::is_ok), "{events:?}");
    assert!(matches!(events.last(), Some(Ok(StreamEvent::MessageStop))));
}

#[tokio::test(start_paused = true)]
async fn thinking_comes_first_then_the_text() {
    let h = Harness::start(instant()).await;
    let mut req = request("think about it", true);
    req.max_tokens = 4096;
    req.thinking = Some(Thinking::Enabled {
        budget_tokens: 2048,
    });
    let r = h.post(&body(&req)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = r.events();
    let blocks: Vec<&Value> = ev
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(blocks[0]["index"], 0);
    assert_eq!(
        blocks[0]["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    assert_eq!(blocks[1]["index"], 1);
    assert_eq!(blocks[1]["content_block"]["type"], "text");
    let deltas: Vec<&str> = ev
        .iter()
        .filter(|(_, v)| v["index"] == 0 && v["type"] == "content_block_delta")
        .map(|(_, v)| v["delta"]["type"].as_str().expect("type"))
        .collect();
    assert!(deltas.len() >= 2);
    assert!(
        deltas[..deltas.len() - 1]
            .iter()
            .all(|d| *d == "thinking_delta")
    );
    assert_eq!(deltas.last(), Some(&"signature_delta"));
    let thinking: String = ev
        .iter()
        .filter(|(_, v)| v["delta"]["type"] == "thinking_delta")
        .map(|(_, v)| v["delta"]["thinking"].as_str().expect("s").to_string())
        .collect();
    assert_eq!(thinking, backchat::mock::thinking_text());
    let text = text_of(&ev);
    let usage = &ev[ev.len() - 2].1["usage"];
    assert_eq!(
        usage["output_tokens"],
        count_text(&thinking) + count_text(&text)
    );

    // Adaptive with display "omitted": the block opens, gets a signature, and closes.
    let mut b = body(&request("think quietly", true));
    b["thinking"] = json!({"type": "adaptive", "display": "omitted"});
    let ev = h.post(&b).await.events();
    assert!(
        ev.iter()
            .all(|(_, v)| v["delta"]["type"] != "thinking_delta")
    );
    assert!(
        ev.iter()
            .any(|(_, v)| v["delta"]["type"] == "signature_delta")
    );
}

#[tokio::test(start_paused = true)]
async fn max_tokens_cuts_the_reply() {
    let h = Harness::start(instant()).await;
    let r = h.post(&simple("cut me short", 10, true)).await;
    let ev = r.events();
    let text = text_of(&ev);
    assert_eq!(
        text,
        choose_reply(None, "cut me short")
            .text
            .chars()
            .take(40)
            .collect::<String>()
    );
    let delta = &ev[ev.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta["usage"]["output_tokens"], 10);
}

#[tokio::test(start_paused = true)]
async fn a_whole_reply_is_one_message_after_the_same_time() {
    let h = Harness::start(MockConfig::default()).await;
    let req = request("non-streaming please", false);
    let t0 = Instant::now();
    let r = h.post(&body(&req)).await;
    let elapsed = t0.elapsed();
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let m = r.json();
    let text = choose_reply(None, "non-streaming please").text;
    assert!(m["id"].as_str().is_some_and(|i| i.starts_with("msg_")));
    assert_eq!(m["type"], "message");
    assert_eq!(m["role"], "assistant");
    assert_eq!(m["model"], "claude-sonnet-4-6");
    assert_eq!(m["content"], json!([{"type": "text", "text": text}]));
    assert_eq!(m["stop_reason"], "end_turn");
    assert_eq!(m["stop_sequence"], Value::Null);
    assert_eq!(m["usage"]["input_tokens"], req.estimated_input_tokens());
    assert_eq!(m["usage"]["output_tokens"], count_text(text));
    assert_eq!(m["usage"]["cache_read_input_tokens"], 0);
    let want = 0.2 + count_text(text) as f64 / 60.0;
    assert!((elapsed.as_secs_f64() - want).abs() < 0.5, "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn the_seed_fixes_the_reply() {
    let h = Harness::start(MockConfig {
        seed: Some(4),
        ..instant()
    })
    .await;
    for prompt in ["a", "b"] {
        let m = h.post(&simple(prompt, 2000, false)).await.json();
        assert_eq!(m["content"][0]["text"], choose_reply(Some(4), "").text);
    }
}
