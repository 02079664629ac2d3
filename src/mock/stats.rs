//! What the mock saw, for tests ("exactly one request", "zero 429s") and the admin endpoint.

use std::collections::BTreeMap;

use serde::Serialize;
use tokio::time::Instant;

use crate::clock::serde_instant;

/// One `POST /v1/messages` as the server saw it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestRecord {
    /// Arrival time on tokio's clock.
    #[serde(serialize_with = "serde_instant::serialize")]
    pub at: Instant,
    /// The HTTP status answered (200 for a stream that later failed mid-way).
    pub status: u16,
    /// Input tokens of the request (0 when the body was invalid).
    pub input_tokens: u64,
    /// Whether it asked for a stream.
    pub stream: bool,
}

/// Counters since the server started.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MockStats {
    /// `POST /v1/messages` requests that got past routing (any status).
    pub messages_requests: u64,
    /// Their statuses.
    pub by_status: BTreeMap<u16, u64>,
    /// Replies that began with a 200 (streamed or not).
    pub streams_started: u64,
    /// Replies that ran to the end (`message_stop`, or the whole non-streaming body).
    pub streams_completed: u64,
    /// Input tokens taken from the buckets by admitted requests.
    pub input_tokens_charged: u64,
    /// Output tokens generated and charged.
    pub output_tokens_charged: u64,
    /// Input tokens admitted requests read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens admitted requests wrote to the prompt cache.
    pub cache_write_tokens: u64,
    /// Requests to the other endpoints (models, count_tokens, unknown paths).
    pub other_requests: u64,
    /// Every `POST /v1/messages`, in arrival order.
    pub requests: Vec<RequestRecord>,
}

impl MockStats {
    /// How many messages requests got `status`.
    pub fn count(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
}
