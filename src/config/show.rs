//! `backchat config show`: the effective configuration as TOML-like lines, each with the
//! place its value came from. The key is shown redacted, never in full.

use super::{Config, secs_text};

pub(super) fn render(c: &Config) -> String {
    let mut out = String::new();
    match &c.config_file {
        Some(p) if c.config_file_loaded => {
            out.push_str(&format!("# config file: {}\n", p.display()));
        }
        Some(p) => out.push_str(&format!(
            "# config file: {} (not found; built-in defaults apply)\n",
            p.display()
        )),
        None => out.push_str("# config file: none (no home directory)\n"),
    }
    if let Some(d) = c.paths.sessions_dir() {
        out.push_str(&format!("# sessions: {}\n", d.display()));
    }
    if let Some(f) = c.paths.log_file() {
        out.push_str(&format!("# log file: {}\n", f.display()));
    }
    out.push('\n');

    let quoted = |s: &str| format!("{s:?}");
    let opt = |s: &Option<String>| s.as_deref().map(quoted);
    let mut rows: Vec<(String, Option<String>, String)> = Vec::new();
    let mut row = |key: &'static str, shown: &'static str, value: Option<String>| {
        rows.push((shown.to_string(), value, c.source(key).to_string()));
    };
    row("model", "model", Some(quoted(&c.model)));
    row("max_tokens", "max_tokens", Some(c.max_tokens.to_string()));
    row("system", "system", opt(&c.system));
    row(
        "thinking",
        "thinking",
        c.thinking_budget.map(|b| b.to_string()),
    );
    row("cache", "cache", Some(quoted(c.cache.as_str())));
    row("cache_ttl", "cache_ttl", Some(quoted(c.cache_ttl.as_str())));
    // A password in the URL is never shown.
    let base_url = c
        .base_url
        .as_deref()
        .map(|u| crate::api::client::redact_url_password(u).into_owned());
    row("base_url", "base_url", opt(&base_url));
    // The redacted form is not a valid key, so it is left unquoted: pasting this output into a
    // config file must not look like it carries a key.
    row(
        "api_key",
        "api_key",
        c.api_key
            .as_ref()
            .map(super::super::secret::ApiKey::redacted),
    );
    row("theme", "theme", Some(quoted(c.theme.as_str())));
    row("pacing", "pacing", Some(c.pacing.to_string()));
    // A Redis URL may carry a password: show it without credentials.
    let limiter = c
        .shared_limiter
        .as_deref()
        .map(|u| quoted(&crate::limiter::redis::display_target(u)));
    row("shared_limiter", "shared_limiter", limiter);
    row(
        "shared_limiter_ca",
        "shared_limiter_ca",
        c.shared_limiter_ca
            .as_deref()
            .map(|p| quoted(&p.display().to_string())),
    );
    row("log_level", "log_level", Some(quoted(&c.log_level)));
    let top = std::mem::take(&mut rows);

    let mut row = |key: &'static str, shown: &'static str, value: Option<String>| {
        rows.push((shown.to_string(), value, c.source(key).to_string()));
    };
    row(
        "retry.max_retries",
        "max_retries",
        Some(c.retry.max_retries.to_string()),
    );
    row(
        "retry.max_wait",
        "max_wait",
        Some(secs_text(c.retry.max_wait)),
    );
    row(
        "retry.deadline",
        "deadline",
        Some(secs_text(c.retry.deadline)),
    );
    let retry = std::mem::take(&mut rows);

    let mut row = |key: &'static str, shown: &'static str, value: Option<String>| {
        rows.push((shown.to_string(), value, c.source(key).to_string()));
    };
    row("mock.rpm", "rpm", c.mock.rpm.map(|v| v.to_string()));
    row("mock.itpm", "itpm", c.mock.itpm.map(|v| v.to_string()));
    row("mock.otpm", "otpm", c.mock.otpm.map(|v| v.to_string()));
    row(
        "mock.token_rate",
        "token_rate",
        c.mock.token_rate.map(|v| v.to_string()),
    );
    let mock = rows;

    let all = top.iter().chain(&retry).chain(&mock);
    let width = all
        .map(|(k, v, _)| match v {
            Some(v) => k.len() + 3 + v.chars().count(),
            None => k.len() + 2 + "(not set)".len(),
        })
        .max()
        .unwrap_or(0);
    let table = |out: &mut String, rows: &[(String, Option<String>, String)]| {
        for (k, v, src) in rows {
            let left = match v {
                Some(v) => format!("{k} = {v}"),
                None => format!("# {k} (not set)"),
            };
            let pad = width.saturating_sub(left.chars().count());
            out.push_str(&format!("{left}{}  # {src}\n", " ".repeat(pad)));
        }
    };
    table(&mut out, &top);
    out.push_str("\n[retry]\n");
    table(&mut out, &retry);
    out.push_str("\n[mock]\n");
    table(&mut out, &mock);
    // Defensive: the key has no Display, but scrub anything registered anyway.
    crate::secret::redact(&out)
}
