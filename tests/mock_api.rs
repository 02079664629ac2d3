//! The mock API over real loopback HTTP: event grammar, shapes, validation, auth, rate limits,
//! faults, scripts and scenarios. Timing runs on a paused tokio clock, so nothing sleeps.
//!
//! On a paused clock, tokio jumps to the next timer whenever the runtime is idle, even while
//! bytes are in flight on a socket. So these tests keep timers out of the way where timing
//! matters: the reqwest client keeps no idle pool (whose cleanup timer would make the clock
//! jump), and the rate-limit tests use a mock that generates instantly.

use std::time::{Duration, SystemTime};

use backchat::api::types::{Message, MessagesRequest, Role, Thinking};
use backchat::mock::{
    FaultRates, MockConfig, MockLimits, MockServer, Outage, ScriptStep, choose_reply, model_ids,
};
use backchat::tokens::count_text;
use serde_json::{Value, json};
use tokio::time::Instant;

const KEY: &str = "sk-ant-test-key";

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
    /// The body broke off with a transport error.
    broken: bool,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    fn events(&self) -> Vec<(String, Value)> {
        parse_sse(&self.body)
    }
}

struct Harness {
    server: MockServer,
    client: reqwest::Client,
}

impl Harness {
    async fn start(config: MockConfig) -> Harness {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = MockServer::start(config).await.expect("mock starts");
        let client = reqwest::Client::builder()
            // No idle pool: its cleanup timer would make a paused clock jump.
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        Harness { server, client }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    async fn post_as(&self, path: &str, body: &Value, key: Option<&str>) -> Reply {
        let mut rb = self
            .client
            .post(self.url(path))
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(k) = key {
            rb = rb.header("x-api-key", k);
        }
        send(rb).await
    }

    async fn post(&self, body: &Value) -> Reply {
        self.post_as("/v1/messages", body, Some(KEY)).await
    }

    async fn get(&self, path: &str) -> Reply {
        send(
            self.client
                .get(self.url(path))
                .header("anthropic-version", "2023-06-01")
                .header("x-api-key", KEY),
        )
        .await
    }
}

async fn send(rb: reqwest::RequestBuilder) -> Reply {
    let mut resp = rb.send().await.expect("response headers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut bytes = Vec::new();
    let mut broken = false;
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => bytes.extend_from_slice(&c),
            Ok(None) => break,
            Err(_) => {
                broken = true;
                break;
            }
        }
    }
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes).expect("UTF-8 body"),
        broken,
    }
}

fn parse_sse(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|frame| {
            let mut event = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d.to_string();
                }
            }
            let value: Value = serde_json::from_str(&data).expect("frame data is JSON");
            assert_eq!(value["type"], event.as_str(), "event name and type agree");
            (event, value)
        })
        .collect()
}

fn text_of(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(_, v)| v["delta"]["type"] == "text_delta")
        .map(|(_, v)| v["delta"]["text"].as_str().expect("text").to_string())
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

/// A request built with the client's own types, so counts can be compared with its estimate.
fn request(prompt: &str, stream: bool) -> MessagesRequest {
    let mut r = MessagesRequest::new(
        "claude-sonnet-4-6",
        1024,
        vec![
            Message::text(Role::User, "Hi!"),
            Message::text(Role::Assistant, "Hello — how can I help? 🙂"),
            Message::text(Role::User, prompt),
        ],
    );
    r.system = Some("You are concise.".into());
    r.stream = stream;
    r
}

fn body(r: &MessagesRequest) -> Value {
    serde_json::to_value(r).expect("serializable")
}

fn simple(prompt: &str, max_tokens: u64, stream: bool) -> Value {
    json!({"model": "claude-sonnet-4-6", "max_tokens": max_tokens, "stream": stream,
           "messages": [{"role": "user", "content": prompt}]})
}

/// Generates instantly: only the test moves the clock.
fn instant() -> MockConfig {
    MockConfig {
        token_rate: 1e9,
        first_token_latency: Duration::ZERO,
        ..MockConfig::default()
    }
}

fn assert_envelope(r: &Reply, status: u16, error_type: &str) -> String {
    assert_eq!(r.status, status, "{}", r.body);
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], error_type, "{}", r.body);
    let rid = r.header("request-id").expect("request-id header");
    assert!(rid.starts_with("req_"), "{rid}");
    assert_eq!(v["request_id"], rid);
    v["error"]["message"].as_str().expect("message").to_string()
}

