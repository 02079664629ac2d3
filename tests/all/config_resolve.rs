//! Config resolution through the library: flag > env > file > default at every level, every
//! kind of bad value named by key, file and line, and the key from `api_key_cmd`.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::home::{Home, set_mode};
use backchat::cli::Cli;
use backchat::config::{Config, ConfigError, SettingsArgs, Source, Theme};
use clap::Parser;

/// The settings flags as the chat surface parses them.
fn args(flags: &[&str]) -> SettingsArgs {
    let mut argv = vec!["backchat"];
    argv.extend_from_slice(flags);
    Cli::try_parse_from(argv).expect("flags parse").settings
}

/// Resolve in `home` with these flags and extra environment variables.
fn resolve(home: &Home, flags: &[&str], vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let base = home.env();
    let extra: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env = move |k: &str| extra.get(k).cloned().or_else(|| base(k));
    Config::resolve(&args(flags), &env)
}

fn file_source(home: &Home, line: usize) -> Source {
    Source::File {
        path: home.config_file(),
        line,
    }
}

#[test]
fn defaults_apply_without_a_file() {
    let home = Home::new();
    let c = resolve(&home, &[], &[]).expect("no file is fine");
    assert_eq!(c.model, backchat::config::DEFAULT_MODEL);
    assert_eq!(c.max_tokens, 4096);
    assert_eq!(c.log_level, "info");
    assert_eq!(c.theme, Theme::Dark);
    assert!(c.pacing);
    assert!(c.api_key.is_none() && c.wants_embedded_mock());
    assert!(!c.config_file_loaded);
    assert_eq!(c.config_file, Some(home.config_file()));
    assert_eq!(c.source("model"), Source::Default);
    assert!(c.warnings.is_empty());
    assert_eq!(
        c.paths.sessions_dir(),
        Some(home.root().join("data/backchat/sessions"))
    );
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let home = Home::new();
    home.write_config(
        r#"model = "file-model"
max_tokens = 1000
system = "file system"
log_level = "debug"
base_url = "http://file.example"
shared_limiter = "redis://file:6379"
thinking = 2048
theme = "light"
pacing = false

[retry]
max_retries = 3
max_wait = "90s"
deadline = "10m"

[mock]
rpm = 5
itpm = 1000
otpm = 500
token_rate = 12.5
"#,
    );
    // File over default.
    let c = resolve(&home, &[], &[]).expect("valid");
    assert_eq!(c.model, "file-model");
    assert_eq!(c.source("model"), file_source(&home, 1));
    assert_eq!(c.max_tokens, 1000);
    assert_eq!(c.system.as_deref(), Some("file system"));
    assert_eq!(c.log_level, "debug");
    assert_eq!(c.base_url.as_deref(), Some("http://file.example"));
    assert_eq!(c.shared_limiter.as_deref(), Some("redis://file:6379"));
    assert_eq!(c.thinking_budget, Some(2048));
    assert_eq!(c.theme, Theme::Light);
    assert!(!c.pacing);
    assert_eq!(c.retry.max_retries, 3);
    assert_eq!(c.source("retry.max_retries"), file_source(&home, 12));
    assert_eq!(c.retry.max_wait, Duration::from_secs(90));
    assert_eq!(c.retry.deadline, Duration::from_mins(10));
    assert_eq!(c.mock.rpm, Some(5));
    assert_eq!(c.mock.itpm, Some(1000));
    assert_eq!(c.mock.otpm, Some(500));
    assert_eq!(c.mock.token_rate, Some(12.5));
    assert_eq!(c.source("mock.token_rate"), file_source(&home, 20));
    assert!(c.config_file_loaded);

    // Env over file.
    let env = [
        ("BACKCHAT_MODEL", "env-model"),
        ("BACKCHAT_MAX_TOKENS", "2000"),
        ("BACKCHAT_SYSTEM", "env system"),
        ("BACKCHAT_LOG_LEVEL", "WARN"),
        ("ANTHROPIC_BASE_URL", "https://env.example"),
        ("BACKCHAT_SHARED_LIMITER", "redis://env:6380/1"),
        ("BACKCHAT_MAX_RETRIES", "4"),
        ("BACKCHAT_MAX_WAIT", "2m"),
        ("NO_COLOR", "1"),
    ];
    let c = resolve(&home, &[], &env).expect("valid");
    assert_eq!(c.model, "env-model");
    assert_eq!(c.source("model"), Source::Env("BACKCHAT_MODEL"));
    assert_eq!(c.max_tokens, 2000);
    assert_eq!(c.system.as_deref(), Some("env system"));
    assert_eq!(c.log_level, "warn");
    assert_eq!(c.base_url.as_deref(), Some("https://env.example"));
    assert_eq!(c.shared_limiter.as_deref(), Some("redis://env:6380/1"));
    assert_eq!(c.retry.max_retries, 4);
    assert_eq!(c.retry.max_wait, Duration::from_mins(2));
    assert_eq!(c.source("retry.max_wait"), Source::Env("BACKCHAT_MAX_WAIT"));
    assert_eq!(c.theme, Theme::NoColor);
    assert_eq!(c.source("theme"), Source::Env("NO_COLOR"));

    // Flags over env.
    let flags = [
        "--model",
        "flag-model",
        "--max-tokens",
        "3000",
        "--system",
        "flag system",
        "--log-level",
        "trace",
        "--base-url",
        "http://127.0.0.1:9",
        "--shared-limiter",
        "redis://flag:1",
        "--max-retries",
        "0",
        "--max-wait",
        "5s",
        "--deadline",
        "30s",
        "--thinking",
        "4096",
    ];
    let c = resolve(&home, &flags, &env).expect("valid");
    assert_eq!(c.model, "flag-model");
    assert_eq!(c.source("model"), Source::Flag("--model"));
    assert_eq!(c.max_tokens, 3000);
    assert_eq!(c.system.as_deref(), Some("flag system"));
    assert_eq!(c.log_level, "trace");
    assert_eq!(c.base_url.as_deref(), Some("http://127.0.0.1:9"));
    assert_eq!(c.shared_limiter.as_deref(), Some("redis://flag:1"));
    assert_eq!(c.retry.max_retries, 0);
    assert_eq!(c.retry.max_wait, Duration::from_secs(5));
    assert_eq!(c.retry.deadline, Duration::from_secs(30));
    assert_eq!(c.thinking_budget, Some(4096));
    assert_eq!(c.source("thinking"), Source::Flag("--thinking"));
}

