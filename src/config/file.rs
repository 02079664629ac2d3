//! The config file: TOML read with its spans, so that every error names the key, the file and
//! the line. Unknown keys are errors (a typo must not be silently ignored), with a suggestion.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::ConfigError;
use super::value::{self, Raw, Theme};
use crate::api::{CacheMode, CacheTtl};
use crate::secret::ApiKey;

/// A value from the file and the line it is on.
#[derive(Clone, Debug, PartialEq)]
pub struct At<T> {
    /// The checked value.
    pub value: T,
    /// 1-based line of its key.
    pub line: usize,
}

/// Everything the config file set, checked.
#[derive(Clone, Debug, Default)]
pub struct FileValues {
    /// The file.
    pub path: PathBuf,
    /// `model`.
    pub model: Option<At<String>>,
    /// `max_tokens`.
    pub max_tokens: Option<At<u32>>,
    /// `system` (an empty string means none).
    pub system: Option<At<Option<String>>>,
    /// `base_url`.
    pub base_url: Option<At<String>>,
    /// `api_key_cmd`.
    pub api_key_cmd: Option<At<String>>,
    /// `api_key` (discouraged).
    pub api_key: Option<At<ApiKey>>,
    /// `thinking`: the budget.
    pub thinking: Option<At<u32>>,
    /// `theme`.
    pub theme: Option<At<Theme>>,
    /// `cache`: how requests ask for prompt caching.
    pub cache: Option<At<CacheMode>>,
    /// `cache_ttl`.
    pub cache_ttl: Option<At<CacheTtl>>,
    /// `pacing`.
    pub pacing: Option<At<bool>>,
    /// `shared_limiter`.
    pub shared_limiter: Option<At<String>>,
    /// `shared_limiter_ca`.
    pub shared_limiter_ca: Option<At<PathBuf>>,
    /// `log_level`.
    pub log_level: Option<At<String>>,
    /// `[retry] max_retries`.
    pub max_retries: Option<At<u32>>,
    /// `[retry] max_wait`.
    pub max_wait: Option<At<Duration>>,
    /// `[retry] deadline`.
    pub deadline: Option<At<Duration>>,
    /// `[mock] rpm`.
    pub mock_rpm: Option<At<u64>>,
    /// `[mock] itpm`.
    pub mock_itpm: Option<At<u64>>,
    /// `[mock] otpm`.
    pub mock_otpm: Option<At<u64>>,
    /// `[mock] token_rate`.
    pub mock_token_rate: Option<At<f64>>,
}

/// The keys of the top level.
pub const TOP_KEYS: [&str; 16] = [
    "model",
    "max_tokens",
    "system",
    "base_url",
    "api_key_cmd",
    "api_key",
    "thinking",
    "theme",
    "cache",
    "cache_ttl",
    "pacing",
    "shared_limiter",
    "shared_limiter_ca",
    "log_level",
    "retry",
    "mock",
];
/// The keys of `[retry]`.
pub const RETRY_KEYS: [&str; 3] = ["max_retries", "max_wait", "deadline"];
/// The keys of `[mock]`.
pub const MOCK_KEYS: [&str; 4] = ["rpm", "itpm", "otpm", "token_rate"];

/// Read and check the file at `path`. `Ok(None)` when it does not exist.
pub fn read(path: &Path) -> Result<Option<FileValues>, ConfigError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ConfigError::Unreadable {
                path: path.to_path_buf(),
                message: e.to_string(),
            });
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let ok = e.utf8_error().valid_up_to();
            let line = line_at(e.as_bytes(), ok);
            return Err(file_error(path, line, None, "the file is not valid UTF-8"));
        }
    };
    parse(path, &text).map(Some)
}

