//! `backchat proxy` end to end over loopback: the mock (or a tiny scripted upstream) behind
//! the proxy, a plain HTTP client in front. Pre-stream 429s and 529s absorbed, mid-stream
//! failures passed through and not retried, byte-identical streaming, a client disconnect
//! cancelling upstream, verbatim give-ups with `x-should-retry: false`, the `x-backchat-*`
//! headers, header passthrough, `/metrics`, and the bind rule.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use backchat::mock::{MockConfig, MockLimits, MockServer, ScriptStep};
use backchat::proxy::{METRIC_NAMES, ProxyConfig, ProxyError, ProxyServer, TOKEN_HEADER};
use futures::StreamExt;
use http::HeaderMap;

/// A mock with fast, deterministic replies.
fn quick_mock() -> MockConfig {
    MockConfig {
        seed: Some(3),
        token_rate: 1e6,
        first_token_latency: Duration::ZERO,
        ..MockConfig::default()
    }
}

/// A proxy on an ephemeral loopback port in front of `upstream`.
async fn proxy(upstream: &str, tweak: impl FnOnce(&mut ProxyConfig)) -> ProxyServer {
    let mut c = ProxyConfig::new(upstream);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.seed = Some(7);
    c.retry.server_delay_spread = Duration::ZERO;
    tweak(&mut c);
    ProxyServer::start(c).await.expect("proxy starts")
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_idle_timeout(None)
        .build()
        .unwrap()
}

fn body(stream: bool) -> String {
    serde_json::json!({
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "stream": stream,
        "messages": [{"role": "user", "content": "Explain rate limits"}],
    })
    .to_string()
}

async fn post(base: &str, body: String) -> reqwest::Response {
    client()
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", "sk-ant-test-key-1")
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the proxy answers")
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} in {h:?}"))
}

