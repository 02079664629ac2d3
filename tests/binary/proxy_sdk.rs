//! The official Anthropic Python SDK through `backchat proxy`, against the mock scripted with
//! 429s and 529s: with `max_retries=0` the SDK sees no error; when the proxy gives up, the
//! SDK's own retries stay off (`x-should-retry: false`).
//!
//! It talks to another process, so it runs on a real clock. Without the `anthropic` package
//! it fails and says how to install it, unless `BACKCHAT_SKIP_SDK_TESTS=1` is set.

use std::time::Duration;

use crate::support::sdk::{run_check, sdk_ready};
use backchat::mock::{MockConfig, MockServer};
use backchat::proxy::{ProxyConfig, ProxyServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_through_the_proxy_never_sees_a_pre_stream_429() {
    if !sdk_ready() {
        return;
    }
    let mock = MockServer::start(MockConfig {
        admin_endpoint: true,
        token_rate: 5_000.0,
        first_token_latency: Duration::from_millis(5),
        ..MockConfig::default()
    })
    .await
    .expect("mock starts");
    let mut config = ProxyConfig::new(mock.base_url());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.retry.max_retries = 2;
    // Server-scheduled 429 waits are bounded by --max-wait, not by the retry count.
    config.retry.max_wait = Duration::from_secs(5);
    let proxy = ProxyServer::start(config).await.expect("proxy starts");
    let stdout = run_check("proxy_sdk_check.py", &[proxy.base_url(), mock.base_url()]).await;
    assert!(stdout.contains("all proxy SDK checks passed"), "{stdout}");
    let m = proxy.metrics().totals();
    assert_eq!(m.absorbed_429, 5, "{m:?}");
    assert_eq!(m.give_ups, 1, "{m:?}");
    proxy.shutdown().await;
    mock.shutdown().await;
}
