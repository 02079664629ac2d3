//! The server itself: [`MockServer`] (bind, serve, shut down), the state its handlers
//! share, and [`MockControl`], the handle that scripts and inspects it while it runs.
//!
//! A file per step of a request: `routes.rs` routes and authenticates, `messages.rs` answers
//! `POST /v1/messages`, `http.rs` holds the header, body and error helpers.

use super::cache::CacheModel;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::{FaultRates, MockConfig, MockLimits};
use super::limits::{KeyId, Limiter};
use super::routes::dispatch;
use super::script::ScriptStep;
use super::stats::MockStats;

/// The organization id every response names (`anthropic-organization-id`, 429 messages).
pub const ORG_ID: &str = "00000000-0000-4000-8000-000000000000";

/// State shared by the handlers, the stream tasks and [`MockControl`].
pub(crate) struct Shared {
    pub(crate) config: MockConfig,
    /// The keys answered with 401 (`MockConfig::rejected_keys`, hashed).
    pub(super) rejected: Vec<KeyId>,
    /// When the server started: outage windows count from here.
    pub(super) started: Instant,
    state: Mutex<MockState>,
    shutdown: watch::Receiver<bool>,
}

/// The mutable part, behind one lock that is never held across an await.
pub(crate) struct MockState {
    pub(crate) limiter: Limiter,
    /// Scripted steps not yet consumed, oldest first.
    pub(super) script: VecDeque<ScriptStep>,
    pub(crate) stats: MockStats,
    pub(crate) rng: StdRng,
    /// The random fault rates in force (retuned by [`MockControl::set_faults`]).
    pub(super) faults: FaultRates,
    /// Every key's prompt cache.
    pub(crate) cache: CacheModel,
}

impl Shared {
    fn new(config: MockConfig, shutdown: watch::Receiver<bool>) -> Shared {
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_rng(&mut rand::rng()),
        };
        Shared {
            rejected: config.rejected_keys.iter().map(|k| KeyId::of(k)).collect(),
            started: Instant::now(),
            state: Mutex::new(MockState {
                limiter: Limiter::new(config.limits.clone(), config.time_scale),
                script: config
                    .script
                    .iter()
                    .cloned()
                    .map(ScriptStep::normalized)
                    .collect(),
                stats: MockStats::default(),
                rng,
                faults: config.faults.clone(),
                cache: CacheModel::default(),
            }),
            config,
            shutdown,
        }
    }

    /// The state; a poisoned lock (a panicking handler) still holds consistent data.
    pub(crate) fn lock(&self) -> MutexGuard<'_, MockState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `prefix` + `n` random base-62 characters, like the API's ids.
    pub(crate) fn random_id(&self, prefix: &str, n: usize) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut st = self.lock();
        let mut id = String::with_capacity(prefix.len() + n);
        id.push_str(prefix);
        for _ in 0..n {
            let i = st.rng.random_range(0..ALPHABET.len());
            id.push(char::from(ALPHABET[i]));
        }
        id
    }

    /// Sleep until `deadline` on tokio's clock; `false` if the server is shutting down.
    pub(crate) async fn sleep_until(&self, deadline: Instant) -> bool {
        let mut rx = self.shutdown.clone();
        if *rx.borrow() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => true,
            () = wait_for_shutdown(&mut rx) => false,
        }
    }

    /// Resolves when the server shuts down.
    pub(crate) async fn shutting_down(&self) {
        let mut rx = self.shutdown.clone();
        wait_for_shutdown(&mut rx).await;
    }
}

async fn wait_for_shutdown(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        // A dropped sender (the MockServer handle is gone) also means "stop".
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// A running mock server. Dropping it stops the server, like [`MockServer::shutdown`]
/// without waiting; keep it alive as long as it is used.
pub struct MockServer {
    addr: SocketAddr,
    control: MockControl,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Start on `127.0.0.1` with a free port, serving in a spawned task.
    pub async fn start(config: MockConfig) -> std::io::Result<MockServer> {
        Self::bind(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Start on `addr`. Fails if the address cannot be bound or the config is invalid.
    pub async fn bind(config: MockConfig, addr: SocketAddr) -> std::io::Result<MockServer> {
        config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = watch::channel(false);
        let shared = Arc::new(Shared::new(config, rx.clone()));
        let app = Router::new()
            .fallback(dispatch)
            .with_state(Arc::clone(&shared))
            .layer(axum::middleware::from_fn(super::conn::track_requests));
        let guard = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let mut rx = rx;
            let listener = super::conn::Guarded::new(
                listener,
                guard.config.max_connections,
                guard.config.header_read_timeout,
                guard.config.idle_timeout,
            );
            let app = app.into_make_service_with_connect_info::<super::conn::Activity>();
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { wait_for_shutdown(&mut rx).await })
                .await;
            if let Err(e) = served {
                tracing::warn!("mock server stopped with an error: {e}");
            }
        });
        Ok(MockServer {
            addr,
            control: MockControl { shared },
            shutdown: tx,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, to use as the client's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A handle to script, inspect and retune the running server.
    pub fn control(&self) -> MockControl {
        self.control.clone()
    }

    /// Stop accepting, end open streams (stalls included) and wait for the server task
    /// (at most 5 s, then it is aborted).
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Scripts, inspects and retunes a running [`MockServer`]; cheap to clone.
#[derive(Clone)]
pub struct MockControl {
    shared: Arc<Shared>,
}

impl MockControl {
    /// Queue steps; each `POST /v1/messages` consumes the oldest one.
    pub fn push_script(&self, steps: impl IntoIterator<Item = ScriptStep>) {
        let mut st = self.shared.lock();
        st.script
            .extend(steps.into_iter().map(ScriptStep::normalized));
    }

    /// Steps still queued.
    pub fn pending_script(&self) -> usize {
        self.shared.lock().script.len()
    }

    /// A copy of the counters.
    pub fn stats(&self) -> MockStats {
        self.shared.lock().stats.clone()
    }

    /// Change every key's limits (levels are kept, clamped to the new capacities).
    pub fn set_limits(&self, limits: MockLimits) {
        self.shared
            .lock()
            .limiter
            .set_limits(limits, Instant::now());
    }

    /// The limits in force.
    pub fn limits(&self) -> MockLimits {
        self.shared.lock().limiter.limits().clone()
    }

    /// Change the random fault rates.
    pub fn set_faults(&self, faults: FaultRates) {
        self.shared.lock().faults = faults;
    }

    /// Empty every key's prompt cache: the next request of each conversation misses.
    pub fn evict_cache(&self) {
        self.shared.lock().cache.evict(None);
    }

    /// The configuration the server started with.
    pub fn config(&self) -> MockConfig {
        self.shared.config.clone()
    }
}