async fn metrics(base: &str) -> String {
    client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_429_and_a_529_before_the_stream_are_absorbed() {
    let mock = MockServer::start(quick_mock()).await.unwrap();
    mock.control()
        .push_script([ScriptStep::rate_limited("2"), ScriptStep::overloaded()]);
    let proxy = proxy(&mock.base_url(), |_| {}).await;
    let started = tokio::time::Instant::now();
    let response = post(&proxy.base_url(), body(true)).await;
    assert_eq!(response.status(), 200);
    let h = response.headers().clone();
    assert_eq!(header(&h, "x-backchat-attempts"), "3");
    let waited: u64 = header(&h, "x-backchat-waited-ms").parse().unwrap();
    assert!(waited >= 2000, "{waited}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    let text = response.text().await.unwrap();
    assert!(text.contains("event: message_stop"), "{text}");
    let stats = mock.control().stats();
    assert_eq!(
        (stats.count(429), stats.count(529), stats.count(200)),
        (1, 1, 1)
    );
    let m = metrics(&proxy.base_url()).await;
    assert!(
        m.contains("backchat_proxy_upstream_429_absorbed_total 1"),
        "{m}"
    );
    assert!(
        m.contains("backchat_proxy_upstream_errors_absorbed_total 1"),
        "{m}"
    );
    assert!(m.contains("backchat_proxy_attempts_total 3"), "{m}");
    assert!(m.contains("backchat_proxy_give_ups_total 0"), "{m}");
}

#[tokio::test(start_paused = true)]
async fn a_non_streamed_request_is_retried_too() {
    let mock = MockServer::start(quick_mock()).await.unwrap();
    mock.control().push_script([ScriptStep::rate_limited("1")]);
    let proxy = proxy(&mock.base_url(), |_| {}).await;
    let response = post(&proxy.base_url(), body(false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(response.headers(), "x-backchat-attempts"), "2");
    let v: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(v["type"], "message", "{v}");
}

#[tokio::test(start_paused = true)]
async fn a_mid_stream_failure_is_passed_through_and_not_retried() {
    let mock = MockServer::start(quick_mock()).await.unwrap();
    mock.control().push_script([
        ScriptStep::MidStreamError {
            after_tokens: 5,
            error_type: "overloaded_error".into(),
        },
        ScriptStep::Drop { after_tokens: 5 },
    ]);
    let proxy = proxy(&mock.base_url(), |_| {}).await;

    let response = post(&proxy.base_url(), body(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(response.headers(), "x-backchat-attempts"), "1");
    let text = response.text().await.unwrap();
    assert!(text.contains("event: error"), "{text}");
    assert!(text.contains("overloaded_error"), "{text}");

    // A cut connection reaches the client as a cut connection.
    let response = post(&proxy.base_url(), body(true)).await;
    assert_eq!(response.status(), 200);
    let read = response.bytes().await;
    assert!(read.is_err(), "the client must see the break: {read:?}");
    let stats = mock.control().stats();
    assert_eq!(stats.messages_requests, 2, "nothing retried: {stats:?}");
}

/// What the scripted upstream saw, and what it does.
#[derive(Default)]
struct Upstream {
    requests: Mutex<Vec<(HeaderMap, Bytes)>>,
    /// The streaming body was dropped (its connection closed).
    dropped: AtomicBool,
    calls: AtomicU32,
}

/// Sets the flag when hyper drops the body it was sending.
struct DropFlag(Arc<Upstream>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
    }
}

/// The chunks of the byte-identity test: odd splits (inside a line, inside a UTF-8
/// character), CRLFs, a comment line, a ping and non-ASCII text.
fn odd_chunks() -> Vec<Vec<u8>> {
    let text = "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\r\n\r\n\
                : a comment the proxy must not drop\n\n\
                event: ping\ndata: {\"type\": \"ping\"}\n\n\
                event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"h\u{e9}llo \u{1f600} w\u{f6}rld\"}}\n\n\
                event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":7}}\n\n\
                event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    for size in [1, 3, 17, 64, 5, 2, 200, 33, 1, 9].iter().cycle() {
        if i >= bytes.len() {
            break;
        }
        let end = (i + size).min(bytes.len());
        out.push(bytes[i..end].to_vec());
        i = end;
    }
    out
}

/// An upstream whose replies the test controls: `/v1/messages` answers with what `mode`
/// says, and records what it was sent.
async fn scripted_upstream(mode: &'static str) -> (SocketAddr, Arc<Upstream>) {
    let state = Arc::new(Upstream::default());
    let s = Arc::clone(&state);
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let s = Arc::clone(&s);
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            s.requests.lock().unwrap().push((parts.headers, body));
            let n = s.calls.fetch_add(1, Ordering::SeqCst);
            match mode {
                "odd" => {
                    let chunks = odd_chunks();
                    let stream = futures::stream::iter(chunks).then(|c| async move {
                        tokio::time::sleep(Duration::from_millis(3)).await;
                        Ok::<_, std::io::Error>(Bytes::from(c))
                    });
                    Response::builder()
                        .status(200)
                        .header("content-type", "text/event-stream")
                        .header("request-id", "req_odd")
                        .body(Body::from_stream(stream))
                        .unwrap()
                }
                "endless" => {
                    let flag = DropFlag(Arc::clone(&s));
                    let stream = futures::stream::unfold((0u64, flag), |(i, flag)| async move {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        let chunk = format!("event: ping\ndata: {{\"type\":\"ping\",\"n\":{i}}}\n\n");
                        Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), (i + 1, flag)))
                    });
                    Response::builder()
                        .status(200)
                        .header("content-type", "text/event-stream")
                        .body(Body::from_stream(stream))
                        .unwrap()
                }
                // Always overloaded, with every header a client may read.
                _ => Response::builder()
                    .status(529)
                    .header("content-type", "application/json")
                    .header("retry-after", "1")
                    .header("request-id", format!("req_{n}"))
                    .header("anthropic-ratelimit-requests-limit", "50")
                    .header("anthropic-ratelimit-requests-remaining", "0")
                    .header("anthropic-ratelimit-requests-reset", "2030-01-01T00:00:00Z")
                    .header("x-custom", "kept")
                    .body(Body::from(format!(
                        "{{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded {n}\"}}}}  "
                    )))
                    .unwrap(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, state)
}