fn wall_secs(stamp: &str) -> u64 {
    humantime::parse_rfc3339(stamp)
        .expect("RFC 3339")
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

// ---------------------------------------------------------------------------------------
// Replies

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
    let events: Vec<_> = decode_stream(resp.bytes_stream(), Duration::from_secs(60))
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

// ---------------------------------------------------------------------------------------
// Other endpoints

#[tokio::test(start_paused = true)]
async fn models_page_forward_and_back() {
    let h = Harness::start(instant()).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/models?limit=3&after_id={a}"),
            None => "/v1/models?limit=3".to_string(),
        };
        let page = h.get(&path).await;
        assert_eq!(page.status, 200);
        let v = page.json();
        let data = v["data"].as_array().expect("data");
        assert!(data.len() <= 3);
        for m in data {
            assert_eq!(m["type"], "model");
            assert!(
                m["display_name"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("Claude"))
            );
            assert!(m["created_at"].as_str().is_some_and(|c| c.ends_with('Z')));
            seen.push(m["id"].as_str().expect("id").to_string());
        }
        assert_eq!(v["first_id"], data[0]["id"]);
        assert_eq!(v["last_id"], data[data.len() - 1]["id"]);
        if v["has_more"] == false {
            break;
        }
        after = v["last_id"].as_str().map(str::to_string);
    }
    assert_eq!(seen, model_ids());
    for id in [
        "claude-sonnet-4-6",
        "claude-opus-4-8",
        "claude-haiku-4-5",
        "claude-sonnet-5",
        "claude-opus-5",
    ] {
        assert!(seen.iter().any(|s| s == id), "{id}");
    }
    let back = h
        .get(&format!("/v1/models?limit=2&before_id={}", seen[4]))
        .await
        .json();
    assert_eq!(back["first_id"], seen[2].as_str());
    assert_eq!(back["last_id"], seen[3].as_str());
    assert_eq!(back["has_more"], true);

    let one = h.get("/v1/models/claude-opus-5").await;
    assert_eq!(one.json()["id"], "claude-opus-5");
    let missing = h.get("/v1/models/claude-1").await;
    assert_envelope(&missing, 404, "not_found_error");
    let bad = h.get("/v1/models?limit=0").await;
    assert_envelope(&bad, 400, "invalid_request_error");
}

#[tokio::test(start_paused = true)]
async fn count_tokens_matches_the_estimate_and_costs_nothing() {
    let h = Harness::start(instant()).await;
    let req = request("how many tokens is this?", false);
    let mut b = body(&req);
    if let Some(o) = b.as_object_mut() {
        o.remove("max_tokens");
    }
    let r = h.post_as("/v1/messages/count_tokens", &b, Some(KEY)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"input_tokens": req.estimated_input_tokens()})
    );
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining"),
        Some("50")
    );
    let missing = h
        .post_as(
            "/v1/messages/count_tokens",
            &json!({"model": "m"}),
            Some(KEY),
        )
        .await;
    assert_eq!(
        assert_envelope(&missing, 400, "invalid_request_error"),
        "messages: Field required"
    );
    assert_eq!(h.server.control().stats().messages_requests, 0);
}

// ---------------------------------------------------------------------------------------
// Validation and auth

#[tokio::test(start_paused = true)]
async fn every_validation_error_has_the_real_envelope() {
    let h = Harness::start(instant()).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
            "model: Field required",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens: Field required",
        ),
        (
            json!({"model": "m", "max_tokens": 5}),
            "messages: Field required",
        ),
        (
            json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens: Input should be greater than or equal to 1",
        ),
        (
            json!({"model": "m", "max_tokens": 2.5, "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens: Input should be a valid integer",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": []}),
            "messages: at least one message is required",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": ""}]}),
            "messages.0: all messages must have non-empty content except for the optional final assistant message",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": []}]}),
            "messages.0: all messages must have non-empty content except for the optional final assistant message",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}),
            "messages: text content blocks must be non-empty",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": "x"}]}),
            "messages: first message must use the \"user\" role",
        ),
    ];
    for (b, message) in cases {
        let r = h.post(&b).await;
        assert_eq!(
            assert_envelope(&r, 400, "invalid_request_error"),
            message,
            "{b}"
        );
        assert!(
            r.header("anthropic-ratelimit-requests-limit").is_some(),
            "after auth: headers"
        );
    }
    // Not JSON at all.
    let r = send(
        h.client
            .post(h.url("/v1/messages"))
            .header("x-api-key", KEY)
            .header("anthropic-version", "2023-06-01")
            .body("{not json"),
    )
    .await;
    let m = assert_envelope(&r, 400, "invalid_request_error");
    assert!(m.starts_with("The request body is not valid JSON"), "{m}");
    // No anthropic-version.
    let r = send(
        h.client
            .post(h.url("/v1/messages"))
            .header("x-api-key", KEY)
            .body(simple("x", 5, false).to_string()),
    )
    .await;
    assert_eq!(
        assert_envelope(&r, 400, "invalid_request_error"),
        "anthropic-version: header is required"
    );
    // Unknown path, wrong method.
    let r = h.get("/v1/nothing-here").await;
    assert_envelope(&r, 404, "not_found_error");
    let r = h.get("/v1/messages").await;
    assert_envelope(&r, 405, "invalid_request_error");
    assert_eq!(r.header("allow"), Some("POST"));
    // Nothing was admitted.
    let stats = h.server.control().stats();
    assert_eq!(stats.input_tokens_charged, 0);
    assert_eq!(stats.count(400), 13);
}

