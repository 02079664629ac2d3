//! `backchat proxy`'s flags: where it listens, where it forwards, who may use it, how it
//! shows what it does, and the retry and pacing group it shares with the chat.

use std::net::SocketAddr;

use crate::config::{FilesArgs, RetryArgs};

/// The default listening address: loopback, one port above the mock's.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8788";

/// The environment variable that may carry the proxy token instead of `--proxy-token` (a
/// flag's value shows in `ps`).
pub const TOKEN_ENV: &str = "BACKCHAT_PROXY_TOKEN";

/// Flags of `backchat proxy`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct ProxyArgs {
    /// Address to listen on. Anything but loopback needs --allow-remote and a proxy token.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN, help_heading = "Proxy")]
    pub listen: SocketAddr,
    /// Where to forward requests (may carry a path prefix). Default: the public API.
    #[arg(long, value_name = "URL", help_heading = "Proxy")]
    pub upstream: Option<String>,
    /// Allow listening on a non-loopback address (needs a proxy token).
    #[arg(long, help_heading = "Proxy")]
    pub allow_remote: bool,
    /// Token every client must send in `x-backchat-proxy-token` (or as
    /// `Proxy-Authorization: Bearer TOKEN`). Env: BACKCHAT_PROXY_TOKEN.
    #[arg(long, value_name = "TOKEN", help_heading = "Proxy")]
    pub proxy_token: Option<String>,
    /// Log one line per request and per wait on stderr instead of showing the TUI (the
    /// default when stdout or stderr is not a terminal).
    #[arg(long, help_heading = "Proxy")]
    pub headless: bool,
    /// `--max-retries`, `--max-wait`, `--deadline`, `--no-pacing`, `--shared-limiter`.
    #[command(flatten)]
    pub retry: RetryArgs,
    /// `--config`, `--log-level`.
    #[command(flatten)]
    pub files: FilesArgs,
}
