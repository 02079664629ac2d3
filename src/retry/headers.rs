//! Reading the server's rate-limit and retry headers (PROTOCOL.md §3.3, §4).
//!
//! Every field is optional and every value is distrusted: garbage, negative, huge or
//! non-finite values never panic and never give a negative or infinite wait. A missing or
//! unreadable header is simply `None`.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use serde::Serialize;
use tokio::time::Instant;

use crate::clock::{self, FAR_FUTURE, secs_f64};

/// A rate-limited dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// Requests per minute.
    Requests,
    /// Input tokens per minute.
    InputTokens,
    /// Output tokens per minute.
    OutputTokens,
    /// The most restrictive token limit (`anthropic-ratelimit-tokens-*`, or OpenAI's tokens).
    Tokens,
}

impl Bucket {
    /// Words for a person: "requests", "input tokens".
    pub fn label(self) -> &'static str {
        match self {
            Bucket::Requests => "requests",
            Bucket::InputTokens => "input tokens",
            Bucket::OutputTokens => "output tokens",
            Bucket::Tokens => "tokens",
        }
    }

    /// The dimensions the pacer models, in display order.
    pub const PACED: [Bucket; 3] = [Bucket::Requests, Bucket::InputTokens, Bucket::OutputTokens];
}

/// One bucket as a response reported it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BucketQuota {
    /// `*-limit`: units per minute.
    pub limit: Option<u64>,
    /// `*-remaining` (tokens are rounded to the nearest 1,000 by the server).
    pub remaining: Option<u64>,
    /// `*-reset`: when the bucket is completely full again.
    #[serde(serialize_with = "clock::serde_instant::option")]
    pub reset: Option<Instant>,
}

impl BucketQuota {
    /// True when no field was readable.
    pub fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset.is_none()
    }

    /// `remaining / limit`, when both are known and the limit is positive.
    pub fn fraction_left(&self) -> Option<f64> {
        match (self.remaining, self.limit) {
            (Some(r), Some(l)) if l > 0 => Some((r as f64 / l as f64).min(1.0)),
            _ => None,
        }
    }
}

/// Everything the rate-limit headers of one response said, stamped with when it was read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuotaSnapshot {
    /// When the headers were read.
    #[serde(serialize_with = "clock::serde_instant::serialize")]
    pub read_at: Instant,
    /// Requests per minute.
    pub requests: Option<BucketQuota>,
    /// Input tokens per minute.
    pub input_tokens: Option<BucketQuota>,
    /// Output tokens per minute.
    pub output_tokens: Option<BucketQuota>,
    /// The most restrictive token limit.
    pub tokens: Option<BucketQuota>,
}

impl QuotaSnapshot {
    /// A snapshot with nothing known.
    pub fn empty(read_at: Instant) -> Self {
        QuotaSnapshot {
            read_at,
            requests: None,
            input_tokens: None,
            output_tokens: None,
            tokens: None,
        }
    }

    /// True when the response carried no rate-limit header at all (some accounts don't get
    /// them, PROTOCOL.md §7).
    pub fn is_empty(&self) -> bool {
        self.requests.is_none()
            && self.input_tokens.is_none()
            && self.output_tokens.is_none()
            && self.tokens.is_none()
    }

    /// The reading for one bucket.
    pub fn bucket(&self, b: Bucket) -> Option<&BucketQuota> {
        match b {
            Bucket::Requests => self.requests.as_ref(),
            Bucket::InputTokens => self.input_tokens.as_ref(),
            Bucket::OutputTokens => self.output_tokens.as_ref(),
            Bucket::Tokens => self.tokens.as_ref(),
        }
    }

    /// The bucket that binds: the emptiest one relative to its limit (ties go to the one that
    /// resets last), with its reset time. Used when a 429 carries no `retry-after`.
    pub fn binding(&self) -> Option<(Bucket, &BucketQuota)> {
        let mut best: Option<(Bucket, &BucketQuota, f64)> = None;
        for b in [
            Bucket::Requests,
            Bucket::InputTokens,
            Bucket::OutputTokens,
            Bucket::Tokens,
        ] {
            let Some(q) = self.bucket(b) else { continue };
            let Some(frac) = q.fraction_left() else {
                continue;
            };
            let better = match &best {
                None => true,
                Some((_, bq, bf)) => frac < *bf || (frac == *bf && q.reset > bq.reset),
            };
            if better {
                best = Some((b, q, frac));
            }
        }
        best.map(|(b, q, _)| (b, q))
    }

    /// Merge a newer snapshot into this one, keeping what the newer one did not report.
    pub fn merge_newer(&mut self, newer: &QuotaSnapshot) {
        self.read_at = newer.read_at;
        if newer.requests.is_some() {
            self.requests.clone_from(&newer.requests);
        }
        if newer.input_tokens.is_some() {
            self.input_tokens.clone_from(&newer.input_tokens);
        }
        if newer.output_tokens.is_some() {
            self.output_tokens.clone_from(&newer.output_tokens);
        }
        if newer.tokens.is_some() {
            self.tokens.clone_from(&newer.tokens);
        }
    }
}

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

