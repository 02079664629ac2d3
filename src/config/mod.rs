//! The effective configuration: flags over environment over the config file over defaults,
//! resolved once into a [`Config`] of plain values that every surface reads.
//!
//! Each value remembers where it came from ([`Source`]), for `backchat config show` and for
//! error messages. Every error names its place: the file and line, the environment variable,
//! or the flag (exit code 2 on every surface).
//!
//! The flags come in groups ([`SettingsArgs`] and its parts, in `args.rs`) that each command
//! line surface flattens as it needs them; this module owns them, so it depends on no
//! surface.

mod args;
pub mod file;
pub mod key;
pub mod paths;
mod show;
pub mod value;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::api::{CacheMode, CacheTtl};
use crate::retry::RetryConfig;
use crate::secret::ApiKey;

pub use args::{
    ConfigFileArgs, ConnectionArgs, ConversationArgs, FilesArgs, RetryArgs, SettingsArgs,
};
pub use file::FileValues;
pub use paths::Paths;
pub use value::{LOG_LEVELS, MIN_THINKING_BUDGET, Theme};

use value::Raw;

/// The model used when none is configured: a current one (docs/protocol.md).
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-6";

/// Default `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Default log level.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// The environment variables backchat reads, with the key each one sets.
pub const ENV_VARS: [(&str, &str); 13] = [
    ("ANTHROPIC_API_KEY", "api_key"),
    ("ANTHROPIC_BASE_URL", "base_url"),
    ("BACKCHAT_MODEL", "model"),
    ("BACKCHAT_MAX_TOKENS", "max_tokens"),
    ("BACKCHAT_SYSTEM", "system"),
    ("BACKCHAT_CACHE", "cache"),
    ("BACKCHAT_CACHE_TTL", "cache_ttl"),
    ("BACKCHAT_MAX_RETRIES", "retry.max_retries"),
    ("BACKCHAT_MAX_WAIT", "retry.max_wait"),
    ("BACKCHAT_LOG_LEVEL", "log_level"),
    ("BACKCHAT_SHARED_LIMITER", "shared_limiter"),
    ("BACKCHAT_SHARED_LIMITER_CA", "shared_limiter_ca"),
    ("BACKCHAT_CONFIG", "(the config file)"),
];

/// Limits of the embedded mock API, as the config file's `[mock]` table sets them. `None`
/// leaves the mock's own default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MockSettings {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Input tokens per minute.
    pub itpm: Option<u64>,
    /// Output tokens per minute.
    pub otpm: Option<u64>,
    /// Generation speed, output tokens per second.
    pub token_rate: Option<f64>,
}

/// Where a value came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Source {
    /// Nobody set it.
    #[default]
    Default,
    /// A command-line flag, e.g. `--model`.
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// The config file, at this line.
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
    },
    /// The output of `api_key_cmd`, set in the config file at this line.
    Command {
        /// The file.
        path: PathBuf,
        /// 1-based line of `api_key_cmd`.
        line: usize,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::File { path, line } => write!(f, "file {}:{line}", path.display()),
            Source::Command { path, line } => {
                write!(f, "api_key_cmd (file {}:{line})", path.display())
            }
        }
    }
}

/// Everything a surface needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Model id.
    pub model: String,
    /// `max_tokens` of each request.
    pub max_tokens: u32,
    /// System prompt.
    pub system: Option<String>,
    /// Extended thinking budget, if on.
    pub thinking_budget: Option<u32>,
    /// How requests ask for prompt caching.
    pub cache: CacheMode,
    /// The TTL of the cache entries requests write.
    pub cache_ttl: CacheTtl,
    /// API base URL; `None` with no key means the embedded mock.
    pub base_url: Option<String>,
    /// The key (never printed).
    pub api_key: Option<ApiKey>,
    /// Time allowed until a response's headers arrive (`--header-timeout`).
    pub header_timeout: Duration,
    /// Print reply bytes as sent even on a terminal (`--raw`).
    pub raw: bool,
    /// Retry settings.
    pub retry: RetryConfig,
    /// Pace from the rate-limit headers.
    pub pacing: bool,
    /// Redis URL of the shared limiter (or a cluster's URLs, comma-separated).
    pub shared_limiter: Option<String>,
    /// A PEM file of CA certificates trusted for `rediss://` besides the system's roots.
    pub shared_limiter_ca: Option<PathBuf>,
    /// Log level for the log file: one of [`LOG_LEVELS`], lower case.
    pub log_level: String,
    /// The TUI's colour scheme.
    pub theme: Theme,
    /// Limits of the embedded mock (`[mock]`).
    pub mock: MockSettings,
    /// Where each value came from, by key (`model`, `retry.max_wait`, `mock.rpm`, …); a key
    /// that is absent came from the defaults. See [`Config::source`].
    pub sources: BTreeMap<&'static str, Source>,
    /// Where the key came from (`None` when there is no key).
    pub api_key_source: Option<Source>,
    /// The config file that applies (it may not exist).
    pub config_file: Option<PathBuf>,
    /// Whether that file existed and was read.
    pub config_file_loaded: bool,
    /// Where sessions and the log go.
    pub paths: Paths,
    /// Things a person should know and fix, but that do not stop the program (a key in a
    /// world-readable file). Printed on stderr by `main` before any surface starts.
    pub warnings: Vec<String>,
}

