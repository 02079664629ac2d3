//! Learning the size of the bucket the server really enforces, from its headers. The one
//! place this arithmetic lives: the local limiter and the shared (Redis) limiter both call
//! [`learn_capacity`], and the shared limiter's Lua script only stores what it returns.
//!
//! A limit of `L` per minute refills at `L / minute`; the bucket is assumed to hold the whole
//! `L` until `remaining` and `reset` show a smaller one. The server reports `reset` = when the
//! bucket is full again, so `remaining + (reset − now)·rate` is the capacity it enforces
//! ("60 RPM may be applied as 1 per second", docs/protocol.md, docs/retries.md).

use std::time::Duration;

use tokio::time::Instant;

use super::snapshot::{Bucket, BucketQuota};

/// The server's "minute" when it is not told otherwise.
const MINUTE: Duration = Duration::from_mins(1);

/// The `±` error of a token count in `remaining`: the server rounds it to the nearest 1,000.
const TOKEN_ROUNDING: f64 = 500.0;

/// A learned capacity must be below this fraction of the limit: a full-size bucket whose
/// reading is a little off must not be mistaken for a small one.
const SMALLER_THAN: f64 = 0.9;

/// Units per second for a limit of `limit` per `minute` (a zero minute counts as 60 s).
pub fn refill_rate(limit: f64, minute: Duration) -> f64 {
    let minute = minute.as_secs_f64();
    limit
        / if minute > 0.0 {
            minute
        } else {
            MINUTE.as_secs_f64()
        }
}

/// The capacity learned for `bucket` after one more reading `q` (read at `read_at`, on a
/// server whose minute lasts `minute`), given what was learned before (`None`: nothing yet,
/// the bucket is taken to be the whole limit).
///
/// `reset` has second precision (it may overstate the time to full by up to a second of
/// refill) and token counts are rounded to 1,000 (±500), so each reading puts the capacity in
/// `[raw − rate − rounding, raw + rounding]`. A smaller bucket is learned only when even the
/// top of that range is clearly below the limit, and it is estimated by the best lower bound
/// seen so far: the readings' rounding errors differ, so their lower bounds climb towards the
/// truth without passing it. A reading whose top is below the estimate means the bucket
/// shrank, and its lower bound replaces it. (A second of refill can be a large part of a
/// bucket when the server's minute is short, as on a time-scaled mock: the smallest lower
/// bound, kept at first, could fall to nothing.) A reading that shows nothing smaller leaves
/// the estimate as it was.
pub fn learn_capacity(
    previous: Option<f64>,
    q: &BucketQuota,
    read_at: Instant,
    bucket: Bucket,
    minute: Duration,
) -> Option<f64> {
    match (previous, capacity_range(q, read_at, bucket, minute)) {
        (Some(c), Some((low, high))) if high >= c => Some(c.max(low)),
        (_, Some((low, _))) => Some(low),
        (previous, None) => previous,
    }
}

/// The capacity one reading implies, as `(low, high)`, when even its top is clearly below the
/// whole limit.
fn capacity_range(
    q: &BucketQuota,
    read_at: Instant,
    bucket: Bucket,
    minute: Duration,
) -> Option<(f64, f64)> {
    let limit = q.limit.filter(|l| *l > 0)? as f64;
    let rate = refill_rate(limit, minute);
    let remaining = q.remaining? as f64;
    let to_full = q.reset?.saturating_duration_since(read_at).as_secs_f64();
    let rounding = if bucket.counts_tokens() {
        TOKEN_ROUNDING
    } else {
        0.0
    };
    let raw = remaining + to_full * rate;
    let (low, high) = ((raw - rate - rounding).max(1.0), raw + rounding);
    (high < SMALLER_THAN * limit).then_some((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(limit: u64, remaining: u64, to_full: Duration, now: Instant) -> BucketQuota {
        BucketQuota {
            limit: Some(limit),
            remaining: Some(remaining),
            reset: Some(now + to_full),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_enforced_capacity_is_learned_from_its_best_lower_bound() {
        let now = Instant::now();
        let minute = Duration::from_mins(1);
        let q = reading(30_000, 2_000, Duration::from_secs(6), now);
        let (low, high) =
            capacity_range(&q, now, Bucket::InputTokens, minute).expect("smaller than the limit");
        assert!((low - 4_000.0).abs() < 1e-6 && (high - 5_500.0).abs() < 1e-6);
        let full = BucketQuota {
            remaining: Some(30_000),
            reset: Some(now),
            ..q
        };
        assert_eq!(
            capacity_range(&full, now, Bucket::InputTokens, minute),
            None
        );
        // A later reading rounded less narrows it from below; one whose top is below the
        // estimate means the bucket shrank.
        let c = learn_capacity(None, &q, now, Bucket::InputTokens, minute);
        assert_eq!(c, Some(4_000.0));
        let narrower = reading(30_000, 2_000, Duration::from_secs(7), now);
        let c = learn_capacity(c, &narrower, now, Bucket::InputTokens, minute);
        assert_eq!(c, Some(4_500.0));
        let shrunk = reading(30_000, 0, Duration::from_secs(4), now);
        assert_eq!(
            learn_capacity(c, &shrunk, now, Bucket::InputTokens, minute),
            Some(1_000.0)
        );
        assert_eq!(
            learn_capacity(c, &full, now, Bucket::InputTokens, minute),
            c
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_on_a_short_minute_is_not_taken_for_a_small_one() {
        // A mock 20× faster than real time refills 5,000 tokens per real second: 6,000 used
        // are back in 1.2 s, stamped 2 s. Read with a real minute's rate, that would look
        // like a 25,000-token bucket.
        let now = Instant::now();
        let q = reading(30_000, 24_000, Duration::from_secs(2), now);
        let short = Duration::from_secs(3);
        assert_eq!(capacity_range(&q, now, Bucket::InputTokens, short), None);
        assert_eq!(
            learn_capacity(None, &q, now, Bucket::InputTokens, short),
            None
        );
        // On a real minute the same reading would be one.
        assert!(capacity_range(&q, now, Bucket::InputTokens, MINUTE).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_counted_exactly() {
        let now = Instant::now();
        // 120 RPM (2/s): 1 left, full again in 1.2 s (a whole-second stamp may overstate that
        // by a second of refill): between 1.4 and 3.4, with no rounding to allow for.
        let q = reading(120, 1, Duration::from_millis(1200), now);
        let c = learn_capacity(None, &q, now, Bucket::Requests, MINUTE).expect("learned");
        assert!((c - 1.4).abs() < 1e-9, "{c}");
        assert_eq!(refill_rate(120.0, Duration::ZERO), 2.0);
    }
}
