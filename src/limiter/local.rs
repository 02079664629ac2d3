//! The in-process limiter (the pacer): a model of the server's buckets, learned from the
//! rate-limit headers, so that requests wait for quota *before* they are sent instead of
//! meeting a 429. One per process, shared by all its turns; the shared limiter keeps one too,
//! fed everything, to fall back on.
//!
//! - One model per model class ([`Demand::class`]): the server's limits are per class.
//! - Capacity and refill come from `*-limit` (`limit / minute` per second). The capacity is
//!   the whole limit until `remaining` and `reset` show a smaller bucket
//!   ([`learn_capacity`]).
//! - The level is corrected *down* from `*-remaining` when the server has seen more use than
//!   we know of (other processes sharing the key), allowing for the rounding of token counts.
//! - A reservation takes its demand from every bucket at once; the level may go negative,
//!   which queues the next caller behind it: FIFO slots instead of a thundering herd at the
//!   reset instant (docs/retries.md).
//! - The input estimate and the expected output are corrected from the reported usage.
//! - Prompt caching: a request that asks for caching is charged its estimated input less the
//!   prefix it is predicted to read, which is what the previous request of the same
//!   conversation read or wrote, if that was within the TTL. A wrong prediction shows in the
//!   reported usage (and, at worst, as a 429), and the next prediction starts from it.
//! - Until the first headers arrive nothing is known; then one request goes first and the
//!   others wait (briefly) for what its headers say.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{
    CHECKED_ESTIMATE_ERROR, CHECKED_WITHIN, CacheHint, Demand, Grant, GrantSource, Limiter,
    Reservation, UNCHECKED_ESTIMATE_ERROR,
};
use crate::api::{MessagesRequest, Usage, cache_reads_count};
use crate::quota::{
    Bucket, BucketQuota, ModelClass, QuotaSnapshot, TokenBucket, learn_capacity, refill_rate,
};

/// The longest a turn waits for the first request's headers at start-up.
pub const PROBE_WAIT: Duration = Duration::from_secs(1);

/// Expected output tokens before any reply has been seen.
pub const INITIAL_OUTPUT_ESTIMATE: f64 = 512.0;

/// Weight of the newest observation in the running estimates.
const EWMA_WEIGHT: f64 = 0.3;

/// How many grants' input scales are remembered until their settlement: far more than are
/// ever queued or streaming at once. A grant that is never settled (a reply cut before it
/// reported any usage) is forgotten when this many newer ones are remembered.
const MAX_SCALES_REMEMBERED: usize = 4096;

/// Settings of the local limiter. The defaults fit the real API; the load test shrinks both
/// durations together with a mock whose minute is shrunk (`backchat loadtest --time-scale`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LocalLimiterConfig {
    /// The longest a turn waits for the first request's headers at start-up ([`PROBE_WAIT`]).
    pub probe_wait: Duration,
    /// How long the server's "minute" lasts: a bucket of `limit` per minute refills at
    /// `limit / minute`. One minute, except against a time-scaled mock.
    pub minute: Duration,
}

impl Default for LocalLimiterConfig {
    fn default() -> Self {
        LocalLimiterConfig {
            probe_wait: PROBE_WAIT,
            minute: Duration::from_mins(1),
        }
    }
}

impl LocalLimiterConfig {
    /// Both durations divided by `scale` (a mock running `scale`× faster than real time).
    pub fn time_scaled(scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        let d = LocalLimiterConfig::default();
        LocalLimiterConfig {
            probe_wait: d.probe_wait.div_f64(scale),
            minute: d.minute.div_f64(scale),
        }
    }
}

const DIMS: [Bucket; 3] = Bucket::PACED;

fn dim_index(b: Bucket) -> Option<usize> {
    DIMS.iter().position(|d| *d == b)
}

