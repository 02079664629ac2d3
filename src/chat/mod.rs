//! The conversation model and its persistence.

pub mod apply;
pub mod attach;
pub mod conversation;
pub mod export;
pub mod resume;
pub mod session;
pub mod session_format;

pub use apply::{Applied, apply_event, end_unfinished};
pub use conversation::{Conversation, ReplyState, Turn, single_prompt_request};
pub use session::{
    LoadIssue, LoadReport, Session, SessionChoice, SessionError, SessionHeader, SessionInfo,
    SessionStore,
};