/// Parse every rate-limit header of a response. `now` is when it was received.
pub fn parse_quota(headers: &HeaderMap, now: Instant) -> QuotaSnapshot {
    let anthropic = |name: &str| {
        let q = BucketQuota {
            limit: header_u64(headers, &format!("anthropic-ratelimit-{name}-limit")),
            remaining: header_u64(headers, &format!("anthropic-ratelimit-{name}-remaining")),
            reset: header(headers, &format!("anthropic-ratelimit-{name}-reset"))
                .and_then(parse_rfc3339)
                .map(|t| clock::instant_for_wall(t, now)),
        };
        (!q.is_empty()).then_some(q)
    };
    let openai = |name: &str| {
        let q = BucketQuota {
            limit: header_u64(headers, &format!("x-ratelimit-limit-{name}")),
            remaining: header_u64(headers, &format!("x-ratelimit-remaining-{name}")),
            reset: header(headers, &format!("x-ratelimit-reset-{name}"))
                .and_then(clock::parse_go_duration)
                .and_then(|d| now.checked_add(d)),
        };
        (!q.is_empty()).then_some(q)
    };
    QuotaSnapshot {
        read_at: now,
        requests: anthropic("requests").or_else(|| openai("requests")),
        input_tokens: anthropic("input-tokens"),
        output_tokens: anthropic("output-tokens"),
        tokens: anthropic("tokens").or_else(|| openai("tokens")),
    }
}

/// Parse `retry-after-ms`, `retry-after` and `x-should-retry`.
pub fn parse_retry_hints(headers: &HeaderMap, now: Instant) -> RetryHints {
    RetryHints {
        retry_after_ms: header(headers, "retry-after-ms")
            .and_then(parse_number)
            .map(|ms| secs_f64(ms / 1000.0)),
        retry_after: header(headers, "retry-after")
            .and_then(|v| parse_retry_after(v, clock::wall_at(now))),
        should_retry: header(headers, "x-should-retry").and_then(|v| {
            match v.to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            }
        }),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    let v = header(headers, name)?;
    if let Ok(n) = v.parse::<u64>() {
        return Some(n);
    }
    // Tolerate "1000.0"; refuse negatives and non-finite values.
    let f = v.parse::<f64>().ok()?;
    (f.is_finite() && f >= 0.0).then(|| f.min(u64::MAX as f64) as u64)
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

/// An RFC 3339 timestamp as the API sends (`2025-06-02T15:15:48Z`); offsets other than `Z`
/// are accepted too.
pub fn parse_rfc3339(v: &str) -> Option<SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(v.trim_end_matches('Z'))
        && (v.ends_with('Z') || v.ends_with('z'))
    {
        return Some(t);
    }
    // Numeric offset: `2025-06-02T17:15:48+02:00`.
    let v = v.trim();
    let split = v.len().checked_sub(6)?;
    let (stamp, offset) = (v.get(..split)?, v.get(split..)?);
    let sign = match offset.as_bytes().first() {
        Some(b'+') => 1i64,
        Some(b'-') => -1i64,
        _ => return humantime::parse_rfc3339_weak(v).ok(),
    };
    let hours: i64 = offset.get(1..3)?.parse().ok()?;
    let minutes: i64 = offset.get(4..6)?.parse().ok()?;
    let local = humantime::parse_rfc3339_weak(stamp).ok()?;
    let shift = Duration::from_secs(((hours * 60 + minutes) * 60) as u64);
    if sign > 0 {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    async fn anthropic_family_is_read() {
        let now = Instant::now();
        let in_63s = clock::rfc3339_seconds(clock::wall_at(now) + Duration::from_secs(63));
        let h = headers(&[
            ("anthropic-ratelimit-requests-limit", "4000"),
            ("anthropic-ratelimit-requests-remaining", "3999"),
            ("anthropic-ratelimit-input-tokens-limit", "200000"),
            ("anthropic-ratelimit-input-tokens-remaining", "0"),
            ("anthropic-ratelimit-input-tokens-reset", &in_63s),
            ("anthropic-ratelimit-output-tokens-limit", "80000"),
            ("anthropic-ratelimit-output-tokens-remaining", "80000"),
            ("anthropic-ratelimit-tokens-limit", "280000"),
            ("anthropic-ratelimit-tokens-remaining", "80000"),
        ]);
        let q = parse_quota(&h, now);
        let r = q.requests.as_ref().expect("requests");
        assert_eq!(
            (r.limit, r.remaining, r.reset),
            (Some(4000), Some(3999), None)
        );
        let i = q.input_tokens.as_ref().expect("input");
        assert_eq!(i.remaining, Some(0));
        let reset = i.reset.expect("reset") - now;
        // Second precision on the wire: within one second of 63 s.
        assert!(
            reset > Duration::from_secs(62) && reset <= Duration::from_secs(63),
            "{reset:?}"
        );
        let (b, _) = q.binding().expect("binding");
        assert_eq!(b, Bucket::InputTokens);
    }

    #[tokio::test(start_paused = true)]
    async fn openai_family_is_read() {
        let now = Instant::now();
        let h = headers(&[
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-remaining-requests", "59"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-limit-tokens", "150000"),
            ("x-ratelimit-remaining-tokens", "149984"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        let q = parse_quota(&h, now);
        assert_eq!(
            q.requests.as_ref().and_then(|r| r.reset),
            Some(now + Duration::from_secs(1))
        );
        assert_eq!(
            q.tokens.as_ref().and_then(|r| r.reset),
            Some(now + Duration::from_secs(360))
        );
        assert_eq!(q.tokens.as_ref().and_then(|r| r.remaining), Some(149_984));
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

    #[test]
    fn rfc3339_variants() {
        let z = parse_rfc3339("2025-06-02T15:15:48Z").expect("z");
        let plus = parse_rfc3339("2025-06-02T17:15:48+02:00").expect("offset");
        let frac = parse_rfc3339("2025-06-02T15:15:48.500Z").expect("fraction");
        assert_eq!(z, plus);
        assert_eq!(
            frac.duration_since(z).expect("later"),
            Duration::from_millis(500)
        );
        assert!(parse_rfc3339("yesterday").is_none());
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
