//! The mock's canned replies and how they are cut into stream chunks.
//!
//! The texts live in `assets/replies/` and are compiled in with `include_str!`, so the binary
//! is self-contained. The choice is deterministic: by `seed` when one is configured, else by a
//! hash of the last user prompt (so the same question gets the same answer).

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use sha2::{Digest, Sha256};

use crate::tokens::count_text;

/// One canned reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// File name under `assets/replies/`.
    pub name: &'static str,
    /// The text as streamed (trailing whitespace trimmed).
    pub text: &'static str,
}

macro_rules! reply {
    ($file:literal) => {
        ($file, include_str!(concat!("../../assets/replies/", $file)))
    };
}

const FILES: [(&str, &str); 10] = [
    reply!("01-rust-error-handling.md"),
    reply!("02-python-retry.md"),
    reply!("03-rate-limit-algorithms.md"),
    reply!("04-sql-indexes.md"),
    reply!("05-kyoto-autumn.md"),
    reply!("06-git-rebase.md"),
    reply!("07-sleep-and-memory.md"),
    reply!("08-typescript-debounce.md"),
    reply!("09-go-context.md"),
    reply!("10-http-429-vs-503.md"),
];

const THINKING: &str = include_str!("../../assets/replies/thinking/plan.md");

/// Every canned reply, in file order.
pub fn replies() -> Vec<Reply> {
    FILES
        .iter()
        .map(|(name, text)| Reply {
            name,
            text: text.trim_end(),
        })
        .collect()
}

/// The reply the mock gives: number `seed mod N` when a seed is set, else one picked by a
/// hash of the last user prompt.
pub fn choose_reply(seed: Option<u64>, last_user_prompt: &str) -> Reply {
    let index = match seed {
        Some(s) => s,
        None => hash64(last_user_prompt.as_bytes()),
    } % FILES.len() as u64;
    let (name, text) = FILES[index as usize % FILES.len()];
    Reply {
        name,
        text: text.trim_end(),
    }
}

/// The text of the thinking block sent when the request enables thinking.
pub fn thinking_text() -> &'static str {
    THINKING.trim_end()
}

/// A stable 64-bit hash (the first 8 bytes of SHA-256): unlike `DefaultHasher`, it is the
/// same in every build, so a prompt always maps to the same reply.
pub(crate) fn hash64(bytes: &[u8]) -> u64 {
    let d = Sha256::digest(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_le_bytes(first)
}

/// The longest prefix of `text` worth at most `max_tokens` tokens by the 4-characters rule.
pub(crate) fn truncate_to_tokens(text: &str, max_tokens: u64) -> &str {
    let max_chars = usize::try_from(max_tokens.saturating_mul(4)).unwrap_or(usize::MAX);
    match text.char_indices().nth(max_chars) {
        Some((byte, _)) => &text[..byte],
        None => text,
    }
}

/// Cut `text` into stream chunks of 1–6 tokens each: a chunk is a multiple of four
/// characters (the last may be shorter), and cuts fall on character boundaries, never inside
/// a UTF-8 sequence. The sizes are drawn from `rng_seed`, so a given request always streams
/// the same way. The chunks' token counts add up to `count_text(text)`.
pub(crate) fn chunks(text: &str, rng_seed: u64) -> Vec<&str> {
    let mut rng = SmallRng::seed_from_u64(rng_seed);
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    let chars = bounds.len() - 1;
    let mut out = Vec::new();
    let mut at = 0;
    while at < chars {
        let tokens: usize = rng.random_range(1..=6);
        let end = (at + tokens * 4).min(chars);
        out.push(&text[bounds[at]..bounds[end]]);
        at = end;
    }
    out
}

/// Output tokens of a chunk, by the same rule the usage counts use.
pub(crate) fn chunk_tokens(chunk: &str) -> u64 {
    count_text(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_have_realistic_lengths_and_variety() {
        let all = replies();
        assert!(all.len() >= 8);
        for r in &all {
            let t = count_text(r.text);
            assert!((150..=700).contains(&t), "{} has {t} tokens", r.name);
        }
        let joined: String = all.iter().map(|r| r.text).collect();
        assert!(joined.contains("```rust") && joined.contains("```python"));
        assert!(joined.contains("|---|"), "a table");
        assert!(
            joined.contains('🍁') && joined.contains("京都"),
            "non-ASCII and emoji"
        );
    }

    #[test]
    fn choice_is_deterministic() {
        assert_eq!(choose_reply(None, "hello"), choose_reply(None, "hello"));
        assert_eq!(choose_reply(Some(3), "a"), choose_reply(Some(3), "b"));
        assert_eq!(choose_reply(Some(3), "a").name, "04-sql-indexes.md");
    }

    #[test]
    fn chunks_cover_the_text_and_respect_characters() {
        for r in replies() {
            let parts = chunks(r.text, 42);
            assert_eq!(parts.concat(), r.text);
            let sum: u64 = parts.iter().map(|c| chunk_tokens(c)).sum();
            assert_eq!(sum, count_text(r.text), "{}", r.name);
            for p in &parts[..parts.len() - 1] {
                let n = p.chars().count();
                assert!(n % 4 == 0 && (4..=24).contains(&n), "{p:?}");
            }
        }
    }

    #[test]
    fn truncation_counts_characters_not_bytes() {
        assert_eq!(truncate_to_tokens("京都京都京都", 1), "京都京都");
        assert_eq!(truncate_to_tokens("abc", 10), "abc");
        assert_eq!(truncate_to_tokens("abcdefgh", 0), "");
    }
}
