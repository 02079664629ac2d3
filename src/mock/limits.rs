//! Per-key rate limits, as the real API applies them (the headers are in docs/protocol.md,
//! this server model in docs/retries.md).
//!
//! Each API key (known only by its SHA-256) has three continuously refilling buckets:
//! requests, input tokens and output tokens. A request is admitted at arrival iff the
//! request bucket holds ≥ 1, the input bucket holds ≥ the request's input tokens and the
//! output bucket holds ≥ 1; then one request and the input tokens are taken. Output tokens are
//! charged as they are generated (the level may go below zero). A 429 consumes nothing.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::config::{MockLimits, thousands};
use crate::clock;
use crate::quota::TokenBucket;

/// An API key as the mock keeps it: its SHA-256, never the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct KeyId([u8; 32]);

impl KeyId {
    /// Hash a key.
    pub(crate) fn of(key: &str) -> KeyId {
        KeyId(Sha256::digest(key.as_bytes()).into())
    }
}

/// One of the three limited dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dim {
    Requests,
    InputTokens,
    OutputTokens,
}

impl Dim {
    /// The words of the real 429 message: "input tokens per minute".
    fn per_minute_words(self) -> &'static str {
        match self {
            Dim::Requests => "requests per minute",
            Dim::InputTokens => "input tokens per minute",
            Dim::OutputTokens => "output tokens per minute",
        }
    }
}

/// The answer to "may this request start now?".
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Admission {
    /// Admitted; one request and the input tokens were taken.
    Admitted,
    /// A bucket is short; the request fits after `wait` (the longest of the short buckets).
    Short { dim: Dim, wait: Duration },
    /// The request is bigger than a bucket's capacity and can never be admitted.
    Impossible { dim: Dim },
}

struct KeyBuckets {
    requests: TokenBucket,
    input: TokenBucket,
    output: TokenBucket,
}

/// All keys' buckets under one set of limits.
pub(crate) struct Limiter {
    limits: MockLimits,
    time_scale: f64,
    keys: HashMap<KeyId, KeyBuckets>,
}

impl Limiter {
    pub(crate) fn new(limits: MockLimits, time_scale: f64) -> Limiter {
        let time_scale = if time_scale.is_finite() && time_scale > 0.0 {
            time_scale
        } else {
            1.0
        };
        Limiter {
            limits,
            time_scale,
            keys: HashMap::new(),
        }
    }

    pub(crate) fn limits(&self) -> &MockLimits {
        &self.limits
    }

    fn key(&mut self, key: KeyId, now: Instant) -> &mut KeyBuckets {
        let (limits, scale) = (&self.limits, self.time_scale);
        self.keys
            .entry(key)
            .or_insert_with(|| fresh(limits, scale, now))
    }

    /// Change the limits of every key (levels are kept, clamped to the new capacities).
    pub(crate) fn set_limits(&mut self, limits: MockLimits, now: Instant) {
        self.limits = limits;
        let template = fresh(&self.limits, self.time_scale, now);
        for b in self.keys.values_mut() {
            for (bucket, t) in [
                (&mut b.requests, &template.requests),
                (&mut b.input, &template.input),
                (&mut b.output, &template.output),
            ] {
                bucket.set_limits(t.capacity(), t.refill_per_sec(), now);
            }
        }
    }

    /// Admission at arrival (see the module docs).
    pub(crate) fn admit(&mut self, key: KeyId, input_tokens: u64, now: Instant) -> Admission {
        let b = self.key(key, now);
        let needs = [
            (Dim::Requests, &b.requests, 1.0),
            (Dim::InputTokens, &b.input, input_tokens as f64),
            (Dim::OutputTokens, &b.output, 1.0),
        ];
        let mut longest: Option<(Dim, Duration)> = None;
        for (dim, bucket, n) in needs {
            match bucket.time_until(n, now) {
                None => return Admission::Impossible { dim },
                Some(wait) if wait > Duration::ZERO => {
                    if longest.is_none_or(|(_, w)| wait > w) {
                        longest = Some((dim, wait));
                    }
                }
                Some(_) => {}
            }
        }
        if let Some((dim, wait)) = longest {
            return Admission::Short { dim, wait };
        }
        b.requests.take(1.0, now);
        b.input.take(input_tokens as f64, now);
        Admission::Admitted
    }

