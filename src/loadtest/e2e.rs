//! The end-to-end engine: real time, real HTTP over loopback, against the real mock
//! (`mock::MockServer`), with the mock's minute shrunk by `--time-scale` so a run takes seconds.
//!
//! Everything that has a duration shrinks together: the mock's buckets refill `scale`× faster;
//! the reply streams D/scale (its token rate is set so); RTT/2 is added each way here; the peer
//! policies' constants are in model seconds and converted at the boundary; the backchat
//! policy gets its `RetryConfig` durations and its pacer's minute and probe wait divided by
//! `scale`.
//!
//! One thing the mock cannot shrink is the precision of its headers: `retry-after` and the
//! `*-reset` stamps are whole *real* seconds. So the mock is asked for `retry-after-ms` too,
//! and this transport rewrites it into the `retry-after` the simulated server would have
//! sent: whole *model* seconds, `max(1, ceil(wait))`, written in real seconds. The reset
//! stamps stay whole real seconds (= `scale` model seconds); docs/loadtest.md says what that
//! costs.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue};

use super::metrics::RunRecord;
use super::progress::Progress;
use super::scenario::Scenario;
use super::sim::mock_limits;
use super::users::{RunPlan, TimeBase, run_users};
use crate::api::{
    HttpTransport, HttpTransportConfig, MessagesRequest, ResponseBody, StreamEvent, Transport,
    TransportError, TransportResponse,
};
use crate::mock::{MockConfig, MockServer, Outage};
use crate::proxy::{ProxyConfig, ProxyServer};
use crate::secret::ApiKey;

/// The prefix of the keys the load test sends to its mock (any key works there).
pub const MOCK_KEY: &str = "backchat-loadtest";

/// A key of its own for one run against the mock: `backchat-loadtest-{pid}-{ns}-{n}`. Every
/// process of the run sends it (the mock keeps one quota per key) and a shared limiter
/// namespaces its Redis state by its fingerprint, so a run starts from a clean scope even in a
/// Redis that still holds an earlier run's state (which expires by itself), and two runs side
/// by side never share. Nothing is deleted from Redis: it may hold other people's data.
pub fn run_key() -> String {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{MOCK_KEY}-{}-{ns}-{n}", std::process::id())
}

