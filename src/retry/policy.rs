//! The retry policy: pure functions of (what happened, what the headers said, how many
//! retries so far, a seeded RNG) → retry after a delay, or fail with a message a person can act
//! on. No IO and no clock reads: `now` is passed in.
//!
//! Rules (docs/protocol.md, docs/retries.md):
//! - Retry 429 `rate_limit_error`, 529, 500, 502, 503, 504, 408, 409, and network errors
//!   before the first byte. Never retry 400, 401, 402, 403, 404, 413, a spend-cap 429 or a
//!   request bigger than a bucket. `x-should-retry` overrides the status.
//! - Delay: the server's word first (`retry-after-ms`, then `retry-after`, then the binding
//!   bucket's reset), plus a small random spread; otherwise full-jitter exponential backoff.

use std::time::Duration;

use rand::{Rng, RngExt};
use tokio::time::Instant;

use super::event::{DelaySource, FailureKind, WaitCause};
use super::headers::RetryHints;
use crate::api::{ApiError, TransportError};
use crate::quota::{Bucket, QuotaSnapshot};
use crate::util::thousands;

/// Settings of the retry loop.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryConfig {
    /// Retries after the first attempt (`--max-retries`, default 8).
    pub max_retries: u32,
    /// The longest single wait slept without asking (`--max-wait`, default 120 s).
    pub max_wait: Duration,
    /// Time allowed from the start of a turn until its stream starts (default 15 min).
    pub deadline: Duration,
    /// Full-jitter base: the first backoff is drawn from `[0, base)` (default 1 s).
    pub backoff_base: Duration,
    /// Full-jitter cap (default 30 s).
    pub backoff_cap: Duration,
    /// The largest random spread added to a delay the server gave (default 500 ms), so that
    /// many clients told the same `retry-after` do not return in the same millisecond.
    pub server_delay_spread: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 8,
            max_wait: Duration::from_mins(2),
            deadline: Duration::from_mins(15),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(30),
            server_delay_spread: Duration::from_millis(500),
        }
    }
}

/// What went wrong with one attempt.
#[derive(Clone, Copy, Debug)]
pub enum AttemptError<'a> {
    /// The server answered with an error status.
    Status(&'a ApiError),
    /// No answer: connection error or timeout before the first byte.
    Network(&'a TransportError),
}

/// The policy's verdict on a failed attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Worth retrying; the cause decides the wording and whether the retry budget is spent.
    Retry {
        /// Why.
        cause: WaitCause,
    },
    /// Not worth retrying.
    Fail {
        /// The kind.
        kind: FailureKind,
        /// What the person should do.
        message: String,
    },
}

impl WaitCause {
    /// Whether retrying this cause spends the retry budget (docs/retries.md: 5xx, 529 and
    /// network errors do; a rate limit is a schedule, not a failure, and does not).
    pub fn spends_budget(self) -> bool {
        matches!(
            self,
            WaitCause::Overloaded | WaitCause::ServerError | WaitCause::Network
        )
    }
}

