//! Retries a person can watch: header parsing, the retry policy, proactive pacing, the retry
//! budget, and the turn driver that turns one request into a stream of [`TurnEvent`]s.

pub mod budget;
pub mod driver;
pub mod event;
pub mod headers;
pub mod pacer;
pub mod policy;

pub use budget::{BudgetConfig, RetryBudget};
pub use driver::Driver;
pub use event::{DelaySource, FailureKind, TurnEvent, TurnFailure, WaitCause};
pub use headers::{Bucket, BucketQuota, QuotaSnapshot, RetryHints};
pub use pacer::Pacer;
pub use policy::RetryConfig;
