//! [`RedisLimiter`]: the [`Limiter`] whose buckets live in Redis, shadowed by a
//! [`LocalLimiter`] that answers whenever Redis does not (see the parent module's docs).
//!
//! Every call names its model class (the demand carries it; observations and 429s are told
//! it), so each goes to that class's keys and that class's local model.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::config::{RedisLimiterConfig, display_target};
use super::link::{Link, LinkTiming};
use super::scope::{DIMS, bucket_code, bucket_from_code, scope_keys};
use super::script::{ScriptCall, ScriptReply, flag_arg, num_arg};
use crate::api::{MessagesRequest, Usage};
use crate::limiter::{
    Demand, Grant, GrantSource, Limiter, LimiterHealth, LocalLimiter, Reservation,
};
use crate::quota::{Bucket, ModelClass, QuotaSnapshot, learn_capacity};
use crate::secret::ApiKey;

/// How often a request waiting for another process's first headers checks Redis (at most:
/// a shorter probe wait polls a few times within it).
const PROBE_POLL: Duration = Duration::from_millis(100);

/// Committed reservations kept for their true-up; older ones (streams dropped before their
/// usage arrived) are forgotten.
const MAX_RECORDS: usize = 1024;

/// The namespace used when requests carry no key (a local mock with `--base-url`).
const NO_KEY: &str = "nokey";

/// The limiter shared through Redis, with a local limiter to fall back on.
pub struct RedisLimiter {
    fingerprint: String,
    target: String,
    config: RedisLimiterConfig,
    link: Link,
    /// The fallback, fed everything the shared state is (one model per class).
    local: LocalLimiter,
    state: Mutex<State>,
    observed: Arc<Notify>,
}

/// What this process keeps about one class's shared state.
#[derive(Default)]
struct ClassState {
    /// Reserved here but not yet admitted by the server (it cannot have counted them).
    pending: [f64; 3],
    /// Per dimension, the limit and the learned capacity as far as this process knows the
    /// shared state: what it last stored there, or what the last reservation read back. The
    /// starting point of the next learning step, and what re-seeds a Redis that lost its
    /// state (restarted) when it comes back.
    seen: [Option<(u64, Option<f64>)>; 3],
    /// Observations sent so far. A reservation's read-back of the shared state is adopted
    /// only if none was sent while it was under way: it would predate what was just stored.
    observations: u64,
}

struct Record {
    class: ModelClass,
    /// When the request may go (its slot's start): from then on, the server may count it
    /// before its response arrives here.
    start_at: Instant,
    /// The local limiter's reservation (the shadow, or the real one while degraded).
    local: Option<Grant>,
    /// Reserved in Redis too (so releases and true-ups go there).
    shared: bool,
    committed: bool,
}

struct State {
    classes: HashMap<ModelClass, ClassState>,
    records: BTreeMap<u64, Record>,
    next_id: u64,
    seeded_epoch: u64,
}