/// Decide whether a failed attempt is retried.
///
/// `estimated_input_tokens` is the request's input-token estimate; `limits` the latest known
/// quota (used to recognise a request bigger than the input-token bucket).
pub fn classify(
    error: AttemptError<'_>,
    hints: &RetryHints,
    estimated_input_tokens: u64,
    limits: Option<&QuotaSnapshot>,
) -> Verdict {
    let api = match error {
        AttemptError::Network(_) => {
            return Verdict::Retry {
                cause: WaitCause::Network,
            };
        }
        AttemptError::Status(api) => api,
    };
    let status = api.status.unwrap_or(0);

    // Terminal whatever the headers say: retrying cannot help.
    if api.is_spend_cap() {
        return Verdict::Fail {
            kind: FailureKind::SpendCap,
            message: format!(
                "Your organization's monthly spend limit is reached, so retrying will not help \
                 ({}). Access resumes at 00:00 UTC on the first day of next month, or raise the \
                 limit in the Claude Console.",
                api.summary()
            ),
        };
    }
    if status == 429
        && let Some(limit) = input_limit(limits)
        && estimated_input_tokens > limit
    {
        return Verdict::Fail {
            kind: FailureKind::ExceedsQuota,
            message: exceeds_quota_message(estimated_input_tokens, limit),
        };
    }

    // The server may force or forbid a retry (docs/protocol.md); it wins over the status.
    match hints.should_retry {
        Some(true) => {
            return Verdict::Retry {
                cause: cause_for_status(status, api, limits),
            };
        }
        Some(false) => {
            return Verdict::Fail {
                kind: non_retryable_kind(status),
                message: format!(
                    "{} The server said not to retry (x-should-retry: false).",
                    advice_for(status, api)
                ),
            };
        }
        None => {}
    }

    match status {
        429 | 529 | 500 | 502 | 503 | 504 | 408 | 409 => Verdict::Retry {
            cause: cause_for_status(status, api, limits),
        },
        s if s >= 500 => Verdict::Retry {
            cause: WaitCause::ServerError,
        },
        // An `event: error` before any text: status unknown; overloaded and API errors are
        // transient, anything else is not.
        0 if matches!(
            api.error_type.as_str(),
            "overloaded_error" | "api_error" | "rate_limit_error"
        ) =>
        {
            Verdict::Retry {
                cause: cause_for_status(0, api, limits),
            }
        }
        _ => Verdict::Fail {
            kind: non_retryable_kind(status),
            message: advice_for(status, api),
        },
    }
}

/// Why a request of `estimated_input_tokens` can never be admitted under an input limit of
/// `limit` per minute, and what to do.
pub fn exceeds_quota_message(estimated_input_tokens: u64, limit: u64) -> String {
    format!(
        "This request needs about {} input tokens, more than your limit of {} input tokens per \
         minute, so it can never be accepted. Shorten the conversation (/clear, or a shorter \
         prompt) or ask for a higher tier.",
        thousands(estimated_input_tokens),
        thousands(limit)
    )
}

fn input_limit(limits: Option<&QuotaSnapshot>) -> Option<u64> {
    limits?.input_tokens.as_ref()?.limit.filter(|l| *l > 0)
}

fn cause_for_status(status: u16, api: &ApiError, limits: Option<&QuotaSnapshot>) -> WaitCause {
    match status {
        429 => rate_limit_cause(api, limits),
        529 => WaitCause::Overloaded,
        _ if api.error_type == "overloaded_error" => WaitCause::Overloaded,
        _ if api.error_type == "rate_limit_error" => rate_limit_cause(api, limits),
        _ => WaitCause::ServerError,
    }
}

/// Which bucket a 429 is about: the server's message says it ("… 30,000 input tokens per
/// minute …"); failing that, the emptiest bucket in the headers.
fn rate_limit_cause(api: &ApiError, limits: Option<&QuotaSnapshot>) -> WaitCause {
    let m = api.message.to_ascii_lowercase();
    if m.contains("output tokens per minute") {
        return WaitCause::OutputTokens;
    }
    if m.contains("input tokens per minute") {
        return WaitCause::InputTokens;
    }
    if m.contains("requests per minute") {
        return WaitCause::Requests;
    }
    match limits.and_then(QuotaSnapshot::binding) {
        Some((b, q)) if q.remaining == Some(0) => b.into(),
        _ => WaitCause::RateLimit,
    }
}

fn non_retryable_kind(status: u16) -> FailureKind {
    match status {
        400 => FailureKind::InvalidRequest,
        401 => FailureKind::Authentication,
        402 => FailureKind::Billing,
        403 => FailureKind::Permission,
        404 => FailureKind::NotFound,
        413 => FailureKind::RequestTooLarge,
        _ => FailureKind::NotRetryable,
    }
}

/// A sentence a person can act on, for an error that is not retried.
pub fn advice_for(status: u16, api: &ApiError) -> String {
    let what = api.summary();
    match status {
        401 => format!(
            "The API key was rejected ({what}). Set ANTHROPIC_API_KEY to a valid key \
             (or api_key_cmd in the config file)."
        ),
        403 => format!(
            "This key is not allowed to do that ({what}). Check the key's workspace and model \
             permissions in the Claude Console."
        ),
        402 => format!(
            "There is a billing problem ({what}). Check your plan and payment details in the Claude Console."
        ),
        400 => format!("The API rejected the request ({what})."),
        404 => {
            format!("Not found ({what}). Check the model name (--model, /model) and the base URL.")
        }
        413 => format!(
            "The request is too large for the API ({what}). Shorten the conversation (/clear) \
             or the prompt."
        ),
        _ => format!("The request failed ({what})."),
    }
}

