//! Where a shared quota lives: the Redis key names of one key's and one model class's state
//! (`backchat:{<fingerprint>:<class>}:…`), and the numbers the script uses for the dimensions.
//! Keys are namespaced by a fingerprint of the API key, never the key; the class is a
//! [`ModelClass`](crate::quota::ModelClass) name, which can hold no `:`, `{` or `}`.
//!
//! The braces are a Redis Cluster *hash tag*: a cluster hashes only the text between the
//! first `{` and the next `}` to pick a key's slot, so all eight keys of one scope live in one
//! slot and the script (which touches all of them atomically) can run on a cluster instead
//! of failing with `CROSSSLOT`. On a single server the braces are just characters.

use crate::quota::Bucket;

/// Prefix of every key backchat writes.
pub const KEY_PREFIX: &str = "backchat";

/// The dimensions shared through Redis, in the order the script numbers them (1, 2, 3).
pub const DIMS: [Bucket; 3] = Bucket::PACED;

/// The name of a dimension in key names.
pub fn dim_name(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::Requests => "requests",
        Bucket::InputTokens => "input_tokens",
        Bucket::OutputTokens => "output_tokens",
        Bucket::Tokens => "tokens",
    }
}

/// The prefix of one scope's keys: `backchat:{<fingerprint>:<class>}`, the braces being the
/// hash tag that keeps a scope in one cluster slot.
pub fn scope_prefix(fingerprint: &str, class: &str) -> String {
    format!("{KEY_PREFIX}:{{{fingerprint}:{class}}}")
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
    fn keys_follow_the_documented_layout() {
        let keys = scope_keys("0123456789abcdef", "sonnet-4");
        assert_eq!(keys[0], "backchat:{0123456789abcdef:sonnet-4}:tat:requests");
        assert_eq!(
            keys[4],
            "backchat:{0123456789abcdef:sonnet-4}:limit:input_tokens"
        );
        assert_eq!(keys[6], "backchat:{0123456789abcdef:sonnet-4}:blocked");
        assert_eq!(keys[7], "backchat:{0123456789abcdef:sonnet-4}:probe");
        for code in 0..=4 {
            assert_eq!(i64::from(bucket_code(bucket_from_code(code))), code);
        }
    }
}
