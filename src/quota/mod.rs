//! What is known about the server's rate limits, below everything that acts on it: the
//! dimensions and what a response reported about them ([`Bucket`], [`BucketQuota`],
//! [`QuotaSnapshot`], read from the headers by [`parse_quota`]), the continuously refilling
//! [`TokenBucket`], the one rule that learns a bucket smaller than its limit
//! ([`learn_capacity`]), and the [`ModelClass`] a request counts against.
//!
//! The limiters (which pace requests), the retry policy (which reads snapshots after a 429),
//! the mock and the load test (which enforce limits) all build on this module; it depends on
//! nothing of theirs, only on `clock`.

mod capacity;
mod class;
mod headers;
mod snapshot;
mod token_bucket;

pub use capacity::{learn_capacity, refill_rate};
pub use class::ModelClass;
pub use headers::{parse_quota, parse_rfc3339};
pub use snapshot::{Bucket, BucketQuota, QuotaSnapshot};
pub use token_bucket::TokenBucket;
