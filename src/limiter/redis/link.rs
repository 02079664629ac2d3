//! The connection to Redis, kept off the chat's path.
//!
//! One task owns the connection. It runs the script calls in the order the limiter queued
//! them (so a release is applied before the reservation that follows it, and a reservation's
//! read-back of the shared limits includes every observation queued before it). Whatever is
//! queued when the task gets to it goes out together as one pipeline (a *flight*), without
//! waiting for the flights before it to be answered: concurrent turns in one process share
//! round trips instead of each waiting for every call queued before it.
//!
//! Two budgets. A *caller* waits at most the call timeout (50 ms) for its answer and then
//! paces that request locally. The *link* is declared down only when Redis refuses or drops
//! the connection, answers with an error, or leaves a call unanswered for `down_after` (1 s):
//! a moment of CPU starvation makes one request go local, not the whole process for seconds.
//! While down, nothing is sent until the retry time, when the task tries a *fresh* connection
//! (at most once per `retry_every`, so a dead server is not hammered), and callers do not
//! wait at all. A reservation that Redis grants after its caller went local is given back as
//! soon as the answer arrives.
//!
//! The link speaks to one server (a [`ConnectionManager`]) or to a Redis Cluster (the crate's
//! async cluster client, which follows `MOVED`/`ASK` and re-reads the slot map after a
//! failover; a cluster pipeline must stay within one slot, so a batch goes out as one
//! pipeline per scope), in plain text or over TLS (rustls, with the system's roots plus an
//! optional CA file). Errors are reworded for people ([`explain`]): an untrusted
//! certificate, a certificate for another host, TLS spoken to a plain port or a cluster node
//! addressed as a single server each say what to change.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, TlsCertificates, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::config::node_urls;
use super::script::{SCRIPT_SOURCE, ScriptCall, ScriptReply};

/// The most calls sent in one pipeline.
const MAX_BATCH: usize = 128;

/// The most flights on their way at once; more calls wait in the queue.
const MAX_IN_FLIGHT: usize = 16;

/// Why a call did not reach Redis.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum LinkError {
    /// The link is down (the reason says why).
    #[error("{0}")]
    Down(String),
    /// No answer within the call timeout.
    #[error("no answer within {0} ms")]
    Timeout(u128),
}

/// Timing of the link.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinkTiming {
    /// The longest a caller waits for its answer.
    pub call_timeout: Duration,
    /// The longest a connection attempt may take.
    pub connect_timeout: Duration,
    /// The longest a call may stay unanswered before the link is down (at least
    /// `call_timeout`).
    pub down_after: Duration,
    /// How long to stay away from a server that failed.
    pub retry_every: Duration,
}

#[derive(Debug)]
struct LinkState {
    /// `Some(reason)` while down.
    down: Option<String>,
    /// When to try again (`None` while down means never: the URL itself is unusable).
    retry_at: Option<Instant>,
    /// Incremented each time the link comes back, so the limiter can re-seed what it knows.
    epoch: u64,
}

/// The reply, and the local instant at which the script read Redis's clock.
type Answer = Result<(ScriptReply, Instant), LinkError>;

/// How long a clock anchor is trusted before a looser reading may replace it (Redis's clock
/// is the wall clock, which may be slewed against tokio's).
const ANCHOR_MAX_AGE: Duration = Duration::from_secs(30);

/// Maps Redis's clock onto tokio's, never early. The script read `TIME` somewhere within the
/// call's round trip; taking that reading as made at the *end* of the round trip can only
/// make a mapped instant late (by up to that round trip), never early. So a request is never
/// sent before its slot (a few milliseconds early, it meets a server whose bucket is still a
/// few tokens short: a 429), and a caller's give-up instant mapped onto Redis's clock (a
/// reservation's expiry) can only come early, never late. Every reading gives such a bound;
/// the tightest one (the one that maps earliest) is kept, and every reply is mapped through
/// it, so start times handed out by successive calls keep their exact spacing.
#[derive(Clone, Copy, Debug)]
struct ClockAnchor {
    local: Instant,
    redis_us: i64,
}