#[tokio::test(start_paused = true)]
async fn a_stream_through_the_proxy_is_byte_identical_to_direct() {
    let (addr, _state) = scripted_upstream("odd").await;
    let direct_base = format!("http://{addr}");
    let direct = post(&direct_base, body(true)).await.bytes().await.unwrap();
    let proxy = proxy(&direct_base, |c| c.pacing = false).await;
    let response = post(&proxy.base_url(), body(true)).await;
    assert_eq!(header(response.headers(), "request-id"), "req_odd");
    let mut chunks = 0;
    let mut through = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(c) = stream.next().await {
        through.extend_from_slice(&c.unwrap());
        chunks += 1;
    }
    assert_eq!(through, direct.to_vec());
    let expected: Vec<u8> = odd_chunks().concat();
    assert_eq!(through, expected);
    // Not buffered into one piece: the chunks arrive as upstream sent them, 3 ms apart.
    assert!(chunks > 10, "{chunks} chunks");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let (addr, state) = scripted_upstream("endless").await;
    let proxy = proxy(&format!("http://{addr}"), |c| c.pacing = false).await;
    let response = post(&proxy.base_url(), body(true)).await;
    let mut stream = response.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"event: ping"));
    assert!(!state.dropped.load(Ordering::SeqCst));
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !state.dropped.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "upstream still streaming 10 s after the client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state.calls.load(Ordering::SeqCst), 1);
    // The gauge comes back down.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let m = metrics(&proxy.base_url()).await;
    assert!(m.contains("backchat_proxy_in_flight 0"), "{m}");
}

#[tokio::test(start_paused = true)]
async fn giving_up_returns_upstreams_last_response_verbatim() {
    let (addr, state) = scripted_upstream("overloaded").await;
    let proxy = proxy(&format!("http://{addr}"), |c| c.retry.max_retries = 2).await;
    let response = post(&proxy.base_url(), body(true)).await;
    assert_eq!(response.status(), 529);
    let h = response.headers().clone();
    assert_eq!(header(&h, "x-should-retry"), "false");
    assert_eq!(header(&h, "x-backchat-attempts"), "3");
    assert_eq!(header(&h, "retry-after"), "1");
    assert_eq!(header(&h, "request-id"), "req_2", "the last attempt's");
    assert_eq!(header(&h, "anthropic-ratelimit-requests-remaining"), "0");
    assert_eq!(header(&h, "anthropic-ratelimit-requests-limit"), "50");
    assert_eq!(header(&h, "x-custom"), "kept");
    assert!(header(&h, "x-backchat-gave-up").contains("Gave up after 3 attempts"));
    let waited: u64 = header(&h, "x-backchat-waited-ms").parse().unwrap();
    assert!(waited >= 2000, "{waited}");
    let text = response.text().await.unwrap();
    assert_eq!(
        text,
        "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded 2\"}}  "
    );
    assert_eq!(state.calls.load(Ordering::SeqCst), 3);
    let m = metrics(&proxy.base_url()).await;
    assert!(m.contains("backchat_proxy_give_ups_total 1"), "{m}");
    assert!(
        m.contains("backchat_proxy_responses_total{code=\"529\"} 1"),
        "{m}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_from_the_mock_is_passed_on_with_its_rate_limit_headers() {
    let mock = MockServer::start(quick_mock()).await.unwrap();
    mock.control().push_script([
        ScriptStep::rate_limited("1"),
        ScriptStep::rate_limited("30"),
    ]);
    // A 429 whose retry-after the server set does not count against --max-retries: the
    // proxy gives up when the server's wait is longer than --max-wait.
    let proxy = proxy(&mock.base_url(), |c| {
        c.retry.max_retries = 1;
        c.retry.max_wait = Duration::from_secs(5);
    })
    .await;
    let response = post(&proxy.base_url(), body(false)).await;
    assert_eq!(response.status(), 429);
    let h = response.headers();
    assert_eq!(header(h, "x-should-retry"), "false");
    assert_eq!(header(h, "retry-after"), "30");
    assert!(header(h, "request-id").starts_with("req_"));
    assert!(
        h.contains_key("anthropic-ratelimit-input-tokens-remaining"),
        "{h:?}"
    );
    assert_eq!(header(h, "x-backchat-attempts"), "2");
}

/// A mock whose input bucket holds 1,000 tokens a minute.
async fn tight_itpm_mock() -> MockServer {
    MockServer::start(MockConfig {
        limits: MockLimits {
            itpm: 1_000,
            ..MockLimits::default()
        },
        ..quick_mock()
    })
    .await
    .unwrap()
}

/// A request of about 6,000 input tokens: it can never fit [`tight_itpm_mock`].
fn far_above_1k_itpm() -> String {
    serde_json::json!({
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "word ".repeat(5000)}],
    })
    .to_string()
}