/// The mock settings that make it behave like the simulated server, `scale`× faster.
pub fn mock_config(scenario: &Scenario, scale: f64) -> Result<MockConfig, String> {
    let (seed, longest) = longest_reply();
    if u64::from(scenario.output_tokens) > longest {
        return Err(format!(
            "end to end, output_tokens must be at most {longest} (the mock's longest canned reply)"
        ));
    }
    let stream_real = scenario.stream_s / scale;
    let token_rate = if stream_real > 0.0 {
        f64::from(scenario.output_tokens) / stream_real
    } else {
        1e9
    };
    let mut config = MockConfig {
        limits: mock_limits(scenario),
        token_rate,
        // The reply is always the longest one, cut to `output_tokens` by max_tokens, so every
        // reply streams exactly D/scale.
        seed: Some(seed),
        first_token_latency: Duration::ZERO,
        emit_retry_after_ms: true,
        time_scale: scale,
        description: Some(format!("backchat loadtest: {}", scenario.name)),
        ..MockConfig::default()
    };
    config.faults.overloaded = scenario.overload.probability;
    config.outages = scenario
        .overload
        .windows
        .iter()
        .map(|[a, b]| Outage::overloaded(a / scale, b / scale))
        .collect();
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// The seed that picks the mock's longest canned reply, and its length in tokens.
fn longest_reply() -> (u64, u64) {
    crate::mock::replies()
        .iter()
        .enumerate()
        .map(|(i, r)| (i as u64, crate::tokens::count_text(r.text)))
        .max_by_key(|(_, n)| *n)
        .unwrap_or((0, 0))
}

/// The HTTP transport with the simulation's network delay and the mock's headers put in
/// model terms (see the module docs).
pub struct E2eTransport {
    inner: HttpTransport,
    half_rtt: Duration,
    scale: f64,
    rewrite_retry_after: bool,
}

impl E2eTransport {
    /// Against the load test's own mock at `base_url`, sending `key` ([`run_key`]).
    pub fn to_mock(
        base_url: &str,
        scenario: &Scenario,
        scale: f64,
        key: Option<ApiKey>,
    ) -> Result<Self, String> {
        let inner = HttpTransport::new(HttpTransportConfig::new(base_url, key))
            .map_err(|e| e.to_string())?;
        Ok(E2eTransport {
            inner,
            half_rtt: crate::clock::secs_f64(scenario.rtt_s / 2.0 / scale),
            scale,
            rewrite_retry_after: true,
        })
    }

    /// Against a real endpoint: real time, real network, headers untouched.
    pub fn to_endpoint(base_url: &str, key: Option<ApiKey>) -> Result<Self, String> {
        let inner = HttpTransport::new(HttpTransportConfig::new(base_url, key))
            .map_err(|e| e.to_string())?;
        Ok(E2eTransport {
            inner,
            half_rtt: Duration::ZERO,
            scale: 1.0,
            rewrite_retry_after: false,
        })
    }
}

/// `retry-after-ms` (precise, real) → `retry-after` in whole model seconds, written in real
/// seconds: what the simulated server sends, on the mock's shrunk clock.
pub fn model_retry_after(headers: &mut HeaderMap, scale: f64) {
    let ms = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0);
    let Some(ms) = ms else { return };
    let model_s = (ms / 1000.0 * scale - 1e-9).ceil().max(1.0);
    if let Ok(v) = HeaderValue::from_str(&format!("{:.6}", model_s / scale)) {
        headers.insert("retry-after", v);
    }
    headers.remove("retry-after-ms");
}

impl Transport for E2eTransport {
    fn send(
        &self,
        request: &MessagesRequest,
        attempt: u32,
    ) -> BoxFuture<'static, Result<TransportResponse, TransportError>> {
        let sent = self.inner.send(request, attempt);
        let (half, scale, rewrite) = (self.half_rtt, self.scale, self.rewrite_retry_after);
        Box::pin(async move {
            if !half.is_zero() {
                tokio::time::sleep(half).await;
            }
            let mut response = sent.await?;
            if rewrite {
                model_retry_after(&mut response.headers, scale);
            }
            if !half.is_zero() {
                tokio::time::sleep(half).await;
                if let ResponseBody::Events(events) = response.body {
                    // The end of the reply also takes RTT/2 to arrive.
                    response.body = ResponseBody::Events(
                        events
                            .then(move |ev| async move {
                                if matches!(ev, Ok(StreamEvent::MessageStop)) {
                                    tokio::time::sleep(half).await;
                                }
                                ev
                            })
                            .boxed(),
                    );
                }
            }
            Ok(response)
        })
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Run a plan end to end against a fresh in-process mock.
pub async fn run(
    plan: &RunPlan,
    scale: f64,
    progress: Option<&Progress>,
) -> Result<RunRecord, String> {
    run_via(plan, scale, progress, 0, None).await
}

/// Run a plan end to end against a fresh in-process mock, through `proxies` fresh
/// `backchat proxy` servers in front of it (none: directly). The proxies run the engine on
/// the mock's shrunk minute and, with `proxy_limiter`, share the key's quota through Redis;
/// the users' requests go to them in turn.
pub async fn run_via(
    plan: &RunPlan,
    scale: f64,
    progress: Option<&Progress>,
    proxies: usize,
    proxy_limiter: Option<&str>,
) -> Result<RunRecord, String> {
    let config = mock_config(&plan.scenario, scale)?;
    let server = MockServer::start(config)
        .await
        .map_err(|e| format!("cannot start the mock: {e}"))?;
    let time = TimeBase {
        origin: tokio::time::Instant::now(),
        scale,
    };
    let key = ApiKey::new(run_key());
    let mut running = Vec::new();
    for _ in 0..proxies {
        let mut c = ProxyConfig::new(server.base_url());
        c.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        c.retry = super::policies::backchat_retry_config(scale, plan.max_wait_s);
        c.time_scale = scale;
        c.shared_limiter = proxy_limiter.map(str::to_string);
        c.seed = Some(plan.seed);
        let proxy = ProxyServer::start(c)
            .await
            .map_err(|e| format!("cannot start a proxy: {e}"))?;
        if std::env::var_os("BACKCHAT_LOADTEST_PROXY_LOG").is_some() {
            // Diagnostics: the proxies' own log lines (requests, waits, give-ups) on stderr.
            tokio::spawn(crate::proxy::log_to_stderr(proxy.subscribe()));
        }
        running.push(proxy);
    }
    let record = if running.is_empty() {
        let transport =
            E2eTransport::to_mock(&server.base_url(), &plan.scenario, scale, key.clone())?;
        run_users(plan, Arc::new(transport), key.as_ref(), time, progress).await
    } else {
        let mut transports = Vec::new();
        for p in &running {
            transports.push(E2eTransport::to_mock(
                &p.base_url(),
                &plan.scenario,
                scale,
                key.clone(),
            )?);
        }
        let transport = RoundRobin {
            transports,
            next: std::sync::atomic::AtomicUsize::new(0),
        };
        run_users(plan, Arc::new(transport), key.as_ref(), time, progress).await
    };
    for p in running {
        p.shutdown().await;
    }
    server.shutdown().await;
    record
}

/// Requests spread over several proxies in turn.
struct RoundRobin {
    transports: Vec<E2eTransport>,
    next: std::sync::atomic::AtomicUsize,
}

impl Transport for RoundRobin {
    fn send(
        &self,
        request: &MessagesRequest,
        attempt: u32,
    ) -> BoxFuture<'static, Result<TransportResponse, TransportError>> {
        let i =
            self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.transports.len();
        self.transports[i].send(request, attempt)
    }