impl ClockAnchor {
    /// The Redis time of a local instant (the inverse of [`ClockAnchor::at`]).
    fn redis_us_at(&self, local: Instant) -> i64 {
        let (ahead, magnitude) = if local >= self.local {
            (true, local - self.local)
        } else {
            (false, self.local - local)
        };
        let us = i64::try_from(magnitude.as_micros()).unwrap_or(i64::MAX);
        if ahead {
            self.redis_us.saturating_add(us)
        } else {
            self.redis_us.saturating_sub(us)
        }
    }

    fn at(&self, redis_us: i64) -> Instant {
        let delta = redis_us.saturating_sub(self.redis_us);
        let magnitude = Duration::from_micros(delta.unsigned_abs());
        if delta >= 0 {
            self.local + magnitude
        } else {
            self.local.checked_sub(magnitude).unwrap_or(self.local)
        }
    }

    /// The anchor to keep after a reply that read `now_us` and arrived at `after`: this one,
    /// unless the reading bounds the clocks more tightly or this one is too old.
    fn update(anchor: Option<ClockAnchor>, after: Instant, now_us: i64) -> ClockAnchor {
        let sample = ClockAnchor {
            local: after,
            redis_us: now_us,
        };
        match anchor {
            Some(a)
                if a.at(now_us) <= after
                    && after.saturating_duration_since(a.local) < ANCHOR_MAX_AGE =>
            {
                a
            }
            _ => sample,
        }
    }
}

/// One script call waiting for the connection task.
struct Queued {
    call: ScriptCall,
    reply: Option<oneshot::Sender<Answer>>,
    /// Run when a reservation succeeded in Redis but its caller had already given up:
    /// gives the units back instead of leaking the slot.
    undo: Option<ScriptCall>,
    /// When the caller stops waiting (a reservation: its last argument becomes this instant
    /// on Redis's clock, after which the script reserves nothing).
    expires_at: Option<Instant>,
}

enum Job {
    Call(Queued),
    Probe(oneshot::Sender<()>),
    Flush(oneshot::Sender<()>),
}

/// A handle on the connection task; cheap to clone.
#[derive(Clone)]
pub(crate) struct Link {
    tx: mpsc::UnboundedSender<Job>,
    state: Arc<Mutex<LinkState>>,
    timing: LinkTiming,
}

impl Link {
    /// Start the connection task for `url` (one URL, or a cluster's comma-separated seed
    /// nodes; shown as `target` in messages), trusting `ca_file` besides the system's roots
    /// for TLS. Never blocks and never fails: an unusable URL or CA file, or a missing
    /// runtime, gives a link that is down for good.
    pub fn start(url: &str, ca_file: Option<&Path>, target: String, timing: LinkTiming) -> Link {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(Mutex::new(LinkState {
            down: None,
            retry_at: None,
            epoch: 0,
        }));
        let link = Link {
            tx,
            state: Arc::clone(&state),
            timing,
        };
        let client = match Client::build(url, ca_file, &timing) {
            Ok(c) => c,
            Err(e) => {
                link.set_dead(format!("{target}: {}", one_line(&e)));
                return link;
            }
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            link.set_dead(format!("{target}: no async runtime"));
            return link;
        };
        let worker = Worker {
            client,
            conn: None,
            script: Arc::new(redis::Script::new(SCRIPT_SOURCE)),
            timing,
            state,
            tls: url.contains("rediss://"),
            target,
            anchor: None,
        };
        runtime.spawn(worker.run(rx));
        link
    }

    fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_dead(&self, reason: String) {
        let mut st = self.lock();
        st.down = Some(reason);
        st.retry_at = None;
    }

    /// Why the link is down, or `None` while it works.
    pub fn down_reason(&self) -> Option<String> {
        self.lock().down.clone()
    }

