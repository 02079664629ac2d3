//! Token-bucket arithmetic with continuous refill, as Anthropic documents its limits
//! (docs/protocol.md, docs/retries.md): capacity `C`, refill `r` units per second, level
//! `min(C, level + Δt·r)`.
//!
//! One small type, used by the mock's limits, the local limiter's model of the server and the
//! load test's simulated server. The level may go below zero through [`TokenBucket::take`]: that is
//! a reservation made ahead of time (GCRA's "theoretical arrival time" in another form), which
//! is how FIFO pacing hands each waiter its own future slot.

use std::time::Duration;

use tokio::time::Instant;

use crate::clock::{FAR_FUTURE, secs_f64};

/// A continuously refilling token bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBucket {
    capacity: f64,
    refill_per_sec: f64,
    level: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket of `capacity` units that refills at `refill_per_sec`.
    pub fn new(capacity: f64, refill_per_sec: f64, now: Instant) -> Self {
        let capacity = sane(capacity);
        TokenBucket {
            capacity,
            refill_per_sec: sane(refill_per_sec),
            level: capacity,
            updated: now,
        }
    }

    /// A bucket for a per-minute limit, as the API states them: refill `limit/60` per second,
    /// capacity `fraction × limit` (1.0 for the documented behaviour; docs/retries.md also
    /// uses 1/6 and 1/60, "60 RPM enforced as 1 per second"). The capacity is never below one
    /// unit, so a small limit with a small fraction still admits something.
    pub fn per_minute(limit: u64, capacity_fraction: f64, now: Instant) -> Self {
        let limit = limit as f64;
        let fraction = if capacity_fraction.is_finite() && capacity_fraction > 0.0 {
            capacity_fraction.min(1.0)
        } else {
            1.0
        };
        Self::new((limit * fraction).max(limit.min(1.0)), limit / 60.0, now)
    }

    /// Maximum level.
    pub fn capacity(&self) -> f64 {
        self.capacity
    }

    /// Units added per second.
    pub fn refill_per_sec(&self) -> f64 {
        self.refill_per_sec
    }

    /// The level at `now` (may be negative while reservations are outstanding).
    pub fn level(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        (self.level + elapsed * self.refill_per_sec).min(self.capacity)
    }

    /// Bring the stored level up to date.
    pub fn refill(&mut self, now: Instant) {
        if now > self.updated {
            self.level = self.level(now);
            self.updated = now;
        }
    }

    /// How long until `n` units are available, or `None` when `n` can never fit
    /// (it exceeds the capacity, or the bucket never refills).
    pub fn time_until(&self, n: f64, now: Instant) -> Option<Duration> {
        if n > self.capacity {
            return None;
        }
        let missing = n - self.level(now);
        if missing <= 0.0 {
            return Some(Duration::ZERO);
        }
        if self.refill_per_sec <= 0.0 {
            return None;
        }
        Some(secs_f64(missing / self.refill_per_sec))
    }

    /// Take `n` units if they are available now; a refusal consumes nothing.
    pub fn try_take(&mut self, n: f64, now: Instant) -> bool {
        self.refill(now);
        if self.level >= n {
            self.level -= n;
            true
        } else {
            false
        }
    }

    /// Take `n` units unconditionally; the level may go negative (a reservation).
    pub fn take(&mut self, n: f64, now: Instant) {
        self.refill(now);
        self.level -= sane(n);
    }

    /// Return `n` units (a cancelled reservation, or an over-estimate corrected), up to capacity.
    pub fn give_back(&mut self, n: f64, now: Instant) {
        self.refill(now);
        self.level = (self.level + sane(n)).min(self.capacity);
    }

    /// Set the level directly (for example from a server's `remaining` header).
    pub fn set_level(&mut self, level: f64, now: Instant) {
        self.refill(now);
        self.level = if level.is_nan() {
            self.level
        } else {
            level.min(self.capacity)
        };
    }

    /// Change capacity and refill rate, keeping the current level (clamped to the new capacity).
    pub fn set_limits(&mut self, capacity: f64, refill_per_sec: f64, now: Instant) {
        self.refill(now);
        self.capacity = sane(capacity);
        self.refill_per_sec = sane(refill_per_sec);
        self.level = self.level.min(self.capacity);
    }

    /// Time until the bucket is completely full again (what `*-reset` headers report).
    pub fn time_until_full(&self, now: Instant) -> Duration {
        let missing = self.capacity - self.level(now);
        if missing <= 0.0 {
            Duration::ZERO
        } else if self.refill_per_sec <= 0.0 {
            FAR_FUTURE
        } else {
            secs_f64(missing / self.refill_per_sec)
        }
    }
}

fn sane(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refills_continuously_not_in_windows() {
        let now = Instant::now();
        let mut b = TokenBucket::per_minute(60, 1.0, now);
        assert!(b.try_take(60.0, now));
        assert_eq!(b.level(now), 0.0);
        // 60 per minute = one per second, continuously.
        let later = now + Duration::from_millis(2500);
        assert!((b.level(later) - 2.5).abs() < 1e-9);
        assert!(!b.try_take(3.0, later), "a refusal consumes nothing");
        assert!((b.level(later) - 2.5).abs() < 1e-9);
        assert_eq!(b.time_until(3.0, later), Some(Duration::from_millis(500)));
        assert_eq!(b.time_until_full(later), Duration::from_millis(57_500));
        // Never above capacity.
        assert_eq!(b.level(now + Duration::from_hours(1)), 60.0);
    }

    #[tokio::test(start_paused = true)]
    async fn reservations_queue_up_fifo() {
        let now = Instant::now();
        let mut b = TokenBucket::new(10.0, 1.0, now);
        b.take(10.0, now);
        b.take(5.0, now); // the next caller's slot is 5 s out
        assert_eq!(b.time_until(0.0, now), Some(Duration::from_secs(5)));
        b.give_back(5.0, now); // cancelled
        assert_eq!(b.time_until(0.0, now), Some(Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn impossible_requests_are_reported() {
        let now = Instant::now();
        let b = TokenBucket::per_minute(30_000, 1.0, now);
        assert_eq!(b.time_until(30_001.0, now), None);
        let frac = TokenBucket::per_minute(60, 1.0 / 60.0, now);
        assert_eq!(frac.capacity(), 1.0);
        assert_eq!(frac.time_until(2.0, now), None);
        let tiny = TokenBucket::per_minute(50, 1.0 / 60.0, now);
        assert_eq!(tiny.capacity(), 1.0, "at least one unit");
    }

    #[tokio::test(start_paused = true)]
    async fn garbage_limits_do_not_panic() {
        let now = Instant::now();
        let mut b = TokenBucket::new(f64::NAN, f64::INFINITY, now);
        assert_eq!(b.capacity(), 0.0);
        b.set_limits(-1.0, f64::NAN, now);
        assert_eq!(b.time_until_full(now), Duration::ZERO);
        assert_eq!(b.time_until(1.0, now), None);
    }
}
