//! The turn event stream: the one seam between the network side and everything above it
//! (docs/architecture.md). The TUI, the headless printer, the event log and the load test
//! all consume these.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::api::{ApiError, StreamFailure, TransportError, Usage};
use crate::clock;
use crate::limiter::GrantSource;
use crate::quota::{Bucket, QuotaSnapshot};

/// Why a wait happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitCause {
    /// The requests-per-minute bucket is short.
    Requests,
    /// The input-tokens-per-minute bucket is short.
    InputTokens,
    /// The output-tokens-per-minute bucket is short.
    OutputTokens,
    /// The combined tokens bucket is short.
    Tokens,
    /// A 429 that did not say which bucket.
    RateLimit,
    /// 529 `overloaded_error`.
    Overloaded,
    /// 500/502/503/504 and other server errors, 408, 409.
    ServerError,
    /// Connection errors and timeouts before the first byte.
    Network,
}

impl WaitCause {
    /// The bucket a rate-limit wait is for, if it names one.
    pub fn bucket(self) -> Option<crate::quota::Bucket> {
        use crate::quota::Bucket;
        match self {
            WaitCause::Requests => Some(Bucket::Requests),
            WaitCause::InputTokens => Some(Bucket::InputTokens),
            WaitCause::OutputTokens => Some(Bucket::OutputTokens),
            WaitCause::Tokens => Some(Bucket::Tokens),
            _ => None,
        }
    }

    /// Words for a person.
    pub fn label(self) -> &'static str {
        match self {
            WaitCause::Requests => "requests",
            WaitCause::InputTokens => "input tokens",
            WaitCause::OutputTokens => "output tokens",
            WaitCause::Tokens => "tokens",
            WaitCause::RateLimit => "rate limit",
            WaitCause::Overloaded => "overloaded",
            WaitCause::ServerError => "server error",
            WaitCause::Network => "network",
        }
    }
}

impl From<Bucket> for WaitCause {
    fn from(b: Bucket) -> Self {
        match b {
            Bucket::Requests => WaitCause::Requests,
            Bucket::InputTokens => WaitCause::InputTokens,
            Bucket::OutputTokens => WaitCause::OutputTokens,
            Bucket::Tokens => WaitCause::Tokens,
        }
    }
}

/// Where the length of a wait came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DelaySource {
    /// The `retry-after-ms` header.
    RetryAfterMs,
    /// The `retry-after` header.
    RetryAfter,
    /// The binding bucket's `*-reset` header.
    ResetHeader,
    /// Exponential backoff with full jitter (no server hint).
    Backoff,
    /// The local model of the buckets, learned from the headers.
    Pacer,
    /// The limiter shared with other processes (Redis).
    SharedLimiter,
}

/// A pacing wait's source: the limiter that decided the grant.
impl From<GrantSource> for DelaySource {
    fn from(source: GrantSource) -> Self {
        match source {
            GrantSource::Local => DelaySource::Pacer,
            GrantSource::Shared => DelaySource::SharedLimiter,
        }
    }
}

/// A grant's source equals the delay source it is reported as.
impl PartialEq<DelaySource> for GrantSource {
    fn eq(&self, other: &DelaySource) -> bool {
        DelaySource::from(*self) == *other
    }
}

impl DelaySource {
    /// The header or mechanism, as shown to a person.
    pub fn label(self) -> &'static str {
        match self {
            DelaySource::RetryAfterMs => "retry-after-ms",
            DelaySource::RetryAfter => "retry-after",
            DelaySource::ResetHeader => "reset header",
            DelaySource::Backoff => "backoff",
            DelaySource::Pacer => "pacer",
            DelaySource::SharedLimiter => "shared limiter",
        }
    }
}

/// What kind of failure ended a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// 401: the key is missing, malformed, revoked or expired.
    Authentication,
    /// 403: the key may not use this resource.
    Permission,
    /// 402: billing.
    Billing,
    /// 400: the request itself is wrong.
    InvalidRequest,
    /// 404: wrong path or model.
    NotFound,
    /// 413: the request is bigger than the API accepts.
    RequestTooLarge,
    /// 429 with `enforced_spend_limit_reached`.
    SpendCap,
    /// The request alone is bigger than a rate-limit bucket: it can never be admitted.
    ExceedsQuota,
    /// Another error the server marked, or we know, as not worth retrying.
    NotRetryable,
    /// `--max-retries` used up.
    RetriesExhausted,
    /// The server asked for a wait longer than `--max-wait`.
    WaitTooLong,
    /// The per-turn deadline passed.
    DeadlineExceeded,
    /// Too many retries across all turns recently (the outage guard, docs/retries.md).
    RetryBudgetExhausted,
}

impl FailureKind {
    /// Whether trying the same request again can help: not after a spend cap, a rejected or
    /// unauthorised key, a billing problem, or a request bigger than the quota.
    pub fn retry_helps(self) -> bool {
        !matches!(
            self,
            FailureKind::SpendCap
                | FailureKind::Authentication
                | FailureKind::Permission
                | FailureKind::Billing
                | FailureKind::ExceedsQuota
        )
    }

