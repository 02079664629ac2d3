//! One key, many processes: pacing shared through Redis (`--shared-limiter redis://…`).
//!
//! Every backchat process that uses the same API key keeps its model of the server's buckets
//! in Redis instead of in memory, so the processes queue behind each other instead of each
//! finding the limit on its own (RETRY.md §6.2). The semantics are the local pacer's
//! ([`crate::retry::Pacer`]), moved into one Lua script that runs atomically on the server's
//! clock (`redis_script.lua`):
//!
//! - **Reserve.** One GCRA timestamp (TAT) per dimension; a reservation advances every known
//!   dimension at once and gets a start time at which *all* of them, and the shared
//!   blocked-until, allow it. Waiters get distinct future slots (FIFO). A start time more than
//!   `max_ahead` away reserves nothing anywhere ("too far"): the driver turns it into a
//!   "wait too long" failure without having taken anyone's slot.
//! - **Release** gives the units back (the TAT moves back, never before now). Reservations
//!   already handed out keep their start times; the freed units go to the next reservation.
//! - **Settle** trues up: the over-estimate is given back, an under-estimate charged.
//! - **Observe** stores the limit and the learned capacity per dimension, and lowers the
//!   shared level to the server's `remaining` when that is lower (±500 for token counts).
//! - **A 429** sets `blocked_until = max(blocked_until, until)` for everyone.
//! - **Before any limit is known** one request (from any process) goes first and the others
//!   may wait up to [`crate::retry::pacer::PROBE_WAIT`] for its headers.
//! - **The server's minute** is 60 s, except against a time-scaled mock (`backchat loadtest
//!   --time-scale F`): [`RedisLimiterConfig::time_scaled`] shrinks it, and the probe wait, as
//!   [`PacerConfig::time_scaled`] does for the local pacer, and the script is told the minute
//!   with every call so that its refill rates (`limit / minute`) match the server's.
//!
//! State is scoped by a fingerprint of the API key and the model class ([`model_class`]):
//! `backchat:{fingerprint}:{class}:…`, with TTLs of about twice the full-refill time.
//!
//! **Fail open.** A local [`Pacer`] per class shadows everything (it is fed the same
//! reservations, observations and 429s), so when Redis is unreachable or slower than the
//! call timeout (50 ms) the limiter answers from it at once, and [`Limiter::health`] says
//! `Degraded`. The connection task retries every few seconds and health returns to `Shared`.
//!
//! **Which class?** [`Limiter::reserve`] and [`Limiter::observe`] do not carry the model, so
//! the limiter remembers the class of each demand [`Limiter::estimate`] returned (a few dozen,
//! newest first) and the class of the requests in flight; with one model per process, the
//! usual case, this is exact.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::redis_link::{Link, LinkTiming, ScriptCall};
use super::scope::{self, DIMS, bucket_code, bucket_from_code, scope_keys};
use super::{Demand, Grant, Limiter, LimiterHealth, Reservation};
use crate::api::{MessagesRequest, Usage};
use crate::retry::pacer::{PROBE_WAIT, PacerConfig};
use crate::retry::{Bucket, BucketQuota, DelaySource, Pacer, QuotaSnapshot};
use crate::secret::ApiKey;

pub use super::scope::model_class;

/// The longest any Redis call may take before the limiter paces locally instead.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(50);

/// The longest start-up waits for the first connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(100);

/// How long a failed server is left alone before the next connection attempt.
pub const RETRY_EVERY: Duration = Duration::from_secs(3);

/// How far ahead a reservation may reach by default (the driver's default `--max-wait`).
pub const MAX_AHEAD: Duration = Duration::from_secs(120);

/// How often a request waiting for another process's first headers checks Redis (at most:
/// a shorter probe wait polls a few times within it).
const PROBE_POLL: Duration = Duration::from_millis(100);

/// How many recent estimates remember their model class.
const RECENT_DEMANDS: usize = 64;