#[test]
fn pacing_flag_and_empty_env_values() {
    let home = Home::new();
    home.write_config("pacing = true\n");
    let c = resolve(&home, &["--no-pacing"], &[]).expect("valid");
    assert!(!c.pacing);
    assert_eq!(c.source("pacing"), Source::Flag("--no-pacing"));
    // An empty variable counts as unset.
    let c = resolve(
        &home,
        &[],
        &[("BACKCHAT_MODEL", ""), ("ANTHROPIC_BASE_URL", "")],
    )
    .expect("valid");
    assert_eq!(c.source("model"), Source::Default);
    assert!(c.base_url.is_none());
}

#[test]
fn the_config_file_can_be_named() {
    let home = Home::new();
    let other = home.root().join("elsewhere.toml");
    std::fs::write(&other, "model = \"named\"\n").expect("write");
    let c = resolve(&home, &["--config", other.to_str().expect("utf-8")], &[]).expect("valid");
    assert_eq!(c.model, "named");
    let c = resolve(
        &home,
        &[],
        &[("BACKCHAT_CONFIG", other.to_str().expect("utf-8"))],
    )
    .expect("valid");
    assert_eq!(c.model, "named");
    assert_eq!(c.config_file, Some(other.clone()));

    let missing = home.root().join("missing.toml");
    let e = resolve(&home, &["--config", missing.to_str().expect("utf-8")], &[])
        .expect_err("an explicit file must exist");
    assert_eq!(
        e.to_string(),
        format!(
            "config error in {}: the file does not exist (named by flag --config)",
            missing.display()
        )
    );
    let e = resolve(
        &home,
        &[],
        &[("BACKCHAT_CONFIG", missing.to_str().expect("utf-8"))],
    )
    .expect_err("an explicit file must exist");
    assert!(
        e.to_string().contains("named by env BACKCHAT_CONFIG"),
        "{e}"
    );
}

