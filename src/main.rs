//! The `backchat` binary: parse the command line, pick the surface, run it.

use clap::Parser;

use backchat::cli::{Cli, Command};
use backchat::config::Config;

fn main() {
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
        return backchat::mock::run_standalone(args.clone()).await;
    }
    let env = |name: &str| std::env::var(name).ok();
    let config = match Config::resolve(&cli.common, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("backchat: {e}");
            return backchat::headless::EXIT_USAGE;
        }
    };
    let mock = if cli.demo {
        Some(backchat::mock::MockConfig::tight_demo())
    } else if cli.mock {
        Some(backchat::mock::MockConfig::default())
    } else {
        None
    };
    match (&cli.command, &cli.print) {
        (Some(Command::Loadtest(_)), _) => {
            eprintln!("backchat: loadtest is not available yet");
            backchat::headless::EXIT_USAGE
        }
        (Some(Command::Config { .. }), _) => {
            eprintln!("backchat: config is not available yet");
            backchat::headless::EXIT_USAGE
        }
        (_, Some(prompt)) => {
            backchat::headless::run(prompt, cli.events.as_deref(), &config, mock).await
        }
        _ => backchat::tui::run(config, mock, cli.demo).await,
    }
}