    /// Charge generated output tokens (the level may go negative).
    pub(crate) fn charge_output(&mut self, key: KeyId, tokens: u64, now: Instant) {
        self.key(key, now).output.take(tokens as f64, now);
    }

    /// The twelve `anthropic-ratelimit-*` headers for a key, as of `now`.
    pub(crate) fn headers(&mut self, key: KeyId, now: Instant) -> Vec<(HeaderName, HeaderValue)> {
        let limits = self.limits.clone();
        let b = self.key(key, now);
        let level = |t: &TokenBucket| t.level(now).max(0.0);
        let full_at = |t: &TokenBucket| now + t.time_until_full(now);
        let in_level = level(&b.input);
        let out_level = level(&b.output);
        let rows = [
            (
                "requests",
                limits.rpm,
                level(&b.requests).floor() as u64,
                full_at(&b.requests),
            ),
            (
                "tokens",
                limits.itpm.saturating_add(limits.otpm),
                round_thousand(in_level + out_level),
                full_at(&b.input).max(full_at(&b.output)),
            ),
            (
                "input-tokens",
                limits.itpm,
                round_thousand(in_level),
                full_at(&b.input),
            ),
            (
                "output-tokens",
                limits.otpm,
                round_thousand(out_level),
                full_at(&b.output),
            ),
        ];
        let mut out = Vec::with_capacity(12);
        for (name, limit, remaining, reset) in rows {
            let stamp = clock::rfc3339_seconds(ceil_to_second(clock::wall_at(reset)));
            for (suffix, value) in [
                ("limit", limit.to_string()),
                ("remaining", remaining.to_string()),
                ("reset", stamp.clone()),
            ] {
                let header = format!("anthropic-ratelimit-{name}-{suffix}");
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(header.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    out.push((n, v));
                }
            }
        }
        out
    }
}

/// A full set of buckets for a key seen for the first time.
fn fresh(limits: &MockLimits, time_scale: f64, now: Instant) -> KeyBuckets {
    KeyBuckets {
        requests: bucket(limits, limits.rpm, 1.0, time_scale, now),
        input: bucket(limits, limits.itpm, 0.0, time_scale, now),
        output: bucket(limits, limits.otpm, 1.0, time_scale, now),
    }
}

/// A bucket for a per-minute limit, refilling `time_scale`× faster when the mock's minute is
/// shrunk. `min_capacity` keeps a bucket able to admit anything at all (a request bucket of
/// 50 RPM × 1/60 would otherwise hold 0.83 and refuse every request forever).
fn bucket(
    limits: &MockLimits,
    limit: u64,
    min_capacity: f64,
    time_scale: f64,
    now: Instant,
) -> TokenBucket {
    let mut b = TokenBucket::per_minute(limit, limits.capacity_fraction, now);
    let capacity = b.capacity().max(min_capacity);
    let refill = b.refill_per_sec() * time_scale;
    b.set_limits(capacity, refill, now);
    b.set_level(capacity, now);
    b
}

/// Token `remaining` values are rounded to the nearest thousand, as the API sends them.
fn round_thousand(level: f64) -> u64 {
    ((level.max(0.0) / 1000.0).round() * 1000.0) as u64
}

/// `*-reset` stamps have whole seconds; the bucket is full only at the end of the second.
fn ceil_to_second(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            UNIX_EPOCH + Duration::from_secs(secs)
        }
        Err(_) => UNIX_EPOCH,
    }
}

/// `retry-after` in whole seconds: `max(1, ceil(wait))`, where `wait` is the time until
/// *this* request fits. That is usually much sooner than the `*-reset` stamps, which say when
/// a bucket is full again; a real 429 showed the same (see docs/retries.md).
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// `retry-after-ms`: the precise wait, at least 1.
pub(crate) fn retry_after_millis(wait: Duration) -> u64 {
    let ms = wait.as_micros().div_ceil(1000);
    u64::try_from(ms).unwrap_or(u64::MAX).max(1)
}