impl State {
    /// A class's state, created empty when first named.
    fn class(&mut self, class: &ModelClass) -> &mut ClassState {
        self.classes.entry(*class).or_default()
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
    /// A limiter for `key`'s quota. Returns at once: the connection is made in the background
    /// (see [`RedisLimiter::connect`]). Must be called inside a tokio runtime; without one, or
    /// with an unusable URL, the limiter paces locally and says so in [`Limiter::health`].
    pub fn new(config: RedisLimiterConfig, key: Option<&ApiKey>) -> Self {
        let target = display_target(&config.url);
        let link = Link::start(
            &config.url,
            config.ca_file.as_deref(),
            target.clone(),
            LinkTiming {
                call_timeout: config.call_timeout,
                connect_timeout: config.connect_timeout,
                down_after: config.down_after.max(config.call_timeout),
                retry_every: config.retry_every,
            },
        );
        RedisLimiter {
            fingerprint: key.map_or_else(|| NO_KEY.to_string(), ApiKey::fingerprint),
            target,
            link,
            local: LocalLimiter::with_config(config.local_config()),
            state: Mutex::new(State {
                classes: HashMap::new(),
                records: BTreeMap::new(),
                next_id: 1,
                seeded_epoch: 0,
            }),
            config,
            observed: Arc::new(Notify::new()),
        }
    }

    /// [`RedisLimiter::new`], then wait (at most the connect timeout) for the first
    /// connection, so that [`Limiter::health`] is right from the start.
    pub async fn connect(config: RedisLimiterConfig, key: Option<&ApiKey>) -> Self {
        let limiter = RedisLimiter::new(config, key);
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

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn keys(&self, class: &ModelClass) -> Vec<String> {
        scope_keys(&self.fingerprint, class.as_str())
    }

    /// The operation and the minute: the first two arguments of every script call.
    fn op_args(&self, op: &str) -> Vec<String> {
        vec![op.to_string(), self.config.minute_arg()]
    }

    fn adjust_call(&self, class: &ModelClass, units: [f64; 3], release: bool) -> ScriptCall {
        let mut args = self.op_args("adjust");
        args.extend(units.iter().map(|u| num_arg(*u)));
        args.push(flag_arg(release));
        ScriptCall {
            keys: self.keys(class),
            args,
        }
    }

    fn observe_call(&self, class: &ModelClass, dims: &[DimObservation; 3]) -> ScriptCall {
        let unknown = || "-1".to_string();
        let mut args = self.op_args("observe");
        for d in dims {
            args.push(d.limit.map_or_else(unknown, |l| l.to_string()));
            args.push(d.remaining.map_or_else(unknown, |r| r.to_string()));
            args.push(d.store_capacity.map_or_else(unknown, num_arg));
            args.push(num_arg(d.pending));
            args.push(num_arg(d.maybe_counted));
        }
        ScriptCall {
            keys: self.keys(class),
            args,
        }
    }

    /// After Redis comes back (possibly restarted, empty), tell it what this process knows:
    /// the limits and learned capacities, and the local limiter's level as if the server had
    /// reported it (so an emptied Redis does not start from a full bucket; a Redis that kept
    /// its state is only lowered, never raised).
    fn reseed_if_needed(&self) {
        let epoch = self.link.epoch();
        let now = Instant::now();
        let seeds: Vec<(ModelClass, [DimObservation; 3])> = {
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
                        remaining: self
                            .local
                            .level(class, DIMS[i], now)
                            .map(|level| (level + c.pending[i]).max(0.0).floor() as u64),
                        store_capacity: c.seen[i].and_then(|(_, cap)| cap),
                        pending: c.pending[i],
                        maybe_counted: 0.0,
                    });
                    (*class, dims)
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

    /// Take what a reservation read back of the shared limits as this process's view of
    /// them, unless an observation was sent since the reservation set out.
    fn adopt_stored(&self, class: &ModelClass, observations_before: u64, reply: &ScriptReply) {
        let mut st = self.lock();
        let cs = st.class(class);
        if cs.observations != observations_before {
            return;
        }
        for (seen, stored) in cs.seen.iter_mut().zip(reply.stored_limits()) {
            if stored.is_some() {
                *seen = stored;
            }
        }
    }

    /// Ask Redis; `None` means "decide locally" (unreachable, slow, or a surprising answer).
    async fn reserve_shared(&self, demand: Demand, may_await_probe: bool) -> Option<Reservation> {
        if self.link.down_reason().is_some() {
            return None;
        }
        self.reseed_if_needed();
        let class = demand.class;
        let observations = self.lock().class(&class).observations;
        let units = units_of(&demand);
        let mut args = self.op_args("reserve");
        args.extend(units.iter().map(|u| num_arg(*u)));
        args.push(self.config.max_ahead.as_millis().to_string());
        args.push(flag_arg(may_await_probe));
        args.push(self.config.probe_wait.as_millis().max(1).to_string());
        // The expiry: filled in by the connection task, which knows Redis's clock.
        args.push("0".to_string());
        let call = ScriptCall {
            keys: self.keys(&class),
            args,
        };
        let undo = self.adjust_call(&class, units, true);
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
                    ready: self.probe_ready(&class),
                })
            }
            status @ ("granted" | "too_far") => {
                self.adopt_stored(&class, observations, &reply);
                let reserved = status == "granted";
                // The shadow: the local limiter takes the same units, so that it is current
                // if it has to take over.
                let local = if reserved {
                    match self.local.reserve(demand, false).await {
                        Reservation::Granted(g) => Some(g),
                        Reservation::AwaitFirstHeaders { .. } => None,
                    }
                } else {
                    None
                };
                let start_at = read_at + wait;
                let id = self.add_record(Record {
                    class,
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
                    source: GrantSource::Shared,
                    demand,
                }))
            }
            // Run after its expiry: nothing was reserved; pace locally.
            "expired" => None,
            other => {
                tracing::warn!(status = other, "unexpected answer from the shared limiter");
                None
            }
        }
    }

    /// Resolves when the first headers are seen here, or when Redis says another process's
    /// probe has them (or gave up).
    fn probe_ready(&self, class: &ModelClass) -> BoxFuture<'static, ()> {
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
                        Ok((reply, _)) if reply.flag == 0 => {}
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

    fn commit_units(&self, record: &Record) {
        let mut st = self.lock();
        if let (Some(local), Some(cs)) = (&record.local, st.classes.get_mut(&record.class)) {
            add_units(&mut cs.pending, &local.demand, -1.0);
        }
    }
}

