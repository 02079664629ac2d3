//! Resuming a reply that broke off mid-stream, instead of paying for all of it again.
//!
//! Two ways, by what the API allows for the model (docs/protocol.md, *Conversation rules*):
//!
//! - **Prefill**: the partial text goes last, as the assistant's message, and the model
//!   writes what follows it. The API rejects a prefill that ends in whitespace, so the
//!   partial text is trimmed at the end, and the continuation joins that trimmed text.
//!   Claude 4.6 and later models reject prefill (400), and so does extended thinking.
//! - **Ask**: the partial text goes as the assistant's message, followed by a user turn
//!   asking to continue exactly where it stopped ([`CONTINUE_PROMPT`]).
//!
//! Either way the new turn starts with the trimmed partial text as its reply, so the
//! continuation streams onto it and the transcript reads as one reply.

use crate::api::{Message, MessagesRequest, Role};
use crate::chat::{Conversation, ReplyState, Turn};
use crate::config::Config;

/// The user turn that asks a model that takes no prefill to continue.
pub const CONTINUE_PROMPT: &str = "Your last reply was cut off. Continue it from exactly where it stopped, \
starting with the next character: no preamble, no repetition, no comment about the break.";

/// How a reply is resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeMode {
    /// The partial text as the final assistant message.
    Prefill,
    /// The partial text, then a user turn asking to continue.
    Ask,
}

/// Whether `model` accepts an assistant prefill: not with extended thinking, and not on
/// Claude 4.6 or later (`claude-opus-4-6`, `claude-sonnet-5`, …). An id that does not read
/// as `claude-<family>-<major>[-<minor>]` is assumed to be current, so no prefill.
pub fn allows_prefill(model: &str, thinking: bool) -> bool {
    if thinking {
        return false;
    }
    let Some(rest) = model.strip_prefix("claude-") else {
        return false;
    };
    // `claude-sonnet-4-5-20250929`: the family, then numbers; a date is not a version.
    let numbers: Vec<u32> = rest
        .split('-')
        .skip(1)
        .filter(|p| p.len() <= 2)
        .map_while(|p| p.parse().ok())
        .collect();
    // Older ids put the version first: `claude-3-5-sonnet-20241022`.
    let legacy = rest
        .split('-')
        .next()
        .is_some_and(|p| p.parse::<u32>().is_ok());
    if legacy {
        return true;
    }
    match numbers.as_slice() {
        [major, ..] if *major < 4 => true,
        [4] => true,
        [4, minor, ..] => *minor < 6,
        _ => false,
    }
}

/// A turn can be resumed: it broke off (or was cancelled) with some reply text.
pub fn can_resume(turn: &Turn) -> bool {
    matches!(
        turn.state,
        ReplyState::Interrupted { .. } | ReplyState::Cancelled
    ) && !turn.assistant.trim().is_empty()
}

/// The partial text as it is sent and kept: trimmed at the end (the API rejects a prefill
/// that ends in whitespace).
pub fn partial(turn: &Turn) -> String {
    turn.assistant.trim_end().to_string()
}

/// The turn that continues `turn`: the same prompt, its reply starting with the partial text.
pub fn continuation_turn(turn: &Turn, model: &str) -> Turn {
    let mut t = Turn::new(turn.user.clone(), model);
    t.assistant = partial(turn);
    t.attachments.clone_from(&turn.attachments);
    t
}

impl Conversation {
    /// The request that continues the reply of the turn at `index`, and how. The turns
    /// before it are context as usual; the turn itself contributes its prompt and partial
    /// text.
    pub fn continue_request(&self, index: usize, config: &Config) -> (MessagesRequest, ResumeMode) {
        let mut req = self.request_for(index, config, None);
        let text = self.turns.get(index).map(partial).unwrap_or_default();
        let mode = if allows_prefill(&config.model, req.thinking.is_some()) {
            ResumeMode::Prefill
        } else {
            ResumeMode::Ask
        };
        if !text.is_empty() {
            req.messages.push(Message::text(Role::Assistant, text));
            if mode == ResumeMode::Ask {
                req.messages
                    .push(Message::text(Role::User, CONTINUE_PROMPT.to_string()));
            }
        }
        (req, mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefill_is_for_models_before_4_6_without_thinking() {
        for old in [
            "claude-sonnet-4-5",
            "claude-sonnet-4-5-20250929",
            "claude-haiku-4-5",
            "claude-opus-4-1",
            "claude-opus-4",
            "claude-sonnet-4-20250514",
            "claude-3-5-sonnet-20241022",
            "claude-3-haiku-20240307",
        ] {
            assert!(allows_prefill(old, false), "{old}");
            assert!(!allows_prefill(old, true), "{old} with thinking");
        }
        for new in [
            "claude-sonnet-4-6",
            "claude-opus-4-6",
            "claude-opus-4-8",
            "claude-sonnet-5",
            "claude-opus-5-5",
            "my-proxy-model",
        ] {
            assert!(!allows_prefill(new, false), "{new}");
        }
    }

    fn cut(text: &str) -> Turn {
        let mut t = Turn::new("tell me a story", "m");
        t.assistant = text.into();
        t.state = ReplyState::Interrupted {
            reason: "dropped".into(),
        };
        t
    }

    #[test]
    fn the_request_ends_with_the_partial_text_or_a_request_to_continue() {
        let c = Conversation {
            turns: vec![cut("Once upon a time \n")],
        };
        let old = Config {
            model: "claude-sonnet-4-5".into(),
            ..Config::default()
        };
        let (req, mode) = c.continue_request(0, &old);
        assert_eq!(mode, ResumeMode::Prefill);
        let texts: Vec<String> = req.messages.iter().map(Message::joined_text).collect();
        assert_eq!(texts, vec!["tell me a story", "Once upon a time"]);
        assert_eq!(req.messages[1].role, Role::Assistant);

        let new = Config {
            model: "claude-opus-4-6".into(),
            ..Config::default()
        };
        let (req, mode) = c.continue_request(0, &new);
        assert_eq!(mode, ResumeMode::Ask);
        let texts: Vec<String> = req.messages.iter().map(Message::joined_text).collect();
        assert_eq!(
            texts,
            vec!["tell me a story", "Once upon a time", CONTINUE_PROMPT]
        );
        assert!(can_resume(&c.turns[0]));
        assert_eq!(
            continuation_turn(&c.turns[0], "m").assistant,
            "Once upon a time"
        );
    }
}
