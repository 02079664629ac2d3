//! The proxy server: its settings ([`ProxyConfig`]), the bind rule (loopback, or an explicit
//! `--allow-remote` with a token), the shared state (HTTP client, one lane of limiter and
//! retry budget per key fingerprint, counters, the event channel) and the router.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{broadcast, oneshot};

use super::events::ProxyEvent;
use super::metrics::Metrics;
use crate::limiter::{Limiter, LocalLimiter, LocalLimiterConfig, RedisLimiter, RedisLimiterConfig};
use crate::retry::{RetryBudget, RetryConfig};
use crate::secret::ApiKey;

/// The largest request body forwarded (the API's own limit for Messages is 32 MB).
pub const MAX_REQUEST_BODY: usize = 32 << 20;

/// The header a client sends the proxy token in (also accepted: `Proxy-Authorization: Bearer`).
pub const TOKEN_HEADER: &str = "x-backchat-proxy-token";

/// How a proxy runs.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Base URL requests go to (may carry a path prefix).
    pub upstream: String,
    /// The retry settings (`--max-retries`, `--max-wait`, `--deadline`).
    pub retry: RetryConfig,
    /// Pace before sending (`--no-pacing` switches it off).
    pub pacing: bool,
    /// Share each key's quota through this Redis URL.
    pub shared_limiter: Option<String>,
    /// Listening off loopback was asked for explicitly.
    pub allow_remote: bool,
    /// The token clients must send; required off loopback.
    pub token: Option<String>,
    /// How long to wait for an upstream connection.
    pub connect_timeout: Duration,
    /// How long to wait for upstream's response head.
    pub header_timeout: Duration,
    /// The longest pause inside a reply before the proxy gives up on it.
    pub idle_timeout: Duration,
    /// Seed the retry jitter (tests and load-test runs).
    pub seed: Option<u64>,
    /// 1 against a real API. The load test puts the proxy in front of a mock whose minute is
    /// shrunk by this factor, and the pacer's minute must shrink with it.
    pub time_scale: f64,
}

impl ProxyConfig {
    /// Defaults: loopback port 8788, the chat's retry settings, pacing on.
    pub fn new(upstream: impl Into<String>) -> Self {
        ProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8788)),
            upstream: upstream.into(),
            retry: RetryConfig::default(),
            pacing: true,
            shared_limiter: None,
            allow_remote: false,
            token: None,
            connect_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_mins(10),
            idle_timeout: Duration::from_mins(5),
            seed: None,
            time_scale: 1.0,
        }
    }

    /// Whether this configuration may listen where it asks to: loopback always; anything
    /// else only with `allow_remote` and a non-empty token.
    pub fn check_bind(&self) -> Result<(), ProxyError> {
        if self.listen.ip().is_loopback() {
            return Ok(());
        }
        if !self.allow_remote {
            return Err(ProxyError::RemoteNotAllowed(self.listen));
        }
        if self.token.as_deref().is_none_or(str::is_empty) {
            return Err(ProxyError::RemoteWithoutToken(self.listen));
        }
        Ok(())
    }
}

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A non-loopback address without `--allow-remote`.
    #[error(
        "refusing to listen on {0}: it is not a loopback address, and anyone who can reach it \
         could spend your quota. Pass --allow-remote and a --proxy-token (or \
         BACKCHAT_PROXY_TOKEN) that clients must send, or listen on 127.0.0.1"
    )]
    RemoteNotAllowed(SocketAddr),
    /// A non-loopback address without a token.
    #[error(
        "refusing to listen on {0} without a proxy token: set --proxy-token or \
         BACKCHAT_PROXY_TOKEN; clients send it in x-backchat-proxy-token"
    )]
    RemoteWithoutToken(SocketAddr),
    /// The upstream is the proxy itself.
    #[error("the upstream {0} is this proxy's own address; requests would loop")]
    Loop(String),
    /// The address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

/// The pacing state and retry budget of one API key (by fingerprint). Its limiter keeps one
/// model per model class, so lanes are per key and class, like the Redis scope.
pub(crate) struct Lane {
    /// `None` with `--no-pacing`.
    pub limiter: Option<Arc<dyn Limiter>>,
    /// Retries spent on outages, per key.
    pub budget: Arc<RetryBudget>,
}

/// State shared by every request.
pub(crate) struct Shared {
    pub config: ProxyConfig,
    pub client: reqwest::Client,
    lanes: tokio::sync::Mutex<HashMap<String, Arc<Lane>>>,
    pub metrics: Arc<Metrics>,
    pub events: broadcast::Sender<ProxyEvent>,
    next_id: AtomicU64,
    pub rng: Mutex<StdRng>,
}