/// Committed reservations kept for their true-up; older ones (streams dropped before their
/// usage arrived) are forgotten.
const MAX_RECORDS: usize = 1024;

/// The namespace used when requests carry no key (a local mock with `--base-url`).
const NO_KEY: &str = "nokey";

/// How to reach Redis and how patient to be with it.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisLimiterConfig {
    /// `redis://HOST:PORT/DB`.
    pub url: String,
    /// The longest any Redis call may take ([`CALL_TIMEOUT`]).
    pub call_timeout: Duration,
    /// The longest the first connection may take ([`CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// Pause between connection attempts after a failure ([`RETRY_EVERY`]).
    pub retry_every: Duration,
    /// The furthest start time a reservation may get ([`MAX_AHEAD`]).
    pub max_ahead: Duration,
    /// The longest a request waits for the first request's headers ([`PROBE_WAIT`]).
    pub probe_wait: Duration,
    /// How long the server's "minute" lasts: a limit of L per minute refills at L / minute.
    /// One minute, except against a time-scaled mock ([`RedisLimiterConfig::time_scaled`]).
    /// Every process sharing a scope must use the same minute.
    pub minute: Duration,
}

impl RedisLimiterConfig {
    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisLimiterConfig {
            url: url.into(),
            call_timeout: CALL_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            retry_every: RETRY_EVERY,
            max_ahead: MAX_AHEAD,
            probe_wait: PROBE_WAIT,
            minute: Duration::from_secs(60),
        }
    }

    /// Against a server `scale`× faster than real time (a load test's mock): the minute and
    /// the probe wait divided by `scale`, as [`PacerConfig::time_scaled`] does. The Redis
    /// timings (call and connect timeouts, retry pause) stay real: Redis is not scaled. Set
    /// `max_ahead` separately (the driver's scaled `max_wait`).
    pub fn time_scaled(self, scale: f64) -> Self {
        let pacer = PacerConfig::time_scaled(scale);
        let s = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        RedisLimiterConfig {
            minute: pacer.minute,
            probe_wait: self.probe_wait.div_f64(s),
            ..self
        }
    }

    /// The local pacer's settings for this minute and probe wait (the fallback must pace
    /// exactly as the shared state does).
    fn pacer_config(&self) -> PacerConfig {
        PacerConfig {
            probe_wait: self.probe_wait,
            minute: self.minute,
        }
    }

    /// The minute in milliseconds, as the script takes it.
    fn minute_arg(&self) -> String {
        let ms = self.minute.as_secs_f64() * 1000.0;
        if ms > 0.0 {
            num_arg(ms)
        } else {
            "60000".to_string()
        }
    }
}

/// The limiter shared through Redis, with a local pacer to fall back on.
pub struct RedisLimiter {
    fingerprint: String,
    target: String,
    config: RedisLimiterConfig,
    link: Link,
    state: Mutex<State>,
    observed: Arc<Notify>,
}

struct ClassState {
    /// The fallback, fed everything the shared state is.
    pacer: Pacer,
    /// Reserved here but not yet admitted by the server (it cannot have counted them).
    pending: [f64; 3],
    /// The last limit and learned capacity seen per dimension, to re-seed a Redis that lost
    /// its state (restarted) when it comes back.
    seen: [Option<(u64, Option<f64>)>; 3],
}

impl ClassState {
    fn new(config: PacerConfig) -> Self {
        ClassState {
            pacer: Pacer::with_config(config),
            pending: [0.0; 3],
            seen: [None; 3],
        }
    }
}

struct Record {
    class: String,
    /// When the request may go (its slot's start): from then on, the server may count it
    /// before its response arrives here.
    start_at: Instant,
    /// The local pacer's reservation (the shadow, or the real one while degraded).
    local: Option<Grant>,
    /// Reserved in Redis too (so releases and true-ups go there).
    shared: bool,
    committed: bool,
}

