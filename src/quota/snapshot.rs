//! What the server says about its rate limits: the dimensions ([`Bucket`]), one bucket's
//! reading ([`BucketQuota`]) and everything one response reported ([`QuotaSnapshot`]).

use serde::Serialize;
use tokio::time::Instant;

use crate::clock;

/// A rate-limited dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// Requests per minute.
    Requests,
    /// Input tokens per minute.
    InputTokens,
    /// Output tokens per minute.
    OutputTokens,
    /// The most restrictive token limit (`anthropic-ratelimit-tokens-*`, or OpenAI's tokens).
    Tokens,
}

impl Bucket {
    /// Words for a person: "requests", "input tokens".
    pub fn label(self) -> &'static str {
        match self {
            Bucket::Requests => "requests",
            Bucket::InputTokens => "input tokens",
            Bucket::OutputTokens => "output tokens",
            Bucket::Tokens => "tokens",
        }
    }

    /// The dimensions the limiters model, in display order.
    pub const PACED: [Bucket; 3] = [Bucket::Requests, Bucket::InputTokens, Bucket::OutputTokens];

    /// True for the token dimensions, whose `remaining` the server rounds to the nearest
    /// 1,000 (requests are counted exactly).
    pub fn counts_tokens(self) -> bool {
        self != Bucket::Requests
    }
}

/// One bucket as a response reported it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BucketQuota {
    /// `*-limit`: units per minute.
    pub limit: Option<u64>,
    /// `*-remaining` (tokens are rounded to the nearest 1,000 by the server).
    pub remaining: Option<u64>,
    /// `*-reset`: when the bucket is completely full again.
    #[serde(serialize_with = "clock::serde_instant::option")]
    pub reset: Option<Instant>,
}

impl BucketQuota {
    /// True when no field was readable.
    pub fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset.is_none()
    }

    /// `remaining / limit`, when both are known and the limit is positive.
    pub fn fraction_left(&self) -> Option<f64> {
        match (self.remaining, self.limit) {
            (Some(r), Some(l)) if l > 0 => Some((r as f64 / l as f64).min(1.0)),
            _ => None,
        }
    }
}

/// Everything the rate-limit headers of one response said, stamped with when it was read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuotaSnapshot {
    /// When the headers were read.
    #[serde(serialize_with = "clock::serde_instant::serialize")]
    pub read_at: Instant,
    /// Requests per minute.
    pub requests: Option<BucketQuota>,
    /// Input tokens per minute.
    pub input_tokens: Option<BucketQuota>,
    /// Output tokens per minute.
    pub output_tokens: Option<BucketQuota>,
    /// The most restrictive token limit.
    pub tokens: Option<BucketQuota>,
}

impl QuotaSnapshot {
    /// A snapshot with nothing known.
    pub fn empty(read_at: Instant) -> Self {
        QuotaSnapshot {
            read_at,
            requests: None,
            input_tokens: None,
            output_tokens: None,
            tokens: None,
        }
    }

    /// True when the response carried no rate-limit header at all (some accounts don't get
    /// them, docs/protocol.md).
    pub fn is_empty(&self) -> bool {
        self.requests.is_none()
            && self.input_tokens.is_none()
            && self.output_tokens.is_none()
            && self.tokens.is_none()
    }

    /// The reading for one bucket.
    pub fn bucket(&self, b: Bucket) -> Option<&BucketQuota> {
        match b {
            Bucket::Requests => self.requests.as_ref(),
            Bucket::InputTokens => self.input_tokens.as_ref(),
            Bucket::OutputTokens => self.output_tokens.as_ref(),
            Bucket::Tokens => self.tokens.as_ref(),
        }
    }

    /// The bucket that binds: the emptiest one relative to its limit (ties go to the one that
    /// resets last), with its reset time. Used when a 429 carries no `retry-after`.
    pub fn binding(&self) -> Option<(Bucket, &BucketQuota)> {
        let mut best: Option<(Bucket, &BucketQuota, f64)> = None;
        for b in [
            Bucket::Requests,
            Bucket::InputTokens,
            Bucket::OutputTokens,
            Bucket::Tokens,
        ] {
            let Some(q) = self.bucket(b) else { continue };
            let Some(frac) = q.fraction_left() else {
                continue;
            };
            let better = match &best {
                None => true,
                Some((_, bq, bf)) => frac < *bf || (frac == *bf && q.reset > bq.reset),
            };
            if better {
                best = Some((b, q, frac));
            }
        }
        best.map(|(b, q, _)| (b, q))
    }

    /// Merge a newer snapshot into this one, keeping what the newer one did not report.
    pub fn merge_newer(&mut self, newer: &QuotaSnapshot) {
        self.read_at = newer.read_at;
        if newer.requests.is_some() {
            self.requests.clone_from(&newer.requests);
        }
        if newer.input_tokens.is_some() {
            self.input_tokens.clone_from(&newer.input_tokens);
        }
        if newer.output_tokens.is_some() {
            self.output_tokens.clone_from(&newer.output_tokens);
        }
        if newer.tokens.is_some() {
            self.tokens.clone_from(&newer.tokens);
        }
    }
}