#[tokio::test(start_paused = true)]
async fn bodies_over_the_limit_get_413_before_anything_else() {
    let h = Harness::start(MockConfig {
        max_body_bytes: 1024,
        ..instant()
    })
    .await;
    let big = simple(&"x".repeat(2000), 5, false);
    // Even without a key, and even on an unknown path: size is checked first.
    for (path, key) in [("/v1/messages", None), ("/v1/elsewhere", Some(KEY))] {
        let r = h.post_as(path, &big, key).await;
        assert_envelope(&r, 413, "request_too_large");
        assert!(r.header("anthropic-ratelimit-requests-limit").is_none());
    }
    assert_eq!(h.post(&simple("small", 5, false)).await.status, 200);
}

#[tokio::test(start_paused = true)]
async fn keys_come_from_x_api_key_or_bearer() {
    let h = Harness::start(MockConfig {
        rejected_keys: vec!["sk-revoked".into()],
        ..instant()
    })
    .await;
    let b = simple("hello", 5, false);
    assert_eq!(h.post_as("/v1/messages", &b, Some(KEY)).await.status, 200);
    let bearer = send(
        h.client
            .post(h.url("/v1/messages"))
            .header("authorization", "Bearer some-oauth-token")
            .header("anthropic-version", "2026-10-21")
            .body(b.to_string()),
    )
    .await;
    assert_eq!(bearer.status, 200);

    let none = h.post_as("/v1/messages", &b, None).await;
    assert_eq!(
        assert_envelope(&none, 401, "authentication_error"),
        "x-api-key header is required"
    );
    assert!(none.header("anthropic-ratelimit-requests-limit").is_none());
    let revoked = h.post_as("/v1/messages", &b, Some("sk-revoked")).await;
    assert_eq!(
        assert_envelope(&revoked, 401, "authentication_error"),
        "invalid x-api-key"
    );
    let models = send(h.client.get(h.url("/v1/models"))).await;
    assert_envelope(&models, 401, "authentication_error");
}

// ---------------------------------------------------------------------------------------
// Rate limits

#[tokio::test(start_paused = true)]
async fn rate_limit_headers_have_the_api_formats() {
    let h = Harness::start(instant()).await;
    let r = h.post(&simple("hello there", 50, true)).await;
    assert_eq!(r.status, 200);
    let now = wall_secs(&backchat::clock::rfc3339_seconds(
        backchat::clock::wall_now(),
    ));
    for bucket in ["requests", "tokens", "input-tokens", "output-tokens"] {
        let get = |s: &str| {
            r.header(&format!("anthropic-ratelimit-{bucket}-{s}"))
                .unwrap_or_else(|| panic!("{bucket}-{s} missing"))
                .to_string()
        };
        let limit: u64 = get("limit").parse().expect("integer limit");
        let remaining: u64 = get("remaining").parse().expect("integer remaining");
        assert!(remaining <= limit);
        if bucket != "requests" {
            assert_eq!(
                remaining % 1000,
                0,
                "{bucket} remaining is rounded to 1,000"
            );
        }
        let reset = get("reset");
        assert!(
            reset.len() == 20 && reset.ends_with('Z') && !reset.contains('.'),
            "{reset}"
        );
        let at = wall_secs(&reset);
        assert!(at >= now && at <= now + 61, "{reset}");
    }
    assert_eq!(r.header("anthropic-ratelimit-requests-limit"), Some("50"));
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining"),
        Some("49")
    );
    assert_eq!(
        r.header("anthropic-ratelimit-input-tokens-limit"),
        Some("30000")
    );
    assert_eq!(
        r.header("anthropic-ratelimit-output-tokens-limit"),
        Some("8000")
    );
    assert_eq!(r.header("anthropic-ratelimit-tokens-limit"), Some("38000"));
    assert_eq!(
        r.header("anthropic-ratelimit-tokens-remaining"),
        Some("38000")
    );
    assert_eq!(
        r.header("anthropic-organization-id"),
        Some(backchat::mock::ORG_ID)
    );
}

