//! The command line (DESIGN.md, "Surfaces"). Parsing only: `config.rs` resolves these flags
//! with the environment and the config file into one `Config`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// backchat: chat with Claude in the terminal, and see the rate limits at work.
#[derive(Parser, Debug, Clone)]
#[command(name = "backchat", version, about, long_about = None)]
pub struct Cli {
    /// What to run; without one, the chat TUI (or headless with -p).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Headless: send one prompt, stream the reply to stdout and exit. The prompt is the
    /// argument; `-` or no argument reads it from stdin.
    #[arg(short = 'p', long = "print", value_name = "PROMPT", num_args = 0..=1, default_missing_value = "-")]
    pub print: Option<String>,

    /// Write every turn event as JSON Lines to FILE (`-` for stderr).
    #[arg(long, value_name = "FILE")]
    pub events: Option<String>,

    /// Run the TUI against the embedded mock with tight limits, so that 429s, countdowns
    /// and pacing show within the first minute.
    #[arg(long)]
    pub demo: bool,

    /// Use the embedded mock API even if a key is set.
    #[arg(long, conflicts_with = "base_url")]
    pub mock: bool,

    /// Common options shared with the config file.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Options that can also come from the environment or the config file.
#[derive(Args, Debug, Clone, Default)]
pub struct CommonArgs {
    /// Model id or alias.
    #[arg(long, global = true)]
    pub model: Option<String>,

    /// System prompt.
    #[arg(long, global = true)]
    pub system: Option<String>,

    /// Upper bound on generated tokens.
    #[arg(long, global = true)]
    pub max_tokens: Option<u32>,

    /// Turn on extended thinking with this token budget.
    #[arg(long, value_name = "TOKENS", global = true)]
    pub thinking: Option<u32>,

    /// API base URL (may carry a path prefix). Env: ANTHROPIC_BASE_URL.
    #[arg(long, global = true)]
    pub base_url: Option<String>,

    /// Retries after the first attempt.
    #[arg(long, global = true)]
    pub max_retries: Option<u32>,

    /// Longest single wait to sleep without giving up (e.g. `120`, `90s`, `5m`).
    #[arg(long, value_parser = crate::clock::parse_duration, global = true)]
    pub max_wait: Option<Duration>,

    /// Time allowed for a turn to get its reply started (e.g. `15m`).
    #[arg(long, value_parser = crate::clock::parse_duration, global = true)]
    pub deadline: Option<Duration>,

    /// Do not pace requests from the rate-limit headers (retries still happen).
    #[arg(long, global = true)]
    pub no_pacing: bool,

    /// Share one key's quota with other backchat processes through Redis
    /// (`redis://HOST:PORT/DB`).
    #[arg(long, value_name = "URL", global = true)]
    pub shared_limiter: Option<String>,

    /// Config file to use instead of the default one.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Open (or create) the named session.
    #[arg(long, value_name = "NAME", global = true)]
    pub session: Option<String>,

    /// Resume the most recent session.
    #[arg(long = "continue", global = true, conflicts_with = "session")]
    pub continue_last: bool,

    /// Log level for the log file (error, warn, info, debug, trace).
    #[arg(long, value_name = "LEVEL", global = true)]
    pub log_level: Option<String>,
}

/// Subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Serve the mock Anthropic API on a local address.
    Mock(Box<crate::mock::MockArgs>),
    /// Run K simulated users against a quota under each retry policy and compare them.
    Loadtest(crate::loadtest::LoadtestArgs),
    /// Show where the config file is, or the effective configuration.
    Config {
        /// What to show.
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// `backchat config …`
#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigAction {
    /// Print the config file's path.
    Path,
    /// Print the effective configuration and where each value came from (the key redacted).
    Show,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn print_takes_an_optional_prompt() {
        let c = Cli::try_parse_from(["backchat", "-p", "hello"]).expect("parses");
        assert_eq!(c.print.as_deref(), Some("hello"));
        let c = Cli::try_parse_from(["backchat", "-p"]).expect("parses");
        assert_eq!(c.print.as_deref(), Some("-"));
        let c = Cli::try_parse_from(["backchat"]).expect("parses");
        assert_eq!(c.print, None);
    }
}