struct State {
    /// The local pacers' settings (the server's minute, the probe wait).
    pacer_config: PacerConfig,
    classes: HashMap<String, ClassState>,
    recent: VecDeque<([u64; 3], String)>,
    records: BTreeMap<u64, Record>,
    next_id: u64,
    last_class: String,
    seeded_epoch: u64,
}

impl State {
    /// A class's state, created with the configured pacer settings when first named.
    fn class(&mut self, class: &str) -> &mut ClassState {
        let config = self.pacer_config;
        self.classes
            .entry(class.to_string())
            .or_insert_with(|| ClassState::new(config))
    }
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("target", &self.target)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// A limiter for `key`'s quota, pacing `default_model`'s class unless told otherwise.
    /// Returns at once: the connection is made in the background (see [`RedisLimiter::connect`]).
    /// Must be called inside a tokio runtime; without one, or with an unusable URL, the
    /// limiter paces locally and says so in [`Limiter::health`].
    pub fn new(config: RedisLimiterConfig, key: Option<&ApiKey>, default_model: &str) -> Self {
        let target = display_target(&config.url);
        let link = Link::start(
            &config.url,
            target.clone(),
            LinkTiming {
                call_timeout: config.call_timeout,
                connect_timeout: config.connect_timeout,
                retry_every: config.retry_every,
            },
        );
        RedisLimiter {
            fingerprint: key.map_or_else(|| NO_KEY.to_string(), ApiKey::fingerprint),
            target,
            link,
            state: Mutex::new(State {
                pacer_config: config.pacer_config(),
                classes: HashMap::new(),
                recent: VecDeque::new(),
                records: BTreeMap::new(),
                next_id: 1,
                last_class: model_class(default_model),
                seeded_epoch: 0,
            }),
            config,
            observed: Arc::new(Notify::new()),
        }
    }

    /// [`RedisLimiter::new`], then wait (at most the connect timeout) for the first
    /// connection, so that [`Limiter::health`] is right from the start.
    pub async fn connect(
        config: RedisLimiterConfig,
        key: Option<&ApiKey>,
        default_model: &str,
    ) -> Self {
        let limiter = RedisLimiter::new(config, key, default_model);
        limiter.link.connect().await;
        limiter
    }

    /// The key's fingerprint, the namespace of every key this limiter writes.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The Redis server, without credentials: `redis://HOST:PORT/DB`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The prefix of the keys that hold `model`'s class: `backchat:{fingerprint}:{class}`.
    pub fn scope_prefix(&self, model: &str) -> String {
        scope::scope_prefix(&self.fingerprint, &model_class(model))
    }

