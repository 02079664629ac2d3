//! The `backchat proxy` command: build the [`ProxyConfig`] from the flags and the resolved
//! configuration, say where it listens (and who may use it), then log every request until
//! Ctrl+C. In a terminal, `main` hands the started server to the TUI's proxy view instead.

use super::args::ProxyArgs;
use super::events::log_to_stderr;
use super::server::{ProxyConfig, ProxyServer, TOKEN_HEADER};
use crate::api::client::DEFAULT_BASE_URL;
use crate::config::Config;

/// Build the proxy's settings: `--upstream` (else the public API; never `ANTHROPIC_BASE_URL`,
/// which in a shell set up for the proxy points at the proxy itself), the retry and pacing
/// settings resolved like the chat's, and the token from the flag or `token_env`.
pub fn proxy_config(args: &ProxyArgs, config: &Config, token_env: Option<String>) -> ProxyConfig {
    ProxyConfig {
        listen: args.listen,
        retry: config.retry.clone(),
        pacing: config.pacing,
        shared_limiter: config.shared_limiter.clone(),
        allow_remote: args.allow_remote,
        token: args
            .proxy_token
            .clone()
            .or(token_env)
            .filter(|t| !t.is_empty()),
        ..ProxyConfig::new(
            args.upstream
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_string()),
        )
    }
}

/// Start the proxy `args` describe and say where it listens (and who may use it) on stderr;
/// on failure, print why and return the exit code.
pub async fn start(
    args: &ProxyArgs,
    config: &Config,
    token_env: Option<String>,
) -> Result<ProxyServer, i32> {
    let proxy_config = proxy_config(args, config, token_env);
    if let Some(t) = &proxy_config.token
        && let Some(k) = crate::secret::ApiKey::new(t.clone())
    {
        crate::secret::register_secret(&k);
    }
    let server = match ProxyServer::start(proxy_config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("backchat proxy: {e}");
            return Err(crate::exit::USAGE);
        }
    };
    let c = server.config();
    eprintln!("{}", banner(&server));
    if c.listen.ip().is_loopback() {
        eprintln!(
            "Loopback only. Point clients at it: export ANTHROPIC_BASE_URL={}",
            server.base_url()
        );
    } else {
        eprintln!(
            "WARNING: listening on {} (not loopback): every client must send the proxy token in \
             the {TOKEN_HEADER} header; requests without it get 401.",
            c.listen
        );
    }
    eprintln!(
        "Metrics: {}/metrics. Press Ctrl+C to stop.",
        server.base_url()
    );
    Ok(server)
}

/// One line: where the proxy listens, where it forwards, how it paces and retries.
pub fn banner(server: &ProxyServer) -> String {
    let c = server.config();
    let pacing = match (&c.pacing, &c.shared_limiter) {
        (false, _) => "pacing off".to_string(),
        (true, Some(url)) => format!("quota shared through {}", crate::secret::redact(url)),
        (true, None) => "pacing in this process".to_string(),
    };
    format!(
        "backchat proxy listening on {} -> {} ({pacing}; up to {} retries, --max-wait {})",
        server.base_url(),
        c.upstream,
        c.retry.max_retries,
        crate::clock::human_duration(c.retry.max_wait)
    )
}

/// Log one line per request and per wait on stderr until Ctrl+C, then stop. The exit code.
pub async fn serve_headless(server: ProxyServer) -> i32 {
    let log = tokio::spawn(log_to_stderr(server.subscribe()));
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("backchat proxy: cannot wait for Ctrl+C ({e}); stopping");
    }
    server.shutdown().await;
    log.abort();
    eprintln!("backchat proxy stopped");
    crate::exit::OK
}

/// `backchat proxy --headless`: start, then log until Ctrl+C. The exit code.
pub async fn run(args: ProxyArgs, config: &Config, token_env: Option<String>) -> i32 {
    match start(&args, config, token_env).await {
        Ok(server) => serve_headless(server).await,
        Err(code) => code,
    }
}
