//! The `backchat` binary: parse the command line, pick the surface, run it.

use clap::Parser;

use backchat::chat::SessionChoice;
use backchat::cli::{Cli, Command, ConfigAction};
use backchat::config::Config;

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

async fn run(cli: Cli) -> i32 {
    if let Some(Command::Mock(args)) = &cli.command {
        return backchat::mock::run_standalone((**args).clone()).await;
    }
    let env = |name: &str| std::env::var(name).ok();
    if let Some(Command::Config {
        action: ConfigAction::Path,
    }) = &cli.command
    {
        // Before resolving: `config path` must work even when the file is broken.
        return print_config_path(&cli, &env);
    }
    let config = match Config::resolve(&cli.common, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("backchat: {e}");
            return backchat::exit::USAGE;
        }
    };
    if let Some(key) = &config.api_key {
        backchat::secret::register_secret(key);
    }
    for warning in &config.warnings {
        eprintln!("backchat: warning: {}", backchat::secret::redact(warning));
    }
    if let Some(Command::Config { .. }) = &cli.command {
        print!("{}", config.show());
        return backchat::exit::OK;
    }
    start_logging(&config);
    if cfg!(debug_assertions) && std::env::var("BACKCHAT_TEST_PANIC").as_deref() == Ok("1") {
        // Test hook (debug builds only): prove that a panic message holding the key is
        // redacted on its way out (tests/key_leak.rs).
        let key = config.api_key.as_ref().map_or("(no key)", |k| k.expose());
        panic!("BACKCHAT_TEST_PANIC: deliberate panic; the key is {key}");
    }
    let session =
        SessionChoice::from_flags(cli.common.session.as_deref(), cli.common.continue_last);
    let mock = if cli.demo {
        Some(backchat::mock::MockConfig::tight_demo())
    } else if cli.mock {
        Some(backchat::backend::embedded_mock_config(&config))
    } else {
        None
    };
    match (&cli.command, &cli.print) {
        (Some(Command::Loadtest(args)), _) => {
            let mut args = args.clone();
            // Only an explicit --base-url points the load test at a real endpoint (never the
            // environment); the key comes from wherever the config found it.
            args.base_url.clone_from(&cli.common.base_url);
            args.api_key.clone_from(&config.api_key);
            args.shared_limiter.clone_from(&cli.common.shared_limiter);
            args.model.clone_from(&cli.common.model);
            backchat::loadtest::run(args).await
        }
        (_, Some(prompt)) => {
            backchat::headless::run(prompt, cli.events.as_deref(), &config, mock, &session).await
        }
        _ => backchat::tui::run(config, mock, cli.demo, session).await,
    }
}

/// `backchat config path`: the file that applies, whether or not it exists.
fn print_config_path(cli: &Cli, env: &dyn Fn(&str) -> Option<String>) -> i32 {
    match backchat::config::config_path(&cli.common, env) {
        Some(loc) => {
            println!("{}", loc.path.display());
            if !loc.path.exists() {
                eprintln!(
                    "backchat: (no file there yet; built-in defaults apply. \
                     assets/config.example.toml lists every key)"
                );
            }
            backchat::exit::OK
        }
        None => {
            eprintln!(
                "backchat: config error: there is no home directory; set HOME or \
                 XDG_CONFIG_HOME, or name a file with --config"
            );
            backchat::exit::USAGE
        }
    }
}

/// The log file, in the XDG state directory; never the terminal. Without it, say so once.
fn start_logging(config: &Config) {
    match backchat::logging::init(&config.log_level, config.paths.log_file().as_deref()) {
        Ok(Some(path)) => tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            log = %path.display(),
            model = config.model.as_str(),
            base_url = config.base_url.as_deref().unwrap_or("-"),
            key = %config.api_key.as_ref().map_or_else(|| "none".to_string(), |k| k.redacted()),
            key_source = %config.api_key_source.as_ref().map_or_else(String::new, |s| s.to_string()),
            "backchat started"
        ),
        Ok(None) => {}
        Err(e) => eprintln!("backchat: {e}; continuing without a log"),
    }
}