/// The error for a config file holding `text`.
fn file_error(text: &str) -> (Home, ConfigError) {
    let home = Home::new();
    home.write_config(text);
    let e = resolve(&home, &[], &[]).expect_err("should be refused");
    (home, e)
}

fn assert_names(text: &str, line: usize, key: &str, says: &str) {
    let (home, e) = file_error(text);
    let shown = e.to_string();
    let path = home.config_file();
    assert!(
        shown.starts_with(&format!("config error in {} line {line}: ", path.display())),
        "{shown}"
    );
    assert!(shown.contains(key), "names {key}: {shown}");
    assert!(shown.contains(says), "says {says:?}: {shown}");
    match e {
        ConfigError::File {
            path: p, line: l, ..
        } => {
            assert_eq!((p, l), (path, line));
        }
        other => panic!("not a file error: {other:?}"),
    }
}

#[test]
fn every_kind_of_bad_value_names_key_file_and_line() {
    assert_names(
        "model = \"m\"\nmodle = \"x\"\n",
        2,
        "unknown key \"modle\"",
        "did you mean \"model\"?",
    );
    assert_names("\n\ncolour = 1\n", 3, "\"colour\"", "known keys:");
    assert_names("model = 5\n", 1, "model", "must be a string, got 5");
    assert_names(
        "max_tokens = \"lots\"\n",
        1,
        "max_tokens",
        "must be a positive integer, got \"lots\"",
    );
    assert_names("max_tokens = -5\n", 1, "max_tokens", "got -5");
    assert_names(
        "max_tokens = 0\n",
        1,
        "max_tokens",
        "positive integer, got 0",
    );
    assert_names("max_tokens = 1.5\n", 1, "max_tokens", "got 1.5");
    assert_names("thinking = 100\n", 1, "thinking", "at least 1024");
    assert_names("pacing = \"yes\"\n", 1, "pacing", "true or false");
    assert_names(
        "[retry]\nmax_wait = \"soon\"\n",
        2,
        "retry.max_wait",
        "must be a duration",
    );
    assert_names("[retry]\nmax_wait = -3\n", 2, "retry.max_wait", "got -3");
    assert_names(
        "[retry]\ndeadline = 0\n",
        2,
        "retry.deadline",
        "longer than zero",
    );
    assert_names(
        "[retry]\nmax_retries = -1\n",
        2,
        "retry.max_retries",
        "got -1",
    );
    assert_names(
        "[retry]\nmax_retrys = 1\n",
        2,
        "retry.max_retrys",
        "did you mean \"retry.max_retries\"?",
    );
    assert_names(
        "base_url = \"ftp://example.com\"\n",
        1,
        "base_url",
        "http:// or https://",
    );
    assert_names(
        "base_url = \"example.com\"\n",
        1,
        "base_url",
        "got \"example.com\"",
    );
    assert_names(
        "shared_limiter = \"http://redis:6379\"\n",
        1,
        "shared_limiter",
        "redis://",
    );
    assert_names(
        "theme = \"neon\"\n",
        1,
        "theme",
        "one of \"dark\", \"light\", \"no-color\", got \"neon\"",
    );
    assert_names(
        "log_level = \"loud\"\n",
        1,
        "log_level",
        "one of off, error",
    );
    assert_names("[mock]\nrpm = 0\n", 2, "mock.rpm", "positive integer");
    assert_names(
        "[mock]\ntoken_rate = \"fast\"\n",
        2,
        "mock.token_rate",
        "positive number",
    );
    assert_names("retry = 3\n", 1, "retry", "must be a table");
    assert_names(
        "model = \"ok\"\nmax_tokens = = 3\n",
        2,
        "not valid TOML",
        "",
    );
    assert_names("model = \"a\"\nmodel = \"b\"\n", 2, "not valid TOML", "");
}

