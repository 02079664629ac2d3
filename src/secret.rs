//! The API key, wrapped so that it cannot leak by accident.
//!
//! [`ApiKey`] has no `Display` and no `Serialize`; its `Debug` prints a redacted form. The only
//! way to the raw text is [`ApiKey::expose`], used in exactly one place: building the request
//! header. Logs, events, sessions, `config show` and panic messages therefore never see it.

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
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
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
}
