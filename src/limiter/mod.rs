//! Quota admission before a request is sent: the [`Limiter`] trait, implemented in-process by
//! [`LocalLimiter`] (the pacer) and across processes by [`RedisLimiter`]
//! (`--shared-limiter`), which falls back to a [`LocalLimiter`] of its own when Redis is
//! unreachable.
//!
//! The driver asks for a reservation before each attempt, sleeps until its slot, and tells the
//! limiter what happened: released (the request was not admitted), committed (a 2xx arrived)
//! or settled (the reply's real usage is known). Every response's headers are observed, and a
//! 429 blocks everyone until its `retry-after`. Limits are per model class, so every call says
//! which class it is about: a [`Demand`] carries its class, and so do observations and 429s.
//! Policy and formulas: docs/retries.md.

pub mod local;
pub mod redis;
mod ticket;

pub use ticket::Ticket;

pub use self::local::{LocalLimiter, LocalLimiterConfig, PROBE_WAIT};
pub use self::redis::{RedisLimiter, RedisLimiterConfig};

use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

use crate::api::{MessagesRequest, Usage};
use crate::quota::{Bucket, ModelClass, QuotaSnapshot};

/// What one request needs from each bucket, and the class whose buckets they are.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Demand {
    /// Requests (always 1).
    pub requests: f64,
    /// Estimated input tokens.
    pub input_tokens: f64,
    /// Expected output tokens.
    pub output_tokens: f64,
    /// The model class the request counts against.
    pub class: ModelClass,
    /// The prompt-cache prediction behind `input_tokens`, when the request asks for caching.
    pub cache: Option<CacheHint>,
}

/// What the pacer assumed about the prompt cache for one request (docs/retries.md, *Prompt
/// caching and pacing*): `input_tokens` of the [`Demand`] is the estimated total input less
/// `predicted_read`, because cache reads do not count toward ITPM.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CacheHint {
    /// Identifies the conversation (model, system prompt and first message), so that the
    /// prediction is the previous request *of this conversation* on this key.
    pub key: u64,
    /// The TTL the request writes with: a prediction older than this is worthless.
    pub ttl: Duration,
    /// Tokens expected to be read from the cache (not charged).
    pub predicted_read: f64,
}

impl Demand {
    /// The amount for one bucket.
    pub fn get(&self, bucket: Bucket) -> f64 {
        match bucket {
            Bucket::Requests => self.requests,
            Bucket::InputTokens => self.input_tokens,
            Bucket::OutputTokens => self.output_tokens,
            Bucket::Tokens => self.input_tokens + self.output_tokens,
        }
    }
}

/// Which limiter decided a grant's start time. The driver, a layer up, reports it as the
/// delay source of a pacing wait (`retry::DelaySource::Pacer` or `SharedLimiter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GrantSource {
    /// The in-process model ([`LocalLimiter`]), alone or as the shared limiter's fallback.
    Local,
    /// The state shared with other processes through Redis.
    Shared,
}

/// A reserved slot.
#[derive(Clone, Debug, PartialEq)]
pub struct Grant {
    /// Identifies the reservation to the limiter.
    pub id: u64,
    /// When the request may be sent (now, or later).
    pub start_at: Instant,
    /// The bucket that made it wait, if it waits.
    pub bucket: Option<Bucket>,
    /// Local model or shared state.
    pub source: GrantSource,
    /// What was reserved (its class included).
    pub demand: Demand,
}

/// The answer to a reservation request.
pub enum Reservation {
    /// A slot.
    Granted(Grant),
    /// Nothing is known about the quota yet and a first request is on its way: wait for its
    /// headers (at most until `until`), then ask again. Keeps a burst of turns at start-up from
    /// finding the limit by hitting it.
    AwaitFirstHeaders {
        /// The longest this wait may last.
        until: Instant,
        /// Resolves when the first headers have been seen.
        ready: BoxFuture<'static, ()>,
    },
}

/// Where pacing state lives, for the status bar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimiterHealth {
    /// In-process pacing.
    Local,
    /// Shared through Redis and healthy.
    Shared,
    /// Shared limiter unreachable: pacing locally until it is back (the message says why).
    Degraded(String),
}

/// Admission control shared by all turns of a process.
/// How far an input estimate not yet checked against usage may overstate: a count of
/// characters, and English prose has more characters per token than the estimate assumes.
pub const UNCHECKED_ESTIMATE_ERROR: f64 = 0.15;

/// How far an estimate may overstate once the last reply's usage came within
/// [`CHECKED_WITHIN`] of it (the same conversation, corrected by its own usage).
pub const CHECKED_ESTIMATE_ERROR: f64 = 0.02;

/// A settled estimate this close to the usage counts as checked.
pub const CHECKED_WITHIN: f64 = 0.05;

pub trait Limiter: Send + Sync + 'static {
    /// What this request will need (estimates corrected by earlier usage), in the class of
    /// its model.
    fn estimate(&self, request: &MessagesRequest) -> Demand;

    /// Reserve a slot for `demand` in its class. With `may_await_probe`, the limiter may ask
    /// the caller to wait for the first response's headers instead (see [`Reservation`]).
    /// Never fails: a limiter that cannot decide lets the request go (fail open).
    fn reserve(&self, demand: Demand, may_await_probe: bool) -> BoxFuture<'_, Reservation>;

    /// The request was not sent or not admitted (cancelled, network error, 429, 5xx): give
    /// its slot back.
    fn release(&self, grant: &Grant);

    /// The server admitted the request (a 2xx arrived).
    fn commit(&self, grant: &Grant);

    /// The reply ended; correct the reservation with what it really used.
    fn settle(&self, grant: &Grant, usage: &Usage);

    /// The reply ended without reporting any usage (a stream passed through and cut before
    /// `message_start`): keep the reservation as spent, since the server may have charged it,
    /// but stop counting the reply as streaming, and learn nothing from it.
    fn settle_unreported(&self, grant: &Grant);

    /// Headers of any response to a request of `class`.
    fn observe(&self, class: &ModelClass, quota: &QuotaSnapshot);

    /// A 429 to a request of `class` said: nobody sends before `until`.
    fn rate_limited(&self, class: &ModelClass, until: Instant, bucket: Option<Bucket>);

    /// The per-minute limit the server last stated for `bucket` of `class` (its
    /// `anthropic-ratelimit-*-limit` header), if known. A request needing more than this can
    /// never be admitted.
    fn stated_limit(&self, class: &ModelClass, bucket: Bucket) -> Option<u64> {
        let _ = (class, bucket);
        None
    }

    /// By how much, as a fraction, this limiter's input estimate for `class` may overstate
    /// the real count: [`UNCHECKED_ESTIMATE_ERROR`] until a reply's usage has shown the
    /// estimate close, then [`CHECKED_ESTIMATE_ERROR`].
    fn input_estimate_error(&self, class: &ModelClass) -> f64 {
        let _ = class;
        UNCHECKED_ESTIMATE_ERROR
    }

    /// Local, shared, or degraded.
    fn health(&self) -> LimiterHealth {
        LimiterHealth::Local
    }

    /// Resolves once everything told to the limiter so far (releases, usage, headers, 429s)
    /// has been written to shared state, or dropped because it is unreachable. A surface
    /// about to exit may await this, bounded by a short timeout, so that the next process
    /// starts from the true state. In-process limiters have nothing to write.
    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
