//! The connection to Redis, kept off the chat's path.
//!
//! One task owns the connection and runs every script call in the order the limiter queued
//! it (so a release is applied before the reservation that follows it, and a reservation's
//! read-back of the shared limits includes every observation queued before it), each within
//! the call timeout. The first failure or slow answer marks the link down: from then on nothing is
//! sent until the retry time, when the task tries a *fresh* connection (at most once per
//! `retry_every`, so a dead server is not hammered). Callers never wait for Redis longer
//! than the call timeout, and while the link is down they do not wait at all.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::script::{SCRIPT_SOURCE, ScriptCall, ScriptReply};

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
    /// The longest any script call may take.
    pub call_timeout: Duration,
    /// The longest the first connection may take.
    pub connect_timeout: Duration,
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

/// How long a clock anchor is trusted before a worse sample may replace it.
const ANCHOR_MAX_AGE: Duration = Duration::from_secs(30);

/// Maps Redis's clock onto tokio's. The script read `TIME` somewhere within the call's round
/// trip, so the call with the shortest round trip pins it best; every reply is mapped through
/// that one anchor, so start times handed out by successive calls keep their exact spacing
/// instead of each carrying its own round-trip error.
#[derive(Clone, Copy, Debug)]
struct ClockAnchor {
    local: Instant,
    redis_us: i64,
    rtt: Duration,
}

impl ClockAnchor {
    fn at(&self, redis_us: i64) -> Instant {
        let delta = redis_us.saturating_sub(self.redis_us);
        let magnitude = Duration::from_micros(delta.unsigned_abs());
        if delta >= 0 {
            self.local + magnitude
        } else {
            self.local.checked_sub(magnitude).unwrap_or(self.local)
        }
    }
}