impl Default for Config {
    /// The built-in defaults, with no file, no key and no directories: a base to build test
    /// configurations from (`Config { model: …, ..Config::default() }`).
    fn default() -> Self {
        Config {
            model: DEFAULT_MODEL.to_string(),
            max_tokens: DEFAULT_MAX_TOKENS,
            system: None,
            thinking_budget: None,
            cache: CacheMode::default(),
            cache_ttl: CacheTtl::default(),
            base_url: None,
            api_key: None,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            raw: false,
            retry: RetryConfig::default(),
            pacing: true,
            shared_limiter: None,
            shared_limiter_ca: None,
            log_level: DEFAULT_LOG_LEVEL.to_string(),
            theme: Theme::default(),
            mock: MockSettings::default(),
            sources: BTreeMap::new(),
            api_key_source: None,
            config_file: None,
            config_file_loaded: false,
            paths: Paths::default(),
            warnings: Vec::new(),
        }
    }
}

/// A configuration problem, reported before anything runs (exit code 2).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A bad key or value in the config file, or a file that is not valid TOML.
    #[error("config error in {} line {line}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The key (`retry.max_wait`), when one is at fault.
        key: Option<String>,
        /// What is wrong, starting with the key.
        message: String,
    },
    /// The config file cannot be read (or, named explicitly, does not exist).
    #[error("config error in {}: {message}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A bad environment variable.
    #[error("config error in environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong, starting with the key it sets.
        message: String,
    },
    /// A bad command-line value.
    #[error("config error in {flag}: {message}")]
    Flag {
        /// The flag, e.g. `--max-tokens`.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Where the config file is, and whether someone named it (then it must exist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigLocation {
    /// The path.
    pub path: PathBuf,
    /// `--config` or `BACKCHAT_CONFIG`; `None` for the default location.
    pub named_by: Option<Source>,
}

impl ConfigLocation {
    /// The config file for this flag and this environment: `--config`, else
    /// `BACKCHAT_CONFIG`, else the XDG default. `None` when there is no home directory.
    pub fn find(
        args: &ConfigFileArgs,
        env: &dyn Fn(&str) -> Option<String>,
        paths: &Paths,
    ) -> Option<ConfigLocation> {
        if let Some(p) = &args.config {
            return Some(ConfigLocation {
                path: p.clone(),
                named_by: Some(Source::Flag("--config")),
            });
        }
        if let Some(p) = env("BACKCHAT_CONFIG").filter(|p| !p.is_empty()) {
            return Some(ConfigLocation {
                path: PathBuf::from(p),
                named_by: Some(Source::Env("BACKCHAT_CONFIG")),
            });
        }
        paths.config_file.clone().map(|path| ConfigLocation {
            path,
            named_by: None,
        })
    }
}

impl Config {
    /// Resolve flags over the environment over the config file over defaults. `env` reads a
    /// variable; the directories (config file, sessions, log) follow from it too.
    ///
    /// May run `api_key_cmd` (when `ANTHROPIC_API_KEY` is not set).
    pub fn resolve(
        args: &SettingsArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::resolve_with(args, env, Paths::from_env(env))
    }