    /// How many times the link has come back after being down.
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Run one call and wait for its answer, at most the call timeout. `undo` is run by the
    /// connection task if the call reserved something but this caller had given up.
    pub async fn call(&self, call: ScriptCall, undo: Option<ScriptCall>) -> Answer {
        if let Some(reason) = self.down_reason() {
            return Err(LinkError::Down(reason));
        }
        let (tx, rx) = oneshot::channel();
        let expires_at = undo
            .as_ref()
            .map(|_| Instant::now() + self.timing.call_timeout);
        let job = Job::Call(Queued {
            call,
            reply: Some(tx),
            undo,
            expires_at,
        });
        if self.tx.send(job).is_err() {
            return Err(LinkError::Down("the shared limiter stopped".to_string()));
        }
        match tokio::time::timeout(self.timing.call_timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(LinkError::Down("the shared limiter stopped".to_string())),
            Err(_) => Err(LinkError::Timeout(self.timing.call_timeout.as_millis())),
        }
    }

    /// Queue a call whose answer nobody waits for (observations, releases, corrections).
    /// Dropped at once while the link is down.
    pub fn send(&self, call: ScriptCall) {
        if self.down_reason().is_none() {
            let _ = self.tx.send(Job::Call(Queued {
                call,
                reply: None,
                undo: None,
                expires_at: None,
            }));
        }
    }

    /// Connect now (loading the script), waiting at most the connect timeout: at start-up,
    /// so that the status bar is right from the first frame.
    pub async fn connect(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Probe(tx)).is_ok() {
            // The probe itself gives up after the connect timeout; the margin lets its verdict
            // (a reason to show) arrive instead of racing it.
            let wait = self.timing.connect_timeout + self.timing.call_timeout;
            let _ = tokio::time::timeout(wait, rx).await;
        }
    }

    /// Wait until every call queued so far has been run (or dropped).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// How to open a connection: to one server, or to a cluster.
#[expect(
    clippy::large_enum_variant,
    reason = "one per limiter, built once; boxing would only add an indirection"
)]
enum Client {
    Single(redis::Client),
    Cluster(ClusterClient),
}

