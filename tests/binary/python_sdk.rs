//! The official Anthropic Python SDK against the mock: streaming, retries on a scripted 429,
//! a 529 without retries, a mid-stream error, count_tokens and model paging, and prompt
//! caching (the shared fixture `tests/sdk/cache_case.json`, the same numbers as tests/all/cache.rs).
//!
//! It talks to another process, so it runs on a real clock (multi-thread runtime) with a fast
//! token rate. Without the `anthropic` package it fails and says how to install it, unless
//! `BACKCHAT_SKIP_SDK_TESTS=1` is set.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use backchat::mock::{MockConfig, MockServer};

fn sdk_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import anthropic"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_talks_to_the_mock() {
    if !sdk_available() {
        if std::env::var("BACKCHAT_SKIP_SDK_TESTS").is_ok_and(|v| v == "1") {
            eprintln!(
                "skipped: the `anthropic` Python package is not installed (BACKCHAT_SKIP_SDK_TESTS=1)"
            );
            return;
        }
        panic!(
            "`python3 -c \"import anthropic\"` failed: run `pip install anthropic` \
             (or set BACKCHAT_SKIP_SDK_TESTS=1 to skip this test)"
        );
    }
    let server = MockServer::start(MockConfig {
        admin_endpoint: true,
        token_rate: 5_000.0,
        first_token_latency: Duration::from_millis(5),
        ..MockConfig::default()
    })
    .await
    .expect("mock starts");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/python_sdk_check.py");
    let run = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(server.base_url())
        .env("PYTHONUNBUFFERED", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_mins(2), run)
        .await
        .expect("the SDK check finished within 2 minutes")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the SDK check failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("all SDK checks passed"), "{stdout}");
    let stats = server.control().stats();
    assert!(stats.count(200) >= 3, "{stats:?}");
    assert_eq!(stats.count(529), 1);
    assert!(
        stats.cache_read_tokens > 0,
        "the SDK's cached requests read the cache"
    );
    server.shutdown().await;
}