    /// The local pacer of `model`'s class (the fallback), for diagnostics and tests.
    pub fn local_pacer(&self, model: &str) -> Pacer {
        self.pacer(&model_class(model))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pacer(&self, class: &str) -> Pacer {
        self.lock().class(class).pacer.clone()
    }

    /// The class of a demand [`Limiter::estimate`] returned.
    fn class_for(&self, demand: &Demand) -> String {
        let key = demand_key(demand);
        let st = self.lock();
        st.recent
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map_or_else(|| st.last_class.clone(), |(_, c)| c.clone())
    }

    /// The class that headers and 429s belong to: that of the requests in flight when they
    /// are all of one class, else the most recent one.
    fn current_class(&self) -> String {
        let st = self.lock();
        let mut in_flight = st.records.values().filter(|r| !r.committed);
        match in_flight.next() {
            Some(first) if in_flight.all(|r| r.class == first.class) => first.class.clone(),
            _ => st.last_class.clone(),
        }
    }

    fn keys(&self, class: &str) -> Vec<String> {
        scope_keys(&self.fingerprint, class)
    }

    /// The operation and the minute: the first two arguments of every script call.
    fn op_args(&self, op: &str) -> Vec<String> {
        vec![op.to_string(), self.config.minute_arg()]
    }

    fn adjust_call(&self, class: &str, units: [f64; 3], release: bool) -> ScriptCall {
        let mut args = self.op_args("adjust");
        args.extend(units.iter().map(|u| num_arg(*u)));
        args.push(flag_arg(release));
        ScriptCall {
            keys: self.keys(class),
            args,
        }
    }

    fn observe_call(&self, class: &str, dims: &[DimObservation; 3]) -> ScriptCall {
        let mut args = self.op_args("observe");
        for d in dims {
            args.push(d.limit.map_or_else(|| "-1".to_string(), |l| l.to_string()));
            args.push(
                d.remaining
                    .map_or_else(|| "-1".to_string(), |r| r.to_string()),
            );
            let (low, high) = d.capacity.map_or_else(
                || ("-1".to_string(), "-1".to_string()),
                |(low, high)| (num_arg(low), num_arg(high)),
            );
            args.push(low);
            args.push(high);
            args.push(num_arg(d.pending));
            args.push(num_arg(d.maybe_counted));
        }
        ScriptCall {
            keys: self.keys(class),
            args,
        }
    }

    /// After Redis comes back (possibly restarted, empty), tell it what this process knows:
    /// the limits, and the local pacer's level as if the server had reported it (so an
    /// emptied Redis does not start from a full bucket; a Redis that kept its state is only
    /// lowered, never raised).
    fn reseed_if_needed(&self) {
        let epoch = self.link.epoch();
        let now = Instant::now();
        let seeds: Vec<(String, [DimObservation; 3])> = {
            let mut st = self.lock();
            if st.seeded_epoch == epoch {
                return;
            }
            st.seeded_epoch = epoch;
            st.classes
                .iter()
                .filter(|(_, c)| c.seen.iter().any(Option::is_some))
                .map(|(class, c)| {
                    let dims = std::array::from_fn(|i| DimObservation {
                        limit: c.seen[i].map(|(l, _)| l),
                        remaining: c
                            .pacer
                            .level(DIMS[i], now)
                            .map(|level| (level + c.pending[i]).max(0.0).floor() as u64),
                        // What this process learned, as a reading that pins it exactly.
                        capacity: c.seen[i].and_then(|(_, cap)| cap).map(|c| (c, c)),
                        pending: c.pending[i],
                        maybe_counted: 0.0,
                    });
                    (class.clone(), dims)
                })
                .collect()
        };
        for (class, dims) in seeds {
            self.link.send(self.observe_call(&class, &dims));
        }
    }

    fn add_record(&self, record: Record) -> u64 {
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id += 1;
        if !record.committed {
            let class = st.class(&record.class);
            if let Some(local) = &record.local {
                add_units(&mut class.pending, &local.demand, 1.0);
            }
        }
        st.records.insert(id, record);
        if st.records.len() > MAX_RECORDS {
            let stale: Vec<u64> = st
                .records
                .iter()
                .filter(|(_, r)| r.committed)
                .map(|(id, _)| *id)
                .take(st.records.len() - MAX_RECORDS)
                .collect();
            for id in stale {
                st.records.remove(&id);
            }
        }
        id
    }

    /// Ask Redis; `None` means "decide locally" (unreachable, slow, or a surprising answer).
    async fn reserve_shared(
        &self,
        class: &str,
        demand: Demand,
        may_await_probe: bool,
        pacer: &Pacer,
    ) -> Option<Reservation> {
        if self.link.down_reason().is_some() {
            return None;
        }
        self.reseed_if_needed();
        let units = units_of(&demand);
        let mut args = self.op_args("reserve");
        args.extend(units.iter().map(|u| num_arg(*u)));
        args.push(self.config.max_ahead.as_millis().to_string());
        args.push(flag_arg(may_await_probe));
        args.push(self.config.probe_wait.as_millis().max(1).to_string());
        let call = ScriptCall {
            keys: self.keys(class),
            args,
        };
        let undo = self.adjust_call(class, units, true);
        let (reply, read_at) = match self.link.call(call, Some(undo)).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::debug!(error = %e, "shared reservation failed; pacing locally");
                return None;
            }
        };
        let wait = Duration::from_micros(u64::try_from(reply.wait_us).unwrap_or(0));
        match reply.status.as_str() {
            "probe" if may_await_probe => {
                let now = Instant::now();
                Some(Reservation::AwaitFirstHeaders {
                    until: now + wait.min(self.config.probe_wait),
                    ready: self.probe_ready(class),
                })
            }
            status @ ("granted" | "too_far") => {
                let reserved = status == "granted";
                // The shadow: the local pacer takes the same units, so that it is current
                // if it has to take over.
                let local = if reserved {
                    match pacer.reserve(demand, false).await {
                        Reservation::Granted(g) => Some(g),
                        Reservation::AwaitFirstHeaders { .. } => None,
                    }
                } else {
                    None
                };
                let start_at = read_at + wait;
                let id = self.add_record(Record {
                    class: class.to_string(),
                    start_at,
                    local,
                    shared: reserved,
                    committed: false,
                });
                Some(Reservation::Granted(Grant {
                    id,
                    start_at,
                    bucket: if wait > Duration::ZERO {
                        bucket_from_code(reply.bucket).or(Some(Bucket::Requests))
                    } else {
                        None
                    },
                    source: DelaySource::SharedLimiter,
                    demand,
                }))
            }
            other => {
                tracing::warn!(status = other, "unexpected answer from the shared limiter");
                None
            }
        }
    }

    /// Resolves when the first headers are seen here, or when Redis says another process's
    /// probe has them (or gave up).
    fn probe_ready(&self, class: &str) -> BoxFuture<'static, ()> {
        let notified = Arc::clone(&self.observed).notified_owned();
        let link = self.link.clone();
        let call = ScriptCall {
            keys: self.keys(class),
            args: self.op_args("known"),
        };
        // A short probe wait (a time-scaled server) is still polled a few times.
        let every = PROBE_POLL
            .min(self.config.probe_wait / 4)
            .max(Duration::from_millis(1));
        Box::pin(async move {
            let poll = async {
                loop {
                    tokio::time::sleep(every).await;
                    match link.call(call.clone(), None).await {
                        Ok((reply, _)) if reply.flag == 0 => continue,
                        _ => break,
                    }
                }
            };
            tokio::select! {
                () = notified => {}
                () = poll => {}
            }
        })
    }
}