#[test]
fn a_file_that_is_not_utf8_is_an_error_with_its_line() {
    let home = Home::new();
    let p = home.write_config("model = \"m\"\n");
    std::fs::write(&p, b"model = \"m\"\nsystem = \"\xff\"\n").expect("write");
    let e = resolve(&home, &[], &[]).expect_err("refused");
    assert!(
        e.to_string()
            .contains("line 2: the file is not valid UTF-8"),
        "{e}"
    );
}

#[test]
fn bad_env_values_name_the_variable() {
    let home = Home::new();
    for (var, value, says) in [
        (
            "BACKCHAT_MAX_TOKENS",
            "lots",
            "max_tokens must be a positive integer, got \"lots\"",
        ),
        ("BACKCHAT_MAX_TOKENS", "0", "got \"0\""),
        ("BACKCHAT_MAX_RETRIES", "-2", "retry.max_retries"),
        (
            "BACKCHAT_MAX_WAIT",
            "forever",
            "retry.max_wait must be a duration",
        ),
        ("BACKCHAT_LOG_LEVEL", "chatty", "log_level must be one of"),
        (
            "ANTHROPIC_BASE_URL",
            "localhost:8080",
            "base_url must be an http",
        ),
        (
            "BACKCHAT_SHARED_LIMITER",
            "mysql://x",
            "shared_limiter must be a redis",
        ),
    ] {
        let e = resolve(&home, &[], &[(var, value)]).expect_err("refused");
        assert_eq!(
            e.to_string(),
            format!(
                "config error in environment variable {var}: {}",
                match &e {
                    ConfigError::Env { message, .. } => message.clone(),
                    other => panic!("not an env error: {other:?}"),
                }
            )
        );
        assert!(e.to_string().contains(says), "{var}={value}: {e}");
    }
}

#[test]
fn bad_flag_values_name_the_flag() {
    let home = Home::new();
    for (flags, says) in [
        (
            &["--max-tokens", "0"][..],
            "config error in --max-tokens: max_tokens must be a positive integer, got 0",
        ),
        (
            &["--log-level", "loud"][..],
            "config error in --log-level: log_level must be one of",
        ),
        (
            &["--base-url", "ftp://x"][..],
            "config error in --base-url: base_url",
        ),
        (
            &["--shared-limiter", "nope"][..],
            "config error in --shared-limiter",
        ),
        (
            &["--thinking", "10"][..],
            "config error in --thinking: thinking must be a token budget of at least 1024",
        ),
        (&["--deadline", "0"][..], "config error in --deadline"),
    ] {
        let e = resolve(&home, flags, &[]).expect_err("refused");
        assert!(e.to_string().starts_with(says), "{flags:?}: {e}");
    }
}

#[test]
fn the_key_comes_from_the_environment_first() {
    let home = Home::new();
    home.write_config("api_key_cmd = \"echo sk-ant-from-command-000\"\n");
    let c = resolve(&home, &[], &[("ANTHROPIC_API_KEY", "sk-ant-from-env-0000")]).expect("valid");
    assert_eq!(
        c.api_key.as_ref().map(backchat::secret::ApiKey::expose),
        Some("sk-ant-from-env-0000")
    );
    assert_eq!(c.source("api_key"), Source::Env("ANTHROPIC_API_KEY"));
}