    /// [`Config::resolve`] with the directories given.
    pub fn resolve_with(
        args: &SettingsArgs,
        env: &dyn Fn(&str) -> Option<String>,
        paths: Paths,
    ) -> Result<Config, ConfigError> {
        let SettingsArgs {
            conversation,
            connection,
            retry: retry_args,
            files,
            output,
        } = args;
        let location = ConfigLocation::find(&files.config_file, env, &paths);
        let file = match &location {
            None => None,
            Some(loc) => match file::read(&loc.path)? {
                Some(f) => Some(f),
                None => match &loc.named_by {
                    Some(by) => {
                        return Err(ConfigError::Unreadable {
                            path: loc.path.clone(),
                            message: format!("the file does not exist (named by {by})"),
                        });
                    }
                    None => None,
                },
            },
        };
        let fv = file.clone().unwrap_or_default();
        let mut r = Resolver {
            env,
            path: fv.path.clone(),
            sources: BTreeMap::new(),
        };

        let model = r.pick(
            "model",
            conversation
                .model
                .as_deref()
                .map(|m| ("--model", value::text(Raw::Text(m)))),
            Some(("BACKCHAT_MODEL", value::text)),
            &fv.model,
            DEFAULT_MODEL.to_string(),
        )?;
        let max_tokens = r.pick(
            "max_tokens",
            conversation
                .max_tokens
                .map(|n| ("--max-tokens", value::positive_u32(Raw::Int(n.into())))),
            Some(("BACKCHAT_MAX_TOKENS", value::positive_u32)),
            &fv.max_tokens,
            DEFAULT_MAX_TOKENS,
        )?;
        let system = r.pick(
            "system",
            conversation
                .system
                .as_deref()
                .map(|s| ("--system", value::optional_text(Raw::Text(s)))),
            Some(("BACKCHAT_SYSTEM", value::optional_text)),
            &fv.system,
            None,
        )?;
        let thinking_budget = r.pick(
            "thinking",
            conversation.thinking.map(|n| {
                (
                    "--thinking",
                    value::thinking_budget(Raw::Int(n.into())).map(Some),
                )
            }),
            None,
            &fv.thinking.as_ref().map(|a| at(Some(a.value), a.line)),
            None,
        )?;
        let cache = r.pick(
            "cache",
            conversation
                .cache
                .as_deref()
                .map(|m| ("--cache", value::cache_mode(Raw::Text(m)))),
            Some(("BACKCHAT_CACHE", value::cache_mode)),
            &fv.cache,
            CacheMode::default(),
        )?;
        let cache_ttl = r.pick(
            "cache_ttl",
            conversation
                .cache_ttl
                .as_deref()
                .map(|t| ("--cache-ttl", value::cache_ttl(Raw::Text(t)))),
            Some(("BACKCHAT_CACHE_TTL", value::cache_ttl)),
            &fv.cache_ttl,
            CacheTtl::default(),
        )?;
        let base_url = r.pick(
            "base_url",
            connection
                .base_url
                .as_deref()
                .map(|u| ("--base-url", value::http_url(Raw::Text(u)).map(Some))),
            Some(("ANTHROPIC_BASE_URL", |raw| value::http_url(raw).map(Some))),
            &fv.base_url
                .as_ref()
                .map(|a| at(Some(a.value.clone()), a.line)),
            None,
        )?;
        let shared_limiter = r.pick(
            "shared_limiter",
            retry_args
                .shared_limiter
                .as_deref()
                .map(|u| ("--shared-limiter", value::redis_url(Raw::Text(u)).map(Some))),
            Some(("BACKCHAT_SHARED_LIMITER", |raw| {
                value::redis_url(raw).map(Some)
            })),
            &fv.shared_limiter
                .as_ref()
                .map(|a| at(Some(a.value.clone()), a.line)),
            None,
        )?;
        let shared_limiter_ca = r.pick(
            "shared_limiter_ca",
            retry_args
                .shared_limiter_ca
                .as_ref()
                .map(|p| ("--shared-limiter-ca", Ok(Some(p.clone())))),
            Some(("BACKCHAT_SHARED_LIMITER_CA", |raw| {
                value::file_path(raw).map(Some)
            })),
            &fv.shared_limiter_ca
                .as_ref()
                .map(|a| at(Some(a.value.clone()), a.line)),
            None,
        )?;
        let pacing = r.pick(
            "pacing",
            retry_args.no_pacing.then_some(("--no-pacing", Ok(false))),
            None,
            &fv.pacing,
            true,
        )?;
        let log_level = r.pick(
            "log_level",
            files
                .log_level
                .as_deref()
                .map(|l| ("--log-level", value::log_level(Raw::Text(l)))),
            Some(("BACKCHAT_LOG_LEVEL", value::log_level)),
            &fv.log_level,
            DEFAULT_LOG_LEVEL.to_string(),
        )?;
        // NO_COLOR (no-color.org): any non-empty value turns colour off.
        let theme = if env("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            r.sources.insert("theme", Source::Env("NO_COLOR"));
            Theme::NoColor
        } else {
            r.pick("theme", None, None, &fv.theme, Theme::default())?
        };

        let defaults = RetryConfig::default();
        let retry = RetryConfig {
            max_retries: r.pick(
                "retry.max_retries",
                retry_args.max_retries.map(|n| ("--max-retries", Ok(n))),
                Some(("BACKCHAT_MAX_RETRIES", value::count_u32)),
                &fv.max_retries,
                defaults.max_retries,
            )?,
            max_wait: r.pick(
                "retry.max_wait",
                retry_args.max_wait.map(|d| ("--max-wait", Ok(d))),
                Some(("BACKCHAT_MAX_WAIT", value::duration)),
                &fv.max_wait,
                defaults.max_wait,
            )?,
            deadline: r.pick(
                "retry.deadline",
                retry_args.deadline.map(|d| {
                    let ok = if d.is_zero() {
                        Err("must be longer than zero".to_string())
                    } else {
                        Ok(d)
                    };
                    ("--deadline", ok)
                }),
                None,
                &fv.deadline,
                defaults.deadline,
            )?,
            ..defaults
        };

        let mock = MockSettings {
            rpm: r.file_only("mock.rpm", &fv.mock_rpm),
            itpm: r.file_only("mock.itpm", &fv.mock_itpm),
            otpm: r.file_only("mock.otpm", &fv.mock_otpm),
            token_rate: r.file_only("mock.token_rate", &fv.mock_token_rate),
        };

        let header_timeout = match connection.header_timeout {
            Some(d) if d.is_zero() => {
                return Err(ConfigError::Flag {
                    flag: "--header-timeout",
                    message: "must be longer than zero".into(),
                });
            }
            Some(d) => {
                r.sources
                    .insert("header_timeout", Source::Flag("--header-timeout"));
                d
            }
            None => DEFAULT_HEADER_TIMEOUT,
        };

        let mut warnings = Vec::new();
        let (api_key, api_key_source) = resolve_key(env, &fv, &mut warnings)?;
        if let (Some(k), Some(source)) = (&api_key, &api_key_source) {
            key::check_header_safe(k).map_err(|message| key_error(source, &fv, message))?;
        }

        Ok(Config {
            model,
            max_tokens,
            system,
            thinking_budget,
            cache,
            cache_ttl,
            base_url,
            api_key,
            header_timeout,
            raw: output.raw,
            retry,
            pacing,
            shared_limiter,
            shared_limiter_ca,
            log_level,
            theme,
            mock,
            sources: r.sources,
            api_key_source,
            config_file: location.map(|l| l.path),
            config_file_loaded: file.is_some(),
            paths,
            warnings,
        })
    }