impl Limiter for RedisLimiter {
    fn estimate(&self, request: &MessagesRequest) -> Demand {
        let class = model_class(&request.model);
        let demand = self.pacer(&class).estimate(request);
        let key = demand_key(&demand);
        let mut st = self.lock();
        if st.recent.back() != Some(&(key, class.clone())) {
            st.recent.push_back((key, class.clone()));
            if st.recent.len() > RECENT_DEMANDS {
                st.recent.pop_front();
            }
        }
        st.last_class = class;
        demand
    }

    fn reserve(&self, demand: Demand, may_await_probe: bool) -> BoxFuture<'_, Reservation> {
        Box::pin(async move {
            let class = self.class_for(&demand);
            let pacer = self.pacer(&class);
            if let Some(r) = self
                .reserve_shared(&class, demand, may_await_probe, &pacer)
                .await
            {
                return r;
            }
            // Fail open: the local pacer decides, exactly as it would on its own.
            match pacer.reserve(demand, may_await_probe).await {
                Reservation::Granted(local) => {
                    let grant = Grant {
                        id: 0,
                        ..local.clone()
                    };
                    let id = self.add_record(Record {
                        class,
                        start_at: local.start_at,
                        local: Some(local),
                        shared: false,
                        committed: false,
                    });
                    Reservation::Granted(Grant { id, ..grant })
                }
                wait @ Reservation::AwaitFirstHeaders { .. } => wait,
            }
        })
    }

    fn release(&self, grant: &Grant) {
        let record = {
            let mut st = self.lock();
            let Some(record) = st.records.remove(&grant.id) else {
                return;
            };
            if !record.committed
                && let Some(local) = &record.local
                && let Some(class) = st.classes.get_mut(&record.class)
            {
                add_units(&mut class.pending, &local.demand, -1.0);
            }
            record
        };
        if let Some(local) = &record.local {
            self.pacer(&record.class).release(local);
        }
        if record.shared {
            let call = self.adjust_call(&record.class, units_of(&grant.demand), true);
            self.link.send(call);
        }
    }

    fn commit(&self, grant: &Grant) {
        let (class, local) = {
            let mut st = self.lock();
            let Some(record) = st.records.get_mut(&grant.id) else {
                return;
            };
            if record.committed {
                return;
            }
            record.committed = true;
            let class = record.class.clone();
            let local = record.local.clone();
            if let (Some(local), Some(cs)) = (&local, st.classes.get_mut(&class)) {
                add_units(&mut cs.pending, &local.demand, -1.0);
            }
            (class, local)
        };
        if let Some(local) = local {
            self.pacer(&class).commit(&local);
        }
    }

    fn settle(&self, grant: &Grant, usage: &Usage) {
        let Some(record) = self.lock().records.remove(&grant.id) else {
            return;
        };
        if !record.committed {
            // Settled without a commit: the units are no longer in flight either way.
            self.commit_units(&record);
        }
        if let Some(local) = &record.local {
            self.pacer(&record.class).settle(local, usage);
        }
        if record.shared {
            let over_in = grant.demand.input_tokens - usage.rate_limited_input() as f64;
            let over_out = grant.demand.output_tokens - usage.output_tokens as f64;
            let call = self.adjust_call(&record.class, [0.0, over_in, over_out], false);
            self.link.send(call);
        }
    }

    fn observe(&self, quota: &QuotaSnapshot) {
        let class = self.current_class();
        self.pacer(&class).observe(quota);
        let minute = self.config.minute;
        let call = {
            let mut st = self.lock();
            // This process's requests not yet admitted as far as it knows, whose slot had
            // started when the headers were read: the server may have counted them.
            let mut maybe_counted = [0.0; 3];
            for r in st.records.values() {
                if !r.committed
                    && r.class == class
                    && r.start_at <= quota.read_at
                    && let Some(local) = &r.local
                {
                    add_units(&mut maybe_counted, &local.demand, 1.0);
                }
            }
            let cs = st.class(&class);
            let dims: [DimObservation; 3] = std::array::from_fn(|i| {
                let dim = DIMS[i];
                let q = quota.bucket(dim);
                let limit = q.and_then(|q| q.limit).filter(|l| *l > 0);
                let capacity = q.and_then(|q| {
                    capacity_range(q, quota.read_at, dim != Bucket::Requests, minute)
                });
                if let Some(limit) = limit {
                    // The script's rule, kept here too for re-seeding.
                    let previous = match cs.seen[i] {
                        Some((l, c)) if l == limit => c,
                        _ => None,
                    };
                    cs.seen[i] = Some((limit, learn_capacity(previous, capacity)));
                }
                DimObservation {
                    limit,
                    remaining: q.and_then(|q| q.remaining),
                    capacity,
                    pending: cs.pending[i],
                    maybe_counted: maybe_counted[i],
                }
            });
            dims.iter().any(|d| d.limit.is_some()).then_some(dims)
        };
        if let Some(dims) = call {
            self.link.send(self.observe_call(&class, &dims));
        }
        self.observed.notify_waiters();
    }

    fn rate_limited(&self, until: Instant, bucket: Option<Bucket>) {
        let class = self.current_class();
        self.pacer(&class).rate_limited(until, bucket);
        let ahead = until.saturating_duration_since(Instant::now());
        let call = ScriptCall {
            keys: self.keys(&class),
            args: [
                self.op_args("block"),
                vec![
                    ahead.as_millis().to_string(),
                    bucket_code(bucket).to_string(),
                ],
            ]
            .concat(),
        };
        self.link.send(call);
    }

    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.link.flush())
    }

    fn health(&self) -> LimiterHealth {
        match self.link.down_reason() {
            None => LimiterHealth::Shared,
            Some(reason) => LimiterHealth::Degraded(format!(
                "shared limiter unreachable: {reason}; pacing locally"
            )),
        }
    }
}