impl Limiter for RedisLimiter {
    fn estimate(&self, request: &MessagesRequest) -> Demand {
        self.local.estimate(request)
    }

    fn reserve(&self, demand: Demand, may_await_probe: bool) -> BoxFuture<'_, Reservation> {
        Box::pin(async move {
            if let Some(r) = self.reserve_shared(demand, may_await_probe).await {
                return r;
            }
            // Fail open: the local limiter decides, exactly as it would on its own.
            match self.local.reserve(demand, may_await_probe).await {
                Reservation::Granted(local) => {
                    let id = self.add_record(Record {
                        class: demand.class,
                        start_at: local.start_at,
                        local: Some(local.clone()),
                        shared: false,
                        committed: false,
                    });
                    Reservation::Granted(Grant { id, ..local })
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
            self.local.release(local);
        }
        if record.shared {
            let call = self.adjust_call(&record.class, units_of(&grant.demand), true);
            self.link.send(call);
        }
    }

    fn commit(&self, grant: &Grant) {
        let local = {
            let mut st = self.lock();
            let Some(record) = st.records.get_mut(&grant.id) else {
                return;
            };
            if record.committed {
                return;
            }
            record.committed = true;
            let class = record.class;
            let local = record.local.clone();
            if let (Some(local), Some(cs)) = (&local, st.classes.get_mut(&class)) {
                add_units(&mut cs.pending, &local.demand, -1.0);
            }
            local
        };
        if let Some(local) = local {
            self.local.commit(&local);
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
            self.local.settle(local, usage);
        }
        let over_in = grant.demand.input_tokens - usage.rate_limited_input() as f64;
        let over_out = grant.demand.output_tokens - usage.output_tokens as f64;
        // An exact estimate needs no true-up: a round trip saved.
        if record.shared && (over_in != 0.0 || over_out != 0.0) {
            let call = self.adjust_call(&record.class, [0.0, over_in, over_out], false);
            self.link.send(call);
        }
    }

    fn settle_unreported(&self, grant: &Grant) {
        let Some(record) = self.lock().records.remove(&grant.id) else {
            return;
        };
        if !record.committed {
            self.commit_units(&record);
        }
        // The shared state keeps the reservation as charged: nothing to true up.
        if let Some(local) = &record.local {
            self.local.settle_unreported(local);
        }
    }

    fn input_estimate_error(&self, class: &ModelClass) -> f64 {
        // The estimate is the local limiter's, corrected by this process's usage.
        self.local.input_estimate_error(class)
    }

    fn stated_limit(&self, class: &ModelClass, bucket: Bucket) -> Option<u64> {
        // What the shared state holds (another process may have seen the headers), else
        // what this process has seen itself.
        let i = DIMS.iter().position(|d| *d == bucket)?;
        let shared = self
            .lock()
            .classes
            .get(class)
            .and_then(|c| c.seen[i])
            .map(|(limit, _)| limit);
        shared.or_else(|| self.local.stated_limit(class, bucket))
    }

    fn observe(&self, class: &ModelClass, quota: &QuotaSnapshot) {
        self.local.observe(class, quota);
        let minute = self.config.minute;
        let call = {
            let mut st = self.lock();
            // This process's requests not yet admitted as far as it knows, whose slot had
            // started when the headers were read: the server may have counted them.
            let mut maybe_counted = [0.0; 3];
            for r in st.records.values() {
                if !r.committed
                    && r.class == *class
                    && r.start_at <= quota.read_at
                    && let Some(local) = &r.local
                {
                    add_units(&mut maybe_counted, &local.demand, 1.0);
                }
            }
            let cs = st.class(class);
            let dims: [DimObservation; 3] = std::array::from_fn(|i| {
                let dim = DIMS[i];
                let q = quota.bucket(dim);
                let limit = q.and_then(|q| q.limit).filter(|l| *l > 0);
                // The capacity is learned here, by the one rule (`quota::learn_capacity`),
                // from this reading and the shared value as this process last knew it; the
                // script only stores the result. Only a change is sent: "no news" keeps what
                // Redis holds, which another process may have refined meanwhile. Two
                // processes learning at the same instant from the same shared value each
                // store a valid estimate, and the later one stands (the script used to merge
                // them, but that needed a second copy of the rule, in Lua).
                let mut store_capacity = None;
                if let (Some(limit), Some(q)) = (limit, q) {
                    let previous = match cs.seen[i] {
                        Some((l, c)) if l == limit => c,
                        _ => None,
                    };
                    let learned = learn_capacity(previous, q, quota.read_at, dim, minute);
                    if learned != previous {
                        store_capacity = learned;
                    }
                    cs.seen[i] = Some((limit, learned));
                }
                DimObservation {
                    limit,
                    remaining: q.and_then(|q| q.remaining),
                    store_capacity,
                    pending: cs.pending[i],
                    maybe_counted: maybe_counted[i],
                }
            });
            let any = dims.iter().any(|d| d.limit.is_some());
            if any {
                cs.observations += 1;
            }
            any.then_some(dims)
        };
        if let Some(dims) = call {
            self.link.send(self.observe_call(class, &dims));
        }
        self.observed.notify_waiters();
    }

    fn rate_limited(&self, class: &ModelClass, until: Instant, bucket: Option<Bucket>) {
        self.local.rate_limited(class, until, bucket);
        let ahead = until.saturating_duration_since(Instant::now());
        let call = ScriptCall {
            keys: self.keys(class),
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

/// What one response said about one dimension, ready for the script.
#[derive(Clone, Copy, Debug, Default)]
struct DimObservation {
    limit: Option<u64>,
    remaining: Option<u64>,
    /// A newly learned capacity for the script to store; `None` keeps what it holds (for as
    /// long as the limit stays the same).
    store_capacity: Option<f64>,
    /// Units reserved here and not yet admitted (as far as this process knows).
    pending: f64,
    /// The part of `pending` whose slot had started when the headers were read.
    maybe_counted: f64,
}

fn units_of(demand: &Demand) -> [f64; 3] {
    [demand.requests, demand.input_tokens, demand.output_tokens]
}

fn add_units(pending: &mut [f64; 3], demand: &Demand, sign: f64) {
    for (p, u) in pending.iter_mut().zip(units_of(demand)) {
        *p = (*p + sign * sane(u)).max(0.0);
    }
}

fn sane(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unusable_url_paces_locally_and_says_so() {
        let limiter = RedisLimiter::new(
            RedisLimiterConfig::new("ftp://cache.local/0"),
            ApiKey::new("k").as_ref(),
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
            class: ModelClass::of("claude-sonnet-4-5"),
            cache: None,
        };
        match limiter.reserve(d, false).await {
            Reservation::Granted(g) => assert_eq!(g.source, GrantSource::Local),
            Reservation::AwaitFirstHeaders { .. } => panic!("expected a grant"),
        }
    }
}