    /// True when there is nothing real to talk to: no key and no base URL.
    pub fn wants_embedded_mock(&self) -> bool {
        self.api_key.is_none() && self.base_url.is_none()
    }

    /// Where the value of `key` (`model`, `retry.max_wait`, …) came from.
    pub fn source(&self, key: &str) -> Source {
        if key == "api_key" {
            return self.api_key_source.clone().unwrap_or_default();
        }
        self.sources.get(key).cloned().unwrap_or_default()
    }

    /// The text of `backchat config show`: every value, the key redacted, and where each one
    /// came from.
    pub fn show(&self) -> String {
        show::render(self)
    }
}

/// How long a request may wait for its response headers by default (the transport's own
/// default: a streamed reply starts within seconds).
pub const DEFAULT_HEADER_TIMEOUT: Duration = crate::api::client::DEFAULT_HEADER_TIMEOUT;

/// A configuration error about the key, placed where the key came from.
fn key_error(source: &Source, fv: &FileValues, message: String) -> ConfigError {
    match source {
        Source::Env(var) => ConfigError::Env { var, message },
        Source::Command { line, .. } => ConfigError::File {
            path: fv.path.clone(),
            line: *line,
            key: Some("api_key_cmd".into()),
            message,
        },
        Source::File { line, .. } => ConfigError::File {
            path: fv.path.clone(),
            line: *line,
            key: Some("api_key".into()),
            message,
        },
        _ => ConfigError::Env {
            var: "ANTHROPIC_API_KEY",
            message,
        },
    }
}