#[tokio::test(start_paused = true)]
async fn a_request_that_can_never_fit_gets_the_chats_clear_error() {
    let mock = tight_itpm_mock().await;
    let proxy = proxy(&mock.base_url(), |_| {}).await;
    let big = far_above_1k_itpm();
    let response = post(&proxy.base_url(), big).await;
    assert_eq!(response.status(), 429);
    let h = response.headers();
    assert_eq!(header(h, "x-should-retry"), "false");
    let why = header(h, "x-backchat-gave-up");
    assert!(why.contains("can never be accepted"), "{why}");
    assert_eq!(mock.control().stats().count(429), 1, "not retried");
}

#[tokio::test(start_paused = true)]
async fn once_the_limit_is_known_a_request_far_above_it_is_refused_unsent() {
    let mock = tight_itpm_mock().await;
    let proxy = proxy(&mock.base_url(), |_| {}).await;
    // A small request first: its response states the input limit.
    let response = post(&proxy.base_url(), body(false)).await;
    assert_eq!(response.status(), 200);
    let big = far_above_1k_itpm();
    let response = post(&proxy.base_url(), big).await;
    assert_eq!(response.status(), 429);
    let h = response.headers();
    assert_eq!(header(h, "x-should-retry"), "false");
    assert_eq!(header(h, "x-backchat-attempts"), "0");
    let why = header(h, "x-backchat-gave-up");
    assert!(why.contains("more than your limit of 1,000"), "{why}");
    let stats = mock.control().stats();
    assert_eq!(
        (stats.count(200), stats.count(429)),
        (1, 0),
        "never sent upstream"
    );
}

#[tokio::test(start_paused = true)]
async fn client_headers_and_body_reach_upstream_unchanged() {
    let (addr, state) = scripted_upstream("odd").await;
    let proxy = proxy(&format!("http://{addr}"), |c| {
        c.pacing = false;
        c.token = Some("let-me-in".into());
    })
    .await;
    let raw = "{\"model\":\"claude-sonnet-4-6\",  \"max_tokens\":5,\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"h\u{e9}\"}],\"unknown_field\":[1,2]}";
    let response = client()
        .post(format!("{}/v1/messages?beta=true", proxy.base_url()))
        .header("x-api-key", "sk-ant-test-key-2")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "prompt-caching-2024-07-31,other")
        .header("user-agent", "my-agent/1.0")
        .header(TOKEN_HEADER, "let-me-in")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(response.headers(), "x-backchat-attempts"), "1");
    assert_eq!(header(response.headers(), "x-backchat-waited-ms"), "0");
    let _ = response.bytes().await.unwrap();
    let requests = state.requests.lock().unwrap();
    let (h, b) = &requests[0];
    assert_eq!(b.as_ref(), raw.as_bytes());
    assert_eq!(header(h, "x-api-key"), "sk-ant-test-key-2");
    assert_eq!(header(h, "anthropic-version"), "2023-06-01");
    assert_eq!(
        header(h, "anthropic-beta"),
        "prompt-caching-2024-07-31,other"
    );
    assert_eq!(header(h, "user-agent"), "my-agent/1.0");
    assert!(
        h.get(TOKEN_HEADER).is_none(),
        "the proxy token stays in the proxy"
    );
}

