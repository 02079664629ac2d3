//! What goes into the app ([`Msg`]) and what comes out of it ([`Effect`]).
//!
//! Effects are data: the app never does IO, the event loop runs them. A test can assert that
//! Esc while waiting yields [`Effect::CancelTurn`] without a terminal.

use crossterm::event::{KeyEvent, MouseEvent};

use crate::api::MessagesRequest;
use crate::chat::{SessionInfo, Turn};
use crate::retry::TurnEvent;

/// How a one-line notice reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeKind {
    /// Information.
    Info,
    /// Something to notice.
    Warn,
    /// Something went wrong.
    Error,
}

/// Identifies one run of a turn (a retry is a new run). Never reused within a session, so an
/// event that arrives after its turn was cancelled or cleared is recognised and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TurnId(pub u64);

/// An input to [`update`](super::app::update).
// Messages are moved once through a channel; boxing the turn event would cost an allocation
// per text delta for no gain.
#[expect(
    clippy::large_enum_variant,
    reason = "messages are moved once, not stored in bulk"
)]
#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    /// A key press.
    Key(KeyEvent),
    /// A bracketed paste: one event, never sends.
    Paste(String),
    /// A mouse event (only the wheel is used).
    Mouse(MouseEvent),
    /// The terminal was resized.
    Resize {
        /// New width.
        width: u16,
        /// New height.
        height: u16,
    },
    /// An event of a running turn.
    Turn {
        /// Which run.
        id: TurnId,
        /// What happened.
        event: TurnEvent,
    },
    /// A turn's event stream ended (after its terminal event, or without one).
    TurnStreamEnded {
        /// Which run.
        id: TurnId,
    },
    /// Time passed (a countdown or spinner is on screen).
    Tick,
    /// A session was opened (at start, `/sessions`, `/new`): its turns replace the screen's.
    SessionOpened {
        /// Its name.
        name: String,
        /// Its turns.
        turns: Vec<Turn>,
        /// What could not be read (one line each); empty when the file was clean.
        issues: Vec<String>,
    },
    /// The saved sessions, newest first (for the picker).
    SessionList(Vec<SessionInfo>),
    /// The session was renamed.
    SessionRenamed(String),
    /// The answer to [`Effect::ReadAttachment`]: the file, or why it cannot be attached.
    Attached(Result<Box<crate::chat::attach::Attachment>, String>),
    /// The answer to [`Effect::ReadForPrompt`]: the prompt and each file read (or why not).
    PromptFiles {
        /// The prompt to send once the files are attached.
        prompt: String,
        /// One result per `@path`, in order.
        files: Vec<Result<Box<crate::chat::attach::Attachment>, String>>,
    },
    /// The answer to [`Effect::CompletePath`]: the partial path and the entries that extend
    /// it (directories end with `/`).
    PathCompletions {
        /// What was completed.
        partial: String,
        /// Full candidates.
        matches: Vec<String>,
    },
    /// The answer to [`Effect::ListModels`]: the models, newest first, or why not.
    Models(Result<Vec<crate::api::ModelInfo>, String>),
    /// Something the event loop wants the person to know (a failed save, say).
    Notice {
        /// How it reads.
        kind: NoticeKind,
        /// The text.
        text: String,
    },
}

/// Work for the event loop.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Run this request and feed its events back as [`Msg::Turn`] with this id.
    StartTurn {
        /// The run's id.
        id: TurnId,
        /// The turn in the conversation.
        turn_index: usize,
        /// The request, built by `Conversation::request_for`.
        request: MessagesRequest,
    },
    /// Stop a run at once (drop its event stream): pacing, waiting or streaming.
    CancelTurn {
        /// The run's id.
        id: TurnId,
        /// The turn in the conversation (its partial text is kept).
        turn_index: usize,
    },
    /// A turn reached its final state (finished, interrupted, failed, cancelled). Persistence
    /// hooks in here.
    TurnEnded {
        /// The turn in the conversation.
        turn_index: usize,
        /// The turn as it ended (carried along, since `/clear` may empty the conversation
        /// before the effect runs).
        turn: Box<Turn>,
    },
    /// A retry replaced this turn: leave it out of the API input when the session resumes.
    Superseded {
        /// The turn in the conversation.
        turn_index: usize,
    },
    /// The person edited this turn's prompt and sent it again: the turn stays in the session,
    /// marked superseded by an edit, and is no longer sent as context.
    Edited {
        /// The turn in the conversation.
        turn_index: usize,
    },
    /// Write an export (`/export`): `text` to `path`. A default path is never overwritten;
    /// one the person named is.
    WriteFile {
        /// Where.
        path: String,
        /// What.
        text: String,
        /// The person named the path (an existing file is replaced).
        overwrite: bool,
    },
    /// Read a file to attach (answered with [`Msg::Attached`]).
    ReadAttachment(String),
    /// Read the `@path` files of a prompt, then send it (answered with [`Msg::PromptFiles`]).
    ReadForPrompt {
        /// The prompt.
        prompt: String,
        /// The paths, as typed.
        paths: Vec<String>,
    },
    /// List what a partial path could complete to (answered with [`Msg::PathCompletions`]).
    CompletePath(String),
    /// Fetch `GET /v1/models` (answered with [`Msg::Models`]).
    ListModels,
    /// List the saved sessions (answered with [`Msg::SessionList`]).
    ListSessions,
    /// Open a saved session (answered with [`Msg::SessionOpened`]).
    OpenSession(String),
    /// Start a new, empty session (answered with [`Msg::SessionOpened`]).
    NewSession,
    /// Rename the current session (answered with [`Msg::SessionRenamed`] or a notice).
    RenameSession(String),
    /// Capture the mouse (wheel scrolling) or release it (native text selection).
    SetMouseCapture(bool),
    /// Put this text on the clipboard (OSC 52).
    CopyToClipboard(String),
    /// Repaint the whole screen (Ctrl+L).
    ClearScreen,
    /// Restore the terminal, stop the process (SIGTSTP), and take the terminal back when
    /// the shell resumes it (Ctrl+Z).
    Suspend,
    /// Leave.
    Quit,
}
