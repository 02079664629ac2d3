//! The command line (docs/architecture.md, the surfaces). Parsing only: `config` resolves the
//! settings flags with the environment and the config file into one `Config`.
//!
//! Each surface accepts only the flags it uses, so `--help` lists them and a flag that does
//! not apply is a usage error (exit 2), never a silent no-op:
//!
//! - the chat (the TUI, or headless with `-p`): its mode flags, [`SessionArgs`] and every
//!   settings group ([`SettingsArgs`]); these flags are refused next to a subcommand;
//! - `mock`: [`MockArgs`] alone (it reads neither the config file nor a log level);
//! - `loadtest`: [`LoadtestArgs`], which carry its own target flags and the files group;
//! - `proxy`: [`ProxyArgs`]: its listening flags, the retry and pacing group, the files group;
//! - `config path`: `--config` ([`ConfigFileArgs`]); `config show`: every settings group;
//! - `export`: [`ExportArgs`] (the session and `-o`).
//!
//! Every subcommand's arguments are boxed (`Command::X(Box<XArgs>)`) so that the enum stays
//! small whatever a surface's flags weigh.

use clap::{Args, Parser, Subcommand};

use crate::config::{ConfigFileArgs, SettingsArgs};
use crate::loadtest::LoadtestArgs;
use crate::mock::MockArgs;
use crate::proxy::ProxyArgs;

/// backchat: chat with Claude in the terminal, and see the rate limits at work.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "backchat",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to run; without one, the chat TUI (or headless with -p).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Headless: send one prompt, stream the reply to stdout and exit. The prompt is the
    /// argument; `-` or no argument reads it from stdin.
    #[arg(short = 'p', long = "print", value_name = "PROMPT", num_args = 0..=1, default_missing_value = "-")]
    pub print: Option<String>,

    /// With -p: continue the last reply of the session that broke off mid-stream, from its
    /// partial text, instead of asking again (the latest session unless --session names one).
    #[arg(long, requires = "print", conflicts_with = "no_session")]
    pub continue_reply: bool,

    /// With -p: write every turn event as JSON Lines to FILE (`-` for stderr).
    #[arg(long, value_name = "FILE", requires = "print")]
    pub events: Option<String>,

    /// Run against the embedded mock with tight limits, so that 429s, countdowns and pacing
    /// show within the first minute.
    #[arg(long, conflicts_with = "base_url")]
    pub demo: bool,

    /// Use the embedded mock API even if a key is set.
    #[arg(long, conflicts_with = "base_url")]
    pub mock: bool,

    /// The settings flags, resolved by `Config::resolve`.
    #[command(flatten)]
    pub settings: SettingsArgs,

    /// Which session to open.
    #[command(flatten)]
    pub session: SessionArgs,
}

/// `--session` and `--continue`: which saved conversation a chat opens. Not a setting (the
/// config never resolves it), so not part of [`SettingsArgs`].
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
#[command(next_help_heading = "Session")]
pub struct SessionArgs {
    /// Open (or create) the named session.
    #[arg(long, value_name = "NAME")]
    pub session: Option<String>,

    /// Resume the most recent session.
    #[arg(long = "continue", conflicts_with = "session")]
    pub continue_last: bool,

    /// With -p: save nothing (no session file is read or written).
    #[arg(long, requires = "print", conflicts_with_all = ["session", "continue_last"])]
    pub no_session: bool,
}

/// Subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Serve the mock Anthropic API on a local address.
    Mock(Box<MockArgs>),
    /// Run K simulated users against a quota under each retry policy and compare them.
    Loadtest(Box<LoadtestArgs>),
    /// Serve a local proxy that gives any Anthropic client backchat's retries, pacing and
    /// shared quota (set ANTHROPIC_BASE_URL to it).
    Proxy(Box<ProxyArgs>),
    /// Show where the config file is, or the effective configuration.
    Config(Box<ConfigArgs>),
    /// Write a saved session as Markdown (front matter, thinking folded in <details>).
    Export(Box<ExportArgs>),
}

/// `backchat export SESSION [-o FILE]`
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ExportArgs {
    /// The session's name (as `/sessions` lists it).
    #[arg(value_name = "SESSION")]
    pub session: String,

    /// Write to FILE instead of stdout (an existing file is replaced).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<String>,
}

/// `backchat config …`
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ConfigArgs {
    /// What to show.
    #[command(subcommand)]
    pub action: ConfigAction,
}

/// What `backchat config` shows, each with the flags it reads.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum ConfigAction {
    /// Print the config file's path.
    Path(ConfigFileArgs),
    /// Print the effective configuration and where each value came from (the key redacted).
    Show(Box<SettingsArgs>),
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

    #[test]
    fn each_surface_parses_into_its_own_groups() {
        let c = Cli::try_parse_from(["backchat", "--model", "m", "--max-retries", "0"])
            .expect("chat flags");
        assert_eq!(c.settings.conversation.model.as_deref(), Some("m"));
        assert_eq!(c.settings.retry.max_retries, Some(0));

        let c = Cli::try_parse_from(["backchat", "config", "show", "--max-wait", "5m"])
            .expect("config show takes every setting");
        let Some(Command::Config(args)) = c.command else {
            panic!("not config: {c:?}");
        };
        let ConfigAction::Show(settings) = args.action else {
            panic!("not show: {args:?}");
        };
        assert_eq!(
            settings.retry.max_wait,
            Some(std::time::Duration::from_mins(5))
        );
        assert_eq!(c.settings, SettingsArgs::default(), "nothing at the top");
    }

    #[test]
    fn proxy_takes_the_retry_group() {
        let c = Cli::try_parse_from([
            "backchat",
            "proxy",
            "--upstream",
            "http://u",
            "--max-retries",
            "3",
            "--no-pacing",
            "--headless",
        ])
        .expect("parses");
        let Some(Command::Proxy(args)) = c.command else {
            panic!("not proxy: {c:?}");
        };
        assert_eq!(args.upstream.as_deref(), Some("http://u"));
        assert_eq!(args.retry.max_retries, Some(3));
        assert!(args.retry.no_pacing && args.headless);
        assert_eq!(args.listen.to_string(), crate::proxy::DEFAULT_LISTEN);
    }

    #[test]
    fn flags_that_do_not_apply_are_usage_errors() {
        for argv in [
            &["backchat", "mock", "--session", "foo"][..],
            &["backchat", "loadtest", "--max-retries", "0"],
            &["backchat", "config", "path", "--model", "x"],
            &["backchat", "proxy", "--model", "x"],
            &["backchat", "proxy", "--base-url", "http://x"],
            &["backchat", "proxy", "--session", "s"],
            &["backchat", "mock", "--upstream", "http://x"],
            &["backchat", "--model", "x", "mock"],
            &["backchat", "--events", "-"],
            &["backchat", "--demo", "--base-url", "http://x"],
        ] {
            let e = Cli::try_parse_from(argv).expect_err("refused");
            assert_eq!(e.exit_code(), 2, "{argv:?}: {e}");
        }
    }
}
