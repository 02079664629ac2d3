//! Proactive pacing: a model of the server's buckets, learned from the rate-limit headers, so
//! that requests wait for quota *before* they are sent instead of meeting a 429.
//!
//! - Capacity and refill come from `*-limit` (`limit/60` per second). The capacity is assumed
//!   to be the whole limit until `remaining` and `reset` show a smaller bucket: the server
//!   reports `reset` = when the bucket is full again, so `remaining + (reset − now)·rate`
//!   is the capacity it really enforces (PROTOCOL.md §4.2: "60 RPM may be applied as 1/s").
//! - The level is corrected *down* from `*-remaining` when the server has seen more use than
//!   we know of (other processes sharing the key), allowing for the rounding of token counts.
//! - A reservation takes its demand from every bucket at once; the level may go negative,
//!   which queues the next caller behind it: FIFO slots instead of a thundering herd at the
//!   reset instant (RETRY.md §6.2).
//! - The input estimate and the expected output are corrected from the reported usage.
//! - Until the first headers arrive nothing is known; then one request goes first and the
//!   others wait (briefly) for what its headers say.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::event::DelaySource;
use super::headers::{Bucket, BucketQuota, QuotaSnapshot};
use crate::api::{MessagesRequest, Usage};
use crate::bucket::TokenBucket;
use crate::limiter::{Demand, Grant, Limiter, Reservation};

/// The longest a turn waits for the first request's headers at start-up.
pub const PROBE_WAIT: Duration = Duration::from_secs(1);

/// Expected output tokens before any reply has been seen.
pub const INITIAL_OUTPUT_ESTIMATE: f64 = 512.0;

/// Weight of the newest observation in the running estimates.
const EWMA_WEIGHT: f64 = 0.3;

/// Settings of the pacer. The defaults fit the real API; the load test shrinks both
/// durations together with a mock whose minute is shrunk (`backchat loadtest --time-scale`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PacerConfig {
    /// The longest a turn waits for the first request's headers at start-up ([`PROBE_WAIT`]).
    pub probe_wait: Duration,
    /// How long the server's "minute" lasts: a bucket of `limit` per minute refills at
    /// `limit / minute`. One minute, except against a time-scaled mock.
    pub minute: Duration,
}

impl Default for PacerConfig {
    fn default() -> Self {
        PacerConfig {
            probe_wait: PROBE_WAIT,
            minute: Duration::from_secs(60),
        }
    }
}

impl PacerConfig {
    /// Both durations divided by `scale` (a mock running `scale`× faster than real time).
    pub fn time_scaled(scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        let d = PacerConfig::default();
        PacerConfig {
            probe_wait: d.probe_wait.div_f64(scale),
            minute: d.minute.div_f64(scale),
        }
    }
}

const DIMS: [Bucket; 3] = Bucket::PACED;

fn dim_index(b: Bucket) -> Option<usize> {
    DIMS.iter().position(|d| *d == b)
}

#[derive(Debug)]
struct State {
    config: PacerConfig,
    buckets: [Option<TokenBucket>; 3],
    /// Capacity learned from `remaining` + `reset`, per dimension.
    learned_capacity: [Option<f64>; 3],
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
    output_estimate: f64,
    next_id: u64,
}

/// The in-process pacer; one per process, shared by all turns.
#[derive(Clone)]
pub struct Pacer {
    state: Arc<Mutex<State>>,
    first_headers: Arc<Notify>,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer").finish_non_exhaustive()
    }
}

impl Pacer {
    /// A pacer that knows nothing yet.
    pub fn new() -> Self {
        Pacer::with_config(PacerConfig::default())
    }

