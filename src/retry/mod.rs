//! Retries a person can watch: header parsing, the retry policy, proactive pacing, and the
//! turn driver that turns one request into a stream of [`TurnEvent`]s.

pub mod event;
pub mod headers;

pub use event::{DelaySource, FailureKind, TurnEvent, TurnFailure, WaitCause};
pub use headers::{Bucket, BucketQuota, QuotaSnapshot, RetryHints};