impl Shared {
    /// The next request's number.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Tell the onlookers (nobody listening is fine).
    pub fn emit(&self, id: u64, kind: super::events::ProxyEventKind) {
        let _ = self.events.send(ProxyEvent { id, kind });
    }

    /// The lane of `key` (by fingerprint `fingerprint`), created on first use. A shared lane
    /// connects to Redis here, bounded by the limiter's connect timeout.
    pub async fn lane(&self, fingerprint: &str, key: Option<&ApiKey>) -> Arc<Lane> {
        let mut lanes = self.lanes.lock().await;
        if let Some(l) = lanes.get(fingerprint) {
            return Arc::clone(l);
        }
        let limiter: Option<Arc<dyn Limiter>> =
            match (self.config.pacing, &self.config.shared_limiter) {
                (false, _) => None,
                (true, Some(url)) => {
                    let shared = RedisLimiterConfig {
                        // A proxy queues up to the deadline (see `forward::pace`).
                        max_ahead: self.config.retry.deadline,
                        ..RedisLimiterConfig::new(url.clone()).time_scaled(self.config.time_scale)
                    };
                    Some(Arc::new(RedisLimiter::connect(shared, key).await))
                }
                (true, None) => Some(Arc::new(LocalLimiter::with_config(
                    LocalLimiterConfig::time_scaled(self.config.time_scale),
                ))),
            };
        let lane = Arc::new(Lane {
            limiter,
            budget: Arc::new(RetryBudget::default()),
        });
        lanes.insert(fingerprint.to_string(), Arc::clone(&lane));
        lane
    }
}

/// A running proxy. Dropping it (or [`ProxyServer::shutdown`]) stops it.
pub struct ProxyServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ProxyServer {
    /// Check the bind rule, bind and serve.
    pub async fn start(config: ProxyConfig) -> Result<ProxyServer, ProxyError> {
        config.check_bind()?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| ProxyError::Bind(config.listen, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ProxyError::Bind(config.listen, e))?;
        if points_at(&config.upstream, addr) {
            return Err(ProxyError::Loop(config.upstream.clone()));
        }
        // reqwest is built without a default crypto provider; install ring once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            // No pool-expiry timer: it would make a paused test clock jump.
            .pool_idle_timeout(None)
            .build()
            .map_err(|e| ProxyError::Client(e.to_string()))?;
        let rng = match config.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_rng(&mut rand::rng()),
        };
        let (events, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            config,
            client,
            lanes: tokio::sync::Mutex::new(HashMap::new()),
            metrics: Arc::new(Metrics::default()),
            events,
            next_id: AtomicU64::new(0),
            rng: Mutex::new(rng),
        });
        let app = router(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "proxy server stopped");
            }
        });
        Ok(ProxyServer {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`: what clients set `ANTHROPIC_BASE_URL` to.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A receiver of every request's events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ProxyEvent> {
        self.shared.events.subscribe()
    }

    /// The counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ProxyConfig {
        &self.shared.config
    }

    /// Stop accepting, let open responses finish, and wait (at most a second) for it.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Whether `upstream` names `addr` itself (same port on loopback or the same IP).
fn points_at(upstream: &str, addr: SocketAddr) -> bool {
    let Ok(url) = reqwest::Url::parse(upstream) else {
        return false;
    };
    let port = url.port_or_known_default();
    let host = url.host_str().unwrap_or_default();
    let same_host = host == addr.ip().to_string()
        || (addr.ip().is_loopback() && (host == "localhost" || host == "127.0.0.1"))
        || addr.ip().is_unspecified();
    same_host && port == Some(addr.port())
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(super::forward::metrics))
        .fallback(super::forward::forward)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
        .with_state(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_loopback_needs_both_the_flag_and_a_token() {
        let mut c = ProxyConfig::new("http://127.0.0.1:1");
        assert!(c.check_bind().is_ok());
        c.listen = "0.0.0.0:8788".parse().expect("addr");
        assert!(matches!(
            c.check_bind(),
            Err(ProxyError::RemoteNotAllowed(_))
        ));
        c.allow_remote = true;
        assert!(matches!(
            c.check_bind(),
            Err(ProxyError::RemoteWithoutToken(_))
        ));
        c.token = Some("t".into());
        assert!(c.check_bind().is_ok());
    }

    #[test]
    fn a_proxy_pointing_at_itself_is_caught() {
        let addr: SocketAddr = "127.0.0.1:8788".parse().expect("addr");
        assert!(points_at("http://127.0.0.1:8788", addr));
        assert!(points_at("http://localhost:8788/", addr));
        assert!(!points_at("http://127.0.0.1:8787", addr));
        assert!(!points_at("https://api.anthropic.com", addr));
    }
}