impl RedisLimiter {
    fn commit_units(&self, record: &Record) {
        let mut st = self.lock();
        if let (Some(local), Some(cs)) = (&record.local, st.classes.get_mut(&record.class)) {
            add_units(&mut cs.pending, &local.demand, -1.0);
        }
    }
}

/// What one response said about one dimension, ready for the script.
#[derive(Clone, Copy, Debug, Default)]
struct DimObservation {
    limit: Option<u64>,
    remaining: Option<u64>,
    /// The capacity the reading implies, `(low, high)`, when it is clearly below the limit.
    capacity: Option<(f64, f64)>,
    /// Units reserved here and not yet admitted (as far as this process knows).
    pending: f64,
    /// The part of `pending` whose slot had started when the headers were read.
    maybe_counted: f64,
}

/// The capacity the server's numbers imply, as a range, when even its top is clearly below
/// the whole limit: `reset` is when the bucket is full again, so `remaining + (reset −
/// now)·rate` is what it enforces (PROTOCOL.md §4.2). `reset` has second precision (it may
/// overstate the time to full by up to a second of refill) and token counts are rounded to
/// 1,000 (±500), so the reading puts the capacity in `[raw − rate − rounding, raw +
/// rounding]`. The local pacer's arithmetic, with the same `minute`.
fn capacity_range(
    q: &BucketQuota,
    read_at: Instant,
    tokens: bool,
    minute: Duration,
) -> Option<(f64, f64)> {
    let limit = q.limit.filter(|l| *l > 0)? as f64;
    let minute_s = minute.as_secs_f64();
    let rate = limit / if minute_s > 0.0 { minute_s } else { 60.0 };
    let remaining = q.remaining? as f64;
    let to_full = q.reset?.saturating_duration_since(read_at).as_secs_f64();
    let rounding = if tokens { 500.0 } else { 0.0 };
    let raw = remaining + to_full * rate;
    let (low, high) = ((raw - rate - rounding).max(1.0), raw + rounding);
    (high < 0.9 * limit).then_some((low, high))
}

