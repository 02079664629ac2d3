//! The proxy's counters and `GET /metrics` in the Prometheus text format: requests,
//! attempts, upstream errors absorbed (never shown to a client), waits, give-ups, the
//! in-flight count and, per key fingerprint, model class and bucket, the quota the latest
//! response reported.
//!
//! Counters are plain atomics: every request touches them, and a scrape only reads them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::quota::{Bucket, QuotaSnapshot};

/// Every metric name, for the docs and the tests.
pub const METRIC_NAMES: [&str; 11] = [
    "backchat_proxy_requests_total",
    "backchat_proxy_attempts_total",
    "backchat_proxy_upstream_429_absorbed_total",
    "backchat_proxy_upstream_errors_absorbed_total",
    "backchat_proxy_waits_total",
    "backchat_proxy_wait_seconds_total",
    "backchat_proxy_give_ups_total",
    "backchat_proxy_in_flight",
    "backchat_proxy_responses_total",
    "backchat_proxy_quota_remaining",
    "backchat_proxy_quota_limit",
];

/// Counters shared by every request of one proxy.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    attempts: AtomicU64,
    absorbed_429: AtomicU64,
    absorbed_other: AtomicU64,
    pacing_waits: AtomicU64,
    retry_waits: AtomicU64,
    wait_micros: AtomicU64,
    give_ups: AtomicU64,
    in_flight: AtomicU64,
    /// Responses by status code.
    responses: Mutex<BTreeMap<u16, u64>>,
    /// The latest quota per (key fingerprint, model class).
    quota: Mutex<BTreeMap<(String, String), QuotaSnapshot>>,
}

/// Which kind of wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKind {
    /// The pacer held the request back before sending.
    Pacing,
    /// A retry after a failed attempt.
    Retry,
}

impl Metrics {
    /// A request arrived.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// An attempt was sent upstream.
    pub fn attempt(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
    }

