//! Retries a person can watch: the retry hints of a response, the retry policy, the retry
//! budget, and the turn driver that turns one request into a stream of [`TurnEvent`]s, pacing
//! each attempt through a [`Limiter`](crate::limiter::Limiter). Policy and formulas:
//! docs/retries.md.

pub mod budget;
pub mod driver;
pub mod event;
pub mod headers;
pub mod policy;

pub use budget::{BudgetConfig, RetryBudget};
pub use driver::{Attempt, Driver, FailedAttempt, Wait, decide_retry, next_wait};
pub use event::{DelaySource, FailureKind, TurnEvent, TurnFailure, WaitCause};
pub use headers::RetryHints;
pub use policy::RetryConfig;
