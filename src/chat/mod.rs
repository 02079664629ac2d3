//! The conversation model and its persistence.

pub mod conversation;

pub use conversation::{Conversation, ReplyState, Turn, single_prompt_request};
