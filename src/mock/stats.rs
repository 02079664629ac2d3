//! What the mock saw, for tests ("exactly one request", "zero 429s") and the admin endpoint.

use std::collections::{BTreeMap, VecDeque};

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
    /// The last [`MAX_RECORDS`] `POST /v1/messages`, in arrival order (only when the
    /// config keeps records).
    pub requests: VecDeque<RequestRecord>,
    /// Records dropped from the front of `requests` to keep it bounded.
    pub records_dropped: u64,
}

/// Most request records kept; older ones are dropped (the counters keep counting).
pub const MAX_RECORDS: usize = 10_000;

impl MockStats {
    /// Keep `r`, dropping the oldest record past [`MAX_RECORDS`]; returns its sequence
    /// number for [`MockStats::record_mut`].
    pub(crate) fn record(&mut self, r: RequestRecord) -> u64 {
        if self.requests.len() >= MAX_RECORDS {
            self.requests.pop_front();
            self.records_dropped += 1;
        }
        self.requests.push_back(r);
        self.records_dropped + self.requests.len() as u64 - 1
    }

    /// The record with sequence number `seq`, if it is still kept.
    pub(crate) fn record_mut(&mut self, seq: u64) -> Option<&mut RequestRecord> {
        let i = seq.checked_sub(self.records_dropped)?;
        self.requests.get_mut(usize::try_from(i).ok()?)
    }

    /// How many messages requests got `status`.
    pub fn count(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_a_ring() {
        let mut s = MockStats::default();
        let r = |status| RequestRecord {
            at: Instant::now(),
            status,
            input_tokens: 0,
            stream: false,
        };
        let first = s.record(r(1));
        for _ in 0..MAX_RECORDS + 5 {
            s.record(r(2));
        }
        assert_eq!(s.requests.len(), MAX_RECORDS);
        assert_eq!(s.records_dropped, 6);
        assert!(s.record_mut(first).is_none(), "dropped");
        let last = s.record(r(3));
        assert_eq!(s.record_mut(last).map(|r| r.status), Some(3));
    }
}