impl Client {
    /// A client for `url` (a list of two or more URLs is a cluster). No I/O.
    fn build(url: &str, ca_file: Option<&Path>, timing: &LinkTiming) -> Result<Client, String> {
        let nodes = node_urls(url);
        let tls = nodes.iter().any(|u| u.starts_with("rediss://"));
        if tls {
            // rustls panics on first use when no process-wide provider is installed and it
            // cannot pick one itself; install ours (ring, as the HTTP client uses) up front.
            // An `Err` only means one is installed already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let certs = match ca_file {
            Some(path) if tls => Some(trust_roots(path)?),
            _ => None,
        };
        match nodes.as_slice() {
            [] => Err("no Redis URL".to_string()),
            [one] => match certs {
                Some(certs) => redis::Client::build_with_tls(*one, certs),
                None => redis::Client::open(*one),
            }
            .map(Client::Single)
            .map_err(|e| e.to_string()),
            several => {
                let mut builder = ClusterClientBuilder::new(several.iter().copied())
                    .connection_timeout(timing.connect_timeout)
                    .response_timeout(patience(timing))
                    // Enough to follow a MOVED or ASK and a slot-map refresh; giving up on a
                    // node that stays away is the connection task's job.
                    .retries(2);
                if let Some(certs) = certs {
                    builder = builder.certs(certs);
                }
                builder
                    .build()
                    .map(Client::Cluster)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Open a connection (a single server's is made lazily; a cluster's reads the slot map).
    async fn open(&self, timing: &LinkTiming) -> Result<Conn, String> {
        match self {
            Client::Single(client) => {
                // One connection attempt per call: retrying is the connection task's job, on
                // its own schedule, not the connection manager's.
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(0)
                    .set_connection_timeout(Some(timing.connect_timeout))
                    .set_response_timeout(Some(patience(timing)));
                ConnectionManager::new_lazy_with_config(client.clone(), config)
                    .map(Conn::Single)
                    .map_err(|e| e.to_string())
            }
            Client::Cluster(client) => client
                .get_async_connection()
                .await
                .map(|c| Conn::Cluster(Box::new(c)))
                .map_err(|e| e.to_string()),
        }
    }
}

/// The longest the crate itself waits for an answer: the connection task's own limits
/// (`down_after`, `connect_timeout`) decide, the crate's must not cut them short.
fn patience(timing: &LinkTiming) -> Duration {
    timing.down_after.max(timing.connect_timeout)
}

/// An open connection of either kind; the script runs the same way on both. Cheap to clone
/// (both multiplex one connection per server).
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(Box<ClusterConnection>),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The CA file's certificates plus the system's roots, as the redis crate takes them (PEM).
/// The crate trusts *only* the roots it is given once any are given, so the system's are
/// added here to keep trusting public CAs (a managed Redis) alongside a private one.
fn trust_roots(path: &Path) -> Result<TlsCertificates, String> {
    use base64::Engine as _;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    let shown = path.display();
    let file = std::fs::read(path).map_err(|e| format!("shared_limiter_ca {shown}: {e}"))?;
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(&file) {
        cert.map_err(|e| format!("shared_limiter_ca {shown}: not a PEM certificate: {e}"))?;
        found += 1;
    }
    if found == 0 {
        return Err(format!(
            "shared_limiter_ca {shown}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it"
        ));
    }
    let mut pem = file;
    pem.push(b'\n');
    // A system without a certificate store still trusts the CA file.
    for cert in rustls_native_certs::load_native_certs().certs {
        let body = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    Ok(TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    })
}

struct Worker {
    client: Client,
    conn: Option<Conn>,
    script: Arc<redis::Script>,
    timing: LinkTiming,
    state: Arc<Mutex<LinkState>>,
    target: String,
    /// Whether the URL asks for TLS (it changes what a failure most likely means).
    tls: bool,
    anchor: Option<ClockAnchor>,
}

/// One result per call of a flight, in order; `Err` for the flight when nothing came back.
type Replies = Result<Vec<Result<ScriptReply, String>>, String>;

/// The script's reply as the crate decodes it.
type ReplyTuple = (String, i64, i64, i64, i64, Vec<String>);

/// Calls sent together, and what came back.
struct Landed {
    calls: Vec<Queued>,
    replies: Replies,
    /// When the answers arrived.
    after: Instant,
    /// The link's epoch when they were sent: answers from a connection since replaced change
    /// nothing about the link.
    epoch: u64,
}

/// Flights on their way, answered in the order they were sent.
type InFlight = FuturesOrdered<BoxFuture<'static, Landed>>;

impl Worker {
    fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job>) {
        let mut in_flight = InFlight::new();
        loop {
            let retry_at = {
                let st = self.lock();
                st.down.as_ref().and(st.retry_at)
            };
            tokio::select! {
                biased;
                Some(landed) = in_flight.next(), if !in_flight.is_empty() => {
                    self.land(landed, &mut in_flight).await;
                }
                () = sleep_until_some(retry_at), if retry_at.is_some() && in_flight.is_empty() => {
                    self.reconnect().await;
                }
                job = rx.recv(), if in_flight.len() < MAX_IN_FLIGHT => {
                    // The limiter is gone: so is the connection.
                    let Some(job) = job else { return };
                    self.take(job, &mut rx, &mut in_flight).await;
                }
            }
        }
    }

    /// Handle `job` and everything queued behind it: calls go out together, in order, as one
    /// flight (without waiting for the flights before it to land); a probe or a flush waits
    /// for every call queued before it.
    async fn take(
        &mut self,
        job: Job,
        rx: &mut mpsc::UnboundedReceiver<Job>,
        in_flight: &mut InFlight,
    ) {
        let mut batch = Vec::new();
        let mut control = None;
        match job {
            Job::Call(q) => batch.push(q),
            other => control = Some(other),
        }
        while control.is_none() && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Job::Call(q)) => batch.push(q),
                Ok(other) => control = Some(other),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            self.launch(batch, in_flight).await;
        }
        let Some(control) = control else { return };
        while let Some(landed) = in_flight.next().await {
            self.land(landed, in_flight).await;
        }
        match control {
            Job::Flush(done) => {
                let _ = done.send(());
            }
            Job::Probe(done) => {
                if self.lock().down.is_some() {
                    self.reconnect().await;
                } else if let Err(e) = self.load(self.timing.connect_timeout).await {
                    self.mark_down(e);
                }
                let _ = done.send(());
            }
            Job::Call(q) => self.launch(vec![q], in_flight).await,
        }
    }

