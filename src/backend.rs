//! What a surface talks to: the real API, or the embedded mock when there is no key.
//! Builds the transport, the limiter and the driver from a [`Config`]. The limiter is the
//! in-process [`LocalLimiter`], or, with `shared_limiter` set, the Redis one (which fails open
//! to a local one: starting never waits for Redis more than
//! [`crate::limiter::redis::CONNECT_TIMEOUT`]).

use std::sync::Arc;

use crate::api::{HttpTransport, HttpTransportConfig, client::DEFAULT_BASE_URL};
use crate::config::Config;
use crate::limiter::{Limiter, LocalLimiter, RedisLimiter, RedisLimiterConfig};
use crate::mock::{MockConfig, MockServer};
use crate::retry::Driver;
use crate::secret::ApiKey;

/// The key sent to the embedded mock (it accepts any key; this one is not a secret).
pub const EMBEDDED_MOCK_KEY: &str = "backchat-embedded-mock";

/// Where requests go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A real endpoint.
    Remote {
        /// Its base URL.
        base_url: String,
    },
    /// The mock running inside this process.
    EmbeddedMock {
        /// Its loopback URL.
        base_url: String,
    },
}

/// A running backend.
pub struct Backend {
    /// Runs turns.
    pub driver: Driver,
    /// Where requests go.
    pub target: Target,
    /// The embedded mock, kept alive as long as the backend.
    pub mock: Option<MockServer>,
    /// The same endpoint and key, for the calls that are not turns (`GET /v1/models`).
    pub http: HttpTransport,
}

/// Why a backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The embedded mock could not bind a loopback port.
    #[error("could not start the embedded mock API: {0}")]
    Mock(std::io::Error),
    /// The HTTP client could not be built.
    #[error("{0}")]
    Transport(#[from] crate::api::TransportError),
}

/// The embedded mock's configuration: Tier 1 defaults with the config file's `[mock]`
/// limits and token rate applied.
pub fn embedded_mock_config(config: &Config) -> MockConfig {
    let mut m = MockConfig::default();
    if let Some(rpm) = config.mock.rpm {
        m.limits.rpm = rpm;
    }
    if let Some(itpm) = config.mock.itpm {
        m.limits.itpm = itpm;
    }
    if let Some(otpm) = config.mock.otpm {
        m.limits.otpm = otpm;
    }
    if let Some(rate) = config.mock.token_rate {
        m.token_rate = rate;
    }
    m
}

impl Backend {
    /// Start the backend `config` asks for. `mock` forces the embedded mock (with this
    /// configuration); otherwise the mock is used only when no key and no base URL are set.
    pub async fn start(config: &Config, mock: Option<MockConfig>) -> Result<Backend, BackendError> {
        let mock = match mock {
            Some(m) => Some(m),
            None if config.wants_embedded_mock() => Some(embedded_mock_config(config)),
            None => None,
        };
        let (target, key, server) = if let Some(mock_config) = mock {
            let server = MockServer::start(mock_config)
                .await
                .map_err(BackendError::Mock)?;
            let base_url = server.base_url();
            (
                Target::EmbeddedMock {
                    base_url: base_url.clone(),
                },
                ApiKey::new(EMBEDDED_MOCK_KEY),
                Some(server),
            )
        } else {
            let base_url = config
                .base_url
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
            (Target::Remote { base_url }, config.api_key.clone(), None)
        };
        let base_url = match &target {
            Target::Remote { base_url } | Target::EmbeddedMock { base_url } => base_url.clone(),
        };
        let limiter: Option<Arc<dyn Limiter>> = match (config.pacing, &config.shared_limiter) {
            (false, _) => None,
            (true, Some(url)) => {
                let shared = RedisLimiterConfig {
                    // A slot further out than the driver would wait is of no use to anyone.
                    max_ahead: config.retry.max_wait.min(config.retry.deadline),
                    ca_file: config.shared_limiter_ca.clone(),
                    ..RedisLimiterConfig::new(url.clone())
                };
                Some(Arc::new(RedisLimiter::connect(shared, key.as_ref()).await))
            }
            (true, None) => Some(Arc::new(LocalLimiter::new())),
        };
        let transport = HttpTransport::new(HttpTransportConfig {
            header_timeout: config.header_timeout,
            ..HttpTransportConfig::new(base_url, key)
        })?;
        let http = transport.clone();
        let driver = Driver::new(Arc::new(transport))
            .with_config(config.retry.clone())
            .with_limiter(limiter);
        Ok(Backend {
            driver,
            target,
            mock: server,
            http,
        })
    }

    /// True when running on the embedded mock.
    pub fn is_mock(&self) -> bool {
        matches!(self.target, Target::EmbeddedMock { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MockSettings;

    #[test]
    fn the_config_files_mock_limits_reach_the_embedded_mock() {
        let config = Config {
            mock: MockSettings {
                rpm: Some(7),
                itpm: None,
                otpm: Some(900),
                token_rate: Some(15.0),
            },
            ..Config::default()
        };
        let m = embedded_mock_config(&config);
        assert_eq!(
            (m.limits.rpm, m.limits.itpm, m.limits.otpm),
            (7, 30_000, 900)
        );
        assert_eq!(m.token_rate, 15.0);
    }
}