    fn describe(&self) -> String {
        format!("{} proxies in front of the mock", self.transports.len())
    }
}

/// Run a plan against a real endpoint (real time, real quota).
pub async fn run_endpoint(
    plan: &RunPlan,
    base_url: &str,
    key: Option<ApiKey>,
    progress: Option<&Progress>,
) -> Result<RunRecord, String> {
    let transport = E2eTransport::to_endpoint(base_url, key.clone())?;
    let time = TimeBase {
        origin: tokio::time::Instant::now(),
        scale: 1.0,
    };
    run_users(plan, Arc::new(transport), key.as_ref(), time, progress).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_put_in_whole_model_seconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after-ms", HeaderValue::from_static("1800"));
        h.insert("retry-after", HeaderValue::from_static("2"));
        model_retry_after(&mut h, 10.0);
        assert_eq!(
            h.get("retry-after").and_then(|v| v.to_str().ok()),
            Some("1.800000")
        );
        assert!(h.get("retry-after-ms").is_none());
        let mut h = HeaderMap::new();
        h.insert("retry-after-ms", HeaderValue::from_static("1801"));
        model_retry_after(&mut h, 10.0);
        assert_eq!(
            h.get("retry-after").and_then(|v| v.to_str().ok()),
            Some("1.900000")
        );
        let mut h = HeaderMap::new();
        h.insert("retry-after-ms", HeaderValue::from_static("3"));
        model_retry_after(&mut h, 10.0);
        assert_eq!(
            h.get("retry-after").and_then(|v| v.to_str().ok()),
            Some("0.100000")
        );
    }

    #[test]
    fn the_mock_streams_d_over_scale() {
        let s = Scenario::default();
        let c = mock_config(&s, 10.0).expect("valid");
        assert!((c.token_rate - 100.0).abs() < 1e-9, "100 tokens in 1 s");
        assert_eq!(c.time_scale, 10.0);
        assert!(c.emit_retry_after_ms);
    }
}
