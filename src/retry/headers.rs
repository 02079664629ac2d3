//! Reading the server's retry hints: `retry-after-ms`, `retry-after` and `x-should-retry`
//! (docs/protocol.md). The rate-limit headers are read into a
//! [`QuotaSnapshot`](crate::quota::QuotaSnapshot) by [`crate::quota::parse_quota`].
//!
//! Every field is optional and every value is distrusted: garbage, negative, huge or
//! non-finite values never panic and never give a negative or infinite wait. A missing or
//! unreadable header is simply `None`.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use serde::Serialize;
use tokio::time::Instant;

use crate::api::error::header_str;
use crate::clock::{self, FAR_FUTURE, secs_f64};

/// What a response said about retrying.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetryHints {
    /// `retry-after-ms`.
    pub retry_after_ms: Option<Duration>,
    /// `retry-after`, in seconds or as an HTTP-date.
    pub retry_after: Option<Duration>,
    /// `x-should-retry: true|false`.
    pub should_retry: Option<bool>,
}

/// Parse `retry-after-ms`, `retry-after` and `x-should-retry`.
pub fn parse_retry_hints(headers: &HeaderMap, now: Instant) -> RetryHints {
    RetryHints {
        retry_after_ms: header_str(headers, "retry-after-ms")
            .and_then(|v| parse_number(&v))
            .map(|ms| secs_f64(ms / 1000.0)),
        retry_after: header_str(headers, "retry-after")
            .and_then(|v| parse_retry_after(&v, clock::wall_at(now))),
        should_retry: header_str(headers, "x-should-retry").and_then(|v| {
            match v.to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            }
        }),
    }
}

/// A finite, non-negative number, or `None`.
fn parse_number(v: &str) -> Option<f64> {
    let f = v.trim().parse::<f64>().ok()?;
    (f.is_finite() && f >= 0.0).then_some(f)
}

/// `retry-after`: integer or decimal seconds, or an HTTP-date (a date in the past is zero).
pub fn parse_retry_after(v: &str, wall_now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(f) = v.parse::<f64>() {
        return (f.is_finite() && f >= 0.0).then(|| secs_f64(f));
    }
    let date = httpdate::parse_http_date(v).ok()?;
    Some(
        date.duration_since(wall_now)
            .unwrap_or(Duration::ZERO)
            .min(FAR_FUTURE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::{parse_quota, parse_rfc3339};
    use proptest::prelude::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                http::HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[tokio::test(start_paused = true)]
    async fn retry_hints() {
        let now = Instant::now();
        let date = httpdate::fmt_http_date(clock::wall_at(now) + Duration::from_secs(30));
        let h = headers(&[
            ("retry-after", &date),
            ("retry-after-ms", "1500.5"),
            ("x-should-retry", "FALSE"),
        ]);
        let hints = parse_retry_hints(&h, now);
        assert_eq!(hints.retry_after_ms, Some(Duration::from_micros(1_500_500)));
        let ra = hints.retry_after.expect("date");
        assert!(
            ra > Duration::from_secs(29) && ra <= Duration::from_secs(30),
            "{ra:?}"
        );
        assert_eq!(hints.should_retry, Some(false));

        let h = headers(&[("retry-after", "2.5"), ("x-should-retry", "maybe")]);
        let hints = parse_retry_hints(&h, now);
        assert_eq!(hints.retry_after, Some(Duration::from_millis(2500)));
        assert_eq!(hints.should_retry, None);
    }

    #[tokio::test(start_paused = true)]
    async fn garbage_never_gives_negative_or_infinite_waits() {
        let now = Instant::now();
        for v in [
            "-5",
            "NaN",
            "inf",
            "-inf",
            "1e400",
            "",
            "soon",
            "Wed, 99 Foo 2024",
            "-0.0001",
        ] {
            let h = headers(&[
                ("retry-after", v),
                ("retry-after-ms", v),
                ("anthropic-ratelimit-requests-limit", v),
            ]);
            let hints = parse_retry_hints(&h, now);
            for d in [hints.retry_after, hints.retry_after_ms]
                .into_iter()
                .flatten()
            {
                assert!(d <= FAR_FUTURE, "{v}: {d:?}");
            }
            let _ = parse_quota(&h, now);
        }
        let past = httpdate::fmt_http_date(clock::wall_at(now) - Duration::from_secs(30));
        let h = headers(&[("retry-after", &past)]);
        assert_eq!(parse_retry_hints(&h, now).retry_after, Some(Duration::ZERO));
        let h = headers(&[("retry-after", "100000000000000000000")]);
        assert_eq!(parse_retry_hints(&h, now).retry_after, Some(FAR_FUTURE));
    }

    proptest! {
        #[test]
        fn any_header_text_is_safe(v in ".{0,40}") {
            let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            if let Some(d) = parse_retry_after(&v, wall) {
                prop_assert!(d <= FAR_FUTURE);
            }
            let _ = clock::parse_go_duration(&v);
            let _ = parse_rfc3339(&v);
        }
    }
}