    /// Send a batch of calls as one flight. It is polled once here, which hands its pipeline
    /// to the connection: flights reach Redis in the order they were launched.
    async fn launch(&mut self, batch: Vec<Queued>, in_flight: &mut InFlight) {
        let down = self.lock().down.clone();
        if let Some(reason) = down {
            for q in batch {
                if let Some(reply) = q.reply {
                    let _ = reply.send(Err(LinkError::Down(reason.clone())));
                }
            }
            return;
        }
        // A reservation whose caller already went local must not take a slot.
        let mut calls: Vec<Queued> = batch
            .into_iter()
            .filter(|q| !q.reply.as_ref().is_some_and(oneshot::Sender::is_closed))
            .collect();
        if calls.is_empty() {
            return;
        }
        // A reservation expires when its caller stops waiting: Redis frozen past our timeout
        // must not run it later (`script.lua`, 'reserve'). Without a clock anchor yet (the
        // first call after a connection) it cannot be dated; the undo on landing covers what
        // can still be answered.
        if let Some(anchor) = self.anchor {
            for q in &mut calls {
                if let Some(at) = q.expires_at
                    && let Some(last) = q.call.args.last_mut()
                {
                    *last = anchor.redis_us_at(at).to_string();
                }
            }
        }
        let conn = self.conn.clone();
        let script = Arc::clone(&self.script);
        let limit = self.timing.down_after;
        let epoch = self.lock().epoch;
        in_flight.push_back(Box::pin(async move {
            let replies = match &conn {
                Some(conn) => {
                    let each: Vec<&ScriptCall> = calls.iter().map(|q| &q.call).collect();
                    send(conn, &script, &each, limit).await
                }
                None => Err("not connected".to_string()),
            };
            Landed {
                calls,
                replies,
                after: Instant::now(),
                epoch,
            }
        }));
        // A flight that lands at once (nothing to send it on) is handled now, and so is any
        // earlier one that has landed meanwhile.
        while let Poll::Ready(Some(landed)) = futures::poll!(in_flight.next()) {
            Box::pin(self.land(landed, in_flight)).await;
        }
    }

