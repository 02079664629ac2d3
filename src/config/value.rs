//! Checking one value, whatever it came from: a typed TOML value, an environment variable or a
//! flag. Each check returns the value or the end of a sentence ("must be …, got …") that the
//! caller prefixes with the key and places (file and line, variable or flag).

use std::path::PathBuf;
use std::time::Duration;

/// A value to check, as it arrived.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Raw<'a> {
    /// A TOML string: its type is known, so `"4096"` is not a number.
    Str(&'a str),
    /// Untyped text from an environment variable: it may spell a number or a boolean.
    Text(&'a str),
    /// An integer (TOML integers beyond `i64` still fit).
    Int(i128),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Any other TOML type, by name ("an array", "a table", "a date-time").
    Other(&'static str),
}

impl Raw<'_> {
    /// How the value is quoted back in an error.
    pub(crate) fn describe(&self) -> String {
        match self {
            Raw::Str(s) | Raw::Text(s) => format!("{:?}", crate::util::clip(s, 60)),
            Raw::Int(n) => n.to_string(),
            Raw::Float(f) => format!("{f:?}"),
            Raw::Bool(b) => b.to_string(),
            Raw::Other(t) => (*t).to_string(),
        }
    }

    fn int(&self) -> Option<i128> {
        match self {
            Raw::Int(n) => Some(*n),
            Raw::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn float(&self) -> Option<f64> {
        match self {
            Raw::Int(n) => Some(*n as f64),
            Raw::Float(f) => Some(*f),
            Raw::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Raw::Str(s) | Raw::Text(s) => Some(s),
            _ => None,
        }
    }
}

fn got(what: &str, raw: Raw<'_>) -> String {
    format!("must be {what}, got {}", raw.describe())
}

/// A non-empty string.
pub(crate) fn text(raw: Raw<'_>) -> Result<String, String> {
    match raw.text() {
        Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
        Some(_) => Err("must not be empty".into()),
        None => Err(got("a string", raw)),
    }
}

/// A string that may be empty (an empty one means "not set").
pub(crate) fn optional_text(raw: Raw<'_>) -> Result<Option<String>, String> {
    match raw.text() {
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => Ok(Some(s.to_string())),
        None => Err(got("a string", raw)),
    }
}

/// An integer in `1..=u32::MAX`.
pub(crate) fn positive_u32(raw: Raw<'_>) -> Result<u32, String> {
    match raw.int() {
        Some(n) if n >= 1 && n <= i128::from(u32::MAX) => Ok(n as u32),
        _ => Err(got("a positive integer", raw)),
    }
}

/// An integer in `0..=u32::MAX`.
pub(crate) fn count_u32(raw: Raw<'_>) -> Result<u32, String> {
    match raw.int() {
        Some(n) if n >= 0 && n <= i128::from(u32::MAX) => Ok(n as u32),
        _ => Err(got("a whole number (0 or more)", raw)),
    }
}

/// An integer in `1..=u64::MAX`.
pub(crate) fn positive_u64(raw: Raw<'_>) -> Result<u64, String> {
    match raw.int() {
        Some(n) if n >= 1 && n <= i128::from(u64::MAX) => Ok(n as u64),
        _ => Err(got("a positive integer", raw)),
    }
}

/// A finite number above zero.
pub(crate) fn positive_f64(raw: Raw<'_>) -> Result<f64, String> {
    match raw.float() {
        Some(f) if f.is_finite() && f > 0.0 => Ok(f),
        _ => Err(got("a positive number", raw)),
    }
}

/// The smallest thinking budget the API accepts (`budget_tokens` ≥ 1024, docs/protocol.md).
pub const MIN_THINKING_BUDGET: u32 = 1024;

/// A thinking budget: a whole number of tokens, at least [`MIN_THINKING_BUDGET`].
pub(crate) fn thinking_budget(raw: Raw<'_>) -> Result<u32, String> {
    match raw.int() {
        Some(n) if n >= i128::from(MIN_THINKING_BUDGET) && n <= i128::from(u32::MAX) => {
            Ok(n as u32)
        }
        _ => Err(got(
            &format!("a token budget of at least {MIN_THINKING_BUDGET}"),
            raw,
        )),
    }
}

/// A boolean (`true`/`false`; from the environment also `1`/`0`, `yes`/`no`).
pub(crate) fn boolean(raw: Raw<'_>) -> Result<bool, String> {
    match raw {
        Raw::Bool(b) => Ok(b),
        Raw::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(got("true or false", raw)),
        },
        _ => Err(got("true or false", raw)),
    }
}

/// A duration: seconds as a number (`120`, `2.5`) or text with units (`"90s"`, `"5m"`).
pub(crate) fn duration(raw: Raw<'_>) -> Result<Duration, String> {
    const WHAT: &str = "a duration in seconds (120) or with units (\"90s\", \"5m\")";
    match raw {
        Raw::Int(_) | Raw::Float(_) => match raw.float() {
            Some(f) if f.is_finite() && f >= 0.0 => Ok(crate::clock::secs_f64(f)),
            _ => Err(got(WHAT, raw)),
        },
        Raw::Str(s) | Raw::Text(s) => crate::clock::parse_duration(s).map_err(|_| got(WHAT, raw)),
        _ => Err(got(WHAT, raw)),
    }
}

/// An `http://` or `https://` URL with a host.
pub(crate) fn http_url(raw: Raw<'_>) -> Result<String, String> {
    url_with_scheme(raw, &["http", "https"], "an http:// or https:// URL")
}

/// A Redis URL (`redis://`, `rediss://` for TLS, `redis+unix://` or `unix://`), or a Redis
/// Cluster's nodes: two or more `redis://`/`rediss://` URLs separated by commas, all with the
/// same scheme (a cluster speaks TLS on every node or on none).
pub(crate) fn redis_url(raw: Raw<'_>) -> Result<String, String> {
    const WHAT: &str =
        "a redis://HOST:PORT/DB or rediss:// URL, or a cluster's URLs separated by commas";
    let Some(text) = raw.text() else {
        return Err(got(WHAT, raw));
    };
    let nodes = crate::limiter::redis::node_urls(text);
    if nodes.len() <= 1 {
        return url_with_scheme(raw, &["redis", "rediss", "redis+unix", "unix"], WHAT);
    }
    let mut schemes = Vec::new();
    for node in &nodes {
        url_with_scheme(Raw::Text(node), &["redis", "rediss"], WHAT).map_err(|_| got(WHAT, raw))?;
        schemes.push(node.split("://").next().unwrap_or_default());
    }
    if schemes.iter().any(|s| *s != schemes[0]) {
        return Err(format!(
            "must use one scheme for every cluster node (all redis:// or all rediss://), got {}",
            crate::limiter::redis::display_target(text)
        ));
    }
    Ok(nodes.join(","))
}

/// A file's path (`~/` is the home directory). Whether the file exists is checked where it is
/// read, with the reason in the message.
pub(crate) fn file_path(raw: Raw<'_>) -> Result<PathBuf, String> {
    const WHAT: &str = "a file path";
    match raw.text().map(str::trim) {
        Some("") | None => Err(got(WHAT, raw)),
        Some(s) => match (s.strip_prefix("~/"), std::env::var_os("HOME")) {
            (Some(rest), Some(home)) => Ok(PathBuf::from(home).join(rest)),
            _ => Ok(PathBuf::from(s)),
        },
    }
}

fn url_with_scheme(raw: Raw<'_>, schemes: &[&str], what: &str) -> Result<String, String> {
    let Some(s) = raw.text() else {
        return Err(got(what, raw));
    };
    let s = s.trim();
    match reqwest::Url::parse(s) {
        Ok(url) if schemes.contains(&url.scheme()) => {
            let needs_host = matches!(url.scheme(), "http" | "https" | "redis" | "rediss");
            if needs_host && url.host_str().is_none_or(str::is_empty) {
                Err(got(what, raw))
            } else {
                Ok(s.to_string())
            }
        }
        _ => Err(got(what, raw)),
    }
}

/// The colour scheme the TUI draws with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Theme {
    /// Colours for a dark terminal background (the default).
    #[default]
    Dark,
    /// Colours for a light terminal background.
    Light,
    /// No colours at all, only bold/dim/reverse (also chosen by `NO_COLOR`).
    NoColor,
}

impl Theme {
    /// Every theme, in the order they are listed to a person.
    pub const ALL: [Theme; 3] = [Theme::Dark, Theme::Light, Theme::NoColor];

    /// Its name in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::Dark => "dark",
            Theme::Light => "light",
            Theme::NoColor => "no-color",
        }
    }
}