/// Check the TOML `text` of the file at `path`.
pub fn parse(path: &Path, text: &str) -> Result<FileValues, ConfigError> {
    let doc = DeTable::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_at(text.as_bytes(), s.start));
        // Only the parser's message: its Display quotes the source line, which could hold
        // the key.
        let message = format!("not valid TOML: {}", e.message().trim());
        file_error(path, line, None, &message)
    })?;
    let mut out = FileValues {
        path: path.to_path_buf(),
        ..FileValues::default()
    };
    let walker = Walker { path, text };
    for (key, val) in doc.get_ref() {
        let name = key.get_ref().as_ref();
        let line = line_at(text.as_bytes(), key.span().start);
        let raw = raw_of(val.get_ref());
        match name {
            "model" => out.model = Some(walker.check(name, line, raw, value::text)?),
            "max_tokens" => {
                out.max_tokens = Some(walker.check(name, line, raw, value::positive_u32)?);
            }
            "system" => out.system = Some(walker.check(name, line, raw, value::optional_text)?),
            "base_url" => out.base_url = Some(walker.check(name, line, raw, value::http_url)?),
            "api_key_cmd" => out.api_key_cmd = Some(walker.check(name, line, raw, value::text)?),
            "api_key" => {
                // Never quote the value back: it is a secret.
                let key = match raw {
                    Raw::Str(s) => ApiKey::new(s),
                    _ => {
                        return Err(file_error(
                            path,
                            line,
                            Some(name),
                            "api_key must be a string",
                        ));
                    }
                };
                out.api_key = key.map(|value| At { value, line });
            }
            "thinking" => {
                out.thinking = Some(walker.check(name, line, raw, value::thinking_budget)?);
            }
            "theme" => out.theme = Some(walker.check(name, line, raw, value::theme)?),
            "cache" => out.cache = Some(walker.check(name, line, raw, value::cache_mode)?),
            "cache_ttl" => out.cache_ttl = Some(walker.check(name, line, raw, value::cache_ttl)?),
            "pacing" => out.pacing = Some(walker.check(name, line, raw, value::boolean)?),
            "shared_limiter" => {
                out.shared_limiter = Some(walker.check(name, line, raw, value::redis_url)?);
            }
            "shared_limiter_ca" => {
                out.shared_limiter_ca = Some(walker.check(name, line, raw, value::file_path)?);
            }
            "log_level" => out.log_level = Some(walker.check(name, line, raw, value::log_level)?),
            "retry" => {
                for (k, v, line) in walker.table(name, line, val)? {
                    let raw = raw_of(v);
                    let full = format!("retry.{k}");
                    match k {
                        "max_retries" => {
                            out.max_retries =
                                Some(walker.check(&full, line, raw, value::count_u32)?);
                        }
                        "max_wait" => {
                            out.max_wait = Some(walker.check(&full, line, raw, value::duration)?);
                        }
                        "deadline" => {
                            let d = walker.check(&full, line, raw, value::duration)?;
                            if d.value.is_zero() {
                                return Err(file_error(
                                    path,
                                    line,
                                    Some(&full),
                                    &format!("{full} must be longer than zero"),
                                ));
                            }
                            out.deadline = Some(d);
                        }
                        _ => return Err(walker.unknown(&full, k, line, &RETRY_KEYS, "retry.")),
                    }
                }
            }
            "mock" => {
                for (k, v, line) in walker.table(name, line, val)? {
                    let raw = raw_of(v);
                    let full = format!("mock.{k}");
                    match k {
                        "rpm" => {
                            out.mock_rpm =
                                Some(walker.check(&full, line, raw, value::positive_u64)?);
                        }
                        "itpm" => {
                            out.mock_itpm =
                                Some(walker.check(&full, line, raw, value::positive_u64)?);
                        }
                        "otpm" => {
                            out.mock_otpm =
                                Some(walker.check(&full, line, raw, value::positive_u64)?);
                        }
                        "token_rate" => {
                            out.mock_token_rate =
                                Some(walker.check(&full, line, raw, value::positive_f64)?);
                        }
                        _ => return Err(walker.unknown(&full, k, line, &MOCK_KEYS, "mock.")),
                    }
                }
            }
            _ => return Err(walker.unknown(name, name, line, &TOP_KEYS, "")),
        }
    }
    Ok(out)
}