#[tokio::test(start_paused = true)]
async fn a_proxy_with_a_token_refuses_requests_without_it() {
    let mock = MockServer::start(quick_mock()).await.unwrap();
    let proxy = proxy(&mock.base_url(), |c| c.token = Some("let-me-in".into())).await;
    let response = post(&proxy.base_url(), body(false)).await;
    assert_eq!(response.status(), 401);
    assert_eq!(header(response.headers(), "x-should-retry"), "false");
    assert_eq!(mock.control().stats().messages_requests, 0);
}

#[tokio::test]
async fn a_non_loopback_bind_is_refused_without_a_flag_and_a_token() {
    let mut c = ProxyConfig::new("http://127.0.0.1:9");
    c.listen = "0.0.0.0:0".parse().unwrap();
    let refused = ProxyServer::start(c.clone()).await.err().expect("refused");
    assert!(
        matches!(refused, ProxyError::RemoteNotAllowed(_)),
        "{refused}"
    );
    c.allow_remote = true;
    let refused = ProxyServer::start(c.clone()).await.err().expect("refused");
    assert!(
        matches!(refused, ProxyError::RemoteWithoutToken(_)),
        "{refused}"
    );
    assert!(refused.to_string().contains("--proxy-token"), "{refused}");
    c.token = Some("t".into());
    assert!(c.check_bind().is_ok());

    // The command says so and exits 2.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backchat"))
        .args(["proxy", "--listen", "0.0.0.0:0", "--headless"])
        .env_remove("BACKCHAT_PROXY_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn count_tokens_and_models_are_forwarded() {
    let mock = MockServer::start(quick_mock()).await.unwrap();
    let proxy = proxy(&mock.base_url(), |_| {}).await;
    let c = client();
    let r = c
        .post(format!("{}/v1/messages/count_tokens", proxy.base_url()))
        .header("x-api-key", "sk-ant-test-key-1")
        .header("anthropic-version", "2023-06-01")
        .body(body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(v["input_tokens"].as_u64().unwrap() > 0, "{v}");
    let r = c
        .get(format!("{}/v1/models?limit=2", proxy.base_url()))
        .header("x-api-key", "sk-ant-test-key-1")
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(r.headers(), "x-backchat-attempts"), "1");
    let r = c
        .get(format!("{}/v1/complete", proxy.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(start_paused = true)]
async fn metrics_name_every_counter_and_the_quota_per_bucket() {
    let mock = MockServer::start(quick_mock()).await.unwrap();
    let proxy = proxy(&mock.base_url(), |_| {}).await;
    let r = post(&proxy.base_url(), body(true)).await;
    let _ = r.bytes().await.unwrap();
    let m = metrics(&proxy.base_url()).await;
    for name in METRIC_NAMES {
        assert!(m.contains(&format!("# TYPE {name} ")), "{name}: {m}");
    }
    assert!(m.contains("backchat_proxy_requests_total 1"), "{m}");
    assert!(
        m.contains("backchat_proxy_quota_remaining{key=\"")
            && m.contains("bucket=\"input-tokens\"}"),
        "{m}"
    );
    assert!(m.contains("class=\"sonnet-4\""), "{m}");
}

#[tokio::test(start_paused = true)]
async fn every_request_logs_one_line_and_every_wait_one() {
    let mock = MockServer::start(quick_mock()).await.unwrap();
    mock.control().push_script([ScriptStep::rate_limited("1")]);
    let proxy = proxy(&mock.base_url(), |_| {}).await;
    let mut rx = proxy.subscribe();
    let r = post(&proxy.base_url(), body(true)).await;
    let _ = r.bytes().await.unwrap();
    let mut log = backchat::proxy::RequestLog::default();
    let mut lines = Vec::new();
    while let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
        lines.extend(log.line(&ev));
    }
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].contains("retry: attempt 2/9 in 1.0s"),
        "{lines:#?}"
    );
    assert!(lines[1].contains("POST /v1/messages"), "{lines:#?}");
    assert!(lines[1].contains("-> 200 attempts=2"), "{lines:#?}");
    assert!(!lines.concat().contains("sk-ant-test-key-1"), "{lines:#?}");
}
