//! The conversation: turns as the person saw them, and the API input built from them.
//!
//! The API input is always valid (docs/protocol.md, *Conversation rules*): roles alternate starting with the user,
//! no block is empty, and the final message is the user's. Interrupted replies keep their
//! partial text, marked as cut off, so that the model knows what it already said. A turn that
//! failed before its stream started is not context at all: it stays in the session for the
//! record and for `/retry`, and only its retry (a new turn) is sent.
//!
//! Prompt caching needs the history to go out byte-identical from turn to turn: the messages
//! of one request are a prefix of the next one's. Nothing here rewrites an earlier turn, and
//! cache markers (the only thing that moves) are not part of the cached text.

use serde::{Deserialize, Serialize};

use crate::api::{ContentBlock, Message, MessagesRequest, Role, Thinking, Usage};
use crate::config::Config;

/// Marker appended to an interrupted reply in the API input.
pub const INTERRUPTED_MARKER: &str = "[reply interrupted]";

/// How a reply ended (or that it has not yet).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ReplyState {
    /// Waiting, pacing or retrying before the stream starts.
    Pending,
    /// Text is arriving.
    Streaming,
    /// Complete.
    Complete {
        /// Why generation stopped.
        #[serde(default)]
        stop_reason: Option<String>,
    },
    /// The stream broke after it had started; the partial text is kept.
    Interrupted {
        /// What broke.
        reason: String,
    },
    /// The turn failed before its stream started.
    Failed {
        /// The message shown to the person.
        message: String,
        /// Whether trying again can help (not after a spend cap or a rejected key).
        #[serde(default = "yes")]
        retry_helps: bool,
    },
    /// The person cancelled it.
    Cancelled,
}

fn yes() -> bool {
    true
}

impl ReplyState {
    /// A failure that trying again may fix.
    pub fn failed(message: impl Into<String>) -> ReplyState {
        ReplyState::Failed {
            message: message.into(),
            retry_helps: true,
        }
    }

    /// True once the turn has ended.
    pub fn is_final(&self) -> bool {
        !matches!(self, ReplyState::Pending | ReplyState::Streaming)
    }
}

/// One exchange: the prompt and the reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// The person's prompt.
    pub user: String,
    /// Reply text (complete or partial).
    #[serde(default)]
    pub assistant: String,
    /// Thinking text, shown dimmed and collapsed; never sent back.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    /// How the reply ended.
    pub state: ReplyState,
    /// The model that answered (or was asked).
    #[serde(default)]
    pub model: String,
    /// Final usage, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// `request-id` of the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// A later turn retried this one: leave it out of the API input.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub superseded: bool,
    /// It was superseded by an edited prompt (`/edit`), not by a retry of the same one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub superseded_by_edit: bool,
    /// Files sent with the prompt (stored with the turn, so a resumed conversation sends the
    /// same bytes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::chat::attach::Attachment>,
}

impl Turn {
    /// A new turn waiting for its reply.
    pub fn new(user: impl Into<String>, model: impl Into<String>) -> Turn {
        Turn {
            user: user.into(),
            assistant: String::new(),
            thinking: String::new(),
            state: ReplyState::Pending,
            model: model.into(),
            usage: None,
            request_id: None,
            superseded: false,
            superseded_by_edit: false,
            attachments: Vec::new(),
        }
    }

    /// Whether a retry makes sense (failed, interrupted or cancelled).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.state,
            ReplyState::Failed {
                retry_helps: true,
                ..
            } | ReplyState::Interrupted { .. }
                | ReplyState::Cancelled
        )
    }
}

/// A conversation: its turns and its system prompt.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// The turns, oldest first.
    pub turns: Vec<Turn>,
}

