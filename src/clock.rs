//! Time, one way for the whole program.
//!
//! Waits and countdowns run on tokio's clock ([`Instant`]), so tests can pause and advance it.
//! Rate-limit headers carry wall-clock stamps (RFC 3339), so we also need wall time; it is
//! *derived* from tokio's clock (a fixed wall/monotonic pair taken once, plus the elapsed
//! monotonic time). The mock server and the client therefore agree on "now" even when the
//! tokio clock is paused and jumps ahead, and in real runs the derived time is the system time.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

fn base() -> &'static (std::time::Instant, SystemTime) {
    static BASE: OnceLock<(std::time::Instant, SystemTime)> = OnceLock::new();
    BASE.get_or_init(|| (std::time::Instant::now(), SystemTime::now()))
}

/// The wall-clock time that corresponds to a tokio instant.
pub fn wall_at(instant: Instant) -> SystemTime {
    let (base_inst, base_wall) = *base();
    let i = instant.into_std();
    if i >= base_inst {
        base_wall + (i - base_inst)
    } else {
        base_wall
            .checked_sub(base_inst - i)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// Wall-clock "now", derived from tokio's clock (see the module docs).
pub fn wall_now() -> SystemTime {
    wall_at(Instant::now())
}

/// The tokio instant at which the given wall-clock time happens, seen from `now`.
/// Times in the past map to `now` or earlier; the result never overflows.
pub fn instant_for_wall(wall: SystemTime, now: Instant) -> Instant {
    let wall_now = wall_at(now);
    match wall.duration_since(wall_now) {
        Ok(ahead) => now.checked_add(ahead).unwrap_or(now + FAR_FUTURE),
        Err(e) => now.checked_sub(e.duration()).unwrap_or(now),
    }
}

/// A duration long enough to mean "never" in a countdown, small enough never to overflow.
pub const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `Duration` from seconds given as f64. Negative, NaN and infinite inputs never panic:
/// NaN and negatives give zero, huge values saturate at [`FAR_FUTURE`].
pub fn secs_f64(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(secs)
            .unwrap_or(FAR_FUTURE)
            .min(FAR_FUTURE)
    }
}

/// RFC 3339 with milliseconds, UTC: `2026-11-27T19:29:15.123Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// RFC 3339 with whole seconds, UTC, as the API sends `*-reset` stamps: `2026-11-27T19:29:15Z`.
pub fn rfc3339_seconds(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Serde helpers: an [`Instant`] is written as the RFC 3339 wall-clock time it stands for.
pub mod serde_instant {
    use serde::Serializer;
    use tokio::time::Instant;

    /// Serialize an instant as RFC 3339 with milliseconds.
    pub fn serialize<S: Serializer>(i: &Instant, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339_millis(super::wall_at(*i)))
    }

    /// Serialize an optional instant.
    pub fn option<S: Serializer>(i: &Option<Instant>, s: S) -> Result<S::Ok, S::Error> {
        match i {
            Some(i) => serialize(i, s),
            None => s.serialize_none(),
        }
    }
}

/// Serde helpers: a [`std::time::Duration`] is written as fractional seconds.
pub mod serde_secs {
    use serde::Serializer;
    use std::time::Duration;

    /// Serialize a duration as seconds (f64, millisecond precision).
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wall_time_follows_the_paused_clock() {
        let t0 = wall_now();
        tokio::time::advance(Duration::from_secs(90)).await;
        let t1 = wall_now();
        let d = t1.duration_since(t0).expect("monotonic");
        assert!(
            d >= Duration::from_secs(90) && d < Duration::from_secs(91),
            "{d:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn wall_and_instant_round_trip() {
        let now = Instant::now();
        let wall = wall_at(now) + Duration::from_secs(42);
        let back = instant_for_wall(wall, now);
        assert_eq!(back - now, Duration::from_secs(42));
        let past = wall_at(now) - Duration::from_secs(5);
        assert!(instant_for_wall(past, now) <= now);
    }

    #[test]
    fn secs_f64_never_panics() {
        assert_eq!(secs_f64(f64::NAN), Duration::ZERO);
        assert_eq!(secs_f64(-3.0), Duration::ZERO);
        assert_eq!(secs_f64(f64::INFINITY), FAR_FUTURE);
        assert_eq!(secs_f64(1e300), FAR_FUTURE);
        assert_eq!(secs_f64(1.5), Duration::from_millis(1500));
    }
}