/// What is known of one model class's buckets.
#[derive(Debug)]
struct ClassModel {
    buckets: [Option<TokenBucket>; 3],
    /// Capacity learned from `remaining` + `reset`, per dimension.
    learned_capacity: [Option<f64>; 3],
    /// The limit the server last stated, per dimension.
    stated: [Option<u64>; 3],
    /// The last settled input estimate came within [`CHECKED_WITHIN`] of the usage.
    estimate_checked: bool,
    /// The largest single demand the server has admitted, per dimension: the bucket holds at
    /// least that much (output is charged later, so it proves nothing there).
    admitted_max: [f64; 3],
    /// Reserved but not yet admitted by the server (it cannot have counted them yet).
    pending: [f64; 3],
    /// Expected output of admitted replies still streaming: the server charges it as it is
    /// generated, so it is owed to the output bucket until the reply ends.
    streaming_output: f64,
    /// The same reservations one by one: (grant id, demand per dimension, slot start). Those
    /// whose slot has started may be in flight, and the server may count them before their
    /// own response arrives.
    outstanding: Vec<(u64, [f64; 3], Instant)>,
    blocked_until: Option<(Instant, Option<Bucket>)>,
    probe_in_flight: bool,
    input_scale: f64,
    /// The input scale each grant was reserved with, by grant id, until it is settled or
    /// released. A settlement compares its usage with the estimate *of its own time*: with
    /// a queue, many settlements happen between a grant and its own, and comparing with
    /// the scale of the moment fed every correction back again (a delayed loop that
    /// oscillated and grew, once to four times the real size, starving the queue).
    scale_at_grant: std::collections::BTreeMap<u64, f64>,
    output_estimate: f64,
    /// Woken when this class's first headers arrive (or its probe fails without any).
    first_headers: Arc<Notify>,
}

impl ClassModel {
    fn new() -> Self {
        ClassModel {
            buckets: [None, None, None],
            learned_capacity: [None, None, None],
            stated: [None, None, None],
            estimate_checked: false,
            admitted_max: [0.0; 3],
            pending: [0.0; 3],
            streaming_output: 0.0,
            outstanding: Vec::new(),
            blocked_until: None,
            probe_in_flight: false,
            input_scale: 1.0,
            scale_at_grant: std::collections::BTreeMap::new(),
            output_estimate: INITIAL_OUTPUT_ESTIMATE,
            first_headers: Arc::new(Notify::new()),
        }
    }

    fn knows_nothing(&self) -> bool {
        self.buckets.iter().all(Option::is_none)
    }

    fn observe_bucket(&mut self, i: usize, q: &BucketQuota, read_at: Instant, minute: Duration) {
        let Some(limit) = q.limit.filter(|l| *l > 0) else {
            return;
        };
        self.stated[i] = Some(limit);
        let limit = limit as f64;
        let dim = DIMS[i];
        let rate = refill_rate(limit, minute);
        self.learned_capacity[i] =
            learn_capacity(self.learned_capacity[i], q, read_at, dim, minute);
        let capacity = self.learned_capacity[i]
            .map_or(limit, |c| c.max(self.admitted_max[i]))
            .min(limit);
        let pending = self.pending[i];
        let maybe_counted: f64 = self
            .outstanding
            .iter()
            .filter(|(_, _, start)| *start <= read_at)
            .map(|(_, demand, _)| demand[i])
            .sum();
        // A new bucket owes what was reserved before it existed: requests not yet admitted
        // and, for output, the replies still streaming (not yet charged by the server).
        let owed = pending
            + if dim == Bucket::OutputTokens {
                self.streaming_output
            } else {
                0.0
            };
        // The first reading is taken as it is: the server's `remaining` (which already counts
        // what it admitted), less what it has not seen yet.
        let first_level = q.remaining.map_or(capacity, |r| (r as f64).min(capacity));
        let bucket = self.buckets[i].get_or_insert_with(|| {
            let mut b = TokenBucket::new(capacity, rate, read_at);
            b.set_level(first_level - owed, read_at);
            b
        });
        if (bucket.capacity() - capacity).abs() > f64::EPSILON
            || (bucket.refill_per_sec() - rate).abs() > f64::EPSILON
        {
            bucket.set_limits(capacity, rate, read_at);
        }
        // Lower our level when the server has seen more use than we account for: more than
        // our own requests that may have reached it since (slot started, no answer yet) can
        // explain. Concurrent turns of this process are not someone else's use; mistaking
        // them for it used to hold back a request's worth of quota each time. The correction
        // itself still assumes none of them was counted (it leans low).
        //
        // And raise it when it is below what the server has less everything of ours it may
        // not have counted yet (and the rounding): that much is there whatever the server
        // counted. Leaning low is only safe when something corrects it. It was not, when a
        // burst went out before any headers (the first request slower than the probe wait):
        // the first reading's `remaining` had counted the burst's admitted requests, and the
        // new bucket, owing them too, held them back a second time, a stall of as many slots.
        if let Some(remaining) = q.remaining {
            let tolerance = if dim.counts_tokens() { 500.0 } else { 0.5 };
            let server_view = remaining as f64;
            let model_view = bucket.level(read_at) + pending;
            if server_view + tolerance < model_view - maybe_counted {
                bucket.set_level(server_view - pending, read_at);
            } else if bucket.level(read_at) < server_view - tolerance - owed {
                bucket.set_level(server_view - tolerance - owed, read_at);
            }
        }
    }