struct Walker<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Walker<'_> {
    fn check<T>(
        &self,
        key: &str,
        line: usize,
        raw: Raw<'_>,
        check: impl Fn(Raw<'_>) -> Result<T, String>,
    ) -> Result<At<T>, ConfigError> {
        check(raw)
            .map(|value| At { value, line })
            .map_err(|why| file_error(self.path, line, Some(key), &format!("{key} {why}")))
    }

    /// The entries of a table value, with their lines, in file order.
    fn table<'v>(
        &self,
        key: &str,
        line: usize,
        val: &'v Spanned<DeValue<'_>>,
    ) -> Result<Vec<(&'v str, &'v DeValue<'v>, usize)>, ConfigError> {
        let DeValue::Table(t) = val.get_ref() else {
            return Err(file_error(
                self.path,
                line,
                Some(key),
                &format!(
                    "{key} must be a table ([{key}]), got {}",
                    raw_of(val.get_ref()).describe()
                ),
            ));
        };
        let mut entries: Vec<_> = t
            .iter()
            .map(|(k, v)| {
                (
                    k.get_ref().as_ref(),
                    v.get_ref(),
                    line_at(self.text.as_bytes(), k.span().start),
                )
            })
            .collect();
        entries.sort_by_key(|e| e.2);
        Ok(entries)
    }

    fn unknown(
        &self,
        full: &str,
        short: &str,
        line: usize,
        known: &[&str],
        prefix: &str,
    ) -> ConfigError {
        let hint = match value::did_you_mean(short, known) {
            Some(k) => format!(" (did you mean \"{prefix}{k}\"?)"),
            None => format!(
                " (known keys: {})",
                known
                    .iter()
                    .map(|k| format!("{prefix}{k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        file_error(
            self.path,
            line,
            Some(full),
            &format!("unknown key \"{full}\"{hint}"),
        )
    }
}

fn raw_of<'a>(v: &'a DeValue<'_>) -> Raw<'a> {
    match v {
        DeValue::String(s) => Raw::Str(s.as_ref()),
        DeValue::Integer(i) => {
            match i128::from_str_radix(i.as_str().replace('_', "").as_str(), i.radix()) {
                Ok(n) => Raw::Int(n),
                Err(_) => Raw::Other("an integer out of range"),
            }
        }
        DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
            Ok(x) => Raw::Float(x),
            Err(_) => Raw::Other("a float"),
        },
        DeValue::Boolean(b) => Raw::Bool(*b),
        DeValue::Datetime(_) => Raw::Other("a date-time"),
        DeValue::Array(_) => Raw::Other("an array"),
        DeValue::Table(_) => Raw::Other("a table"),
    }
}

/// The 1-based line of byte `offset` in `text`.
pub(crate) fn line_at(text: &[u8], offset: usize) -> usize {
    let end = offset.min(text.len());
    text[..end].iter().filter(|b| **b == b'\n').count() + 1
}

fn file_error(path: &Path, line: usize, key: Option<&str>, message: &str) -> ConfigError {
    ConfigError::File {
        path: path.to_path_buf(),
        line,
        key: key.map(str::to_string),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        parse(Path::new("/c.toml"), text).expect_err("should be rejected")
    }

    #[test]
    fn a_full_file_parses() {
        let text = r#"
model = "claude-opus-4-1"
max_tokens = 1_000
system = ""
theme = "Light"
pacing = false
log_level = "debug"

[retry]
max_retries = 0
max_wait = "90s"
deadline = 600

[mock]
rpm = 5
token_rate = 2.5
"#;
        let f = parse(Path::new("/c.toml"), text).expect("valid");
        assert_eq!(
            f.model.map(|a| (a.value, a.line)),
            Some(("claude-opus-4-1".into(), 2))
        );
        assert_eq!(f.max_tokens.map(|a| a.value), Some(1000));
        assert_eq!(f.system.map(|a| a.value), Some(None));
        assert_eq!(f.theme.map(|a| a.value), Some(Theme::Light));
        assert_eq!(f.max_retries.map(|a| (a.value, a.line)), Some((0, 10)));
        assert_eq!(f.max_wait.map(|a| a.value), Some(Duration::from_secs(90)));
        assert_eq!(f.mock_token_rate.map(|a| a.value), Some(2.5));
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let e = err("model = \"x\"\n\nmodle = \"y\"\n");
        assert_eq!(
            e.to_string(),
            "config error in /c.toml line 3: unknown key \"modle\" (did you mean \"model\"?)"
        );
        let e = err("# a comment\nmodel = \"x\"\n\n\nmax_tokens = \"lots\"\n");
        assert_eq!(
            e.to_string(),
            "config error in /c.toml line 5: max_tokens must be a positive integer, got \"lots\""
        );
        let e = err("[retry]\nmax_retrys = 3\n");
        assert!(
            e.to_string().ends_with(
                "line 2: unknown key \"retry.max_retrys\" (did you mean \"retry.max_retries\"?)"
            ),
            "{e}"
        );
        let e = err("retry = 5\n");
        assert!(e.to_string().contains("retry must be a table"), "{e}");
    }

    #[test]
    fn the_key_is_never_quoted_back() {
        let e = err("api_key = 12345678901\n");
        assert!(!e.to_string().contains("12345678901"), "{e}");
        let e = err("api_key = \"sk-ant-unterminated\n");
        assert!(!e.to_string().contains("sk-ant"), "{e}");
        assert!(e.to_string().contains("line 1: not valid TOML"), "{e}");
    }
}
