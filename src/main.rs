//! The `backchat` binary: parse the command line, pick the surface, run it.

use std::io::IsTerminal;

use clap::Parser;

use backchat::chat::SessionChoice;
use backchat::cli::{Cli, Command, ConfigAction, ExportArgs};
use backchat::config::{Config, ConfigFileArgs, SettingsArgs};

fn main() {
    // First of all, so that no panic message can show the key unfiltered.
    backchat::logging::install_panic_hook();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("backchat: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(run(cli));
    // Don't wait for background tasks (an embedded mock, a stalled stream) on the way out.
    runtime.shutdown_background();
    std::process::exit(code);
}

/// Reads a variable of the process's environment.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

async fn run(cli: Cli) -> i32 {
    match cli.command {
        // The mock reads neither the config file nor a log level: its flags are all it takes.
        Some(Command::Mock(args)) => backchat::mock::run_standalone(*args).await,
        Some(Command::Config(args)) => match args.action {
            // Without resolving: `config path` must work even when the file is broken.
            ConfigAction::Path(file) => print_config_path(&file),
            ConfigAction::Show(settings) => match resolve(&settings) {
                Ok(config) => {
                    print!("{}", config.show());
                    backchat::exit::OK
                }
                Err(code) => code,
            },
        },
        Some(Command::Proxy(args)) => {
            let settings = backchat::config::SettingsArgs {
                retry: args.retry.clone(),
                files: args.files.clone(),
                ..backchat::config::SettingsArgs::default()
            };
            let config = match resolve(&settings) {
                Ok(c) => c,
                Err(code) => return code,
            };
            start_logging(&config);
            let server =
                match backchat::proxy::start(&args, &config, env(backchat::proxy::TOKEN_ENV)).await
                {
                    Ok(s) => s,
                    Err(code) => return code,
                };
            // The full-screen view needs a terminal on both ends; otherwise, log lines.
            let terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
            if args.headless || !terminal {
                backchat::proxy::serve_headless(server).await
            } else {
                let banner = backchat::proxy::banner(&server);
                let theme = backchat::tui::theme::Theme::from_config(config.theme);
                backchat::tui::proxy_view::run(server, banner, theme).await
            }
        }
        Some(Command::Loadtest(args)) => {
            // The load test takes its target from its own flags; from the configuration only
            // the key (for a real endpoint) and the log file.
            let config = match resolve(&SettingsArgs::from_files(args.files.clone())) {
                Ok(c) => c,
                Err(code) => return code,
            };
            start(&config);
            backchat::loadtest::run(*args, config.api_key.clone()).await
        }
        Some(Command::Export(args)) => export(&args),
        None => chat(cli).await,
    }
}

/// `backchat export SESSION [-o FILE]`: the session as Markdown, to stdout or FILE. The
/// sessions directory comes from the environment and the config file, as for a chat.
fn export(args: &ExportArgs) -> i32 {
    let config = match resolve(&SettingsArgs::default()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let opened = backchat::chat::SessionStore::from_paths(&config.paths)
        .and_then(|store| store.open_existing(&args.session))
        .and_then(|mut s| s.load());
    let (conversation, report) = match opened {
        Ok(x) => x,
        Err(e) => {
            eprintln!("backchat: {}", backchat::secret::redact(&e.to_string()));
            return backchat::exit::USAGE;
        }
    };
    for line in report.lines(&args.session) {
        eprintln!("backchat: {line}");
    }
    let meta = backchat::chat::export::ExportMeta {
        session: args.session.clone(),
        date: report
            .header
            .as_ref()
            .map(|h| h.created.clone())
            .filter(|d| !d.is_empty()),
    };
    let text = backchat::chat::export::to_markdown(&conversation, &meta);
    let written = match &args.output {
        Some(path) if path != "-" => std::fs::write(path, text.as_bytes()),
        _ => std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes()),
    };
    match written {
        Ok(()) => backchat::exit::OK,
        Err(e) => {
            eprintln!("backchat: cannot write the export: {e}");
            backchat::exit::FAILED
        }
    }
}

/// The chat surfaces: the TUI, or headless with `-p`.
async fn chat(cli: Cli) -> i32 {
    let config = match resolve(&cli.settings) {
        Ok(c) => c,
        Err(code) => return code,
    };
    start(&config);
    // Continuing a broken reply continues the latest session unless one is named.
    let session = SessionChoice::from_flags(
        cli.session.session.as_deref(),
        cli.session.continue_last || cli.continue_reply,
    );
    let mock = if cli.demo {
        Some(backchat::mock::MockConfig::tight_demo())
    } else if cli.mock {
        Some(backchat::backend::embedded_mock_config(&config))
    } else {
        None
    };
    match &cli.print {
        Some(prompt) => {
            let session = (!cli.session.no_session).then_some(session);
            let input = if cli.continue_reply {
                if prompt != "-" {
                    eprintln!("backchat: --continue-reply takes no prompt");
                    return backchat::exit::USAGE;
                }
                backchat::headless::Input::ContinueReply
            } else {
                backchat::headless::Input::Prompt(prompt)
            };
            backchat::headless::run(
                input,
                cli.events.as_deref(),
                &config,
                mock,
                session.as_ref(),
            )
            .await
        }
        None => backchat::tui::run(config, mock, cli.demo, session).await,
    }
}

/// Resolve the configuration from these flags and the process's environment; register the
/// key for redaction and print the warnings. On a config error, print it and return exit
/// code 2.
fn resolve(settings: &SettingsArgs) -> Result<Config, i32> {
    let config = match Config::resolve(settings, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("backchat: {e}");
            return Err(backchat::exit::USAGE);
        }
    };
    if let Some(key) = &config.api_key {
        backchat::secret::register_secret(key);
    }
    for warning in &config.warnings {
        eprintln!("backchat: warning: {}", backchat::secret::redact(warning));
    }
    Ok(config)
}