    /// An upstream error (status `status`, `None` for a network error) is being retried:
    /// the client will not see it.
    pub fn absorbed(&self, status: Option<u16>) {
        if status == Some(429) {
            self.absorbed_429.fetch_add(1, Ordering::Relaxed);
        } else {
            self.absorbed_other.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A wait began.
    pub fn wait(&self, kind: WaitKind, delay: Duration) {
        match kind {
            WaitKind::Pacing => self.pacing_waits.fetch_add(1, Ordering::Relaxed),
            WaitKind::Retry => self.retry_waits.fetch_add(1, Ordering::Relaxed),
        };
        self.wait_micros
            .fetch_add(delay.as_micros() as u64, Ordering::Relaxed);
    }

    /// The proxy gave up on a request and passed the last error on.
    pub fn give_up(&self) {
        self.give_ups.fetch_add(1, Ordering::Relaxed);
    }

    /// A response with this status went to a client.
    pub fn response(&self, status: u16) {
        let mut r = self
            .responses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *r.entry(status).or_default() += 1;
    }

    /// The latest quota of a key fingerprint's model class.
    pub fn quota(&self, fingerprint: &str, class: &str, snapshot: &QuotaSnapshot) {
        let mut q = self
            .quota
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        q.entry((fingerprint.to_string(), class.to_string()))
            .and_modify(|old| old.merge_newer(snapshot))
            .or_insert_with(|| snapshot.clone());
    }

    /// Every known quota, by (key fingerprint, model class).
    pub fn quotas(&self) -> Vec<(String, String, QuotaSnapshot)> {
        let q = self
            .quota
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        q.iter()
            .map(|((k, c), s)| (k.clone(), c.clone(), s.clone()))
            .collect()
    }

    /// Counts the request as in flight until the guard drops (its response body ended or
    /// was dropped).
    pub fn in_flight(self: &std::sync::Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(std::sync::Arc::clone(self))
    }

    /// Snapshot of the counters, for the status line.
    pub fn totals(&self) -> Totals {
        Totals {
            requests: self.requests.load(Ordering::Relaxed),
            attempts: self.attempts.load(Ordering::Relaxed),
            absorbed_429: self.absorbed_429.load(Ordering::Relaxed),
            absorbed_other: self.absorbed_other.load(Ordering::Relaxed),
            waits: self.pacing_waits.load(Ordering::Relaxed)
                + self.retry_waits.load(Ordering::Relaxed),
            give_ups: self.give_ups.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let t = self.totals();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            &mut out,
            "backchat_proxy_requests_total",
            "Requests received from clients.",
            t.requests,
        );
        counter(
            &mut out,
            "backchat_proxy_attempts_total",
            "Attempts sent upstream.",
            t.attempts,
        );
        counter(
            &mut out,
            "backchat_proxy_upstream_429_absorbed_total",
            "Upstream 429s retried by the proxy instead of reaching a client.",
            t.absorbed_429,
        );
        counter(
            &mut out,
            "backchat_proxy_upstream_errors_absorbed_total",
            "Other upstream errors (529, 5xx, network) retried by the proxy.",
            t.absorbed_other,
        );
        let _ = writeln!(
            out,
            "# HELP backchat_proxy_waits_total Waits before an attempt, by kind.\n\
             # TYPE backchat_proxy_waits_total counter\n\
             backchat_proxy_waits_total{{kind=\"pacing\"}} {}\n\
             backchat_proxy_waits_total{{kind=\"retry\"}} {}",
            self.pacing_waits.load(Ordering::Relaxed),
            self.retry_waits.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP backchat_proxy_wait_seconds_total Time requests spent waiting (pacing and retries).\n\
             # TYPE backchat_proxy_wait_seconds_total counter\n\
             backchat_proxy_wait_seconds_total {:.6}",
            self.wait_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        counter(
            &mut out,
            "backchat_proxy_give_ups_total",
            "Requests the proxy gave up on (the client got upstream's last error).",
            t.give_ups,
        );
        let _ = writeln!(
            out,
            "# HELP backchat_proxy_in_flight Requests being waited on, sent or streamed.\n\
             # TYPE backchat_proxy_in_flight gauge\n\
             backchat_proxy_in_flight {}",
            t.in_flight
        );
        let _ = writeln!(
            out,
            "# HELP backchat_proxy_responses_total Responses sent to clients, by status.\n\
             # TYPE backchat_proxy_responses_total counter"
        );
        {
            let r = self
                .responses
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (status, n) in r.iter() {
                let _ = writeln!(
                    out,
                    "backchat_proxy_responses_total{{code=\"{status}\"}} {n}"
                );
            }
        }
        let quotas = self.quotas();
        for (name, help, pick) in [
            (
                "backchat_proxy_quota_remaining",
                "What the latest response said remains, per key fingerprint, model class and bucket.",
                (|b: &crate::quota::BucketQuota| b.remaining)
                    as fn(&crate::quota::BucketQuota) -> Option<u64>,
            ),
            (
                "backchat_proxy_quota_limit",
                "The per-minute limit the latest response reported, per key fingerprint, model class and bucket.",
                |b: &crate::quota::BucketQuota| b.limit,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (key, class, snapshot) in &quotas {
                for bucket in BUCKETS {
                    if let Some(v) = snapshot.bucket(bucket).and_then(pick) {
                        let _ = writeln!(
                            out,
                            "{name}{{key=\"{key}\",class=\"{class}\",bucket=\"{}\"}} {v}",
                            bucket_name(bucket)
                        );
                    }
                }
            }
        }
        out
    }
}

/// The buckets, in the order of the exposition.
const BUCKETS: [Bucket; 4] = [
    Bucket::Requests,
    Bucket::InputTokens,
    Bucket::OutputTokens,
    Bucket::Tokens,
];

/// A label value for a bucket (the header's own word).
fn bucket_name(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::Requests => "requests",
        Bucket::InputTokens => "input-tokens",
        Bucket::OutputTokens => "output-tokens",
        Bucket::Tokens => "tokens",
    }
}

/// The counters a status line shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Requests received.
    pub requests: u64,
    /// Attempts sent upstream.
    pub attempts: u64,
    /// 429s absorbed.
    pub absorbed_429: u64,
    /// Other errors absorbed.
    pub absorbed_other: u64,
    /// Waits (pacing and retries).
    pub waits: u64,
    /// Give-ups.
    pub give_ups: u64,
    /// In flight now.
    pub in_flight: u64,
}

/// Holds one request in the in-flight gauge.
#[derive(Debug)]
pub struct InFlight(std::sync::Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exposed() {
        let m = std::sync::Arc::new(Metrics::default());
        m.request();
        m.absorbed(Some(429));
        m.response(200);
        let mut q = QuotaSnapshot::empty(tokio::time::Instant::now());
        q.requests = Some(crate::quota::BucketQuota {
            limit: Some(50),
            remaining: Some(49),
            reset: None,
        });
        m.quota("abcd", "sonnet-4", &q);
        let _held = m.in_flight();
        let text = m.render();
        for name in METRIC_NAMES {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}: {text}");
        }
        assert!(text.contains("backchat_proxy_in_flight 1"), "{text}");
        assert!(
            text.contains(
                "backchat_proxy_quota_remaining{key=\"abcd\",class=\"sonnet-4\",bucket=\"requests\"} 49"
            ),
            "{text}"
        );
    }
}