/// A learned capacity after one more reading: the best lower bound seen (the readings'
/// rounding errors differ, so their lower bounds climb towards the truth without passing
/// it), unless the reading's top is below it (the bucket shrank). The script's rule.
fn learn_capacity(previous: Option<f64>, reading: Option<(f64, f64)>) -> Option<f64> {
    match (previous, reading) {
        (Some(c), Some((low, high))) if high >= c => Some(c.max(low)),
        (_, Some((low, _))) => Some(low),
        (previous, None) => previous,
    }
}

fn units_of(demand: &Demand) -> [f64; 3] {
    [demand.requests, demand.input_tokens, demand.output_tokens]
}

fn add_units(pending: &mut [f64; 3], demand: &Demand, sign: f64) {
    for (p, u) in pending.iter_mut().zip(units_of(demand)) {
        *p = (*p + sign * sane(u)).max(0.0);
    }
}

fn demand_key(demand: &Demand) -> [u64; 3] {
    units_of(demand).map(f64::to_bits)
}

fn sane(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}

/// A number for the script: finite, plain decimal (Lua's `tonumber` reads it).
fn num_arg(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "0".to_string()
    }
}

fn flag_arg(on: bool) -> String {
    if on { "1" } else { "0" }.to_string()
}

/// The URL without credentials, for messages: `redis://HOST:PORT/DB`.
pub fn display_target(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{host}{port}{}", u.scheme(), u.path())
        }
        Err(_) => "the shared limiter's URL".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_never_show_credentials() {
        assert_eq!(
            display_target("redis://user:hunter2@cache.local:6380/2"),
            "redis://cache.local:6380/2"
        );
        assert_eq!(
            display_target("redis://:pw@127.0.0.1/"),
            "redis://127.0.0.1/"
        );
        assert_eq!(display_target("::"), "the shared limiter's URL");
    }

    #[test]
    fn numbers_reach_lua_as_plain_decimals() {
        assert_eq!(num_arg(1e21), "1000000000000000000000");
        assert_eq!(num_arg(0.5), "0.5");
        assert_eq!(num_arg(f64::NAN), "0");
        assert_eq!(num_arg(f64::INFINITY), "0");
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_enforced_capacity_is_learned_from_its_best_lower_bound() {
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        let q = BucketQuota {
            limit: Some(30_000),
            remaining: Some(2_000),
            reset: Some(now + Duration::from_secs(6)),
        };
        let (low, high) = capacity_range(&q, now, true, minute).expect("smaller than the limit");
        assert!((low - 4_000.0).abs() < 1e-6 && (high - 5_500.0).abs() < 1e-6);
        let full = BucketQuota {
            remaining: Some(30_000),
            reset: Some(now),
            ..q
        };
        assert_eq!(capacity_range(&full, now, true, minute), None);
        // A later reading rounded less narrows it from below; one whose top is below the
        // estimate means the bucket shrank.
        let c = learn_capacity(None, Some((low, high)));
        let c = learn_capacity(c, Some((4_500.0, 6_000.0)));
        assert_eq!(c, Some(4_500.0));
        assert_eq!(learn_capacity(c, Some((3_000.0, 4_400.0))), Some(3_000.0));
        assert_eq!(learn_capacity(c, None), c);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_on_a_short_minute_is_not_taken_for_a_small_one() {
        // A mock 20× faster than real time refills 5,000 tokens per real second: 6,000 used
        // are back in 1.2 s, stamped 2 s. Read with a real minute's rate, that would look
        // like a 25,000-token bucket.
        let now = Instant::now();
        let q = BucketQuota {
            limit: Some(30_000),
            remaining: Some(24_000),
            reset: Some(now + Duration::from_secs(2)),
        };
        let scaled = RedisLimiterConfig::new("redis://127.0.0.1/0").time_scaled(20.0);
        assert_eq!(scaled.minute, Duration::from_secs(3));
        assert_eq!(scaled.probe_wait, PROBE_WAIT / 20);
        assert_eq!(scaled.minute_arg(), "3000");
        assert_eq!(capacity_range(&q, now, true, scaled.minute), None);
        // On a real minute the same reading would be one.
        assert!(capacity_range(&q, now, true, Duration::from_secs(60)).is_some());
    }

    #[tokio::test]
    async fn an_unusable_url_paces_locally_and_says_so() {
        let limiter = RedisLimiter::new(
            RedisLimiterConfig::new("rediss://cache.local/0"),
            ApiKey::new("k").as_ref(),
            "claude-sonnet-4-5",
        );
        match limiter.health() {
            LimiterHealth::Degraded(msg) => {
                assert!(msg.starts_with("shared limiter unreachable: "), "{msg}");
                assert!(msg.ends_with("; pacing locally"), "{msg}");
            }
            other => panic!("expected degraded, got {other:?}"),
        }
        let d = Demand {
            requests: 1.0,
            input_tokens: 10.0,
            output_tokens: 10.0,
        };
        match limiter.reserve(d, false).await {
            Reservation::Granted(g) => assert_eq!(g.source, DelaySource::Pacer),
            Reservation::AwaitFirstHeaders { .. } => panic!("expected a grant"),
        }
    }
}
