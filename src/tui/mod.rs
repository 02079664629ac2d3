//! The terminal UI: a scrollable transcript, a multi-line composer, a status bar with the
//! live retry/pacing state and quota, and a quota panel with a timeline of attempts.
//!
//! State, update and view are kept apart (where the TUI sits among the layers, and how turn
//! events reach it, is in docs/architecture.md): [`app`] holds the state and
//! `update(&mut App, Msg, now) -> Vec<Effect>` with no IO; [`view`] is pure render functions
//! of the state and `now`; [`event_loop`] owns the terminal, turns crossterm and turn events
//! into messages, runs the effects and draws only when something changed. Keeping IO out of
//! `update` and the clock out of `view` is what lets the tests drive the whole UI without a
//! terminal (`harness`, behind the `test-support` feature).

pub mod app;
pub mod clipboard;
pub mod commands;
pub mod composer;
pub mod event_loop;
#[cfg(any(test, feature = "test-support"))]
pub mod harness;
pub mod keymap;
pub mod line_store;
pub mod live;
pub mod markdown;
pub mod msg;
pub mod proxy_view;
pub mod sanitize;
pub mod search;
pub mod theme;
pub mod timeline;
pub mod transcript;
pub mod view;
pub mod wrap;

pub use app::{App, update};
pub use msg::{Effect, Msg, TurnId};

use crate::config::Config;
use crate::mock::MockConfig;

/// Run the TUI until the person quits. Starts the backend (the embedded mock when asked or
/// when there is no key) and opens the session `choice` names (new, named or the latest).
/// Returns the exit code: 0 on quit, 2 when it cannot start.
pub async fn run(
    config: Config,
    mock: Option<MockConfig>,
    demo: bool,
    choice: crate::chat::SessionChoice,
) -> i32 {
    event_loop::run(config, mock, demo, choice).await
}