    /// Answer a landed flight's callers. A reservation granted after its caller went local is
    /// given back (a flight of its own); a failure takes the link down.
    async fn land(&mut self, landed: Landed, in_flight: &mut InFlight) {
        let Landed {
            calls,
            replies,
            after,
            epoch,
        } = landed;
        // Answers from a connection that has since failed and been replaced say nothing about
        // the current one.
        let current = {
            let st = self.lock();
            st.down.is_none() && st.epoch == epoch
        };
        let results = match replies {
            Ok(results) => results,
            Err(e) => {
                let reason = self.reason(&e);
                if current {
                    self.mark_down(e);
                }
                for q in calls {
                    if let Some(reply) = q.reply {
                        let _ = reply.send(Err(LinkError::Down(reason.clone())));
                    }
                }
                return;
            }
        };
        let mut undos = Vec::new();
        let mut failure = None;
        for (q, result) in calls.into_iter().zip(results) {
            match result {
                Ok(answer) => {
                    let anchor = ClockAnchor::update(self.anchor, after, answer.now_us);
                    if current {
                        self.anchor = Some(anchor);
                    }
                    let read_at = anchor.at(answer.now_us);
                    let reserved = answer.status == "granted" && answer.flag == 1;
                    let undelivered = match q.reply {
                        Some(reply) => reply.send(Ok((answer, read_at))).is_err(),
                        None => false,
                    };
                    if undelivered
                        && reserved
                        && let Some(undo) = q.undo
                    {
                        undos.push(Queued {
                            call: undo,
                            reply: None,
                            undo: None,
                            expires_at: None,
                        });
                    }
                }
                Err(e) => {
                    if let Some(reply) = q.reply {
                        let _ = reply.send(Err(LinkError::Down(self.reason(&e))));
                    }
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            if current {
                self.mark_down(e);
            }
            return;
        }
        if !undos.is_empty() {
            // Granted after the caller had gone local: give the units back.
            Box::pin(self.launch(undos, in_flight)).await;
        }
    }

    fn reason(&self, e: &str) -> String {
        format!("{}: {}", self.target, one_line(&explain(e, self.tls)))
    }

    /// Connect if need be and load the script (which also proves the server answers; on a
    /// cluster, every primary gets it).
    async fn load(&mut self, limit: Duration) -> Result<(), String> {
        let (client, slot, script, timing) =
            (&self.client, &mut self.conn, &self.script, &self.timing);
        let work = async move {
            if slot.is_none() {
                *slot = Some(client.open(timing).await?);
            }
            let Some(conn) = slot.as_mut() else {
                return Err("not connected".to_string());
            };
            script
                .load_async(conn)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
        }
    }

    /// Try a fresh connection; the link is up again if the server answers.
    async fn reconnect(&mut self) {
        self.conn = None;
        let limit = self.timing.connect_timeout.max(self.timing.call_timeout);
        match self.load(limit).await {
            Ok(()) => {
                let mut st = self.lock();
                st.down = None;
                st.retry_at = None;
                st.epoch += 1;
                drop(st);
                tracing::info!(target = %self.target, "shared limiter reachable again");
            }
            Err(e) => self.mark_down(e),
        }
    }

    fn mark_down(&mut self, error: String) {
        let reason = self.reason(&error);
        let mut st = self.lock();
        if st.down.is_none() {
            tracing::warn!(reason = %reason, "shared limiter unreachable; pacing locally");
        }
        st.down = Some(reason);
        st.retry_at = Some(Instant::now() + self.timing.retry_every);
        drop(st);
        // A connection that failed may be half-open: start clean next time, and the server
        // that answers next may be another one, with another clock.
        self.conn = None;
        self.anchor = None;
    }
}

/// Run `calls` in order, waiting at most `limit` for the answers: one pipeline, or on a
/// cluster one per scope (a cluster pipeline must stay in one slot; scopes are independent,
/// so they run side by side).
async fn send(
    conn: &Conn,
    script: &redis::Script,
    calls: &[&ScriptCall],
    limit: Duration,
) -> Replies {
    let groups: Vec<Vec<usize>> = match conn {
        Conn::Single(_) => vec![(0..calls.len()).collect()],
        Conn::Cluster(_) => {
            let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
            for (i, call) in calls.iter().enumerate() {
                let scope = call.keys.first().map_or("", String::as_str);
                match groups.iter_mut().find(|(s, _)| *s == scope) {
                    Some((_, members)) => members.push(i),
                    None => groups.push((scope, vec![i])),
                }
            }
            groups.into_iter().map(|(_, members)| members).collect()
        }
    };
    let work = futures::future::join_all(groups.iter().map(|members| {
        let mut conn = conn.clone();
        let group: Vec<&ScriptCall> = members.iter().map(|&i| calls[i]).collect();
        async move { run_pipeline(&mut conn, script, &group).await }
    }));
    let outcome = tokio::time::timeout(limit, work)
        .await
        .map_err(|_| format!("no answer within {} ms", limit.as_millis()))?;
    let mut out: Vec<Option<Result<ScriptReply, String>>> =
        (0..calls.len()).map(|_| None).collect();
    for (members, replies) in groups.iter().zip(outcome) {
        for (&i, reply) in members.iter().zip(replies?) {
            out[i] = Some(reply);
        }
    }
    Ok(out
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("Redis sent fewer replies than calls".to_string())))
        .collect())
}

