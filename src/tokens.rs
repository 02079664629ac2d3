//! A local estimate of token counts.
//!
//! The real tokenizer is not public; about four characters per token is the usual rule of thumb
//! for English text. The client uses this to size its reservation before a request is sent and
//! corrects the estimate from the usage the server reports (see `limiter::local`). The mock uses
//! the same rule, so that on the mock the estimate is exact.

/// Tokens in a piece of text: `ceil(chars / 4)`, and at least one for non-empty text.
pub fn count_text(text: &str) -> u64 {
    let chars = text.chars().count() as u64;
    chars.div_ceil(4)
}

/// Fixed overhead the API charges for each message (role markers and separators).
pub const PER_MESSAGE_OVERHEAD: u64 = 4;

/// Fixed overhead of every request.
pub const PER_REQUEST_OVERHEAD: u64 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_four_chars_per_token() {
        assert_eq!(count_text(""), 0);
        assert_eq!(count_text("a"), 1);
        assert_eq!(count_text("abcd"), 1);
        assert_eq!(count_text("abcde"), 2);
        assert_eq!(count_text("ééééé"), 2, "counts characters, not bytes");
    }
}
