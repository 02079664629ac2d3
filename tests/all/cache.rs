//! Prompt caching end to end: the mock's cache over real HTTP (the shared fixture
//! `tests/sdk/cache_case.json`, which the official Python SDK replays too), the ITPM it
//! charges, and the client's requests and usage through the driver.

use std::path::Path;

use backchat::api::{CacheMode, CacheTtl, Message, MessagesRequest, Role};
use backchat::mock::{MockConfig, MockServer};
use backchat::retry::TurnEvent;
use serde_json::{Value, json};

/// `"@repeat:N:TEXT"` → TEXT × N, everywhere in `v`.
fn expand(v: &mut Value) {
    match v {
        Value::String(s) => {
            if let Some(rest) = s.strip_prefix("@repeat:") {
                let (n, text) = rest.split_once(':').expect("@repeat:N:TEXT");
                *s = text.repeat(n.parse().expect("N"));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(expand),
        Value::Object(map) => map.values_mut().for_each(expand),
        _ => {}
    }
}

fn fixture() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/cache_case.json");
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    expand(&mut v);
    v
}

/// The usage fields a response reports, in the fixture's order.
fn usage_row(usage: &Value) -> [u64; 5] {
    let n = |v: &Value| v.as_u64().expect("a count");
    [
        n(&usage["input_tokens"]),
        n(&usage["cache_creation_input_tokens"]),
        n(&usage["cache_read_input_tokens"]),
        n(&usage["cache_creation"]["ephemeral_5m_input_tokens"]),
        n(&usage["cache_creation"]["ephemeral_1h_input_tokens"]),
    ]
}

async fn post(base: &str, key: &str, body: &Value) -> reqwest::Response {
    // reqwest is built without a default crypto provider (plain HTTP here, but the client
    // builder still asks for one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("sent")
}

/// Send the fixture's requests (all non-streaming here: the numbers do not depend on it)
/// and return each one's usage row.
async fn replay(base: &str) -> Vec<[u64; 5]> {
    let fx = fixture();
    let mut rows = Vec::new();
    for r in fx["requests"].as_array().expect("requests") {
        let mut body = r["body"].clone();
        body["model"] = fx["model"].clone();
        body["max_tokens"] = json!(64);
        let resp = post(base, r["key"].as_str().expect("key"), &body).await;
        assert_eq!(resp.status(), 200, "{}", r["name"]);
        let v: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("json");
        rows.push(usage_row(&v["usage"]));
    }
    rows
}

/// The numbers both this test and the Python SDK check expect, row by row:
/// `[input, cache_creation, cache_read, 5m writes, 1h writes]`.
const EXPECTED: [[u64; 5]; 5] = [
    [0, 2457, 0, 2457, 0],
    [0, 451, 2457, 451, 0],
    [579, 1878, 0, 0, 1878],
    [10, 0, 1878, 0, 0],
    [8, 0, 0, 0, 0],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixture_reports_the_expected_usage() {
    let server = MockServer::start(crate::support::mock::quick_mock())
        .await
        .expect("mock");
    let rows = replay(&server.base_url()).await;
    println!("{rows:?}");
    // The relations first (they say why the numbers are what they are)…
    assert_eq!(
        rows[1][2], rows[0][1],
        "turn 2 reads exactly what turn 1 wrote"
    );
    assert_eq!(
        rows[3][2], rows[2][4],
        "the system prompt written for 1h is read back"
    );
    assert_eq!(
        rows[4][1..],
        [0, 0, 0, 0],
        "below the minimum nothing is cached"
    );
    // …then the numbers, shared with tests/sdk/python_sdk_check.py through the fixture.
    assert_eq!(rows, EXPECTED);
    let fx = fixture();
    for (row, r) in EXPECTED
        .iter()
        .zip(fx["requests"].as_array().expect("requests"))
    {
        let want: Vec<u64> = r["expect"]
            .as_array()
            .expect("expect")
            .iter()
            .map(|n| n.as_u64().expect("count"))
            .collect();
        assert_eq!(&want[..], &row[..], "fixture row {}", r["name"]);
    }
    // ITPM: charged uncached input + writes, reads free.
    let charged: u64 = EXPECTED.iter().map(|r| r[0] + r[1]).sum();
    assert_eq!(server.control().stats().input_tokens_charged, charged);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_in_message_start_and_in_the_final_delta() {
    let server = MockServer::start(crate::support::mock::quick_mock())
        .await
        .expect("mock");
    let fx = fixture();
    let mut body = fx["requests"][0]["body"].clone();
    body["model"] = fx["model"].clone();
    body["max_tokens"] = json!(64);
    body["stream"] = json!(true);
    let text = post(&server.base_url(), "sk-ant-a", &body)
        .await
        .text()
        .await
        .expect("body");
    let data: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("json"))
        .collect();
    let start = &data[0]["message"]["usage"];
    assert_eq!(usage_row(start), EXPECTED[0]);
    let delta = data
        .iter()
        .find(|d| d["type"] == "message_delta")
        .expect("message_delta");
    assert_eq!(
        delta["usage"]["cache_creation_input_tokens"],
        EXPECTED[0][1]
    );
    assert_eq!(delta["usage"]["cache_read_input_tokens"], 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_breakpoints_are_a_400_and_eviction_forces_a_miss() {
    let server = MockServer::start(crate::support::mock::quick_mock())
        .await
        .expect("mock");
    let marked = |i: usize| json!({"type": "text", "text": format!("part {i}"), "cache_control": {"type": "ephemeral"}});
    let body = json!({"model": "claude-sonnet-4-6", "max_tokens": 8,
        "messages": [{"role": "user", "content": (0..5).map(marked).collect::<Vec<_>>()}]});
    let resp = post(&server.base_url(), "sk-ant-b", &body).await;
    assert_eq!(resp.status(), 400);
    let v: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("json");
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let rows = replay(&server.base_url()).await;
    assert_eq!(rows, EXPECTED);
    server.control().evict_cache();
    let again = replay(&server.base_url()).await;
    assert_eq!(again[0], EXPECTED[0], "after eviction turn 1 writes again");
    server.shutdown().await;

    // The scenario knob: every request finds its cache evicted.
    let server = MockServer::start(MockConfig {
        cache_evict: 1.0,
        ..crate::support::mock::quick_mock()
    })
    .await
    .expect("mock");
    let rows = replay(&server.base_url()).await;
    assert_eq!(rows[1][2], 0, "evicted: turn 2 misses");
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_client_sends_cache_control_and_reads_the_cache_fields() {
    let server = MockServer::start(crate::support::mock::quick_mock())
        .await
        .expect("mock");
    let driver = crate::support::mock::driver(&server);
    let system = "You are a patient tutor. ".repeat(300);
    let mut history = vec![Message::text(
        Role::User,
        "Explain token buckets. ".repeat(100),
    )];
    let mut last = None;
    for turn in 0..3 {
        let mut req = MessagesRequest::new("claude-sonnet-4-6", 256, history.clone());
        req.system = Some(system.clone().into());
        req.apply_cache(CacheMode::Auto, CacheTtl::FiveMinutes);
        let events = crate::support::mock::collect(driver.run(req)).await;
        let TurnEvent::Finished { usage, .. } = crate::support::mock::last(&events) else {
            panic!("turn {turn}: {:?}", crate::support::mock::last(&events));
        };
        if turn > 0 {
            let prev: &backchat::api::Usage = last.as_ref().expect("previous");
            assert_eq!(
                usage.cache_read(),
                prev.cache_read() + prev.cache_write(),
                "turn {turn} reads everything before it"
            );
            assert!(usage.cache_read() * 100 / usage.total_input() >= 85);
        }
        assert!(usage.cache_creation.is_some());
        last = Some(usage.clone());
        history.push(Message::text(
            Role::Assistant,
            crate::support::mock::text_of(&events),
        ));
        history.push(Message::text(Role::User, format!("Next question {turn}?")));
    }
    server.shutdown().await;
}

/// Run a conversation of `turns` turns, each adding `new_tokens` of prompt, through the
/// driver (pacing on) against a Tier 1 mock; the outcome of each turn.
async fn long_conversation(mode: CacheMode, turns: usize, new_tokens: usize) -> (Vec<String>, u64) {
    let server = MockServer::start(crate::support::mock::quick_mock())
        .await
        .expect("mock");
    let driver = crate::support::mock::driver(&server);
    let mut history: Vec<Message> = Vec::new();
    let mut outcomes = Vec::new();
    for turn in 0..turns {
        // About four bytes per token; a distinct paste each turn.
        let paste = format!("turn {turn} line. ").repeat(new_tokens * 4 / 14);
        history.push(Message::text(Role::User, paste));
        let mut req = MessagesRequest::new("claude-sonnet-4-6", 1024, history.clone());
        req.system = Some("You review code.".into());
        req.apply_cache(mode, CacheTtl::FiveMinutes);
        let events = crate::support::mock::collect(driver.run(req)).await;
        match crate::support::mock::last(&events) {
            TurnEvent::Finished { .. } => {
                outcomes.push("ok".to_string());
                history.push(Message::text(
                    Role::Assistant,
                    crate::support::mock::text_of(&events),
                ));
            }
            TurnEvent::Failed(f) => {
                outcomes.push(format!("{:?}", f.kind));
                history.pop();
            }
            other => panic!("{other:?}"),
        }
    }
    let rejected = server.control().stats().count(429);
    server.shutdown().await;
    (outcomes, rejected)
}

#[tokio::test(start_paused = true)]
async fn a_150k_conversation_whose_new_part_fits_goes_through_at_tier_1() {
    // Eight turns of ~20k new tokens each: the last request carries ~160k tokens, five
    // times the 30k ITPM bucket, but only its new ~20k are charged.
    let (outcomes, rate_limited) = long_conversation(CacheMode::Auto, 8, 20_000).await;
    assert_eq!(outcomes, vec!["ok"; 8]);
    assert_eq!(rate_limited, 0, "the cache prediction paces without a 429");
    // Without caching the second turn (~40k) can never be accepted.
    let (outcomes, _) = long_conversation(CacheMode::Off, 2, 20_000).await;
    assert_eq!(outcomes, vec!["ok", "ExceedsQuota"]);
}