#[tokio::test(start_paused = true)]
async fn a_burst_past_rpm_waits_exactly_retry_after() {
    let h = Harness::start(instant()).await;
    let b = simple("burst", 1, false);
    let t0 = Instant::now();
    for i in 0..50 {
        assert_eq!(h.post(&b).await.status, 200, "request {i}");
    }
    assert_eq!(Instant::now(), t0, "no time passed during the burst");
    let refused = h.post(&b).await;
    let m = assert_envelope(&refused, 429, "rate_limit_error");
    assert!(
        m.starts_with("This request would exceed your organization's rate limit of 50 requests per minute (org: "),
        "{m}"
    );
    assert!(m.contains("model: claude-sonnet-4-6"), "{m}");
    // One request refills in 1.2 s: retry-after is the whole seconds until it fits.
    assert_eq!(refused.header("retry-after"), Some("2"));
    assert_eq!(refused.header("x-should-retry"), Some("true"));
    assert_eq!(
        refused.header("anthropic-ratelimit-requests-remaining"),
        Some("0")
    );
    let before = h.server.control().stats();

    tokio::time::advance(Duration::from_secs(1)).await;
    let early = h.post(&b).await;
    assert_eq!(early.status, 429, "1 s early is still too early");
    assert_eq!(early.header("retry-after"), Some("1"));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        h.post(&b).await.status,
        200,
        "fits once retry-after has passed"
    );

    // 429s consumed nothing.
    let after = h.server.control().stats();
    assert_eq!(before.count(429), 1);
    assert_eq!(after.count(429), 2);
    assert_eq!(after.count(200), 51);
    assert_eq!(
        after.input_tokens_charged - before.input_tokens_charged,
        after.requests.last().map(|r| r.input_tokens).unwrap_or(0)
    );
}

#[tokio::test(start_paused = true)]
async fn input_tokens_refill_continuously() {
    let h = Harness::start(instant()).await;
    // 3 + 4 + 28,993 = 29,000 input tokens.
    let drain = simple(&"a".repeat(28_993 * 4), 1, false);
    let r = h.post(&drain).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("anthropic-ratelimit-input-tokens-remaining"),
        Some("1000")
    );
    let reset = wall_secs(
        r.header("anthropic-ratelimit-input-tokens-reset")
            .expect("reset"),
    );
    let now = backchat::clock::wall_now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("now")
        .as_secs_f64();
    // 29,000 missing at 500/s: full again in 58 s, rounded up to the whole second.
    assert!(
        (reset as f64 - now - 58.0).abs() <= 1.0,
        "reset {reset}, now {now}"
    );

    // 3 + 4 + 1,993 = 2,000 tokens: 1,000 short, 2 s at 500/s.
    let next = simple(&"b".repeat(1_993 * 4), 1, false);
    let refused = h.post(&next).await;
    let m = assert_envelope(&refused, 429, "rate_limit_error");
    assert!(
        m.contains("rate limit of 30,000 input tokens per minute"),
        "{m}"
    );
    assert_eq!(refused.header("retry-after"), Some("2"));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(h.post(&next).await.status, 429);
    tokio::time::advance(Duration::from_secs(1)).await;
    let ok = h.post(&next).await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("anthropic-ratelimit-input-tokens-remaining"),
        Some("0")
    );

    // Half a minute later, half the capacity is back (models calls read the headers for free).
    tokio::time::advance(Duration::from_secs(30)).await;
    let look = h.get("/v1/models").await;
    assert_eq!(
        look.header("anthropic-ratelimit-input-tokens-remaining"),
        Some("15000")
    );
    let reqs: u64 = look
        .header("anthropic-ratelimit-requests-remaining")
        .and_then(|v| v.parse().ok())
        .expect("requests remaining");
    assert_eq!(reqs, 50, "a few requests refill well within 30 s");
}

#[tokio::test(start_paused = true)]
async fn requests_refill_half_in_half_a_minute() {
    let h = Harness::start(instant()).await;
    for _ in 0..50 {
        assert_eq!(h.post(&simple("x", 1, false)).await.status, 200);
    }
    let look = h.get("/v1/models").await;
    assert_eq!(
        look.header("anthropic-ratelimit-requests-remaining"),
        Some("0")
    );
    tokio::time::advance(Duration::from_secs(30)).await;
    let look = h.get("/v1/models").await;
    let reqs: u64 = look
        .header("anthropic-ratelimit-requests-remaining")
        .and_then(|v| v.parse().ok())
        .expect("requests remaining");
    assert!((24..=25).contains(&reqs), "{reqs}");
}

