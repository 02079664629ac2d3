//! How to reach Redis and how patient to be with it: [`RedisLimiterConfig`], its defaults, and
//! the URL as it may be shown (without credentials, [`display_target`]).

use std::time::Duration;

use super::script::num_arg;
use crate::limiter::local::{LocalLimiterConfig, PROBE_WAIT};

/// The longest any Redis call may take before the limiter paces locally instead.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(50);

/// The longest start-up waits for the first connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(100);

/// How long a failed server is left alone before the next connection attempt.
pub const RETRY_EVERY: Duration = Duration::from_secs(3);

/// How far ahead a reservation may reach by default (the driver's default `--max-wait`).
pub const MAX_AHEAD: Duration = Duration::from_mins(2);

/// How to reach Redis and how patient to be with it.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisLimiterConfig {
    /// `redis://HOST:PORT/DB`.
    pub url: String,
    /// The longest any Redis call may take ([`CALL_TIMEOUT`]).
    pub call_timeout: Duration,
    /// The longest the first connection may take ([`CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
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
            call_timeout: CALL_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
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

/// The URL without credentials, for messages: `redis://HOST:PORT/DB`.
pub fn display_target(url: &str) -> String {
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
