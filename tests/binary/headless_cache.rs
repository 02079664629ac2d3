//! `backchat -p --events` with prompt caching, end to end: the real binary against an
//! in-process mock. The `usage` and `finished` events carry the cache fields and a `cost`
//! object; an unknown model is priced "unknown", never guessed.

use std::path::Path;
use std::time::Duration;

use backchat::mock::{MockConfig, MockServer};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_backchat");

async fn run_p(dir: &Path, base_url: &str, extra: &[&str]) -> Vec<Value> {
    let events = dir.join("events.jsonl");
    let _ = std::fs::remove_file(&events);
    let system = "You are a careful reviewer of Rust code. ".repeat(200);
    let out = tokio::process::Command::new(BIN)
        .args([
            "-p",
            "Review this.",
            "--base-url",
            base_url,
            "--system",
            &system,
        ])
        .arg("--events")
        .arg(&events)
        .args(extra)
        .env("ANTHROPIC_API_KEY", "sk-ant-headless-cache")
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env_remove("ANTHROPIC_BASE_URL")
        .env_remove("BACKCHAT_CACHE")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_mins(1), out)
        .await
        .expect("finished")
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&events)
        .expect("events written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn finished(events: &[Value]) -> &Value {
    events
        .iter()
        .find(|e| e["event"] == "finished")
        .expect("a finished event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_events_carry_cache_fields_and_cost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = MockServer::start(MockConfig {
        token_rate: 5_000.0,
        first_token_latency: Duration::from_millis(5),
        ..MockConfig::default()
    })
    .await
    .expect("mock");
    let url = server.base_url();

    // First run: the system prompt and the prompt are written to the cache.
    let first = run_p(dir.path(), &url, &[]).await;
    let f = finished(&first);
    let written = f["usage"]["cache_creation_input_tokens"]
        .as_u64()
        .expect("cache writes");
    assert!(written > 1000, "{f}");
    assert_eq!(f["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(
        f["usage"]["cache_creation"]["ephemeral_5m_input_tokens"],
        written
    );
    assert_eq!(f["cost"]["price"], "known");
    assert_eq!(f["cost"]["model"], "claude-sonnet-4-6");
    let usd = f["cost"]["usd"].as_f64().expect("usd");
    assert!(usd > 0.0);
    assert!(
        f["cost"]["saved_usd"].as_f64().expect("saved") < 0.0,
        "a write costs more than plain input"
    );
    let usage_events: Vec<&Value> = first.iter().filter(|e| e["event"] == "usage").collect();
    assert!(!usage_events.is_empty());
    assert!(usage_events.iter().all(|e| e["cost"].is_object()));

    // Second run, same prefix: read from the cache, cheaper, and the cache saved money.
    let second = run_p(dir.path(), &url, &[]).await;
    let f = finished(&second);
    assert_eq!(f["usage"]["cache_read_input_tokens"], written);
    assert!(f["cost"]["cache_hit_rate"].as_f64().expect("rate") > 0.9);
    assert!(f["cost"]["usd"].as_f64().expect("usd") < usd);
    assert!(f["cost"]["saved_usd"].as_f64().expect("saved") > 0.0);

    // Caching off: no cache fields move, nothing saved.
    let off = run_p(dir.path(), &url, &["--cache", "off"]).await;
    let f = finished(&off);
    assert_eq!(f["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(f["usage"]["cache_creation_input_tokens"], 0);

    // An unknown model: token counts, no price.
    let unknown = run_p(dir.path(), &url, &["--model", "claude-future-9"]).await;
    let f = finished(&unknown);
    assert_eq!(f["cost"]["price"], "unknown");
    assert!(f["cost"]["usd"].is_null());
    assert!(f["usage"]["input_tokens"].as_u64().is_some());
    server.shutdown().await;
}