#[tokio::test(start_paused = true)]
async fn buckets_are_per_key() {
    let h = Harness::start(instant()).await;
    let b = simple("mine", 1, false);
    for _ in 0..50 {
        assert_eq!(
            h.post_as("/v1/messages", &b, Some("key-a")).await.status,
            200
        );
    }
    assert_eq!(
        h.post_as("/v1/messages", &b, Some("key-a")).await.status,
        429
    );
    let other = h.post_as("/v1/messages", &b, Some("key-b")).await;
    assert_eq!(other.status, 200);
    assert_eq!(
        other.header("anthropic-ratelimit-requests-remaining"),
        Some("49")
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_bigger_than_the_bucket_never_fits() {
    let h = Harness::start(instant()).await;
    let huge = simple(&"z".repeat(31_000 * 4), 1, false);
    let r = h.post(&huge).await;
    let m = assert_envelope(&r, 429, "rate_limit_error");
    assert!(
        m.contains("rate limit of 30,000 input tokens per minute"),
        "{m}"
    );
    assert_eq!(r.header("retry-after"), None, "no wait makes it fit");
    assert_eq!(
        r.header("anthropic-ratelimit-input-tokens-remaining"),
        Some("30000")
    );
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining"),
        Some("50")
    );
    assert_eq!(h.server.control().stats().input_tokens_charged, 0);
}

#[tokio::test(start_paused = true)]
async fn output_tokens_are_charged_as_generated() {
    let h = Harness::start(MockConfig {
        limits: MockLimits {
            otpm: 300,
            ..MockLimits::default()
        },
        ..instant()
    })
    .await;
    let r = h.post(&simple("long answer", 2000, false)).await;
    assert_eq!(r.status, 200);
    let out = r.json()["usage"]["output_tokens"].as_u64().expect("usage");
    assert!(out > 300, "the reply is longer than the bucket: {out}");
    assert_eq!(
        r.header("anthropic-ratelimit-output-tokens-remaining"),
        Some("0")
    );
    let refused = h.post(&simple("again", 5, false)).await;
    let m = assert_envelope(&refused, 429, "rate_limit_error");
    assert!(m.contains("300 output tokens per minute"), "{m}");
    // The bucket went to 300 − out; one token must come back at 5 per second.
    let wait = (out - 300 + 1) as f64 / 5.0;
    let ra: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert_eq!(ra, wait.ceil() as u64);
}

#[tokio::test(start_paused = true)]
async fn retry_after_ms_and_time_scale() {
    let h = Harness::start(MockConfig {
        emit_retry_after_ms: true,
        ..instant()
    })
    .await;
    for _ in 0..50 {
        h.post(&simple("x", 1, false)).await;
    }
    let r = h.post(&simple("x", 1, false)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after-ms"), Some("1200"));

    let fast = Harness::start(MockConfig {
        emit_retry_after_ms: true,
        time_scale: 60.0,
        ..instant()
    })
    .await;
    for _ in 0..50 {
        fast.post(&simple("x", 1, false)).await;
    }
    let r = fast.post(&simple("x", 1, false)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("retry-after-ms"), Some("20"));
    assert_eq!(r.header("anthropic-ratelimit-requests-limit"), Some("50"));
    tokio::time::advance(Duration::from_millis(20)).await;
    assert_eq!(fast.post(&simple("x", 1, false)).await.status, 200);
}

#[tokio::test(start_paused = true)]
async fn limits_can_change_while_running() {
    let h = Harness::start(instant()).await;
    h.server.control().set_limits(MockLimits {
        rpm: 1,
        ..MockLimits::default()
    });
    assert_eq!(h.post(&simple("x", 1, false)).await.status, 200);
    let r = h.post(&simple("x", 1, false)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(h.server.control().limits().rpm, 1);
}

// ---------------------------------------------------------------------------------------
// Script steps and faults

#[tokio::test(start_paused = true)]
async fn scripted_steps_are_consumed_in_order() {
    let h = Harness::start(instant()).await;
    let c = h.server.control();
    c.push_script([
        ScriptStep::rate_limited("2.5")
            .with_retry_after_ms("2500")
            .with_should_retry(false)
            .with_header("x-extra", "yes"),
        ScriptStep::overloaded(),
        ScriptStep::Reply {
            text: "Scripted hello.".into(),
        },
    ]);
    assert_eq!(c.pending_script(), 3);
    let r = h.post(&simple("x", 100, true)).await;
    assert_envelope(&r, 429, "rate_limit_error");
    assert_eq!(r.header("retry-after"), Some("2.5"));
    assert_eq!(r.header("retry-after-ms"), Some("2500"));
    assert_eq!(r.header("x-should-retry"), Some("false"));
    assert_eq!(r.header("x-extra"), Some("yes"));
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining"),
        Some("50"),
        "scripted errors carry the current headers and consume nothing"
    );
    let r = h.post(&simple("x", 100, true)).await;
    assert_eq!(assert_envelope(&r, 529, "overloaded_error"), "Overloaded");
    assert_eq!(r.header("retry-after"), None);
    let r = h.post(&simple("x", 100, true)).await;
    assert_eq!(text_of(&r.events()), "Scripted hello.");
    assert_eq!(c.pending_script(), 0);
    let r = h.post(&simple("x", 2000, true)).await;
    assert_eq!(text_of(&r.events()), choose_reply(None, "x").text);
}

#[tokio::test(start_paused = true)]
async fn scripted_error_details_html_and_odd_retry_after() {
    let h = Harness::start(instant()).await;
    h.server.control().push_script([
        ScriptStep::error(503).with_html_body(),
        ScriptStep::rate_limited("Wed, 21 Oct 2015 07:28:00 GMT"),
        ScriptStep::rate_limited("soon-ish"),
        ScriptStep::error(500)
            .with_details(json!({"hint": 1}))
            .with_message("boom"),
        ScriptStep::SpendCap,
    ]);
    let html = h.post(&simple("x", 5, false)).await;
    assert_eq!(html.status, 503);
    assert_eq!(html.header("content-type"), Some("text/html"));
    assert!(html.body.starts_with("<html>"));
    assert!(serde_json::from_str::<Value>(&html.body).is_err());
    assert!(html.header("request-id").is_some());
    assert_eq!(
        h.post(&simple("x", 5, false)).await.header("retry-after"),
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    );
    assert_eq!(
        h.post(&simple("x", 5, false)).await.header("retry-after"),
        Some("soon-ish")
    );
    let e = h.post(&simple("x", 5, false)).await;
    assert_eq!(assert_envelope(&e, 500, "api_error"), "boom");
    assert_eq!(e.json()["error"]["details"], json!({"hint": 1}));
    let cap = h.post(&simple("x", 5, false)).await;
    let m = assert_envelope(&cap, 429, "rate_limit_error");
    assert!(
        m.contains("API usage limits") && m.contains("00:00 UTC"),
        "{m}"
    );
    assert_eq!(
        cap.json()["error"]["details"],
        json!({"error_code": "enforced_spend_limit_reached"})
    );
    assert_eq!(cap.header("retry-after"), None);
    assert_eq!(cap.header("x-should-retry"), None);
}

#[tokio::test(start_paused = true)]
async fn a_mid_stream_error_frame_ends_the_stream() {
    let h = Harness::start(instant()).await;
    h.server.control().push_script([ScriptStep::MidStreamError {
        after_tokens: 10,
        error_type: "overloaded_error".into(),
    }]);
    let r = h.post(&simple("x", 1000, true)).await;
    assert_eq!(r.status, 200);
    assert!(!r.broken, "ends cleanly at the HTTP level");
    let ev = r.events();
    let text = text_of(&ev);
    assert!(
        count_text(&text) >= 10 && count_text(&text) < 20,
        "{text:?}"
    );
    let (last_name, last) = ev.last().expect("events");
    assert_eq!(last_name, "error");
    assert_eq!(
        last,
        &json!({"type": "error", "error": {"details": null, "type": "overloaded_error", "message": "Overloaded"}})
    );
    assert!(!names(&ev).contains(&"message_stop"));
    let stats = h.server.control().stats();
    assert_eq!((stats.streams_started, stats.streams_completed), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_connection_is_a_body_error() {
    let h = Harness::start(instant()).await;
    h.server
        .control()
        .push_script([ScriptStep::Drop { after_tokens: 12 }]);
    let r = h.post(&simple("x", 1000, true)).await;
    assert_eq!(r.status, 200);
    assert!(
        r.broken,
        "the client sees a transport error, not a clean end"
    );
    let ev = r.events();
    assert!(count_text(&text_of(&ev)) >= 12);
    assert!(!names(&ev).contains(&"message_stop"));
}

#[tokio::test(start_paused = true)]
async fn a_stream_can_end_without_message_stop() {
    let h = Harness::start(instant()).await;
    h.server
        .control()
        .push_script([ScriptStep::EndWithoutStop { after_tokens: 8 }]);
    let r = h.post(&simple("x", 1000, true)).await;
    assert_eq!(r.status, 200);
    assert!(!r.broken, "a clean end at the HTTP level");
    let n = names(&r.events()).join(",");
    assert!(
        !n.contains("message_stop") && !n.contains("message_delta"),
        "{n}"
    );
    assert!(count_text(&text_of(&r.events())) >= 8);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_stays_open_and_silent() {
    let h = Harness::start(instant()).await;
    h.server
        .control()
        .push_script([ScriptStep::Stall { after_tokens: 5 }]);
    let mut resp = h
        .client
        .post(h.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .body(simple("x", 1000, true).to_string())
        .send()
        .await
        .expect("headers");
    let mut text = String::new();
    let timed_out = loop {
        match tokio::time::timeout(Duration::from_secs(60), resp.chunk()).await {
            Err(_) => break true,
            Ok(Ok(Some(c))) => text.push_str(std::str::from_utf8(&c).expect("utf-8")),
            Ok(_) => break false,
        }
    };
    assert!(timed_out, "no end, no error: silence");
    assert!(count_text(&text_of(&parse_sse(&text))) >= 5);
    drop(resp);
    // Shutting down ends the stall too.
    let Harness { server, .. } = h;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_pause_delays_the_rest_of_the_stream() {
    let h = Harness::start(instant()).await;
    h.server.control().push_script([ScriptStep::Pause {
        after_tokens: 5,
        delay: Duration::from_secs(30),
    }]);
    let t0 = Instant::now();
    let r = h.post(&simple("x", 1000, true)).await;
    assert!(t0.elapsed() >= Duration::from_secs(30));
    assert_eq!(names(&r.events()).last(), Some(&"message_stop"));
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_byte_delays_the_headers() {
    let h = Harness::start(instant()).await;
    h.server.control().push_script([ScriptStep::SlowFirstByte {
        delay: Duration::from_secs(5),
    }]);
    let t0 = Instant::now();
    let resp = h
        .client
        .post(h.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .body(simple("x", 10, true).to_string())
        .send()
        .await
        .expect("headers");
    let waited = t0.elapsed();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_millis(5500),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn whole_responses_suffer_the_same_faults() {
    let h = Harness::start(instant()).await;
    h.server.control().push_script([
        ScriptStep::MidStreamError {
            after_tokens: 5,
            error_type: "overloaded_error".into(),
        },
        ScriptStep::Drop { after_tokens: 5 },
        ScriptStep::EndWithoutStop { after_tokens: 5 },
    ]);
    let r = h.post(&simple("x", 1000, false)).await;
    assert_envelope(&r, 529, "overloaded_error");
    let r = h.post(&simple("x", 1000, false)).await;
    assert_eq!(r.status, 200);
    assert!(r.broken);
    let r = h.post(&simple("x", 1000, false)).await;
    assert_eq!(r.status, 200);
    assert!(!r.broken);
    assert!(
        serde_json::from_str::<Value>(&r.body).is_err(),
        "truncated JSON"
    );
}

#[tokio::test(start_paused = true)]
async fn random_faults_fire_at_their_rates() {
    let h = Harness::start(MockConfig {
        seed: Some(1),
        faults: FaultRates {
            overloaded: 1.0,
            should_retry: Some(true),
            ..FaultRates::default()
        },
        ..instant()
    })
    .await;
    let r = h.post(&simple("x", 5, true)).await;
    assert_eq!(assert_envelope(&r, 529, "overloaded_error"), "Overloaded");
    assert_eq!(r.header("retry-after"), None);
    assert_eq!(r.header("x-should-retry"), Some("true"));
    assert!(r.header("anthropic-ratelimit-requests-remaining").is_some());

    let c = h.server.control();
    c.set_faults(FaultRates {
        unavailable: 1.0,
        unavailable_html: true,
        ..FaultRates::default()
    });
    let r = h.post(&simple("x", 5, true)).await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("503 Service Temporarily Unavailable"));

    c.set_faults(FaultRates {
        server_error: 1.0,
        ..FaultRates::default()
    });
    assert_envelope(&h.post(&simple("x", 5, true)).await, 500, "api_error");

    c.set_faults(FaultRates {
        spend_cap: 1.0,
        ..FaultRates::default()
    });
    let r = h.post(&simple("x", 5, true)).await;
    assert_envelope(&r, 429, "rate_limit_error");
    assert_eq!(
        r.json()["error"]["details"]["error_code"],
        "enforced_spend_limit_reached"
    );

    c.set_faults(FaultRates {
        midstream_error: 1.0,
        ..FaultRates::default()
    });
    let r = h.post(&simple("x", 1000, true)).await;
    assert_eq!(r.events().last().map(|(n, _)| n.as_str()), Some("error"));

    c.set_faults(FaultRates {
        drop: 1.0,
        ..FaultRates::default()
    });
    let r = h.post(&simple("x", 1000, true)).await;
    assert!(r.broken);

    c.set_faults(FaultRates {
        slow_first_byte: 1.0,
        slow_first_byte_delay: Duration::from_secs(3),
        ..FaultRates::default()
    });
    let t0 = Instant::now();
    assert_eq!(h.post(&simple("x", 5, false)).await.status, 200);
    assert!(t0.elapsed() >= Duration::from_secs(3));

    c.set_faults(FaultRates::default());
    let r = h.post(&simple("x", 1000, true)).await;
    assert_eq!(names(&r.events()).last(), Some(&"message_stop"));

    // Scripted steps replace the random draw.
    c.set_faults(FaultRates {
        overloaded: 1.0,
        ..FaultRates::default()
    });
    c.push_script([ScriptStep::Ok]);
    assert_eq!(h.post(&simple("x", 5, false)).await.status, 200);
    assert_eq!(h.post(&simple("x", 5, false)).await.status, 529);
}

#[tokio::test(start_paused = true)]
async fn an_outage_window_answers_529() {
    let h = Harness::start(MockConfig {
        outages: vec![Outage::overloaded(10.0, 40.0)],
        ..instant()
    })
    .await;
    assert_eq!(h.post(&simple("x", 5, false)).await.status, 200);
    tokio::time::advance(Duration::from_secs(10)).await;
    let r = h.post(&simple("x", 5, false)).await;
    assert_envelope(&r, 529, "overloaded_error");
    assert_eq!(r.header("retry-after"), None);
    tokio::time::advance(Duration::from_secs(29)).await;
    assert_eq!(h.post(&simple("x", 5, false)).await.status, 529);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(h.post(&simple("x", 5, false)).await.status, 200);
}

#[tokio::test(start_paused = true)]
async fn the_admin_endpoint_is_off_unless_enabled() {
    let off = Harness::start(instant()).await;
    let r = off
        .post_as(
            "/_mock/script",
            &json!([{"type": "error", "status": 529}]),
            None,
        )
        .await;
    assert_envelope(&r, 404, "not_found_error");

    let on = Harness::start(MockConfig {
        admin_endpoint: true,
        ..instant()
    })
    .await;
    let r = on
        .post_as(
            "/_mock/script",
            &json!([{"type": "error", "status": 429, "retry_after": "1"}, {"type": "ok"}]),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["queued"], 2);
    let r = on.post(&simple("x", 5, false)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(on.post(&simple("x", 5, false)).await.status, 200);
    let bad = on
        .post_as("/_mock/script", &json!([{"type": "nope"}]), None)
        .await;
    assert_envelope(&bad, 400, "invalid_request_error");
    let stats = on.get("/_mock/stats").await.json();
    assert_eq!(stats["messages_requests"], 2);
    assert_eq!(stats["by_status"]["429"], 1);
}

// ---------------------------------------------------------------------------------------
// Scenarios

#[test]
fn the_example_scenarios_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/scenarios");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("scenario dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let c = MockConfig::from_scenario_file(&path)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            assert!(
                c.description.is_some(),
                "{} says what it is for",
                path.display()
            );
            names.push(
                path.file_name()
                    .expect("name")
                    .to_string_lossy()
                    .to_string(),
            );
        }
    }
    for want in [
        "tier1.toml",
        "tight-demo.toml",
        "flaky.toml",
        "outage-529.toml",
        "scripted-429s.toml",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} is missing");
    }
    let tight = MockConfig::from_scenario_file(&dir.join("tight-demo.toml")).expect("parses");
    assert_eq!(tight.limits, MockConfig::tight_demo().limits);
    let outage = MockConfig::from_scenario_file(&dir.join("outage-529.toml")).expect("parses");
    assert_eq!(outage.outages, vec![Outage::overloaded(10.0, 40.0)]);
    let tier1 = MockConfig::from_scenario_file(&dir.join("tier1.toml")).expect("parses");
    assert_eq!(tier1.limits, MockLimits::default());
}

#[test]
fn scenario_errors_name_the_key_and_the_line() {
    let e =
        MockConfig::from_scenario_str("token_rate = 30\n[limits]\nrpm = 5\nburst = 2\n", "s.toml")
            .expect_err("unknown key")
            .to_string();
    assert!(e.starts_with("s.toml: "), "{e}");
    assert!(e.contains("burst") && e.contains("line 4"), "{e}");
    let e = MockConfig::from_scenario_str("[faults]\ndrop = -0.5\n", "s.toml")
        .expect_err("bad value")
        .to_string();
    assert!(e.contains("drop = -0.5") && e.contains("line 2"), "{e}");
    let e = MockConfig::from_scenario_str("[limits]\nrpm = \"lots\"\n", "s.toml")
        .expect_err("bad type")
        .to_string();
    assert!(e.contains("rpm") && e.contains("line 2"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_scenario_script_drives_the_server() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/scenarios");
    let mut config =
        MockConfig::from_scenario_file(&dir.join("scripted-429s.toml")).expect("parses");
    config.token_rate = 1e9;
    config.first_token_latency = Duration::ZERO;
    let h = Harness::start(config).await;
    let statuses = [429, 429, 529, 200];
    for want in statuses {
        assert_eq!(h.post(&simple("x", 5, false)).await.status, want);
    }
    let r = h.post(&simple("x", 1000, true)).await;
    assert_eq!(r.events().last().map(|(n, _)| n.as_str()), Some("error"));
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_the_server() {
    let h = Harness::start(instant()).await;
    let url = h.url("/v1/models");
    let client = h.client.clone();
    let Harness { server, .. } = h;
    server.shutdown().await;
    assert!(
        client.get(url).send().await.is_err(),
        "nothing listens any more"
    );
}