/// Before a surface that talks to an API runs: the log file, and the test hook.
fn start(config: &Config) {
    start_logging(config);
    if cfg!(debug_assertions) && std::env::var("BACKCHAT_TEST_PANIC").as_deref() == Ok("1") {
        // Test hook (debug builds only): prove that a panic message holding the key is
        // redacted on its way out (tests/binary/key_leak.rs).
        let key = config.api_key.as_ref().map_or("(no key)", |k| k.expose());
        panic!("BACKCHAT_TEST_PANIC: deliberate panic; the key is {key}");
    }
}

/// `backchat config path`: the file that applies, whether or not it exists.
fn print_config_path(args: &ConfigFileArgs) -> i32 {
    if let Some(loc) = backchat::config::config_path(args, &env) {
        println!("{}", loc.path.display());
        if !loc.path.exists() {
            eprintln!(
                "backchat: (no file there yet; built-in defaults apply. \
                 assets/config.example.toml lists every key)"
            );
        }
        backchat::exit::OK
    } else {
        eprintln!(
            "backchat: config error: there is no home directory; set HOME or \
             XDG_CONFIG_HOME, or name a file with --config"
        );
        backchat::exit::USAGE
    }
}

/// The log file, in the XDG state directory; never the terminal. Without it, say so once.
fn start_logging(config: &Config) {
    match backchat::logging::init(&config.log_level, config.paths.log_file().as_deref()) {
        Ok(Some(path)) => tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            log = %path.display(),
            model = config.model.as_str(),
            base_url = %backchat::api::client::redact_url_password(config.base_url.as_deref().unwrap_or("-")),
            key = %config.api_key.as_ref().map_or_else(|| "none".to_string(), backchat::secret::ApiKey::redacted),
            key_source = %config.api_key_source.as_ref().map_or_else(String::new, std::string::ToString::to_string),
            "backchat started"
        ),
        Ok(None) => {}
        Err(e) => eprintln!("backchat: {e}; continuing without a log"),
    }
}