impl Conversation {
    /// The API messages for every turn up to and including `upto` (an index into `turns`),
    /// whose reply is not sent (it is the one being requested).
    pub fn messages_for(&self, upto: usize) -> Vec<Message> {
        let mut out: Vec<Message> = Vec::new();
        let mut pending_user: Vec<&str> = Vec::new();
        // Attachments go before the prompt text they came with.
        let mut pending_files: Vec<ContentBlock> = Vec::new();
        let user_message = |files: &mut Vec<ContentBlock>, text: String| {
            let mut content = std::mem::take(files);
            if !text.trim().is_empty() {
                content.push(ContentBlock::text(text));
            }
            Message {
                role: Role::User,
                content,
            }
        };
        for (i, turn) in self.turns.iter().enumerate().take(upto + 1) {
            // Superseded turns were retried by a later one; turns still in flight have no
            // answer yet and belong to their own request, not to this one.
            // A turn that failed before its stream started was never answered: resending it
            // would cost its tokens on every later turn, and the model never saw it.
            if i != upto
                && (turn.superseded
                    || !turn.state.is_final()
                    || matches!(turn.state, ReplyState::Failed { .. }))
            {
                continue;
            }
            if !turn.user.trim().is_empty() {
                pending_user.push(&turn.user);
            }
            for a in &turn.attachments {
                pending_files.extend(a.blocks());
            }
            if i == upto {
                break;
            }
            let reply = reply_text(turn);
            if let Some(reply) = reply {
                if pending_user.is_empty() && pending_files.is_empty() {
                    // A reply with no prompt before it cannot be sent as the first message or
                    // after another reply; skip it.
                    continue;
                }
                out.push(user_message(&mut pending_files, pending_user.join("\n\n")));
                pending_user.clear();
                out.push(Message::text(Role::Assistant, reply));
            }
        }
        if !pending_user.is_empty() || !pending_files.is_empty() {
            out.push(user_message(&mut pending_files, pending_user.join("\n\n")));
        }
        out
    }

    /// The request for the turn at `index`.
    pub fn request_for(
        &self,
        index: usize,
        config: &Config,
        system: Option<&str>,
    ) -> MessagesRequest {
        build_request(config, self.messages_for(index), system)
    }
}

/// The text a turn contributes as the assistant's side, if any.
fn reply_text(turn: &Turn) -> Option<String> {
    let text = turn.assistant.trim_end();
    match &turn.state {
        ReplyState::Complete { .. } if !text.trim().is_empty() => Some(text.to_string()),
        ReplyState::Interrupted { .. } | ReplyState::Cancelled if !text.trim().is_empty() => {
            Some(format!("{text}\n\n{INTERRUPTED_MARKER}"))
        }
        _ => None,
    }
}

fn build_request(config: &Config, messages: Vec<Message>, system: Option<&str>) -> MessagesRequest {
    let mut req = MessagesRequest::new(config.model.clone(), config.max_tokens, messages);
    req.system = system
        .map(str::to_string)
        .or_else(|| config.system.clone())
        .filter(|s| !s.trim().is_empty())
        .map(Into::into);
    if let Some(budget) = config.thinking_budget {
        req.thinking = Some(Thinking::Enabled {
            budget_tokens: budget,
        });
        // The API requires max_tokens > budget_tokens.
        if req.max_tokens <= budget {
            req.max_tokens = budget.saturating_add(1024);
        }
    }
    req.apply_cache(config.cache, config.cache_ttl);
    req
}

