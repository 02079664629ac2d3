//! The settings flags that [`Config::resolve`](super::Config::resolve) reads, in groups. A
//! surface flattens the groups it uses into its own arguments, so its `--help` lists those
//! and nothing else, and a flag it does not use is a usage error. The groups live here, not
//! in `cli`, so that the configuration depends on no command line's shape: `cli` composes
//! them, `config` resolves them.
//!
//! Each group carries its `--help` heading. Values are checked when they are resolved (with
//! the env and file values, and messages naming the flag), not by the parser, except for
//! durations.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// `--config`: which config file applies (`backchat config path` needs only this).
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
#[command(next_help_heading = "Files")]
pub struct ConfigFileArgs {
    /// Config file to use instead of the default one. Env: BACKCHAT_CONFIG.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `--config` and `--log-level`: the files a run reads its settings from and logs to.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
#[command(next_help_heading = "Files")]
pub struct FilesArgs {
    /// The config file.
    #[command(flatten)]
    pub config_file: ConfigFileArgs,

    /// Log level for the log file (off, error, warn, info, debug, trace). Env:
    /// BACKCHAT_LOG_LEVEL.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

/// `--base-url`: where the API is.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionArgs {
    /// API base URL (may carry a path prefix). Env: ANTHROPIC_BASE_URL.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,

    /// Time allowed for the server to start answering a request (e.g. `60s`, default 60s).
    #[arg(long, value_name = "DURATION", value_parser = crate::clock::parse_duration)]
    pub header_timeout: Option<Duration>,
}

/// `--raw`: how server text reaches a terminal.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Print the reply's bytes as sent even on a terminal. By default, control characters
    /// and escape sequences (which could set the title, write the clipboard or clear the
    /// screen) are neutralised when stdout is a terminal; a pipe or a file always gets the
    /// bytes as sent.
    #[arg(long)]
    pub raw: bool,
}

/// How a turn waits: retries, their limits, and pacing (local or shared through Redis).
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
#[command(next_help_heading = "Retries and pacing")]
pub struct RetryArgs {
    /// Retries after the first attempt. Env: BACKCHAT_MAX_RETRIES.
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,

    /// Longest single wait to sleep without giving up (e.g. `120`, `90s`, `5m`). Env:
    /// BACKCHAT_MAX_WAIT.
    #[arg(long, value_name = "DURATION", value_parser = crate::clock::parse_duration)]
    pub max_wait: Option<Duration>,

    /// Time allowed for a turn to get its reply started (e.g. `15m`).
    #[arg(long, value_name = "DURATION", value_parser = crate::clock::parse_duration)]
    pub deadline: Option<Duration>,

    /// Do not pace requests from the rate-limit headers (retries still happen).
    #[arg(long)]
    pub no_pacing: bool,

    /// Share one key's quota with other backchat processes through Redis
    /// (`redis://HOST:PORT/DB`, `rediss://` for TLS, or a cluster's nodes separated by
    /// commas). Env: BACKCHAT_SHARED_LIMITER.
    #[arg(long, value_name = "URL")]
    pub shared_limiter: Option<String>,

    /// A PEM file of CA certificates to trust for `rediss://`, besides the system's.
    /// Env: BACKCHAT_SHARED_LIMITER_CA.
    #[arg(long, value_name = "PATH")]
    pub shared_limiter_ca: Option<PathBuf>,
}

/// What each request asks for: the model, the system prompt, the reply's size and thinking.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
#[command(next_help_heading = "Conversation")]
pub struct ConversationArgs {
    /// Model id or alias. Env: BACKCHAT_MODEL.
    #[arg(long)]
    pub model: Option<String>,

    /// System prompt. Env: BACKCHAT_SYSTEM.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,

    /// Upper bound on generated tokens. Env: BACKCHAT_MAX_TOKENS.
    #[arg(long, value_name = "TOKENS")]
    pub max_tokens: Option<u32>,

    /// Turn on extended thinking with this token budget.
    #[arg(long, value_name = "TOKENS")]
    pub thinking: Option<u32>,

    /// Prompt caching: auto, breakpoints (explicit markers) or off. Env: BACKCHAT_CACHE
    #[arg(long, value_name = "MODE")]
    pub cache: Option<String>,

    /// How long cache entries live: 5m or 1h. Env: BACKCHAT_CACHE_TTL
    #[arg(long, value_name = "TTL")]
    pub cache_ttl: Option<String>,
}

/// Every settings flag: the input of [`Config::resolve`](super::Config::resolve). The chat
/// surfaces and `backchat config show` flatten all of it; a surface that uses fewer settings
/// flattens fewer groups and resolves with the others left unset (see
/// [`SettingsArgs::from_files`]).
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsArgs {
    /// `--model`, `--system`, `--max-tokens`, `--thinking`, `--cache`, `--cache-ttl`.
    #[command(flatten)]
    pub conversation: ConversationArgs,
    /// `--base-url`, `--header-timeout`.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// `--max-retries`, `--max-wait`, `--deadline`, `--no-pacing`, `--shared-limiter`.
    #[command(flatten)]
    pub retry: RetryArgs,
    /// `--config`, `--log-level`.
    #[command(flatten)]
    pub files: FilesArgs,
    /// `--raw`.
    #[command(flatten)]
    pub output: OutputArgs,
}

impl SettingsArgs {
    /// Only the files flags set: for a surface that takes its other settings from the
    /// environment and the config file alone (the load test's key and log level).
    pub fn from_files(files: FilesArgs) -> SettingsArgs {
        SettingsArgs {
            files,
            ..SettingsArgs::default()
        }
    }
}