    fn unpend(&mut self, grant: &Grant) {
        for (i, dim) in DIMS.iter().enumerate() {
            self.pending[i] = (self.pending[i] - grant.demand.get(*dim)).max(0.0);
        }
        self.outstanding.retain(|(id, _, _)| *id != grant.id);
    }
}

#[derive(Debug)]
struct State {
    config: LocalLimiterConfig,
    classes: HashMap<ModelClass, ClassModel>,
    /// Grant ids are unique across classes.
    next_id: u64,
    /// Per conversation ([`MessagesRequest::conversation_key`]): the prefix its last request
    /// read or wrote, in tokens, and when that cache entry expires.
    cache_prefixes: HashMap<u64, (f64, Instant)>,
}

impl State {
    /// A class's model, created empty when first named.
    fn class(&mut self, class: &ModelClass) -> &mut ClassModel {
        self.classes.entry(*class).or_insert_with(ClassModel::new)
    }
}

/// The in-process limiter; one per process, shared by all turns. Cheap to clone (clones share
/// the model).
#[derive(Clone)]
pub struct LocalLimiter {
    state: Arc<Mutex<State>>,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        LocalLimiter::new()
    }
}

impl std::fmt::Debug for LocalLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLimiter").finish_non_exhaustive()
    }
}

impl LocalLimiter {
    /// A limiter that knows nothing yet.
    pub fn new() -> Self {
        LocalLimiter::with_config(LocalLimiterConfig::default())
    }

