//! The official Anthropic Python SDK against the mock: streaming, retries on a scripted 429,
//! a 529 without retries, a mid-stream error, count_tokens and model paging, and prompt
//! caching (the shared fixture `tests/sdk/cache_case.json`, the same numbers as tests/all/cache.rs).
//!
//! It talks to another process, so it runs on a real clock (multi-thread runtime) with a fast
//! token rate. Without the `anthropic` package it fails and says how to install it, unless
//! `BACKCHAT_SKIP_SDK_TESTS=1` is set.

use std::time::Duration;

use crate::support::sdk::{run_check, sdk_ready};
use backchat::mock::{MockConfig, MockServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_talks_to_the_mock() {
    if !sdk_ready() {
        return;
    }
    let server = MockServer::start(MockConfig {
        admin_endpoint: true,
        token_rate: 5_000.0,
        first_token_latency: Duration::from_millis(5),
        ..MockConfig::default()
    })
    .await
    .expect("mock starts");
    let stdout = run_check("python_sdk_check.py", &[server.base_url()]).await;
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