/// The wait before the next attempt and where its length came from.
///
/// `retry` is the number of the retry about to happen (1 for the first retry). The server's
/// delay wins (`retry-after-ms`, then `retry-after`, then — for a rate limit — the binding
/// bucket's reset); a random spread of up to `server_delay_spread` is added to it. Without a
/// server delay the wait is full jitter: `U(0, min(cap, base·2^(retry−1)))`.
pub fn delay(
    hints: &RetryHints,
    quota: Option<&QuotaSnapshot>,
    cause: WaitCause,
    retry: u32,
    now: Instant,
    config: &RetryConfig,
    rng: &mut impl Rng,
) -> (Duration, DelaySource) {
    let server = if let Some(d) = hints.retry_after_ms {
        Some((d, DelaySource::RetryAfterMs))
    } else if let Some(d) = hints.retry_after {
        Some((d, DelaySource::RetryAfter))
    } else if is_rate_limit(cause) {
        reset_delay(quota, cause, now).map(|d| (d, DelaySource::ResetHeader))
    } else {
        None
    };
    let (d, source) = match server {
        Some((d, source)) => (d.saturating_add(spread(config, rng)), source),
        None => (full_jitter(retry, config, rng), DelaySource::Backoff),
    };
    (whole_millis(d), source)
}

