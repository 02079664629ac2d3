//! The effective configuration: flags, environment and defaults resolved once into a
//! [`Config`]. (The config file joins this resolution in the sessions/config work.)

use crate::cli::CommonArgs;
use crate::retry::RetryConfig;
use crate::secret::ApiKey;

/// The model used when none is configured: a current one (PROTOCOL.md §9).
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-6";

/// Default `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Everything a surface needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Model id.
    pub model: String,
    /// `max_tokens` of each request.
    pub max_tokens: u32,
    /// System prompt.
    pub system: Option<String>,
    /// Extended thinking budget, if on.
    pub thinking_budget: Option<u32>,
    /// API base URL; `None` with no key means the embedded mock.
    pub base_url: Option<String>,
    /// The key (never printed).
    pub api_key: Option<ApiKey>,
    /// Retry settings.
    pub retry: RetryConfig,
    /// Pace from the rate-limit headers.
    pub pacing: bool,
    /// Redis URL of the shared limiter.
    pub shared_limiter: Option<String>,
    /// Log level for the log file.
    pub log_level: String,
}

/// A configuration problem, reported before anything runs (exit code 2).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Resolve flags over the environment over defaults. `env` reads a variable.
    pub fn resolve(
        args: &CommonArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut retry = RetryConfig::default();
        if let Some(n) = args.max_retries {
            retry.max_retries = n;
        }
        if let Some(w) = args.max_wait {
            retry.max_wait = w;
        }
        if let Some(d) = args.deadline {
            retry.deadline = d;
        }
        let max_tokens = args.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if max_tokens == 0 {
            return Err(ConfigError("--max-tokens must be at least 1".into()));
        }
        Ok(Config {
            model: args
                .model
                .clone()
                .unwrap_or_else(|| DEFAULT_MODEL.to_string()),
            max_tokens,
            system: args.system.clone().filter(|s| !s.trim().is_empty()),
            thinking_budget: args.thinking,
            base_url: args
                .base_url
                .clone()
                .or_else(|| env("ANTHROPIC_BASE_URL"))
                .filter(|s| !s.trim().is_empty()),
            api_key: env("ANTHROPIC_API_KEY").and_then(ApiKey::new),
            retry,
            pacing: !args.no_pacing,
            shared_limiter: args.shared_limiter.clone(),
            log_level: args.log_level.clone().unwrap_or_else(|| "info".to_string()),
        })
    }

    /// True when there is nothing real to talk to: no key and no base URL.
    pub fn wants_embedded_mock(&self) -> bool {
        self.api_key.is_none() && self.base_url.is_none()
    }
}