#[test]
fn api_key_cmd_success_failure_and_empty_output() {
    let home = Home::new();
    home.write_config(
        "model = \"m\"\napi_key_cmd = \"printf 'sk-ant-from-command-000\\\\nuser: me\\\\n'\"\n",
    );
    let c = resolve(&home, &[], &[]).expect("valid");
    assert_eq!(
        c.api_key.as_ref().map(backchat::secret::ApiKey::expose),
        Some("sk-ant-from-command-000")
    );
    assert_eq!(
        c.source("api_key"),
        Source::Command {
            path: home.config_file(),
            line: 2
        }
    );
    assert!(
        c.warnings.is_empty(),
        "a command is the recommended way: {:?}",
        c.warnings
    );

    home.write_config("api_key_cmd = \"echo sk-ant-SECRET-OUTPUT; exit 7\"\n");
    let e = resolve(&home, &[], &[]).expect_err("the command failed");
    let shown = e.to_string();
    assert!(
        shown.contains("line 1: api_key_cmd failed (exit status 7)"),
        "{shown}"
    );
    assert!(!shown.contains("SECRET-OUTPUT"), "{shown}");

    home.write_config("api_key_cmd = \"printf ''\"\n");
    let e = resolve(&home, &[], &[]).expect_err("no output");
    assert!(e.to_string().contains("printed nothing"), "{e}");

    home.write_config("api_key_cmd = \"true\"\napi_key = \"sk-ant-both\"\n");
    let e = resolve(&home, &[], &[]).expect_err("both");
    assert!(
        e.to_string()
            .contains("line 2: set api_key_cmd or api_key, not both"),
        "{e}"
    );
}

#[test]
fn a_failing_command_never_shows_its_output() {
    let home = Home::new();
    let key_file = home.root().join("key.txt");
    std::fs::write(&key_file, "sk-ant-in-the-output-123\n").expect("write");
    home.write_config(&format!(
        "api_key_cmd = \"cat '{}'; exit 1\"\n",
        key_file.display()
    ));
    let e = resolve(&home, &[], &[]).expect_err("failed");
    assert!(e.to_string().contains("exit status 1"), "{e}");
    assert!(!e.to_string().contains("in-the-output"), "{e}");
}

#[test]
fn a_stored_key_is_discouraged_and_a_readable_file_is_warned_about() {
    let home = Home::new();
    let p = home.write_config("api_key = \"sk-ant-stored-in-file-01\"\n");
    let c = resolve(&home, &[], &[]).expect("valid");
    assert_eq!(
        c.api_key.as_ref().map(backchat::secret::ApiKey::expose),
        Some("sk-ant-stored-in-file-01")
    );
    assert_eq!(
        c.source("api_key"),
        Source::File {
            path: p.clone(),
            line: 1
        }
    );
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("discouraged"));

    set_mode(&p, 0o644);
    let c = resolve(&home, &[], &[]).expect("valid");
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    let w = &c.warnings[1];
    assert!(w.contains(&p.display().to_string()), "{w}");
    assert!(w.contains(&format!("chmod 600 {}", p.display())), "{w}");
    assert!(!c.warnings.iter().any(|w| w.contains("stored-in-file")));
}

#[test]
fn show_lists_every_value_with_its_source_and_never_the_key() {
    let home = Home::new();
    home.write_config("model = \"file-model\"\n\n[retry]\nmax_wait = 90\n");
    let c = resolve(
        &home,
        &["--max-tokens", "77"],
        &[("ANTHROPIC_API_KEY", "sk-ant-show-me-not-12345")],
    )
    .expect("valid");
    let shown = c.show();
    let line = |key: &str| {
        shown
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} line in\n{shown}"))
            .to_string()
    };
    assert!(line("model").contains(&format!("# file {}:1", home.config_file().display())));
    assert!(
        line("max_tokens").contains("77") && line("max_tokens").ends_with("# flag --max-tokens")
    );
    assert!(line("max_wait").contains("90") && line("max_wait").contains(":4"));
    assert!(
        line("api_key").contains("redacted")
            && line("api_key").ends_with("# env ANTHROPIC_API_KEY")
    );
    assert!(line("log_level").ends_with("# default"));
    assert!(!shown.contains("show-me-not"), "{shown}");
}