    /// A pacer with these settings that knows nothing yet.
    pub fn with_config(config: PacerConfig) -> Self {
        Pacer {
            state: Arc::new(Mutex::new(State {
                config,
                buckets: [None, None, None],
                learned_capacity: [None, None, None],
                admitted_max: [0.0; 3],
                pending: [0.0; 3],
                streaming_output: 0.0,
                outstanding: Vec::new(),
                blocked_until: None,
                probe_in_flight: false,
                input_scale: 1.0,
                output_estimate: INITIAL_OUTPUT_ESTIMATE,
                next_id: 1,
            })),
            first_headers: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The modelled level of a bucket at `now`, if its limit is known (for tests and display).
    pub fn level(&self, bucket: Bucket, now: Instant) -> Option<f64> {
        let st = self.lock();
        st.buckets[dim_index(bucket)?]
            .as_ref()
            .map(|b| b.level(now))
    }

    /// The modelled capacity of a bucket, if known.
    pub fn capacity(&self, bucket: Bucket) -> Option<f64> {
        let st = self.lock();
        st.buckets[dim_index(bucket)?]
            .as_ref()
            .map(TokenBucket::capacity)
    }

    /// Reserve without waiting for a probe: the arithmetic of [`Limiter::reserve`].
    fn grant(&self, demand: Demand, now: Instant) -> Grant {
        let mut st = self.lock();
        let mut start = now;
        let mut binding = None;
        if let Some((until, bucket)) = st.blocked_until
            && until > start
        {
            start = until;
            binding = bucket;
        }
        for (i, dim) in DIMS.iter().enumerate() {
            let Some(bucket) = st.buckets[i].as_ref() else {
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
            if let Some(bucket) = st.buckets[i].as_mut() {
                bucket.take(n, now);
            }
            st.pending[i] += n;
        }
        let id = st.next_id;
        st.next_id += 1;
        st.outstanding
            .push((id, DIMS.map(|d| demand.get(d)), start));
        if st.buckets.iter().all(Option::is_none) {
            st.probe_in_flight = true;
        }
        Grant {
            id,
            start_at: start,
            bucket: if start > now {
                binding.or(Some(Bucket::Requests))
            } else {
                None
            },
            source: DelaySource::Pacer,
            demand,
        }
    }

    fn observe_bucket(st: &mut State, i: usize, q: &BucketQuota, read_at: Instant, tokens: bool) {
        let Some(limit) = q.limit.filter(|l| *l > 0) else {
            return;
        };
        let limit = limit as f64;
        let minute = st.config.minute.as_secs_f64();
        let rate = if minute > 0.0 {
            limit / minute
        } else {
            limit / 60.0
        };
        // What the server's numbers say the capacity is. `reset` has second precision (it may
        // overstate the time to full by up to a second of refill) and token counts are rounded
        // to 1,000 (±500), so each reading puts the capacity in
        // [raw − rate − rounding, raw + rounding]. Learn a smaller bucket only when even the
        // top of that range is clearly below the limit (a full-size bucket must not be
        // mistaken for a small one), and estimate it by the best lower bound seen so far: the
        // readings' rounding errors differ, so their lower bounds climb towards the truth
        // without passing it. A reading whose top is below the estimate means the bucket
        // shrank. (A second of refill can be a large part of a bucket when the server's
        // minute is short, as on a time-scaled mock; the smallest lower bound, used before,
        // could then fall to nothing.)
        if let (Some(remaining), Some(reset)) = (q.remaining, q.reset) {
            let to_full = reset.saturating_duration_since(read_at).as_secs_f64();
            let rounding = if tokens { 500.0 } else { 0.0 };
            let raw = remaining as f64 + to_full * rate;
            let (low, high) = ((raw - rate - rounding).max(1.0), raw + rounding);
            if high < 0.9 * limit {
                let learned = match st.learned_capacity[i] {
                    Some(c) if high >= c => c.max(low),
                    _ => low,
                };
                st.learned_capacity[i] = Some(learned);
            }
        }
        let capacity = st.learned_capacity[i]
            .map_or(limit, |c| c.max(st.admitted_max[i]))
            .min(limit);
        let pending = st.pending[i];
        let maybe_counted: f64 = st
            .outstanding
            .iter()
            .filter(|(_, _, start)| *start <= read_at)
            .map(|(_, demand, _)| demand[i])
            .sum();
        // A new bucket owes what was reserved before it existed: requests not yet admitted
        // and, for output, the replies still streaming (not yet charged by the server).
        let owed = pending
            + if DIMS[i] == Bucket::OutputTokens {
                st.streaming_output
            } else {
                0.0
            };
        // The first reading is taken as it is: the server's `remaining` (which already counts
        // what it admitted), less what it has not seen yet.
        let first_level = q.remaining.map_or(capacity, |r| (r as f64).min(capacity));
        let bucket = st.buckets[i].get_or_insert_with(|| {
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
        if let Some(remaining) = q.remaining {
            let tolerance = if tokens { 500.0 } else { 0.5 };
            let server_view = remaining as f64;
            let model_view = bucket.level(read_at) + pending;
            if server_view + tolerance < model_view - maybe_counted {
                bucket.set_level(server_view - pending, read_at);
            }
        }
    }

    fn unpend(st: &mut State, grant: &Grant) {
        for (i, dim) in DIMS.iter().enumerate() {
            st.pending[i] = (st.pending[i] - grant.demand.get(*dim)).max(0.0);
        }
        st.outstanding.retain(|(id, _, _)| *id != grant.id);
    }
}

impl Limiter for Pacer {
    fn estimate(&self, request: &MessagesRequest) -> Demand {
        let st = self.lock();
        let input = (request.estimated_input_tokens() as f64 * st.input_scale).ceil();
        let output = st.output_estimate.min(request.max_tokens as f64).ceil();
        Demand {
            requests: 1.0,
            input_tokens: input,
            output_tokens: output,
        }
    }

    fn reserve(&self, demand: Demand, may_await_probe: bool) -> BoxFuture<'_, Reservation> {
        let now = Instant::now();
        let probe_pending = {
            let st = self.lock();
            st.buckets.iter().all(Option::is_none) && st.probe_in_flight
        };
        if probe_pending && may_await_probe {
            let notify = Arc::clone(&self.first_headers);
            let ready = notify.notified_owned();
            let probe_wait = self.lock().config.probe_wait;
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
        for (i, dim) in DIMS.iter().enumerate() {
            if let Some(b) = st.buckets[i].as_mut() {
                b.give_back(grant.demand.get(*dim), now);
            }
        }
        Self::unpend(&mut st, grant);
        if st.buckets.iter().all(Option::is_none) {
            // The probe failed without headers: let the next turn try.
            st.probe_in_flight = false;
            drop(st);
            self.first_headers.notify_waiters();
        }
    }

    fn commit(&self, grant: &Grant) {
        let mut st = self.lock();
        Self::unpend(&mut st, grant);
        st.streaming_output += grant.demand.output_tokens;
        for dim in [Bucket::Requests, Bucket::InputTokens] {
            if let Some(i) = dim_index(dim) {
                st.admitted_max[i] = st.admitted_max[i].max(grant.demand.get(dim));
            }
        }
    }

    fn settle(&self, grant: &Grant, usage: &Usage) {
        let now = Instant::now();
        let mut st = self.lock();
        st.streaming_output = (st.streaming_output - grant.demand.output_tokens).max(0.0);
        let actual_in = usage.rate_limited_input() as f64;
        let actual_out = usage.output_tokens as f64;
        let reserved_in = grant.demand.input_tokens;
        let reserved_out = grant.demand.output_tokens;
        if actual_in > 0.0 && reserved_in > 0.0 {
            let ratio = (actual_in / reserved_in * st.input_scale).clamp(0.1, 10.0);
            st.input_scale = st.input_scale * (1.0 - EWMA_WEIGHT) + ratio * EWMA_WEIGHT;
        }
        if actual_out > 0.0 {
            st.output_estimate =
                st.output_estimate * (1.0 - EWMA_WEIGHT) + actual_out * EWMA_WEIGHT;
        }
        let corrections = [(1, reserved_in - actual_in), (2, reserved_out - actual_out)];
        for (i, over) in corrections {
            if let Some(b) = st.buckets[i].as_mut() {
                if over > 0.0 {
                    b.give_back(over, now);
                } else {
                    b.take(-over, now);
                }
            }
        }
    }

    fn observe(&self, quota: &QuotaSnapshot) {
        let was_unknown;
        {
            let mut st = self.lock();
            was_unknown = st.buckets.iter().all(Option::is_none);
            for (i, dim) in DIMS.iter().enumerate() {
                if let Some(q) = quota.bucket(*dim) {
                    Self::observe_bucket(&mut st, i, q, quota.read_at, *dim != Bucket::Requests);
                }
            }
            if st.buckets.iter().any(Option::is_some) {
                st.probe_in_flight = false;
            }
        }
        if was_unknown {
            self.first_headers.notify_waiters();
        }
    }

    fn rate_limited(&self, until: Instant, bucket: Option<Bucket>) {
        let mut st = self.lock();
        let later = st.blocked_until.is_none_or(|(b, _)| until > b);
        if later {
            st.blocked_until = Some((until, bucket));
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

    fn demand(input: f64) -> Demand {
        Demand {
            requests: 1.0,
            input_tokens: input,
            output_tokens: 0.0,
        }
    }

    async fn granted(p: &Pacer, d: Demand) -> Grant {
        match p.reserve(d, false).await {
            Reservation::Granted(g) => g,
            Reservation::AwaitFirstHeaders { .. } => panic!("expected a grant"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_quota_sends_at_once() {
        let p = Pacer::new();
        let g = granted(&p, demand(100.0)).await;
        assert_eq!(g.start_at, Instant::now());
        assert_eq!(g.bucket, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_waits_for_the_first_headers() {
        let p = Pacer::new();
        let first = granted(&p, demand(100.0)).await;
        match p.reserve(demand(100.0), true).await {
            Reservation::AwaitFirstHeaders { until, ready } => {
                assert_eq!(until - Instant::now(), PROBE_WAIT);
                p.commit(&first);
                p.observe(&quota(Instant::now(), (10, 9, 6), (30_000, 30_000, 0)));
                tokio::time::timeout(Duration::from_millis(1), ready)
                    .await
                    .expect("woken by the first headers");
            }
            Reservation::Granted(_) => panic!("should wait for the probe"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fifo_slots_at_the_refill_rate() {
        let p = Pacer::new();
        let now = Instant::now();
        // 10 RPM, bucket empty: one request every 6 s, each its own slot.
        p.observe(&quota(now, (10, 0, 60), (30_000, 30_000, 0)));
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
        let p = Pacer::with_config(PacerConfig::time_scaled(10.0));
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
        p.observe(&quota(now, (10, 0, 6), (30_000, 30_000, 0)));
        let g = granted(&p, demand(10.0)).await;
        assert!(
            ((g.start_at - now).as_secs_f64() - 0.6).abs() < 1e-6,
            "{g:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_reservation_frees_its_slot() {
        let p = Pacer::new();
        let now = Instant::now();
        p.observe(&quota(now, (10, 0, 60), (30_000, 30_000, 0)));
        let a = granted(&p, demand(10.0)).await;
        p.release(&a);
        let b = granted(&p, demand(10.0)).await;
        assert_eq!(b.start_at, a.start_at, "the freed slot is reused");
    }

    #[tokio::test(start_paused = true)]
    async fn input_tokens_bind_and_the_estimate_is_corrected() {
        let p = Pacer::new();
        let now = Instant::now();
        p.observe(&quota(now, (50, 50, 0), (30_000, 30_000, 0)));
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
        let level = p.level(Bucket::InputTokens, now).expect("known");
        assert!(
            level.abs() < 1e-6,
            "30,000 − 20,000 − 20,000 + 10,000 = 0, got {level}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn server_remaining_lowers_the_model() {
        let p = Pacer::new();
        let now = Instant::now();
        p.observe(&quota(now, (50, 50, 0), (30_000, 30_000, 0)));
        // Another process used 20 requests.
        p.observe(&quota(now, (50, 30, 24), (30_000, 30_000, 0)));
        let level = p.level(Bucket::Requests, now).expect("known");
        assert!((level - 30.0).abs() < 1e-6, "{level}");
        // Rounded token counts within 500 do not move it.
        p.observe(&quota(now, (50, 30, 24), (30_000, 29_600, 0)));
        let tokens = p.level(Bucket::InputTokens, now).expect("known");
        assert!((tokens - 30_000.0).abs() < 1e-6, "{tokens}");
    }

    #[tokio::test(start_paused = true)]
    async fn our_own_requests_in_flight_are_not_taken_for_someone_elses() {
        let p = Pacer::new();
        let now = Instant::now();
        p.observe(&quota(now, (50, 50, 0), (30_000, 30_000, 0)));
        // Two turns go out together; the server admits both before it writes the headers
        // of the first one.
        let a = granted(&p, demand(100.0)).await;
        let b = granted(&p, demand(100.0)).await;
        p.commit(&a);
        p.observe(&quota(now, (50, 48, 3), (30_000, 30_000, 0)));
        let level = p.level(Bucket::Requests, now).expect("known");
        assert!(
            (level - 48.0).abs() < 1e-6,
            "b is ours, not a stranger's: {level}"
        );
        // A stranger's use beyond that is still believed (and b assumed not counted).
        p.observe(&quota(now, (50, 40, 12), (30_000, 30_000, 0)));
        let level = p.level(Bucket::Requests, now).expect("known");
        assert!((level - 39.0).abs() < 1e-6, "{level}");
        p.commit(&b);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_size_bucket_is_not_taken_for_a_small_one_on_a_short_minute() {
        // A ten-times-faster mock: its reset stamps (whole real seconds) may overstate the
        // time to full by a sixth of the bucket; that must not shrink the model.
        let p = Pacer::with_config(PacerConfig::time_scaled(10.0));
        let now = Instant::now();
        p.observe(&quota(now, (50, 50, 0), (30_000, 27_000, 1)));
        let cap = p.capacity(Bucket::InputTokens).expect("known");
        assert!((cap - 30_000.0).abs() < 1e-6, "{cap}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_smaller_enforced_capacity_is_learned() {
        let p = Pacer::new();
        let now = Instant::now();
        // 30,000 ITPM enforced as a 5,000-token bucket: 2,000 left, full again in 6 s.
        p.observe(&quota(now, (50, 49, 2), (30_000, 2_000, 6)));
        let cap = p.capacity(Bucket::InputTokens).expect("known");
        assert!((4_000.0..5_000.0).contains(&cap), "{cap}");
        // A later reading whose reset was rounded less narrows it from below…
        p.observe(&quota(now, (50, 49, 2), (30_000, 2_000, 7)));
        let cap = p.capacity(Bucket::InputTokens).expect("known");
        assert!((cap - 4_500.0).abs() < 1e-6, "{cap}");
        // …and one that cannot fit the estimate means the bucket shrank.
        p.observe(&quota(now, (50, 49, 2), (30_000, 0, 4)));
        let cap = p.capacity(Bucket::InputTokens).expect("known");
        assert!((cap - 1_000.0).abs() < 1e-6, "{cap}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_holds_at_least_what_it_admitted() {
        let p = Pacer::with_config(PacerConfig::time_scaled(10.0));
        let now = Instant::now();
        let first = granted(&p, demand(3_000.0)).await;
        p.commit(&first);
        // A coarse reading alone would put a 5,000-token bucket anywhere in [1, 5,500].
        p.observe(&quota(now, (50, 49, 1), (30_000, 2_000, 1)));
        let cap = p.capacity(Bucket::InputTokens).expect("known");
        assert!((cap - 3_000.0).abs() < 1e-6, "{cap}");
        // So the next 3,000 wait until 3,000 are there, instead of going at once.
        let next = granted(&p, demand(3_000.0)).await;
        assert!(next.start_at > now, "{next:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_streaming_when_the_first_headers_arrive_still_owes_its_output() {
        let p = Pacer::new();
        let now = Instant::now();
        let g = granted(
            &p,
            Demand {
                requests: 1.0,
                input_tokens: 10.0,
                output_tokens: 500.0,
            },
        )
        .await;
        // Admitted, and its headers arrive: the server has not charged any output yet.
        p.commit(&g);
        let mut q = quota(now, (50, 49, 2), (30_000, 30_000, 0));
        q.output_tokens = Some(BucketQuota {
            limit: Some(8_000),
            remaining: Some(8_000),
            reset: Some(now),
        });
        p.observe(&q);
        let level = p.level(Bucket::OutputTokens, now).expect("known");
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
        let level = p.level(Bucket::OutputTokens, now).expect("known");
        assert!(
            (level - 7_500.0).abs() < 1e-6,
            "settled at its estimate: {level}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_headers_are_taken_as_they_are() {
        let p = Pacer::new();
        let now = Instant::now();
        // Someone else used 1.5 requests: the server says 48 (floored); a model starting
        // from a full bucket would be within tolerance of it and never learn.
        p.observe(&quota(now, (50, 48, 3), (30_000, 30_000, 0)));
        let level = p.level(Bucket::Requests, now).expect("known");
        assert!((level - 48.0).abs() < 1e-6, "{level}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_blocks_everyone_until_its_retry_after() {
        let p = Pacer::new();
        let now = Instant::now();
        p.observe(&quota(now, (50, 50, 0), (30_000, 30_000, 0)));
        p.rate_limited(now + Duration::from_secs(7), Some(Bucket::InputTokens));
        let g = granted(&p, demand(1.0)).await;
        assert_eq!(g.start_at, now + Duration::from_secs(7));
    }
}
