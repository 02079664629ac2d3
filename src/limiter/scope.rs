//! Where a shared quota lives: the model class a request counts against, and the Redis key
//! names of that class's state.
//!
//! Anthropic sets limits per organization and per model class: "Opus 4.x models share one
//! pool, and Sonnet 4.x models share another" (PROTOCOL.md §4.2). The class is therefore the
//! family plus its major version (`sonnet-4`, `opus-4`, `haiku-3`); a model id we cannot read
//! is its own class. Keys are namespaced by a fingerprint of the API key, never the key.

use crate::retry::Bucket;

/// Prefix of every key backchat writes.
pub const KEY_PREFIX: &str = "backchat";

/// The dimensions shared through Redis, in the order the script numbers them (1, 2, 3).
pub const DIMS: [Bucket; 3] = Bucket::PACED;

/// The rate-limit class of a model id: `claude-sonnet-4-5-20250929` → `sonnet-4`,
/// `claude-3-5-haiku-latest` → `haiku-3`, `claude-opus-4-1` → `opus-4`. An id without a
/// known family becomes a sanitized copy of itself (lower case, `[a-z0-9.-]`, at most 48
/// characters), so it can never inject a `:` into a key name.
pub fn model_class(model: &str) -> String {
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
            Some(m) => format!("{family}-{m}"),
            None => family.to_string(),
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
        .take(48)
        .collect();
    if sanitized.is_empty() {
        "unknown".to_string()
    } else {
        sanitized
    }
}

/// The name of a dimension in key names.
pub fn dim_name(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::Requests => "requests",
        Bucket::InputTokens => "input_tokens",
        Bucket::OutputTokens => "output_tokens",
        Bucket::Tokens => "tokens",
    }
}

/// The prefix of one scope's keys: `backchat:{fingerprint}:{class}`.
pub fn scope_prefix(fingerprint: &str, class: &str) -> String {
    format!("{KEY_PREFIX}:{fingerprint}:{class}")
}

/// The eight keys of a scope, in the order the script expects them: `tat:<dim>` ×3,
/// `limit:<dim>` ×3, `blocked`, `probe`.
pub fn scope_keys(fingerprint: &str, class: &str) -> Vec<String> {
    let prefix = scope_prefix(fingerprint, class);
    let mut keys = Vec::with_capacity(8);
    for kind in ["tat", "limit"] {
        for dim in DIMS {
            keys.push(format!("{prefix}:{kind}:{}", dim_name(dim)));
        }
    }
    keys.push(format!("{prefix}:blocked"));
    keys.push(format!("{prefix}:probe"));
    keys
}

/// The number the script uses for a bucket (0 = none).
pub fn bucket_code(bucket: Option<Bucket>) -> u8 {
    match bucket {
        None => 0,
        Some(Bucket::Requests) => 1,
        Some(Bucket::InputTokens) => 2,
        Some(Bucket::OutputTokens) => 3,
        Some(Bucket::Tokens) => 4,
    }
}

/// The bucket for a number the script returned.
pub fn bucket_from_code(code: i64) -> Option<Bucket> {
    match code {
        1 => Some(Bucket::Requests),
        2 => Some(Bucket::InputTokens),
        3 => Some(Bucket::OutputTokens),
        4 => Some(Bucket::Tokens),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn keys_follow_the_documented_layout() {
        let keys = scope_keys("0123456789abcdef", "sonnet-4");
        assert_eq!(keys[0], "backchat:0123456789abcdef:sonnet-4:tat:requests");
        assert_eq!(
            keys[4],
            "backchat:0123456789abcdef:sonnet-4:limit:input_tokens"
        );
        assert_eq!(keys[6], "backchat:0123456789abcdef:sonnet-4:blocked");
        assert_eq!(keys[7], "backchat:0123456789abcdef:sonnet-4:probe");
        for code in 0..=4 {
            assert_eq!(i64::from(bucket_code(bucket_from_code(code))), code);
        }
    }
}