/// Sleep until `at`; never wakes without one (the caller disables the branch).
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Run `calls` as one pipeline, in order. A server that lost its script cache (flushed, or a
/// replica promoted by a failover) answers `NOSCRIPT`: the script is loaded and those calls
/// run again. `Err` when nothing came back; otherwise one result per call.
async fn run_pipeline(
    conn: &mut Conn,
    script: &redis::Script,
    calls: &[&ScriptCall],
) -> Result<Vec<Result<ScriptReply, String>>, String> {
    let mut results = query(conn, script, calls).await?;
    let missing: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.as_ref().is_err_and(|e| {
                e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
            })
        })
        .map(|(i, _)| i)
        .collect();
    if !missing.is_empty() {
        script.load_async(conn).await.map_err(|e| e.to_string())?;
        let again: Vec<&ScriptCall> = missing.iter().map(|&i| calls[i]).collect();
        let retried = query(conn, script, &again).await?;
        for (i, r) in missing.into_iter().zip(retried) {
            results[i] = r;
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.map_err(|e| e.to_string()))
        .collect())
}

/// One pipeline of `EVALSHA` calls; a call's error (a script error, `NOSCRIPT`, `MOVED` from
/// a cluster node addressed as a single server) is its own result, not the pipeline's.
async fn query(
    conn: &mut Conn,
    script: &redis::Script,
    calls: &[&ScriptCall],
) -> Result<Vec<redis::RedisResult<ScriptReply>>, String> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for call in calls {
        let mut invocation = script.prepare_invoke();
        for key in &call.keys {
            invocation.key(key);
        }
        for arg in &call.args {
            invocation.arg(arg);
        }
        pipe.invoke_script(&invocation);
    }
    let replies: Vec<redis::RedisResult<ReplyTuple>> =
        pipe.query_async(conn).await.map_err(|e| e.to_string())?;
    Ok(replies
        .into_iter()
        .map(|r| {
            r.map(
                |(status, wait_us, bucket, flag, now_us, stored)| ScriptReply {
                    status,
                    wait_us,
                    bucket,
                    flag,
                    now_us,
                    stored,
                },
            )
        })
        .collect())
}

/// An error as a person can act on it: the crate's message, preceded by what it most likely
/// means when it is one of the usual set-up mistakes.
fn explain(error: &str, tls: bool) -> String {
    let hint = if error.contains("UnknownIssuer") || error.contains("BadSignature") {
        Some(
            "the server's TLS certificate is not signed by a trusted CA (shared_limiter_ca adds one)",
        )
    } else if error.contains("NotValidForName") || error.contains("not valid for name") {
        Some("the server's TLS certificate is for another host name")
    } else if error.contains("Expired") && error.contains("certificate") {
        Some("the server's TLS certificate has expired")
    } else if error.contains("InvalidContentType")
        || error.contains("corrupt message")
        || error.contains("wrong version number")
    {
        Some("the server does not speak TLS here (a plain port? use redis://)")
    } else if tls && (error.starts_with("no answer within") || error.contains("timed out")) {
        // A plain port waits for the end of a command that never comes: the TLS handshake
        // times out instead of failing.
        Some("no TLS handshake (a plain port? use redis://)")
    } else if !tls && (error.contains("reset by peer") || error.contains("closed the connection")) {
        Some("the server hung up (a TLS port? use rediss://)")
    } else if error.contains("MOVED")
        || error.contains("Moved")
        || error.contains("CLUSTERDOWN Hash slot not served")
    {
        Some("this server is a cluster node: list the cluster's nodes, comma-separated")
    } else {
        None
    };
    match hint {
        Some(hint) => format!("{hint}: {error}"),
        None => error.to_string(),
    }
}

