//! Reading the rate-limit headers of a response into a [`QuotaSnapshot`]: Anthropic's
//! `anthropic-ratelimit-{requests,input-tokens,output-tokens,tokens}-{limit,remaining,reset}`,
//! and OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for compatible
//! endpoints (docs/protocol.md). The retry hints (`retry-after`, `x-should-retry`) are the
//! retry policy's business and are read in `retry::headers`.
//!
//! Every field is optional and every value is distrusted: garbage, negative, huge or
//! non-finite values never panic. A missing or unreadable header is simply `None`.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use tokio::time::Instant;

use super::snapshot::{BucketQuota, QuotaSnapshot};
use crate::clock;

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
    use crate::quota::Bucket;

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
            Some(now + Duration::from_mins(6))
        );
        assert_eq!(q.tokens.as_ref().and_then(|r| r.remaining), Some(149_984));
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
}