/// One of the [`Theme`] names.
pub(crate) fn theme(raw: Raw<'_>) -> Result<Theme, String> {
    let names = Theme::ALL.map(|t| format!("{:?}", t.as_str())).join(", ");
    let wanted = raw.text().map(|s| s.trim().to_ascii_lowercase());
    Theme::ALL
        .into_iter()
        .find(|t| wanted.as_deref() == Some(t.as_str()))
        .ok_or_else(|| got(&format!("one of {names}"), raw))
}

/// The levels the log accepts, quietest first.
pub const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// One of [`LOG_LEVELS`], returned in lower case.
pub(crate) fn log_level(raw: Raw<'_>) -> Result<String, String> {
    let wanted = raw.text().map(|s| s.trim().to_ascii_lowercase());
    match wanted {
        Some(w) if LOG_LEVELS.contains(&w.as_str()) => Ok(w),
        _ => Err(got(&format!("one of {}", LOG_LEVELS.join(", ")), raw)),
    }
}

/// The closest of `candidates` to a misspelt `key`, if it is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(key: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(key, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let v = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            cur.push(v);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_typed_in_toml_and_parsed_from_text() {
        assert_eq!(positive_u32(Raw::Int(5)), Ok(5));
        assert_eq!(positive_u32(Raw::Text("7")), Ok(7));
        assert_eq!(
            positive_u32(Raw::Str("4096")),
            Err("must be a positive integer, got \"4096\"".into())
        );
        assert!(positive_u32(Raw::Int(0)).is_err());
        assert!(positive_u32(Raw::Int(-3)).is_err());
        assert!(positive_u32(Raw::Int(1 << 40)).is_err());
        assert_eq!(count_u32(Raw::Int(0)), Ok(0));
    }

    #[test]
    fn durations_take_seconds_or_units() {
        assert_eq!(duration(Raw::Int(90)), Ok(Duration::from_secs(90)));
        assert_eq!(duration(Raw::Float(1.5)), Ok(Duration::from_millis(1500)));
        assert_eq!(duration(Raw::Str("5m")), Ok(Duration::from_mins(5)));
        assert!(duration(Raw::Str("soon")).is_err());
        assert!(duration(Raw::Int(-1)).is_err());
        assert!(duration(Raw::Bool(true)).is_err());
    }

    #[test]
    fn urls_need_the_right_scheme_and_a_host() {
        assert!(http_url(Raw::Str("https://api.example.com/prefix")).is_ok());
        assert!(http_url(Raw::Str("ftp://x")).is_err());
        assert!(http_url(Raw::Str("localhost:8080")).is_err());
        assert!(redis_url(Raw::Str("redis://127.0.0.1:6379/0")).is_ok());
        assert!(redis_url(Raw::Str("http://127.0.0.1")).is_err());
        assert!(redis_url(Raw::Str("rediss://cache:6380/0")).is_ok());
        assert_eq!(
            redis_url(Raw::Str("redis://a:7000, redis://b:7001")),
            Ok("redis://a:7000,redis://b:7001".to_string())
        );
        let mixed = redis_url(Raw::Str("redis://a:7000,rediss://b:7001")).expect_err("mixed");
        assert!(mixed.contains("one scheme"), "{mixed}");
        assert!(redis_url(Raw::Str("redis://a:7000,unix:///tmp/r.sock")).is_err());
        assert_eq!(
            file_path(Raw::Str("/etc/ca.pem")),
            Ok(PathBuf::from("/etc/ca.pem"))
        );
        assert!(file_path(Raw::Str(" ")).is_err());
    }

    #[test]
    fn typos_get_a_suggestion() {
        let keys = ["model", "max_tokens", "system"];
        assert_eq!(did_you_mean("modle", &keys), Some("model"));
        assert_eq!(did_you_mean("max_token", &keys), Some("max_tokens"));
        assert_eq!(did_you_mean("colour", &keys), None);
    }
}
