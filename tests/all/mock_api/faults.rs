//! Scripted steps and faults: errors with their headers, mid-stream errors, drops, stalls,
//! pauses, slow first bytes, random fault rates and outage windows.

use std::time::Duration;

use backchat::mock::{FaultRates, MockConfig, Outage, ScriptStep, choose_reply};
use backchat::tokens::count_text;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::harness::{Harness, KEY, assert_envelope, instant, names, parse_sse, simple, text_of};

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
        match tokio::time::timeout(Duration::from_mins(1), resp.chunk()).await {
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