    /// A limiter with these settings that knows nothing yet.
    pub fn with_config(config: LocalLimiterConfig) -> Self {
        LocalLimiter {
            state: Arc::new(Mutex::new(State {
                config,
                classes: HashMap::new(),
                next_id: 1,
                cache_prefixes: HashMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The modelled level of one of `class`'s buckets at `now`, if its limit is known (for
    /// tests, display, and the shared limiter's re-seeding).
    pub fn level(&self, class: &ModelClass, bucket: Bucket, now: Instant) -> Option<f64> {
        let st = self.lock();
        st.classes.get(class)?.buckets[dim_index(bucket)?]
            .as_ref()
            .map(|b| b.level(now))
    }

    /// The modelled capacity of one of `class`'s buckets, if known.
    pub fn capacity(&self, class: &ModelClass, bucket: Bucket) -> Option<f64> {
        let st = self.lock();
        st.classes.get(class)?.buckets[dim_index(bucket)?]
            .as_ref()
            .map(TokenBucket::capacity)
    }

    /// Reserve without waiting for a probe: the arithmetic of [`Limiter::reserve`].
    fn grant(&self, demand: Demand, now: Instant) -> Grant {
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id += 1;
        let model = st.class(&demand.class);
        let mut start = now;
        let mut binding = None;
        if let Some((until, bucket)) = model.blocked_until
            && until > start
        {
            start = until;
            binding = bucket;
        }
        for (i, dim) in DIMS.iter().enumerate() {
            let Some(bucket) = model.buckets[i].as_ref() else {
                continue;
            };
            // A demand bigger than the bucket can never fit; pace it as a full bucket and let
            // the policy explain the 429 if the server refuses it. (Output is waited for in
            // full although the server charges it as it is generated: the headers cannot show
            // how far below zero the server's output bucket is, so starting as soon as it is
            // not empty meets 429s; waiting for the whole expected output does not.)
            let n = demand.get(*dim).min(bucket.capacity());
            if let Some(wait) = bucket.time_until(n, now) {
                let at = now + wait;
                if at > start {
                    start = at;
                    binding = Some(*dim);
                }
            }
        }
        for (i, dim) in DIMS.iter().enumerate() {
            let n = demand.get(*dim);
            if let Some(bucket) = model.buckets[i].as_mut() {
                bucket.take(n, now);
            }
            model.pending[i] += n;
        }
        model
            .outstanding
            .push((id, DIMS.map(|d| demand.get(d)), start));
        // Callers estimate right before they reserve, so this is the scale of the estimate.
        model.scale_at_grant.insert(id, model.input_scale);
        if model.scale_at_grant.len() > MAX_SCALES_REMEMBERED {
            model.scale_at_grant.pop_first();
        }
        if model.knows_nothing() {
            model.probe_in_flight = true;
        }
        Grant {
            id,
            start_at: start,
            bucket: if start > now {
                binding.or(Some(Bucket::Requests))
            } else {
                None
            },
            source: GrantSource::Local,
            demand,
        }
    }
}

impl Limiter for LocalLimiter {
    fn estimate(&self, request: &MessagesRequest) -> Demand {
        let class = ModelClass::of(&request.model);
        let now = Instant::now();
        let mut st = self.lock();
        let model = st.class(&class);
        let total = (request.estimated_input_tokens() as f64 * model.input_scale).ceil();
        let output = model
            .output_estimate
            .min(f64::from(request.max_tokens))
            .ceil();
        let cache = request.cache_ttl().map(|ttl| {
            let key = request.conversation_key();
            let cached = st
                .cache_prefixes
                .get(&key)
                .filter(|(_, expires)| *expires > now)
                .map_or(0.0, |(tokens, _)| *tokens);
            CacheHint {
                key,
                ttl: ttl.duration(),
                // Reads are free on current models; on the listed older ones they count.
                predicted_read: if cache_reads_count(&request.model) {
                    0.0
                } else {
                    cached.min(total)
                },
            }
        });
        let read = cache.map_or(0.0, |c| c.predicted_read);
        Demand {
            requests: 1.0,
            input_tokens: (total - read).max(0.0),
            output_tokens: output,
            class,
            cache,
        }
    }

    fn reserve(&self, demand: Demand, may_await_probe: bool) -> BoxFuture<'_, Reservation> {
        let now = Instant::now();
        let probe = {
            let mut st = self.lock();
            let probe_wait = st.config.probe_wait;
            let model = st.class(&demand.class);
            (model.knows_nothing() && model.probe_in_flight)
                .then(|| (Arc::clone(&model.first_headers), probe_wait))
        };
        if let Some((notify, probe_wait)) = probe
            && may_await_probe
        {
            let ready = notify.notified_owned();
            return Box::pin(async move {
                Reservation::AwaitFirstHeaders {
                    until: now + probe_wait,
                    ready: Box::pin(ready),
                }
            });
        }
        let grant = self.grant(demand, now);
        Box::pin(async move { Reservation::Granted(grant) })
    }

    fn release(&self, grant: &Grant) {
        let now = Instant::now();
        let mut st = self.lock();
        let model = st.class(&grant.demand.class);
        for (i, dim) in DIMS.iter().enumerate() {
            if let Some(b) = model.buckets[i].as_mut() {
                b.give_back(grant.demand.get(*dim), now);
            }
        }
        model.unpend(grant);
        model.scale_at_grant.remove(&grant.id);
        if model.knows_nothing() {
            // The probe failed without headers: let the next turn try.
            model.probe_in_flight = false;
            let notify = Arc::clone(&model.first_headers);
            drop(st);
            notify.notify_waiters();
        }
    }

    fn commit(&self, grant: &Grant) {
        let mut st = self.lock();
        let model = st.class(&grant.demand.class);
        model.unpend(grant);
        model.streaming_output += grant.demand.output_tokens;
        for dim in [Bucket::Requests, Bucket::InputTokens] {
            if let Some(i) = dim_index(dim) {
                model.admitted_max[i] = model.admitted_max[i].max(grant.demand.get(dim));
            }
        }
    }

    fn settle(&self, grant: &Grant, usage: &Usage) {
        let now = Instant::now();
        let mut st = self.lock();
        if let Some(hint) = grant.demand.cache {
            // The next request of this conversation reads what this one read or wrote.
            let prefix = (usage.cache_read() + usage.cache_write()) as f64;
            if prefix > 0.0 {
                st.cache_prefixes.insert(hint.key, (prefix, now + hint.ttl));
            } else {
                st.cache_prefixes.remove(&hint.key);
            }
            st.cache_prefixes.retain(|_, (_, expires)| *expires > now);
        }
        let model = st.class(&grant.demand.class);
        model.streaming_output = (model.streaming_output - grant.demand.output_tokens).max(0.0);
        let actual_in = usage.rate_limited_input() as f64;
        let actual_out = usage.output_tokens as f64;
        let reserved_in = grant.demand.input_tokens;
        let reserved_out = grant.demand.output_tokens;
        // The scale corrects the token estimate, so it compares whole inputs: what was
        // charged plus what was read against what was reserved plus what was predicted read.
        let (scale_actual, scale_reserved) = match grant.demand.cache {
            Some(hint) => (
                usage.total_input() as f64,
                reserved_in + hint.predicted_read,
            ),
            None => (actual_in, reserved_in),
        };
        let reserved_scale = model
            .scale_at_grant
            .remove(&grant.id)
            .unwrap_or(model.input_scale);
        if scale_actual > 0.0 && scale_reserved > 0.0 {
            model.estimate_checked = (scale_actual / scale_reserved - 1.0).abs() <= CHECKED_WITHIN;
            // actual ÷ the unscaled estimate: what the scale should have been for this one.
            let ratio = (scale_actual / scale_reserved * reserved_scale).clamp(0.1, 10.0);
            model.input_scale = model.input_scale * (1.0 - EWMA_WEIGHT) + ratio * EWMA_WEIGHT;
        }
        if actual_out > 0.0 {
            model.output_estimate =
                model.output_estimate * (1.0 - EWMA_WEIGHT) + actual_out * EWMA_WEIGHT;
        }
        let corrections = [(1, reserved_in - actual_in), (2, reserved_out - actual_out)];
        for (i, over) in corrections {
            if let Some(b) = model.buckets[i].as_mut() {
                if over > 0.0 {
                    b.give_back(over, now);
                } else {
                    b.take(-over, now);
                }
            }
        }
    }

    fn settle_unreported(&self, grant: &Grant) {
        let mut st = self.lock();
        let model = st.class(&grant.demand.class);
        model.streaming_output = (model.streaming_output - grant.demand.output_tokens).max(0.0);
        model.scale_at_grant.remove(&grant.id);
    }

    fn stated_limit(&self, class: &ModelClass, bucket: Bucket) -> Option<u64> {
        let st = self.lock();
        st.classes.get(class)?.stated[dim_index(bucket)?]
    }

    fn input_estimate_error(&self, class: &ModelClass) -> f64 {
        let st = self.lock();
        match st.classes.get(class) {
            Some(m) if m.estimate_checked => CHECKED_ESTIMATE_ERROR,
            _ => UNCHECKED_ESTIMATE_ERROR,
        }
    }

    fn observe(&self, class: &ModelClass, quota: &QuotaSnapshot) {
        let woken = {
            let mut st = self.lock();
            let minute = st.config.minute;
            let model = st.class(class);
            let was_unknown = model.knows_nothing();
            for (i, dim) in DIMS.iter().enumerate() {
                if let Some(q) = quota.bucket(*dim) {
                    model.observe_bucket(i, q, quota.read_at, minute);
                }
            }
            if !model.knows_nothing() {
                model.probe_in_flight = false;
            }
            was_unknown.then(|| Arc::clone(&model.first_headers))
        };
        if let Some(notify) = woken {
            notify.notify_waiters();
        }
    }

    fn rate_limited(&self, class: &ModelClass, until: Instant, bucket: Option<Bucket>) {
        let mut st = self.lock();
        let model = st.class(class);
        let later = model.blocked_until.is_none_or(|(b, _)| until > b);
        if later {
            model.blocked_until = Some((until, bucket));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(now: Instant, rpm: (u64, u64, u64), itpm: (u64, u64, u64)) -> QuotaSnapshot {
        let mut q = QuotaSnapshot::empty(now);
        q.requests = Some(BucketQuota {
            limit: Some(rpm.0),
            remaining: Some(rpm.1),
            reset: Some(now + Duration::from_secs(rpm.2)),
        });
        q.input_tokens = Some(BucketQuota {
            limit: Some(itpm.0),
            remaining: Some(itpm.1),
            reset: Some(now + Duration::from_secs(itpm.2)),
        });
        q
    }

    fn class() -> ModelClass {
        ModelClass::of("claude-sonnet-4-5")
    }

    /// The output level once headers say the 8,000-token output bucket is full.
    fn output_level_after_full_8k_headers(p: &LocalLimiter, now: Instant) -> f64 {
        let mut q = quota(now, (50, 49, 2), (30_000, 30_000, 0));
        q.output_tokens = Some(BucketQuota {
            limit: Some(8_000),
            remaining: Some(8_000),
            reset: Some(now),
        });
        p.observe(&class(), &q);
        p.level(&class(), Bucket::OutputTokens, now).expect("known")
    }

    /// One request of 10 input tokens expecting a reply of 500.
    fn streaming_reply_demand() -> Demand {
        Demand {
            output_tokens: 500.0,
            ..demand(10.0)
        }
    }

    fn demand(input: f64) -> Demand {
        Demand {
            requests: 1.0,
            input_tokens: input,
            output_tokens: 0.0,
            class: class(),
            cache: None,
        }
    }

    async fn granted(p: &LocalLimiter, d: Demand) -> Grant {
        match p.reserve(d, false).await {
            Reservation::Granted(g) => g,
            Reservation::AwaitFirstHeaders { .. } => panic!("expected a grant"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_quota_sends_at_once() {
        let p = LocalLimiter::new();
        let g = granted(&p, demand(100.0)).await;
        assert_eq!(g.start_at, Instant::now());
        assert_eq!(g.bucket, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_waits_for_the_first_headers() {
        let p = LocalLimiter::new();
        let first = granted(&p, demand(100.0)).await;
        match p.reserve(demand(100.0), true).await {
            Reservation::AwaitFirstHeaders { until, ready } => {
                assert_eq!(until - Instant::now(), PROBE_WAIT);
                p.commit(&first);
                p.observe(
                    &class(),
                    &quota(Instant::now(), (10, 9, 6), (30_000, 30_000, 0)),
                );
                tokio::time::timeout(Duration::from_millis(1), ready)
                    .await
                    .expect("woken by the first headers");
            }
            Reservation::Granted(_) => panic!("should wait for the probe"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fifo_slots_at_the_refill_rate() {
        let p = LocalLimiter::new();
        let now = Instant::now();
        // 10 RPM, bucket empty: one request every 6 s, each its own slot.
        p.observe(&class(), &quota(now, (10, 0, 60), (30_000, 30_000, 0)));
        let mut starts = Vec::new();
        for _ in 0..4 {
            let g = granted(&p, demand(10.0)).await;
            assert_eq!(g.bucket, Some(Bucket::Requests));
            starts.push((g.start_at - now).as_secs_f64());
        }
        let expected = [6.0, 12.0, 18.0, 24.0];
        for (s, e) in starts.iter().zip(expected) {
            assert!((s - e).abs() < 1e-6, "{starts:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_shrunk_minute_refills_faster_and_probes_shorter() {
        // Against a mock running ten times faster than real time (`loadtest --time-scale 10`).
        let p = LocalLimiter::with_config(LocalLimiterConfig::time_scaled(10.0));
        let first = granted(&p, demand(10.0)).await;
        match p.reserve(demand(10.0), true).await {
            Reservation::AwaitFirstHeaders { until, .. } => {
                assert_eq!(until - Instant::now(), Duration::from_millis(100));
            }
            Reservation::Granted(_) => panic!("should wait for the probe"),
        }
        p.commit(&first);
        let now = Instant::now();
        // 10 RPM, empty: one request every 0.6 s on a 6-second minute.
        p.observe(&class(), &quota(now, (10, 0, 6), (30_000, 30_000, 0)));
        let g = granted(&p, demand(10.0)).await;
        assert!(
            ((g.start_at - now).as_secs_f64() - 0.6).abs() < 1e-6,
            "{g:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_reservation_frees_its_slot() {
        let p = LocalLimiter::new();
        let now = Instant::now();
        p.observe(&class(), &quota(now, (10, 0, 60), (30_000, 30_000, 0)));
        let a = granted(&p, demand(10.0)).await;
        p.release(&a);
        let b = granted(&p, demand(10.0)).await;
        assert_eq!(b.start_at, a.start_at, "the freed slot is reused");
    }

    #[tokio::test(start_paused = true)]
    async fn input_tokens_bind_and_the_estimate_is_corrected() {
        let p = LocalLimiter::new();
        let now = Instant::now();
        p.observe(&class(), &quota(now, (50, 50, 0), (30_000, 30_000, 0)));
        let a = granted(&p, demand(20_000.0)).await;
        assert_eq!(a.start_at, now);
        p.commit(&a);
        let b = granted(&p, demand(20_000.0)).await;
        assert_eq!(b.bucket, Some(Bucket::InputTokens));
        // 10,000 left; 10,000 more at 500/s.
        assert!(((b.start_at - now).as_secs_f64() - 20.0).abs() < 1e-6);
        // The first request really used only 10,000: the 10,000 over-reserved come back.
        p.settle(
            &a,
            &Usage {
                input_tokens: 10_000,
                output_tokens: 0,
                ..Usage::default()
            },
        );
        let level = p.level(&class(), Bucket::InputTokens, now).expect("known");
        assert!(
            level.abs() < 1e-6,
            "30,000 − 20,000 − 20,000 + 10,000 = 0, got {level}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn server_remaining_lowers_the_model() {
        let p = LocalLimiter::new();
        let now = Instant::now();
        p.observe(&class(), &quota(now, (50, 50, 0), (30_000, 30_000, 0)));
        // Another process used 20 requests.
        p.observe(&class(), &quota(now, (50, 30, 24), (30_000, 30_000, 0)));
        let level = p.level(&class(), Bucket::Requests, now).expect("known");
        assert!((level - 30.0).abs() < 1e-6, "{level}");
        // Rounded token counts within 500 do not move it.
        p.observe(&class(), &quota(now, (50, 30, 24), (30_000, 29_600, 0)));
        let tokens = p.level(&class(), Bucket::InputTokens, now).expect("known");
        assert!((tokens - 30_000.0).abs() < 1e-6, "{tokens}");
    }

    #[tokio::test(start_paused = true)]
    async fn our_own_requests_in_flight_are_not_taken_for_someone_elses() {
        let p = LocalLimiter::new();
        let now = Instant::now();
        p.observe(&class(), &quota(now, (50, 50, 0), (30_000, 30_000, 0)));
        // Two turns go out together; the server admits both before it writes the headers
        // of the first one.
        let a = granted(&p, demand(100.0)).await;
        let b = granted(&p, demand(100.0)).await;
        p.commit(&a);
        p.observe(&class(), &quota(now, (50, 48, 3), (30_000, 30_000, 0)));
        let level = p.level(&class(), Bucket::Requests, now).expect("known");
        assert!(
            (level - 48.0).abs() < 1e-6,
            "b is ours, not a stranger's: {level}"
        );
        // A stranger's use beyond that is still believed (and b assumed not counted).
        p.observe(&class(), &quota(now, (50, 40, 12), (30_000, 30_000, 0)));
        let level = p.level(&class(), Bucket::Requests, now).expect("known");
        assert!((level - 39.0).abs() < 1e-6, "{level}");
        p.commit(&b);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_size_bucket_is_not_taken_for_a_small_one_on_a_short_minute() {
        // A ten-times-faster mock: its reset stamps (whole real seconds) may overstate the
        // time to full by a sixth of the bucket; that must not shrink the model.
        let p = LocalLimiter::with_config(LocalLimiterConfig::time_scaled(10.0));
        let now = Instant::now();
        p.observe(&class(), &quota(now, (50, 50, 0), (30_000, 27_000, 1)));
        let cap = p.capacity(&class(), Bucket::InputTokens).expect("known");
        assert!((cap - 30_000.0).abs() < 1e-6, "{cap}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_smaller_enforced_capacity_is_learned() {
        let p = LocalLimiter::new();
        let now = Instant::now();
        // 30,000 ITPM enforced as a 5,000-token bucket: 2,000 left, full again in 6 s.
        p.observe(&class(), &quota(now, (50, 49, 2), (30_000, 2_000, 6)));
        let cap = p.capacity(&class(), Bucket::InputTokens).expect("known");
        assert!((4_000.0..5_000.0).contains(&cap), "{cap}");
        // A later reading whose reset was rounded less narrows it from below…
        p.observe(&class(), &quota(now, (50, 49, 2), (30_000, 2_000, 7)));
        let cap = p.capacity(&class(), Bucket::InputTokens).expect("known");
        assert!((cap - 4_500.0).abs() < 1e-6, "{cap}");
        // …and one that cannot fit the estimate means the bucket shrank.
        p.observe(&class(), &quota(now, (50, 49, 2), (30_000, 0, 4)));
        let cap = p.capacity(&class(), Bucket::InputTokens).expect("known");
        assert!((cap - 1_000.0).abs() < 1e-6, "{cap}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_holds_at_least_what_it_admitted() {
        let p = LocalLimiter::with_config(LocalLimiterConfig::time_scaled(10.0));
        let now = Instant::now();
        let first = granted(&p, demand(3_000.0)).await;
        p.commit(&first);
        // A coarse reading alone would put a 5,000-token bucket anywhere in [1, 5,500].
        p.observe(&class(), &quota(now, (50, 49, 1), (30_000, 2_000, 1)));
        let cap = p.capacity(&class(), Bucket::InputTokens).expect("known");
        assert!((cap - 3_000.0).abs() < 1e-6, "{cap}");
        // So the next 3,000 wait until 3,000 are there, instead of going at once.
        let next = granted(&p, demand(3_000.0)).await;
        assert!(next.start_at > now, "{next:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_streaming_when_the_first_headers_arrive_still_owes_its_output() {
        let p = LocalLimiter::new();
        let now = Instant::now();
        let g = granted(&p, streaming_reply_demand()).await;
        // Admitted, and its headers arrive: the server has not charged any output yet.
        p.commit(&g);
        let level = output_level_after_full_8k_headers(&p, now);
        assert!(
            (level - 7_500.0).abs() < 1e-6,
            "the streaming reply's 500 are owed: {level}"
        );
        p.settle(
            &g,
            &Usage {
                input_tokens: 10,
                output_tokens: 500,
                ..Usage::default()
            },
        );
        let level = p.level(&class(), Bucket::OutputTokens, now).expect("known");
        assert!(
            (level - 7_500.0).abs() < 1e-6,
            "settled at its estimate: {level}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_that_reported_no_usage_is_no_longer_owed_as_streaming() {
        let p = LocalLimiter::new();
        let now = Instant::now();
        let g = granted(&p, streaming_reply_demand()).await;
        p.commit(&g);
        // Cut before `message_start`: no usage at all. It streams no more.
        p.settle_unreported(&g);
        let level = output_level_after_full_8k_headers(&p, now);
        assert!(
            (level - 8_000.0).abs() < 1e-6,
            "nothing is owed for a reply that ended: {level}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_estimate_counts_as_checked_only_while_usage_confirms_it() {
        let p = LocalLimiter::new();
        let now = Instant::now();
        p.observe(&class(), &quota(now, (50, 50, 0), (30_000, 30_000, 0)));
        assert_eq!(p.stated_limit(&class(), Bucket::InputTokens), Some(30_000));
        assert_eq!(p.input_estimate_error(&class()), UNCHECKED_ESTIMATE_ERROR);
        let usage = |input| Usage {
            input_tokens: input,
            output_tokens: 1,
            ..Usage::default()
        };
        // Usage within 5 % of the estimate: checked.
        let g = granted(&p, demand(1_000.0)).await;
        p.commit(&g);
        p.settle(&g, &usage(1_030));
        assert_eq!(p.input_estimate_error(&class()), CHECKED_ESTIMATE_ERROR);
        // A reply whose usage was 20 % off: unchecked again.
        let g = granted(&p, demand(1_000.0)).await;
        p.commit(&g);
        p.settle(&g, &usage(800));
        assert_eq!(p.input_estimate_error(&class()), UNCHECKED_ESTIMATE_ERROR);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_headers_are_taken_as_they_are() {
        let p = LocalLimiter::new();
        let now = Instant::now();
        // Someone else used 1.5 requests: the server says 48 (floored); a model starting
        // from a full bucket would be within tolerance of it and never learn.
        p.observe(&class(), &quota(now, (50, 48, 3), (30_000, 30_000, 0)));
        let level = p.level(&class(), Bucket::Requests, now).expect("known");
        assert!((level - 48.0).abs() < 1e-6, "{level}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_blocks_everyone_until_its_retry_after() {
        let p = LocalLimiter::new();
        let now = Instant::now();
        p.observe(&class(), &quota(now, (50, 50, 0), (30_000, 30_000, 0)));
        p.rate_limited(
            &class(),
            now + Duration::from_secs(7),
            Some(Bucket::InputTokens),
        );
        let g = granted(&p, demand(1.0)).await;
        assert_eq!(g.start_at, now + Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn each_model_class_has_its_own_buckets() {
        let p = LocalLimiter::new();
        let now = Instant::now();
        // Sonnet's requests bucket is empty and a 429 blocks it; Opus knows nothing yet.
        p.observe(&class(), &quota(now, (10, 0, 60), (30_000, 30_000, 0)));
        p.rate_limited(&class(), now + Duration::from_secs(30), None);
        let opus = Demand {
            class: ModelClass::of("claude-opus-4-1"),
            ..demand(10.0)
        };
        let g = granted(&p, opus).await;
        assert_eq!((g.start_at, g.bucket), (now, None), "{g:?}");
        assert_eq!(p.level(&opus.class, Bucket::Requests, now), None);
        let s = granted(&p, demand(10.0)).await;
        assert_eq!(s.start_at, now + Duration::from_secs(30));
        assert_ne!(s.id, g.id, "grant ids are unique across classes");
    }
}