/// The key: `ANTHROPIC_API_KEY`, else the file's `api_key_cmd`, else the file's `api_key`.
fn resolve_key(
    env: &dyn Fn(&str) -> Option<String>,
    fv: &FileValues,
    warnings: &mut Vec<String>,
) -> Result<(Option<ApiKey>, Option<Source>), ConfigError> {
    if let (Some(_), Some(stored)) = (&fv.api_key_cmd, &fv.api_key) {
        return Err(ConfigError::File {
            path: fv.path.clone(),
            line: stored.line,
            key: Some("api_key".into()),
            message: "set api_key_cmd or api_key, not both (api_key_cmd is the safer one)".into(),
        });
    }
    if let Some(stored) = &fv.api_key {
        // Warn even when the environment overrides it: the key still sits in the file.
        warnings.push(format!(
            "{} line {}: a key stored in the config file is discouraged; use ANTHROPIC_API_KEY \
             or api_key_cmd (a password manager) instead",
            fv.path.display(),
            stored.line
        ));
        if let Some(w) = key::readable_by_others(&fv.path) {
            warnings.push(w);
        }
    }
    if let Some(k) = env("ANTHROPIC_API_KEY").and_then(ApiKey::new) {
        return Ok((Some(k), Some(Source::Env("ANTHROPIC_API_KEY"))));
    }
    if let Some(cmd) = &fv.api_key_cmd {
        return match key::run_key_command(&cmd.value) {
            Ok(k) => Ok((
                Some(k),
                Some(Source::Command {
                    path: fv.path.clone(),
                    line: cmd.line,
                }),
            )),
            Err(why) => Err(ConfigError::File {
                path: fv.path.clone(),
                line: cmd.line,
                key: Some("api_key_cmd".into()),
                // The line names the command; its text is not repeated (it might embed the key).
                message: why,
            }),
        };
    }
    if let Some(stored) = &fv.api_key {
        return Ok((
            Some(stored.value.clone()),
            Some(Source::File {
                path: fv.path.clone(),
                line: stored.line,
            }),
        ));
    }
    Ok((None, None))
}

fn at<T>(value: T, line: usize) -> file::At<T> {
    file::At { value, line }
}

/// One key's resolution, recording where each value came from.
struct Resolver<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    path: PathBuf,
    sources: BTreeMap<&'static str, Source>,
}

/// A checker of an environment variable's text.
type EnvCheck<T> = (&'static str, fn(Raw<'_>) -> Result<T, String>);

impl Resolver<'_> {
    /// Flag over env over file over default. `flag` carries the flag's name and its checked
    /// value; `env` the variable and its checker.
    fn pick<T: Clone>(
        &mut self,
        key: &'static str,
        flag: Option<(&'static str, Result<T, String>)>,
        env: Option<EnvCheck<T>>,
        file: &Option<file::At<T>>,
        default: T,
    ) -> Result<T, ConfigError> {
        if let Some((name, checked)) = flag {
            let v = checked.map_err(|why| ConfigError::Flag {
                flag: name,
                message: format!("{key} {why}"),
            })?;
            self.sources.insert(key, Source::Flag(name));
            return Ok(v);
        }
        if let Some((var, check)) = env {
            // An empty variable counts as unset, as in most tools (`FOO= backchat`).
            if let Some(text) = (self.env)(var).filter(|t| !t.is_empty()) {
                let v = check(Raw::Text(&text)).map_err(|why| ConfigError::Env {
                    var,
                    message: format!("{key} {why}"),
                })?;
                self.sources.insert(key, Source::Env(var));
                return Ok(v);
            }
        }
        if let Some(a) = file {
            self.sources.insert(key, self.file_source(a.line));
            return Ok(a.value.clone());
        }
        Ok(default)
    }

    fn file_only<T: Clone>(&mut self, key: &'static str, file: &Option<file::At<T>>) -> Option<T> {
        let a = file.as_ref()?;
        self.sources.insert(key, self.file_source(a.line));
        Some(a.value.clone())
    }

    fn file_source(&self, line: usize) -> Source {
        Source::File {
            path: self.path.clone(),
            line,
        }
    }
}

/// Just the location, for `backchat config path` (which must work even when the file is bad).
pub fn config_path(
    args: &ConfigFileArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<ConfigLocation> {
    ConfigLocation::find(args, env, &Paths::from_env(env))
}

/// The durations in `config show`: whole seconds as an integer, otherwise fractional.
pub(crate) fn secs_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.3}", d.as_secs_f64())
            .trim_end_matches('0')
            .to_string()
    }
}
