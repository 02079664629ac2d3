//! Drive the app without a terminal: press keys, type, paste, feed turn events, move the
//! clock, and draw into a `TestBackend`. Used by the snapshot and state tests, and handy for
//! any test that wants to see what a person would see.
//!
//! Not part of the application: it exists only with the `test-support` feature (which the
//! crate's tests and benches turn on through a dev-dependency on the crate itself) and in
//! the crate's own unit tests, so `cargo build` never compiles it.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use tokio::time::Instant;

use super::app::{App, update};
use super::msg::{Effect, Msg, TurnId};
use super::theme::Theme;
use super::view;
use crate::chat::{ReplyState, Turn};
use crate::config::Config;
use crate::retry::TurnEvent;

/// An app, a fixed clock and a screen size.
pub struct Harness {
    /// The app.
    pub app: App,
    /// When the session started.
    pub t0: Instant,
    /// The harness's "now" (moves only with [`Harness::advance`]).
    pub now: Instant,
    /// Screen width.
    pub width: u16,
    /// Screen height.
    pub height: u16,
}

/// The default configuration, with nothing read from the environment or any file.
pub fn test_config() -> Config {
    Config::default()
}

impl Harness {
    /// A fresh session on the mock, in colour, at `width`×`height`.
    pub fn new(width: u16, height: u16) -> Harness {
        Harness::with(width, height, Theme::default(), false)
    }

    /// A fresh session with a theme, in demo mode or not.
    pub fn with(width: u16, height: u16, theme: Theme, demo: bool) -> Harness {
        let t0 = Instant::now();
        Harness {
            app: App::new(test_config(), true, demo, theme, t0),
            t0,
            now: t0,
            width,
            height,
        }
    }

    /// Replace the conversation (e.g. with [`sample_turns`]).
    pub fn load(&mut self, turns: Vec<Turn>) {
        self.app.load(turns);
    }

    /// Move the clock.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Feed a message.
    pub fn send(&mut self, msg: Msg) -> Vec<Effect> {
        update(&mut self.app, msg, self.now)
    }

    /// Press a key with modifiers.
    pub fn key(&mut self, code: KeyCode, modifiers: KeyModifiers) -> Vec<Effect> {
        self.send(Msg::Key(KeyEvent::new(code, modifiers)))
    }

    /// Press a key.
    pub fn press(&mut self, code: KeyCode) -> Vec<Effect> {
        self.key(code, KeyModifiers::NONE)
    }

    /// Type text key by key (`\n` presses Shift+Enter).
    pub fn type_str(&mut self, text: &str) {
        for c in text.chars() {
            if c == '\n' {
                self.key(KeyCode::Enter, KeyModifiers::SHIFT);
            } else {
                self.press(KeyCode::Char(c));
            }
        }
    }

    /// A bracketed paste.
    pub fn paste(&mut self, text: &str) -> Vec<Effect> {
        self.send(Msg::Paste(text.to_string()))
    }

    /// Type a prompt and press Enter; returns the effects of Enter.
    pub fn submit(&mut self, text: &str) -> Vec<Effect> {
        self.app.composer.clear();
        self.app.composer.set_text(text);
        self.press(KeyCode::Enter)
    }

    /// Feed an event of run `id`.
    pub fn turn(&mut self, id: TurnId, event: TurnEvent) -> Vec<Effect> {
        self.send(Msg::Turn { id, event })
    }

    /// Draw into a test terminal.
    pub fn terminal(&self) -> Terminal<TestBackend> {
        let mut t = match Terminal::new(TestBackend::new(self.width, self.height)) {
            Ok(t) => t,
            Err(e) => match e {},
        };
        let _ = t.draw(|f| {
            let area = f.area();
            if let Some(p) = view::render(&self.app, area, f.buffer_mut(), self.now) {
                f.set_cursor_position(p);
            }
        });
        t
    }

    /// Draw and return the buffer and the cursor.
    pub fn draw(&self) -> (Buffer, Option<Position>) {
        let area = Rect::new(0, 0, self.width, self.height);
        let mut buf = Buffer::empty(area);
        let cursor = view::render(&self.app, area, &mut buf, self.now);
        (buf, cursor)
    }

    /// The screen as text, one line per row, trailing spaces trimmed.
    pub fn screen(&self) -> String {
        buffer_text(&self.draw().0)
    }
}

/// A buffer as text, one line per row, trailing spaces trimmed.
pub fn buffer_text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        let mut skip = 0;
        for x in area.left()..area.right() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if let Some(cell) = buf.cell((x, y)) {
                let sym = cell.symbol();
                line.push_str(sym);
                skip = unicode_width::UnicodeWidthStr::width(sym).saturating_sub(1);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Where `needle` first appears on screen: (x, y) in cells.
pub fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    let area = buf.area;
    for y in area.top()..area.bottom() {
        let mut cells: Vec<(u16, String)> = Vec::new();
        for x in area.left()..area.right() {
            if let Some(cell) = buf.cell((x, y)) {
                cells.push((x, cell.symbol().to_string()));
            }
        }
        let row: String = cells.iter().map(|(_, s)| s.as_str()).collect();
        if let Some(byte) = row.find(needle) {
            // Map the byte offset back to a cell.
            let mut acc = 0;
            for (x, s) in &cells {
                if acc == byte {
                    return Some((*x, y));
                }
                acc += s.len();
            }
        }
    }
    None
}

/// Finished turns of realistic markdown (paragraphs, lists, headings; a highlighted code
/// block every tenth turn) adding up to about `bytes` bytes of reply text.
pub fn sample_turns(bytes: usize) -> Vec<Turn> {
    let para = "Rate limits are measured per minute in three buckets: requests, input tokens \
                and output tokens. When one runs dry the server answers **429** with a \
                `retry-after` header, and a polite client waits that long plus a little \
                *jitter* before it tries again.";
    let mut turns = Vec::new();
    let mut total = 0;
    let mut i = 0usize;
    while total < bytes {
        let mut reply = format!("## Answer {i}\n\n");
        for p in 0..6 {
            reply.push_str(&format!("{para} (part {p} of turn {i})\n\n"));
        }
        reply.push_str("- first point\n- second point with `code`\n  1. nested detail\n\n");
        if i.is_multiple_of(10) {
            reply.push_str("```rust\nfn backoff(attempt: u32) -> u64 {\n    let base = 500u64 << attempt.min(6);\n    base / 2 + fastrand(base / 2)\n}\n```\n\n");
        }
        reply.push_str("> That is all.\n");
        if total + reply.len() > bytes {
            // Cut the last reply at a line end so the total is close to `bytes`.
            let room = bytes - total;
            let cut = reply[..room.min(reply.len())]
                .rfind('\n')
                .unwrap_or(room.min(reply.len()));
            let cut = (0..=cut)
                .rev()
                .find(|c| reply.is_char_boundary(*c))
                .unwrap_or(0);
            reply.truncate(cut.max(1).min(reply.len()));
        }
        total += reply.len().max(1);
        let mut t = Turn::new(
            format!("Question number {i}: how do rate limits work?"),
            "claude-sonnet-4-6",
        );
        t.assistant = reply;
        t.state = ReplyState::Complete {
            stop_reason: Some("end_turn".into()),
        };
        turns.push(t);
        i += 1;
    }
    turns
}