/// Round up to a whole millisecond: tokio's timers have millisecond resolution, so a wait
/// announced this way is exactly the wait that happens.
pub fn whole_millis(d: Duration) -> Duration {
    let ms = d.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// Whether a failed attempt counts against `--max-retries`. A rate-limit refusal that carries
/// the server's own schedule (`retry-after-ms` or `retry-after`) does not: the server has
/// booked the retry, and when several processes share a key without a shared limiter such
/// refusals are the normal way of queueing, not a sign that retrying is futile. Those waits
/// are bounded by `--max-wait` (each) and the turn's deadline (all together) instead.
/// Everything else (errors, and 429s without a schedule, whose wait is a guess) counts.
pub fn counts_against_max_retries(cause: WaitCause, hints: &RetryHints) -> bool {
    let scheduled = hints.retry_after_ms.is_some() || hints.retry_after.is_some();
    !(is_rate_limit(cause) && scheduled)
}

fn is_rate_limit(cause: WaitCause) -> bool {
    matches!(
        cause,
        WaitCause::Requests
            | WaitCause::InputTokens
            | WaitCause::OutputTokens
            | WaitCause::Tokens
            | WaitCause::RateLimit
    )
}

/// Time until the bucket behind a 429 is full again, from its `*-reset` header.
fn reset_delay(quota: Option<&QuotaSnapshot>, cause: WaitCause, now: Instant) -> Option<Duration> {
    let quota = quota?;
    let bucket = match cause {
        WaitCause::Requests => Some(Bucket::Requests),
        WaitCause::InputTokens => Some(Bucket::InputTokens),
        WaitCause::OutputTokens => Some(Bucket::OutputTokens),
        WaitCause::Tokens => Some(Bucket::Tokens),
        _ => None,
    };
    let reset = match bucket.and_then(|b| quota.bucket(b)).and_then(|q| q.reset) {
        Some(r) => r,
        None => quota.binding()?.1.reset?,
    };
    Some(reset.saturating_duration_since(now))
}

/// The full-jitter bound for a retry: `min(cap, base·2^(retry−1))`.
pub fn backoff_bound(retry: u32, config: &RetryConfig) -> Duration {
    let exp = retry.saturating_sub(1).min(30);
    config
        .backoff_base
        .saturating_mul(1u32 << exp)
        .min(config.backoff_cap)
}

/// `U(0, backoff_bound(retry))` (docs/retries.md, AWS "full jitter").
pub fn full_jitter(retry: u32, config: &RetryConfig, rng: &mut impl Rng) -> Duration {
    let bound = backoff_bound(retry, config).as_secs_f64();
    if bound <= 0.0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(rng.random_range(0.0..bound))
}

fn spread(config: &RetryConfig, rng: &mut impl Rng) -> Duration {
    let max = config.server_delay_spread.as_secs_f64();
    if max <= 0.0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(rng.random_range(0.0..max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::BucketQuota;
    use http::HeaderMap;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn api(status: u16, kind: &str, message: &str) -> ApiError {
        ApiError {
            status: Some(status),
            error_type: kind.into(),
            message: message.into(),
            request_id: Some("req_1".into()),
            details: None,
            headers: HeaderMap::new(),
        }
    }

    fn verdict(status: u16, kind: &str, hints: RetryHints) -> Verdict {
        let e = api(status, kind, "x");
        classify(AttemptError::Status(&e), &hints, 100, None)
    }

    #[test]
    fn retryable_and_terminal_statuses() {
        for s in [429, 529, 500, 502, 503, 504, 408, 409] {
            assert!(
                matches!(
                    verdict(s, "e", RetryHints::default()),
                    Verdict::Retry { .. }
                ),
                "{s}"
            );
        }
        for (s, k) in [
            (400, FailureKind::InvalidRequest),
            (401, FailureKind::Authentication),
            (402, FailureKind::Billing),
            (403, FailureKind::Permission),
            (404, FailureKind::NotFound),
            (413, FailureKind::RequestTooLarge),
        ] {
            match verdict(s, "e", RetryHints::default()) {
                Verdict::Fail { kind, .. } => assert_eq!(kind, k, "{s}"),
                other @ Verdict::Retry { .. } => panic!("{s}: {other:?}"),
            }
        }
        let net = TransportError::Connect("refused".into());
        assert_eq!(
            classify(AttemptError::Network(&net), &RetryHints::default(), 1, None),
            Verdict::Retry {
                cause: WaitCause::Network
            }
        );
    }

    #[test]
    fn the_401_message_names_the_variable() {
        match verdict(401, "authentication_error", RetryHints::default()) {
            Verdict::Fail { message, .. } => {
                assert!(message.contains("ANTHROPIC_API_KEY"), "{message}");
            }
            other @ Verdict::Retry { .. } => panic!("{other:?}"),
        }
    }

    #[test]
    fn should_retry_header_overrides_the_status() {
        let no = RetryHints {
            should_retry: Some(false),
            ..RetryHints::default()
        };
        assert!(matches!(
            verdict(500, "api_error", no),
            Verdict::Fail {
                kind: FailureKind::NotRetryable,
                ..
            }
        ));
        let yes = RetryHints {
            should_retry: Some(true),
            ..RetryHints::default()
        };
        assert!(matches!(
            verdict(400, "invalid_request_error", yes),
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn spend_cap_is_terminal_with_its_own_message() {
        let mut e = api(429, "rate_limit_error", "spend limit");
        e.details = Some(serde_json::json!({"error_code": "enforced_spend_limit_reached"}));
        let yes = RetryHints {
            should_retry: Some(true),
            ..RetryHints::default()
        };
        match classify(AttemptError::Status(&e), &yes, 1, None) {
            Verdict::Fail { kind, message } => {
                assert_eq!(kind, FailureKind::SpendCap);
                assert!(message.contains("retrying will not help"), "{message}");
            }
            other @ Verdict::Retry { .. } => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn request_bigger_than_the_bucket_is_terminal() {
        let now = Instant::now();
        let mut q = QuotaSnapshot::empty(now);
        q.input_tokens = Some(BucketQuota {
            limit: Some(30_000),
            remaining: Some(30_000),
            reset: None,
        });
        let e = api(
            429,
            "rate_limit_error",
            "would exceed … 30,000 input tokens per minute",
        );
        match classify(
            AttemptError::Status(&e),
            &RetryHints::default(),
            45_000,
            Some(&q),
        ) {
            Verdict::Fail { kind, message } => {
                assert_eq!(kind, FailureKind::ExceedsQuota);
                assert!(
                    message.contains("45,000") && message.contains("30,000"),
                    "{message}"
                );
            }
            other @ Verdict::Retry { .. } => panic!("{other:?}"),
        }
        assert_eq!(
            classify(
                AttemptError::Status(&e),
                &RetryHints::default(),
                3_000,
                Some(&q)
            ),
            Verdict::Retry {
                cause: WaitCause::InputTokens
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn server_delay_order_and_spread() {
        let now = Instant::now();
        let cfg = RetryConfig::default();
        let mut rng = StdRng::seed_from_u64(7);
        let both = RetryHints {
            retry_after_ms: Some(Duration::from_millis(1500)),
            retry_after: Some(Duration::from_secs(9)),
            should_retry: None,
        };
        let (d, src) = delay(&both, None, WaitCause::RateLimit, 1, now, &cfg, &mut rng);
        assert_eq!(src, DelaySource::RetryAfterMs);
        assert!(
            d >= Duration::from_millis(1500) && d < Duration::from_secs(2),
            "{d:?}"
        );

        let ra = RetryHints {
            retry_after: Some(Duration::from_secs(9)),
            ..RetryHints::default()
        };
        let (d, src) = delay(&ra, None, WaitCause::RateLimit, 1, now, &cfg, &mut rng);
        assert_eq!(src, DelaySource::RetryAfter);
        assert!(
            d >= Duration::from_secs(9) && d < Duration::from_millis(9500),
            "{d:?}"
        );

        let mut q = QuotaSnapshot::empty(now);
        q.requests = Some(BucketQuota {
            limit: Some(50),
            remaining: Some(0),
            reset: Some(now + Duration::from_secs(20)),
        });
        let (d, src) = delay(
            &RetryHints::default(),
            Some(&q),
            WaitCause::Requests,
            1,
            now,
            &cfg,
            &mut rng,
        );
        assert_eq!(src, DelaySource::ResetHeader);
        assert!(
            d >= Duration::from_secs(20) && d < Duration::from_millis(20_500),
            "{d:?}"
        );

        // A 529 has no server delay: backoff.
        let (_, src) = delay(
            &RetryHints::default(),
            Some(&q),
            WaitCause::Overloaded,
            1,
            now,
            &cfg,
            &mut rng,
        );
        assert_eq!(src, DelaySource::Backoff);
    }

    #[test]
    fn backoff_bounds_double_up_to_the_cap() {
        let cfg = RetryConfig::default();
        let bounds: Vec<u64> = (1..=8).map(|r| backoff_bound(r, &cfg).as_secs()).collect();
        assert_eq!(bounds, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff_bound(u32::MAX, &cfg), Duration::from_secs(30));
    }

    #[test]
    fn full_jitter_spans_the_whole_range() {
        let cfg = RetryConfig::default();
        let mut rng = StdRng::seed_from_u64(1);
        let draws: Vec<f64> = (0..2000)
            .map(|_| full_jitter(4, &cfg, &mut rng).as_secs_f64())
            .collect();
        let (lo, hi) = draws
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), d| (l.min(*d), h.max(*d)));
        assert!(
            lo < 0.1 && hi > 7.9 && hi < 8.0,
            "[{lo}, {hi}] should span [0, 8)"
        );
    }

    proptest! {
        #[test]
        fn every_delay_is_finite_non_negative_and_bounded(
            retry in 0u32..100,
            seed in any::<u64>(),
            ra in proptest::option::of(0u64..1_000_000),
            ms in proptest::option::of(0u64..10_000_000),
        ) {
            let cfg = RetryConfig::default();
            let mut rng = StdRng::seed_from_u64(seed);
            let now = Instant::now();
            let hints = RetryHints {
                retry_after: ra.map(Duration::from_millis),
                retry_after_ms: ms.map(Duration::from_millis),
                should_retry: None,
            };
            let (d, src) = delay(&hints, None, WaitCause::Overloaded, retry, now, &cfg, &mut rng);
            let honoured = hints.retry_after_ms.or(hints.retry_after);
            if let Some(h) = honoured {
                prop_assert!(d >= h && d <= whole_millis(h + cfg.server_delay_spread));
                prop_assert_ne!(src, DelaySource::Backoff);
            } else {
                prop_assert!(d <= whole_millis(backoff_bound(retry, &cfg)));
                prop_assert!(d <= cfg.backoff_cap);
            }
        }
    }
}
