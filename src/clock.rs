//! Time, one way for the whole program.
//!
//! Waits and countdowns run on tokio's clock ([`Instant`]), so tests can pause and advance it.
//! Rate-limit headers carry wall-clock stamps (RFC 3339), so we also need wall time; it is
//! *derived* from tokio's clock (a fixed wall/monotonic pair taken once, plus the elapsed
//! monotonic time). The mock server and the client therefore agree on "now" even when the
//! tokio clock is paused and jumps ahead, and in real runs the derived time is the system time.
//!
//! Durations are read and written here too: [`parse_duration`] for flags and the config file,
//! [`parse_go_duration`] for `6m0s`-style reset headers, [`human_duration`] for people.

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
pub const FAR_FUTURE: Duration = Duration::from_hours(876_000);

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

/// A duration given as plain seconds (`120`, `2.5`) or with units (`90s`, `5m`, `1h30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(secs_f64(secs));
        }
        return Err(format!(
            "`{text}` is not a valid duration (negative or not finite)"
        ));
    }
    parse_go_duration(t).ok_or_else(|| {
        format!("`{text}` is not a duration; use seconds (120) or units (90s, 5m, 1h30m)")
    })
}

/// A Go-style duration as OpenAI-style reset headers use: `6m0s`, `1s`, `20ms`, `1h23m31s`,
/// `33.023s`. Returns `None` for anything else.
pub fn parse_go_duration(v: &str) -> Option<Duration> {
    let s = v.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0.0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let (unit_secs, unit_len) = if rest.starts_with("ms") {
            (1e-3, 2)
        } else if rest.starts_with("us") {
            (1e-6, 2)
        } else if rest.starts_with("µs") {
            (1e-6, "µs".len())
        } else if rest.starts_with("ns") {
            (1e-9, 2)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else {
            return None;
        };
        total += number * unit_secs;
        rest = &rest[unit_len..];
    }
    total.is_finite().then(|| secs_f64(total))
}

/// "4.2s", "2m05s", "3h10m", "27h46m".
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    // Below 59.95 s the one-decimal form cannot round up to "60.0s".
    if secs < 59.95 {
        format!("{secs:.1}s")
    } else if secs < 3599.5 {
        let s = secs.round() as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        let m = (secs / 60.0) as u64;
        format!("{}h{:02}m", m / 60, m % 60)
    }
}

/// An instant as a UTC wall-clock time, `2026-11-27 19:30:05 UTC`.
pub fn local_clock(at: Instant) -> String {
    let stamp = rfc3339_seconds(wall_at(at));
    stamp.replace('T', " ").replace('Z', " UTC")
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

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_mins(6)));
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(
            parse_go_duration("1h23m31s"),
            Some(Duration::from_secs(5011))
        );
        assert_eq!(
            parse_go_duration("33.023s"),
            Some(Duration::from_millis(33_023))
        );
        assert_eq!(parse_go_duration("1m23s"), Some(Duration::from_secs(83)));
        assert_eq!(parse_go_duration("soon"), None);
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("120"), Ok(Duration::from_mins(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_mins(5)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_mins(90)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::from_millis(4200)), "4.2s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2m05s");
        assert_eq!(human_duration(Duration::from_millis(59_960)), "1m00s");
        assert_eq!(human_duration(Duration::from_secs(100_000)), "27h46m");
    }
}