enum Job {
    Call {
        call: ScriptCall,
        reply: Option<oneshot::Sender<Answer>>,
        /// Run when a reservation succeeded in Redis but its caller had already given up:
        /// gives the units back instead of leaking the slot.
        undo: Option<ScriptCall>,
    },
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
    /// Start the connection task for `url` (shown as `target` in messages). Never blocks and
    /// never fails: an unusable URL or a missing runtime gives a link that is down for good.
    pub fn start(url: &str, target: String, timing: LinkTiming) -> Link {
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
        let client = match redis::Client::open(url) {
            Ok(c) => c,
            Err(e) => {
                link.set_dead(format!("{target}: {e}"));
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
            script: redis::Script::new(SCRIPT_SOURCE),
            timing,
            state,
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
        let job = Job::Call {
            call,
            reply: Some(tx),
            undo,
        };
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
            let _ = self.tx.send(Job::Call {
                call,
                reply: None,
                undo: None,
            });
        }
    }

    /// Connect now (loading the script), waiting at most the connect timeout: at start-up,
    /// so that the status bar is right from the first frame.
    pub async fn connect(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Probe(tx)).is_ok() {
            let _ = tokio::time::timeout(self.timing.connect_timeout, rx).await;
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

struct Worker {
    client: redis::Client,
    conn: Option<ConnectionManager>,
    script: redis::Script,
    timing: LinkTiming,
    state: Arc<Mutex<LinkState>>,
    target: String,
    anchor: Option<ClockAnchor>,
}

impl Worker {
    fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job>) {
        loop {
            let retry_at = {
                let st = self.lock();
                st.down.as_ref().and(st.retry_at)
            };
            let job = match retry_at {
                Some(at) => tokio::select! {
                    job = rx.recv() => job,
                    () = tokio::time::sleep_until(at) => {
                        self.reconnect().await;
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            // The limiter is gone: so is the connection.
            let Some(job) = job else { return };
            self.handle(job).await;
        }
    }

    async fn handle(&mut self, job: Job) {
        match job {
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
            Job::Call { call, reply, undo } => {
                let down = self.lock().down.clone();
                if let Some(reason) = down {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(LinkError::Down(reason)));
                    }
                    return;
                }
                // A reservation whose caller already went local must not take a slot.
                if reply.as_ref().is_some_and(oneshot::Sender::is_closed) {
                    return;
                }
                let before = Instant::now();
                let result = self.invoke(&call).await;
                let after = Instant::now();
                match result {
                    Ok(answer) => {
                        let read_at = self.map_clock(before, after, answer.now_us);
                        let reserved = answer.status == "granted" && answer.flag == 1;
                        let undelivered = match reply {
                            Some(reply) => reply.send(Ok((answer, read_at))).is_err(),
                            None => false,
                        };
                        if undelivered
                            && reserved
                            && let Some(undo) = undo
                            && let Err(e) = self.invoke(&undo).await
                        {
                            self.mark_down(e);
                        }
                    }
                    Err(e) => {
                        self.mark_down(e.clone());
                        if let Some(reply) = reply {
                            let _ = reply.send(Err(LinkError::Down(self.reason(&e))));
                        }
                    }
                }
            }
        }
    }

    /// The local instant of Redis's `now_us`, read during a call between `before` and `after`.
    fn map_clock(&mut self, before: Instant, after: Instant, now_us: i64) -> Instant {
        let rtt = after - before;
        let sample = ClockAnchor {
            local: before + rtt / 2,
            redis_us: now_us,
            rtt,
        };
        let anchor = match self.anchor {
            Some(a)
                if a.rtt < rtt && before.saturating_duration_since(a.local) < ANCHOR_MAX_AGE =>
            {
                a
            }
            _ => sample,
        };
        self.anchor = Some(anchor);
        anchor.at(now_us)
    }

    fn reason(&self, e: &str) -> String {
        format!("{}: {}", self.target, one_line(e))
    }

    async fn invoke(&mut self, call: &ScriptCall) -> Result<ScriptReply, String> {
        let limit = self.timing.call_timeout;
        let conn = connection(&mut self.conn, &self.client, &self.timing)?;
        let mut invocation = self.script.prepare_invoke();
        for key in &call.keys {
            invocation.key(key);
        }
        for arg in &call.args {
            invocation.arg(arg);
        }
        let reply = invocation.invoke_async::<(String, i64, i64, i64, i64, Vec<String>)>(conn);
        match tokio::time::timeout(limit, reply).await {
            Ok(Ok((status, wait_us, bucket, flag, now_us, stored))) => Ok(ScriptReply {
                status,
                wait_us,
                bucket,
                flag,
                now_us,
                stored,
            }),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
        }
    }

    /// Load the script (which also proves the server answers).
    async fn load(&mut self, limit: Duration) -> Result<(), String> {
        let conn = connection(&mut self.conn, &self.client, &self.timing)?;
        match tokio::time::timeout(limit, self.script.load_async(conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
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

/// The connection, created (lazily: no I/O here) when there is none.
fn connection<'a>(
    slot: &'a mut Option<ConnectionManager>,
    client: &redis::Client,
    timing: &LinkTiming,
) -> Result<&'a mut ConnectionManager, String> {
    if slot.is_none() {
        // One connection attempt per call: retrying is the connection task's job, on its own
        // schedule, not the connection manager's.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(timing.connect_timeout))
            .set_response_timeout(Some(timing.call_timeout.max(timing.connect_timeout)));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| e.to_string())?;
        *slot = Some(conn);
    }
    slot.as_mut().ok_or_else(|| "no connection".to_string())
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
    fn the_clock_anchor_maps_both_ways() {
        let local = Instant::now() + Duration::from_secs(10);
        let a = ClockAnchor {
            local,
            redis_us: 1_000_000,
            rtt: Duration::from_millis(1),
        };
        assert_eq!(a.at(1_500_000), local + Duration::from_millis(500));
        assert_eq!(a.at(500_000), local - Duration::from_millis(500));
    }
}