/// The request for a single prompt (headless mode without a session).
pub fn single_prompt_request(config: &Config, prompt: &str) -> MessagesRequest {
    build_request(config, vec![Message::text(Role::User, prompt)], None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CacheMode, ContentBlock};

    fn done(user: &str, reply: &str) -> Turn {
        let mut t = Turn::new(user, "m");
        t.assistant = reply.into();
        t.state = ReplyState::Complete { stop_reason: None };
        t
    }

    fn roles(m: &[Message]) -> Vec<Role> {
        m.iter().map(|m| m.role).collect()
    }

    #[test]
    fn roles_alternate_and_no_block_is_empty() {
        let mut failed = Turn::new("first try", "m");
        failed.state = ReplyState::failed("429");
        let mut empty = Turn::new("second", "m");
        empty.state = ReplyState::Complete { stop_reason: None }; // an empty reply is not sent
        let mut cut = Turn::new("third", "m");
        cut.assistant = "Once upon".into();
        cut.state = ReplyState::Interrupted {
            reason: "dropped".into(),
        };
        let c = Conversation {
            turns: vec![
                done("hi", "hello"),
                failed,
                empty,
                cut,
                Turn::new("go on", "m"),
            ],
        };
        let m = c.messages_for(4);
        assert_eq!(
            roles(&m),
            vec![
                Role::User,
                Role::Assistant,
                Role::User,
                Role::Assistant,
                Role::User
            ]
        );
        // The failed turn is not context; the empty reply's prompt joins the next one.
        assert_eq!(m[2].joined_text(), "second\n\nthird");
        assert_eq!(
            m[3].joined_text(),
            format!("Once upon\n\n{INTERRUPTED_MARKER}")
        );
        for msg in &m {
            for b in &msg.content {
                if let ContentBlock::Text { text, .. } = b {
                    assert!(!text.trim().is_empty());
                }
            }
        }
    }

    /// Each message serialized on its own, concatenated: the bytes the cache sees.
    fn wire_bytes(messages: &[Message]) -> String {
        messages
            .iter()
            .map(|m| serde_json::to_string(m).expect("json"))
            .collect()
    }

    #[test]
    fn history_goes_out_byte_identical_from_turn_to_turn() {
        for mode in [CacheMode::Auto, CacheMode::Off] {
            let config = Config {
                system: Some("You are terse.".into()),
                cache: mode,
                ..Config::default()
            };
            let mut c = Conversation::default();
            let mut previous: Option<String> = None;
            for n in 0..6 {
                c.turns.push(Turn::new(
                    format!("question {n} ✓ \"quoted\"\n  indented"),
                    "m",
                ));
                let req = c.request_for(n, &config, None);
                let bytes = wire_bytes(&req.messages);
                if let Some(prev) = &previous {
                    assert!(bytes.starts_with(prev.as_str()), "turn {n} rewrote history");
                }
                previous = Some(bytes);
                let last = c.turns.last_mut().expect("turn");
                last.assistant = format!("answer {n}\n\n```\ncode  \n```\n");
                last.state = ReplyState::Complete { stop_reason: None };
            }
        }
    }

    #[test]
    fn breakpoints_move_only_the_markers() {
        let config = Config {
            system: Some("You are terse.".into()),
            cache: CacheMode::Breakpoints,
            ..Config::default()
        };
        let c = Conversation {
            turns: vec![done("a", "b"), Turn::new("c", "m")],
        };
        let mut req = c.request_for(1, &config, None);
        let v = serde_json::to_value(&req).expect("json");
        assert!(v["messages"][2]["content"][0]["cache_control"].is_object());
        assert!(v["system"][0]["cache_control"].is_object());
        req.apply_cache(CacheMode::Off, config.cache_ttl);
        let earlier = c.request_for(
            0,
            &Config {
                cache: CacheMode::Off,
                ..config
            },
            None,
        );
        assert!(wire_bytes(&req.messages).starts_with(&wire_bytes(&earlier.messages)));
    }

    #[test]
    fn a_turn_that_failed_before_its_stream_is_not_context() {
        let mut failed = Turn::new("a huge paste", "m");
        failed.state = ReplyState::failed("can never be accepted");
        let c = Conversation {
            turns: vec![done("hi", "hello"), failed, Turn::new("next", "m")],
        };
        let m = c.messages_for(2);
        assert_eq!(roles(&m), vec![Role::User, Role::Assistant, Role::User]);
        assert_eq!(m[2].joined_text(), "next");
        // Retried: the failed turn is superseded and its copy is sent in its place.
        let mut c = c;
        c.turns[1].superseded = true;
        c.turns[2] = Turn::new("a huge paste", "m");
        assert_eq!(c.messages_for(2)[2].joined_text(), "a huge paste");
        // Asking for the failed turn itself still sends its prompt.
        c.turns[1].superseded = false;
        assert_eq!(c.messages_for(1)[2].joined_text(), "a huge paste");
    }

    #[test]
    fn turns_still_in_flight_are_left_out() {
        let mut streaming = Turn::new("first question", "m");
        streaming.state = ReplyState::Streaming;
        streaming.assistant = "half an ans".into();
        let c = Conversation {
            turns: vec![done("a", "b"), streaming, Turn::new("second question", "m")],
        };
        let m = c.messages_for(2);
        assert_eq!(roles(&m), vec![Role::User, Role::Assistant, Role::User]);
        assert_eq!(m[2].joined_text(), "second question");
    }

    #[test]
    fn superseded_turns_are_left_out() {
        let mut cut = Turn::new("tell me", "m");
        cut.assistant = "partial".into();
        cut.state = ReplyState::Interrupted { reason: "x".into() };
        cut.superseded = true;
        let c = Conversation {
            turns: vec![done("a", "b"), cut, Turn::new("tell me", "m")],
        };
        let m = c.messages_for(2);
        assert_eq!(roles(&m), vec![Role::User, Role::Assistant, Role::User]);
        assert_eq!(m[2].joined_text(), "tell me");
    }
}