/// An error message fit for a status bar: one line, whitespace collapsed, at most 160
/// characters (something that is not Redis may answer with a page of text).
fn one_line(message: &str) -> String {
    const MAX: usize = 160;
    let joined = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() > MAX {
        let cut: String = joined.chars().take(MAX - 1).collect();
        format!("{cut}…")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_fit_on_one_line() {
        assert_eq!(
            one_line("Parse error at 1\nUnexpected `84`\n"),
            "Parse error at 1 Unexpected `84`"
        );
        let long = one_line(&"x".repeat(500));
        assert_eq!(long.chars().count(), 160);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn set_up_mistakes_are_explained() {
        let e = explain("invalid peer certificate: UnknownIssuer", true);
        assert!(
            e.starts_with("the server's TLS certificate is not signed"),
            "{e}"
        );
        let e = explain("invalid peer certificate: NotValidForName { .. }", true);
        assert!(e.contains("another host name"), "{e}");
        let e = explain("received corrupt message of type InvalidContentType", true);
        assert!(e.contains("does not speak TLS"), "{e}");
        let e = explain(
            "An error was signalled by the server - Moved: 1234 127.0.0.1:7001",
            false,
        );
        assert!(e.starts_with("this server is a cluster node"), "{e}");
        assert_eq!(explain("Connection refused", true), "Connection refused");
        let e = explain("no answer within 100 ms", true);
        assert!(e.contains("a plain port?"), "{e}");
        assert_eq!(
            explain("no answer within 100 ms", false),
            "no answer within 100 ms"
        );
        let e = explain("Connection reset by peer (os error 104)", false);
        assert!(e.contains("use rediss://"), "{e}");
    }

    #[test]
    fn the_clock_anchor_maps_both_ways() {
        let local = Instant::now() + Duration::from_secs(10);
        let a = ClockAnchor {
            local,
            redis_us: 1_000_000,
        };
        assert_eq!(a.at(1_500_000), local + Duration::from_millis(500));
        assert_eq!(a.at(500_000), local - Duration::from_millis(500));
        assert_eq!(a.redis_us_at(local + Duration::from_millis(50)), 1_050_000);
        assert_eq!(a.redis_us_at(local - Duration::from_millis(50)), 950_000);
    }

    #[test]
    fn the_clock_anchor_keeps_the_tightest_bound_and_never_maps_early() {
        let t0 = Instant::now() + Duration::from_secs(10);
        // Redis read 1.000 s at t0 + 1 ms, answered at t0 + 20 ms (a slow reply): the
        // reading is taken as made at the end of the round trip, so it maps late, not early.
        let slow = ClockAnchor::update(None, t0 + Duration::from_millis(20), 1_000_000);
        assert_eq!(slow.at(1_000_000), t0 + Duration::from_millis(20));
        // A quick reply (read 1.100 s at t0 + 101 ms, back at t0 + 101.2 ms) is a tighter
        // bound: it replaces the slow one, and later instants map closer to the truth.
        let quick = ClockAnchor::update(Some(slow), t0 + Duration::from_micros(101_200), 1_100_000);
        assert_eq!(quick.at(1_100_000), t0 + Duration::from_micros(101_200));
        assert_eq!(quick.at(1_200_000), t0 + Duration::from_micros(201_200));
        // A slow reply afterwards is a looser bound: the quick anchor stays.
        let kept = ClockAnchor::update(Some(quick), t0 + Duration::from_millis(260), 1_200_000);
        assert_eq!(kept.local, quick.local);
        // Until it is too old: then the next reading replaces it, whatever its round trip.
        let later = t0 + ANCHOR_MAX_AGE + Duration::from_secs(1);
        let fresh = ClockAnchor::update(Some(quick), later, 31_200_000);
        assert_eq!(fresh.local, later);
    }
}