    /// The exit code of headless mode (docs/architecture.md): 3 for an API error that is not retried,
    /// 4 when retries are exhausted, a wait is too long or the deadline passed.
    pub fn exit_code(self) -> i32 {
        match self {
            FailureKind::RetriesExhausted
            | FailureKind::WaitTooLong
            | FailureKind::DeadlineExceeded
            | FailureKind::RetryBudgetExhausted => crate::exit::GAVE_UP,
            _ => crate::exit::API_ERROR,
        }
    }
}

/// A turn that ended before its stream started.
#[derive(Clone, Debug, PartialEq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct TurnFailure {
    /// The kind.
    pub kind: FailureKind,
    /// A sentence a person can act on.
    pub message: String,
    /// The last API error, if the failure came from a response.
    pub api: Option<ApiError>,
    /// The last network error, if it came from the network.
    pub transport: Option<TransportError>,
    /// When the quota that blocked us resets, when known.
    #[serde(serialize_with = "clock::serde_instant::option")]
    pub resets_at: Option<Instant>,
    /// Attempts made.
    pub attempts: u32,
}

/// One step of a turn, as the driver reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TurnEvent {
    /// Waiting for quota before sending (announced before the wait starts).
    Pacing {
        /// How long.
        #[serde(with = "clock::serde_secs")]
        delay: Duration,
        /// Until when.
        #[serde(serialize_with = "clock::serde_instant::serialize")]
        until: Instant,
        /// Which bucket is short.
        bucket: Bucket,
        /// The local pacer or the shared limiter.
        source: DelaySource,
    },
    /// An attempt is being sent.
    Sending {
        /// 1 for the first try.
        attempt: u32,
        /// `max_retries + 1`.
        max_attempts: u32,
    },
    /// The rate-limit headers of a response.
    Quota(QuotaSnapshot),
    /// A retry will follow after a wait (announced before the wait starts).
    RetryScheduled {
        /// The attempt that will follow the wait.
        attempt: u32,
        /// `max_retries + 1`.
        max_attempts: u32,
        /// How long.
        #[serde(with = "clock::serde_secs")]
        delay: Duration,
        /// Until when.
        #[serde(serialize_with = "clock::serde_instant::serialize")]
        until: Instant,
        /// Why.
        cause: WaitCause,
        /// The status that caused it (`None` for a network error).
        status: Option<u16>,
        /// The error type, e.g. `rate_limit_error`.
        error_type: Option<String>,
        /// Where the length came from.
        source: DelaySource,
        /// The server's message or the network error, for logs.
        message: String,
        /// `request-id` of the failed attempt (none for a network error).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// The stream is committed: nothing is retried automatically after this.
    Started {
        /// `request-id`.
        request_id: Option<String>,
        /// The model that answers.
        model: String,
    },
    /// Reply text.
    TextDelta {
        /// The new text.
        text: String,
    },
    /// Thinking text (never printed to stdout).
    ThinkingDelta {
        /// The new thinking.
        text: String,
    },
    /// Cumulative usage so far.
    Usage(Usage),
    /// The reply is complete.
    Finished {
        /// Why it stopped.
        stop_reason: Option<String>,
        /// Final usage.
        usage: Usage,
    },
    /// The stream broke after it had started; the text received so far is kept.
    Interrupted {
        /// What broke.
        error: StreamFailure,
        /// Whether any text had arrived (and is kept).
        partial_kept: bool,
    },
    /// The turn failed before its stream started.
    Failed(TurnFailure),
}

impl TurnEvent {
    /// True for the events that end a turn.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            TurnEvent::Finished { .. } | TurnEvent::Interrupted { .. } | TurnEvent::Failed(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn events_serialize_with_cause_and_source() {
        let now = Instant::now();
        let ev = TurnEvent::RetryScheduled {
            attempt: 2,
            max_attempts: 9,
            delay: Duration::from_millis(4200),
            until: now + Duration::from_millis(4200),
            cause: WaitCause::RateLimit,
            status: Some(429),
            error_type: Some("rate_limit_error".into()),
            source: DelaySource::RetryAfter,
            message: "slow down".into(),
            request_id: None,
        };
        let v = serde_json::to_value(&ev).expect("json");
        assert_eq!(v["event"], "retry_scheduled");
        assert_eq!(v["delay"], 4.2);
        assert_eq!(v["source"], "retry-after");
        assert_eq!(v["cause"], "rate_limit");
        assert!(v["until"].as_str().expect("stamp").ends_with('Z'));
        let text = serde_json::to_value(TurnEvent::TextDelta { text: "hi".into() }).expect("json");
        assert_eq!(
            text,
            serde_json::json!({"event": "text_delta", "text": "hi"})
        );
    }
}