/// The real API's 429 message for a bucket.
pub(crate) fn limit_message(dim: Dim, limits: &MockLimits, model: &str) -> String {
    let limit = match dim {
        Dim::Requests => limits.rpm,
        Dim::InputTokens => limits.itpm,
        Dim::OutputTokens => limits.otpm,
    };
    format!(
        "This request would exceed your organization's rate limit of {} {} (org: {}, model: {}). \
         For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the \
         response headers for current usage. Please reduce the prompt length or the maximum \
         tokens requested, or try again later. You may also contact sales at \
         https://claude.com/contact-sales to discuss your options for a rate limit increase.",
        thousands(limit),
        dim.per_minute_words(),
        super::ORG_ID,
        model
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(h: &'a [(HeaderName, HeaderValue)], name: &str) -> &'a str {
        h.iter()
            .find(|(n, _)| n.as_str() == name)
            .and_then(|(_, v)| v.to_str().ok())
            .unwrap_or("<missing>")
    }

    #[tokio::test(start_paused = true)]
    async fn admission_takes_requests_and_input_and_refuses_without_consuming() {
        let now = Instant::now();
        let mut l = Limiter::new(MockLimits::default(), 1.0);
        let k = KeyId::of("k");
        assert_eq!(l.admit(k, 29_000, now), Admission::Admitted);
        match l.admit(k, 2_000, now) {
            Admission::Short { dim, wait } => {
                assert_eq!(dim, Dim::InputTokens);
                // 1,000 missing at 500/s.
                assert_eq!(wait, Duration::from_secs(2));
            }
            other => panic!("{other:?}"),
        }
        let h = l.headers(k, now);
        assert_eq!(
            header(&h, "anthropic-ratelimit-input-tokens-remaining"),
            "1000"
        );
        assert_eq!(header(&h, "anthropic-ratelimit-requests-remaining"), "49");
        assert_eq!(header(&h, "anthropic-ratelimit-tokens-limit"), "38000");
        assert_eq!(header(&h, "anthropic-ratelimit-tokens-remaining"), "9000");
        assert_eq!(
            l.admit(k, 30_001, now),
            Admission::Impossible {
                dim: Dim::InputTokens
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn output_may_go_negative_and_blocks_until_one_token_is_back() {
        let now = Instant::now();
        let mut l = Limiter::new(MockLimits::default(), 1.0);
        let k = KeyId::of("k");
        l.charge_output(k, 8_060, now);
        match l.admit(k, 10, now) {
            Admission::Short { dim, wait } => {
                assert_eq!(dim, Dim::OutputTokens);
                // 61 tokens at 8000/60 per second.
                assert!((wait.as_secs_f64() - 61.0 * 60.0 / 8000.0).abs() < 1e-6);
            }
            other => panic!("{other:?}"),
        }
        let h = l.headers(k, now);
        assert_eq!(
            header(&h, "anthropic-ratelimit-output-tokens-remaining"),
            "0"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn time_scale_refills_faster_and_tiny_fractions_still_admit() {
        let now = Instant::now();
        let limits = MockLimits {
            capacity_fraction: 1.0 / 60.0,
            ..MockLimits::default()
        };
        let mut l = Limiter::new(limits, 10.0);
        let k = KeyId::of("k");
        assert_eq!(l.admit(k, 100, now), Admission::Admitted);
        match l.admit(k, 100, now) {
            Admission::Short { wait, .. } => {
                // One request at 50/60 × 10 per second.
                assert!((wait.as_secs_f64() - 0.12).abs() < 1e-6, "{wait:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rounding_rules() {
        assert_eq!(round_thousand(-5.0), 0);
        assert_eq!(round_thousand(499.0), 0);
        assert_eq!(round_thousand(1_500.0), 2_000);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1200)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_millis(Duration::from_micros(1_200_001)), 1201);
        let t = UNIX_EPOCH + Duration::from_millis(10_001);
        assert_eq!(ceil_to_second(t), UNIX_EPOCH + Duration::from_secs(11));
    }

    #[test]
    fn messages_read_like_the_api() {
        let m = limit_message(
            Dim::InputTokens,
            &MockLimits::default(),
            "claude-sonnet-4-6",
        );
        assert!(m.starts_with(
            "This request would exceed your organization's rate limit of 30,000 input tokens per minute (org: "
        ));
        assert!(m.contains("model: claude-sonnet-4-6"));
        let r = limit_message(Dim::Requests, &MockLimits::default(), "m");
        assert!(r.contains("of 50 requests per minute"));
    }
}
