//! The model class a request counts against.
//!
//! Anthropic sets limits per organization and per model class: "Opus 4.x models share one
//! pool, and Sonnet 4.x models share another" (docs/protocol.md). The class is therefore the
//! family plus its major version (`sonnet-4`, `opus-4`, `haiku-3`); a model id we cannot read
//! is its own class. The limiters keep one model of the server's buckets per class, and the
//! shared limiter names its Redis keys after it.

use std::fmt;

/// The rate-limit class of a model id: `claude-sonnet-4-5-20250929` → `sonnet-4`,
/// `claude-3-5-haiku-latest` → `haiku-3`, `claude-opus-4-1` → `opus-4`. An id without a
/// known family becomes a sanitized copy of itself (lower case, `[a-z0-9.-]`, at most
/// [`ModelClass::MAX_LEN`] characters), so it can never inject a `:` into a key name.
///
/// Stored inline, so that it is `Copy` like the demand that carries it: the sanitizing above
/// bounds it to a short ASCII string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelClass {
    len: u8,
    bytes: [u8; ModelClass::MAX_LEN],
}

impl ModelClass {
    /// The longest class name.
    pub const MAX_LEN: usize = 48;

    /// The class of `model`.
    pub fn of(model: &str) -> Self {
        let lower = model.to_ascii_lowercase();
        let tokens: Vec<&str> = lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|t| !t.is_empty())
            .collect();
        let family = ["opus", "sonnet", "haiku"]
            .into_iter()
            .find(|f| tokens.iter().any(|t| t == f));
        if let Some(family) = family {
            // The first short number is the major version (dates are 8 digits).
            let major = tokens
                .iter()
                .find(|t| t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit()));
            return match major {
                Some(m) => ModelClass::from_ascii(&format!("{family}-{m}")),
                None => ModelClass::from_ascii(family),
            };
        }
        let sanitized: String = lower
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .take(ModelClass::MAX_LEN)
            .collect();
        if sanitized.is_empty() {
            ModelClass::default()
        } else {
            ModelClass::from_ascii(&sanitized)
        }
    }

    /// The class name, as it appears in key names and messages.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (see `from_ascii`), so this cannot fail.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("unknown")
    }

    /// Store `name`, keeping its ASCII characters up to [`ModelClass::MAX_LEN`]. Every caller
    /// passes an already sanitized, short ASCII name; the filter only keeps `as_str` total.
    fn from_ascii(name: &str) -> Self {
        let mut bytes = [0u8; ModelClass::MAX_LEN];
        let mut len = 0;
        for b in name.bytes().filter(u8::is_ascii).take(ModelClass::MAX_LEN) {
            bytes[len] = b;
            len += 1;
        }
        ModelClass {
            len: u8::try_from(len).unwrap_or(0),
            bytes,
        }
    }
}

/// `unknown`: the class of an empty model id.
impl Default for ModelClass {
    fn default() -> Self {
        ModelClass::from_ascii("unknown")
    }
}

impl fmt::Display for ModelClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ModelClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelClass({:?})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_class(model: &str) -> String {
        ModelClass::of(model).to_string()
    }

    #[test]
    fn classes_pool_a_family_and_major_version() {
        assert_eq!(model_class("claude-sonnet-4-5-20250929"), "sonnet-4");
        assert_eq!(model_class("claude-sonnet-4-0"), "sonnet-4");
        assert_eq!(model_class("claude-opus-4-1"), "opus-4");
        assert_eq!(model_class("claude-haiku-4-5"), "haiku-4");
        assert_eq!(model_class("claude-3-5-haiku-latest"), "haiku-3");
        assert_eq!(model_class("CLAUDE-3-7-SONNET-20250219"), "sonnet-3");
        assert_eq!(model_class("sonnet"), "sonnet");
    }

    #[test]
    fn unknown_models_are_sanitized() {
        assert_eq!(model_class("my:model name"), "my-model-name");
        assert_eq!(model_class(""), "unknown");
        assert!(model_class(&"x".repeat(100)).len() <= 48);
    }

    #[test]
    fn a_class_is_a_small_copyable_value() {
        let a = ModelClass::of("claude-sonnet-4-5");
        let b = a;
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "sonnet-4");
        assert_eq!(format!("{a:?}"), "ModelClass(\"sonnet-4\")");
        assert_ne!(a, ModelClass::of("claude-opus-4-1"));
        assert_eq!(ModelClass::of(&"é".repeat(60)).as_str(), "-".repeat(48));
    }
}
