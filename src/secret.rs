//! The API key, wrapped so that it cannot leak by accident.
//!
//! [`ApiKey`] has no `Display` and no `Serialize`; its `Debug` prints a redacted form. The only
//! way to the raw text is [`ApiKey::expose`], used in exactly one place: building the request
//! header. Logs, events, sessions, `config show` and panic messages therefore never see it.
//!
//! A server may still echo the key back in an error message; every surface passes such text
//! through [`redact`], which replaces each key given to [`register_secret`].

use std::sync::RwLock;

use sha2::{Digest, Sha256};

/// An Anthropic API key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wrap a key, trimming surrounding whitespace (a trailing newline from a password
    /// manager's output is common).
    pub fn new(raw: impl Into<String>) -> Option<ApiKey> {
        let raw = raw.into();
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            None
        } else {
            Some(ApiKey(trimmed.to_string()))
        }
    }

    /// The raw key, for the `x-api-key` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short, stable, one-way fingerprint (the first 16 hex digits of SHA-256), safe to
    /// use as a namespace in shared storage and to show in diagnostics.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        digest.iter().take(8).fold(String::new(), |mut out, b| {
            use std::fmt::Write;
            let _ = write!(out, "{b:02x}");
            out
        })
    }

    /// What may be shown to a person: a prefix hint and the fingerprint, never the secret part.
    pub fn redacted(&self) -> String {
        let hint = if self.0.starts_with("sk-ant-") {
            "sk-ant-…"
        } else {
            "…"
        };
        format!("{hint} (redacted, fingerprint {})", self.fingerprint())
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({})", self.redacted())
    }
}

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not registered: replacing a two-letter "key" everywhere would
/// garble every line, and no real key is that short.
pub const MIN_SECRET_LEN: usize = 8;

// A plain RwLock: `redact` only reads, it never panics while holding the lock, so it is safe to
// call from a panic hook.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remember `key` so that [`redact`] replaces it from now on.
pub fn register_secret(key: &ApiKey) {
    let text = key.expose();
    if text.len() < MIN_SECRET_LEN {
        return;
    }
    let mut secrets = SECRETS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !secrets.iter().any(|s| s == text) {
        secrets.push(text.to_string());
    }
}

/// `text` with every registered secret replaced by [`REDACTED`].
pub fn redact(text: &str) -> String {
    let secrets = SECRETS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out = text.to_string();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let k = ApiKey::new("sk-ant-api03-SECRETSECRET\n").expect("non-empty");
        assert_eq!(k.expose(), "sk-ant-api03-SECRETSECRET");
        let shown = format!("{k:?} {}", k.redacted());
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_eq!(k.fingerprint().len(), 16);
        assert!(ApiKey::new("  ").is_none());
    }

    #[test]
    fn registered_secrets_are_replaced_everywhere() {
        let key = ApiKey::new("sk-ant-unit-REDACTME-42").expect("non-empty");
        register_secret(&key);
        register_secret(&ApiKey::new("short").expect("non-empty"));
        assert_eq!(
            redact("a sk-ant-unit-REDACTME-42 b sk-ant-unit-REDACTME-42"),
            format!("a {REDACTED} b {REDACTED}")
        );
        assert_eq!(redact("short stays"), "short stays");
    }
}
