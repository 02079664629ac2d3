//! How to reach Redis and how patient to be with it: [`RedisLimiterConfig`], its defaults, and
//! the URL as it may be shown (without credentials, [`display_target`]).
//!
//! The URL may be a list: `redis://a:7000,redis://b:7001,…` names the seed nodes of a Redis
//! Cluster ([`node_urls`]). One URL is one server (standalone, or a primary with replicas
//! behind a proxy); two or more are a cluster, reached through the redis crate's cluster
//! client, which follows `MOVED` and `ASK` redirections and refreshes its slot map after a
//! failover. `rediss://` is TLS (rustls), trusting the system's roots plus the optional CA
//! file [`RedisLimiterConfig::ca_file`].

use std::path::PathBuf;
use std::time::Duration;

use super::script::num_arg;
use crate::limiter::local::{LocalLimiterConfig, PROBE_WAIT};

/// The longest a caller waits for Redis's answer before it paces that request locally.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(50);

/// The longest a connection attempt may take (start-up waits for the first one). A refused
/// connection fails at once; this is for a server that is slow to answer, as one is when
/// dozens of processes start together on a busy machine.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long Redis may leave a call unanswered before the link is declared down (every
/// process then paces locally until a fresh connection answers). A call slower than
/// [`CALL_TIMEOUT`] but answered within this is paced locally on its own and the link stays
/// up: a moment of CPU starvation is not an outage.
pub const DOWN_AFTER: Duration = Duration::from_secs(1);

/// How long a failed server is left alone before the next connection attempt.
pub const RETRY_EVERY: Duration = Duration::from_secs(3);

/// How far ahead a reservation may reach by default (the driver's default `--max-wait`).
pub const MAX_AHEAD: Duration = Duration::from_mins(2);

/// How to reach Redis and how patient to be with it.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisLimiterConfig {
    /// `redis://HOST:PORT/DB` or `rediss://…` (TLS); a comma-separated list of two or more
    /// such URLs is a cluster's seed nodes ([`node_urls`]).
    pub url: String,
    /// A PEM file of CA certificates trusted for `rediss://` besides the system's roots (a
    /// private CA, or a self-signed server certificate).
    pub ca_file: Option<PathBuf>,
    /// The longest a caller waits for an answer ([`CALL_TIMEOUT`]).
    pub call_timeout: Duration,
    /// The longest a connection attempt may take ([`CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// How long an unanswered call may stay unanswered before the link is down
    /// ([`DOWN_AFTER`]; never less than `call_timeout`).
    pub down_after: Duration,
    /// Pause between connection attempts after a failure ([`RETRY_EVERY`]).
    pub retry_every: Duration,
    /// The furthest start time a reservation may get ([`MAX_AHEAD`]).
    pub max_ahead: Duration,
    /// The longest a request waits for the first request's headers ([`PROBE_WAIT`]).
    pub probe_wait: Duration,
    /// How long the server's "minute" lasts: a limit of L per minute refills at L / minute.
    /// One minute, except against a time-scaled mock ([`RedisLimiterConfig::time_scaled`]).
    /// Every process sharing a scope must use the same minute.
    pub minute: Duration,
}

impl RedisLimiterConfig {
    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisLimiterConfig {
            url: url.into(),
            ca_file: None,
            call_timeout: CALL_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            down_after: DOWN_AFTER,
            retry_every: RETRY_EVERY,
            max_ahead: MAX_AHEAD,
            probe_wait: PROBE_WAIT,
            minute: Duration::from_mins(1),
        }
    }

    /// Against a server `scale`× faster than real time (a load test's mock): the minute and
    /// the probe wait divided by `scale`, as [`LocalLimiterConfig::time_scaled`] does. The
    /// Redis timings (call and connect timeouts, retry pause) stay real: Redis is not scaled.
    /// Set `max_ahead` separately (the driver's scaled `max_wait`).
    pub fn time_scaled(self, scale: f64) -> Self {
        let local = LocalLimiterConfig::time_scaled(scale);
        let s = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        RedisLimiterConfig {
            minute: local.minute,
            probe_wait: self.probe_wait.div_f64(s),
            ..self
        }
    }

    /// The local limiter's settings for this minute and probe wait (the fallback must pace
    /// exactly as the shared state does).
    pub(super) fn local_config(&self) -> LocalLimiterConfig {
        LocalLimiterConfig {
            probe_wait: self.probe_wait,
            minute: self.minute,
        }
    }

    /// The minute in milliseconds, as the script takes it.
    pub(super) fn minute_arg(&self) -> String {
        let ms = self.minute.as_secs_f64() * 1000.0;
        if ms > 0.0 {
            num_arg(ms)
        } else {
            "60000".to_string()
        }
    }
}

/// The URLs of a `shared_limiter` value: one, or a cluster's seed nodes separated by commas
/// (whitespace around them ignored, empty entries skipped).
pub fn node_urls(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// The URL (or each URL of a list) without credentials, for messages:
/// `redis://HOST:PORT/DB`. Passwords and ACL user names are never shown.
pub fn display_target(url: &str) -> String {
    let nodes = node_urls(url);
    if nodes.len() > 1 {
        return nodes
            .iter()
            .map(|u| display_one(u))
            .collect::<Vec<_>>()
            .join(",");
    }
    display_one(url.trim())
}

fn display_one(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{host}{port}{}", u.scheme(), u.path())
        }
        Err(_) => "the shared limiter's URL".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_never_show_credentials() {
        assert_eq!(
            display_target("redis://user:hunter2@cache.local:6380/2"),
            "redis://cache.local:6380/2"
        );
        assert_eq!(
            display_target("redis://:pw@127.0.0.1/"),
            "redis://127.0.0.1/"
        );
        assert_eq!(display_target("::"), "the shared limiter's URL");
        assert_eq!(
            display_target("rediss://default:s3cret@a.example:6380/0"),
            "rediss://a.example:6380/0"
        );
        assert_eq!(
            display_target("redis://u:p@h1:7000, redis://u:p@h2:7001"),
            "redis://h1:7000,redis://h2:7001"
        );
    }

    #[test]
    fn a_list_of_urls_is_a_cluster() {
        assert_eq!(node_urls("redis://a:1"), ["redis://a:1"]);
        assert_eq!(
            node_urls(" redis://a:1 ,redis://b:2,, "),
            ["redis://a:1", "redis://b:2"]
        );
    }

    #[test]
    fn a_time_scaled_config_shrinks_the_minute_and_the_probe_wait_only() {
        let scaled = RedisLimiterConfig::new("redis://127.0.0.1/0").time_scaled(20.0);
        assert_eq!(scaled.minute, Duration::from_secs(3));
        assert_eq!(scaled.probe_wait, PROBE_WAIT / 20);
        assert_eq!(scaled.minute_arg(), "3000");
        assert_eq!(scaled.call_timeout, CALL_TIMEOUT);
        assert_eq!(scaled.local_config(), LocalLimiterConfig::time_scaled(20.0));
    }
}
