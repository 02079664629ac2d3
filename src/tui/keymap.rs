//! Keys to actions. One table, so help and behaviour cannot drift apart.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::composer::EditOp;

/// What a key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send the composer's text (or run its slash command).
    Submit,
    /// Cancel what is in flight (Esc), or close help.
    Cancel,
    /// Ctrl+C: cancel; a second one quits.
    Interrupt,
    /// Retry the last failed or interrupted turn.
    Retry,
    /// Open help.
    Help,
    /// Close help.
    CloseHelp,
    /// Show or hide the quota panel.
    ToggleQuota,
    /// Release or re-take the mouse.
    ToggleMouse,
    /// Expand or collapse thinking.
    ToggleThinking,
    /// Repaint the screen.
    Redraw,
    /// Scroll the transcript up a page.
    PageUp,
    /// Scroll the transcript down a page.
    PageDown,
    /// Scroll the transcript up a line.
    LineUp,
    /// Scroll the transcript down a line.
    LineDown,
    /// Scroll to the top.
    Top,
    /// Scroll to the bottom and follow.
    Bottom,
    /// Edit the composer.
    Edit(EditOp),
    /// Session picker: move the selection (negative: up).
    PickerMove(isize),
    /// Session picker: open the selected session.
    PickerOpen,
    /// Session picker: close it.
    PickerClose,
    /// Help: scroll by this many lines (negative: up).
    HelpScroll(isize),
    /// The resume choice: retry the broken turn from scratch.
    ResumeRetry,
    /// The resume choice: continue from the partial reply.
    ResumeContinue,
    /// Close the resume choice.
    ResumeClose,
    /// Tab: complete a command's argument (`/model NAME`), else insert a tab.
    Complete,
    /// Open the search line (Ctrl+F), or go back to typing its query.
    SearchOpen,
    /// Type into the search query.
    SearchType(char),
    /// Delete the query's last character.
    SearchBackspace,
    /// Jump to the next match (down, wrapping).
    SearchNext,
    /// Jump to the previous match (up, wrapping).
    SearchPrev,
    /// Leave search (Esc).
    SearchClose,
    /// Load the last prompt to edit and resend it (`/edit`; Ctrl+E on a recalled prompt).
    EditLast,
    /// Ctrl+Z: give the terminal back and stop, as a shell job does; restore on `fg`.
    Suspend,
}

/// What the keymap needs to know about the app.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyContext {
    /// Help is open.
    pub help_open: bool,
    /// The composer has no text.
    pub composer_empty: bool,
    /// The session picker is open.
    pub picker_open: bool,
    /// The composer shows a recalled prompt, unedited (Ctrl+E then edits the last turn).
    pub recalling: bool,
    /// Search is open: `Some(true)` while its query is being typed.
    pub search: Option<bool>,
    /// Ctrl+R on a broken reply asks: retry or continue.
    pub resume_choice: bool,
}

/// The bindings shown in help: (keys, what they do).
pub const BINDINGS: &[(&str, &str)] = &[
    ("Enter", "send"),
    ("Shift+Enter, Alt+Enter, Ctrl+J", "new line"),
    (
        "Esc",
        "cancel the turn or wait in flight (keeps the partial reply)",
    ),
    ("Ctrl+C", "cancel; press again to quit"),
    (
        "Ctrl+R",
        "retry the last failed turn, or continue a broken reply",
    ),
    (
        "Up, then Ctrl+E",
        "edit the last prompt (from an empty composer)",
    ),
    (
        "Up / Down",
        "previous / next prompt (from the first / last line)",
    ),
    ("PgUp / PgDn, wheel", "scroll the transcript"),
    (
        "Home / End (empty composer)",
        "top / bottom of the transcript (or Ctrl+Home/End)",
    ),
    ("Ctrl+Left/Right, Alt+B/F", "word left / right"),
    (
        "Ctrl+U / Ctrl+W / Ctrl+K",
        "delete to line start / word / to line end",
    ),
    ("F1, ? (empty composer)", "this help"),
    ("F2", "release the mouse to select text / take it back"),
    ("F3, Ctrl+Q", "quota panel and timeline"),
    ("Ctrl+O", "expand / collapse thinking"),
    ("Ctrl+F", "search the transcript (n / N jump, Esc leaves)"),
    ("Ctrl+L", "repaint the screen"),
    ("Ctrl+Z", "suspend to the shell (fg to come back)"),
];

/// The slash commands shown in help: (command, what it does).
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "/model [NAME]",
        "pick a model (Tab completes NAME) for the next turns",
    ),
    ("/system TEXT", "set the system prompt (no text: clear it)"),
    (
        "/clear, /new",
        "start a new conversation (saved as a new session)",
    ),
    ("/sessions", "pick a saved session to resume"),
    ("/rename NAME", "rename this session"),
    ("/retry", "retry the last failed or interrupted turn"),
    (
        "/continue",
        "continue the last broken reply from its partial text",
    ),
    (
        "/edit",
        "edit the last prompt; sending replaces the last turn",
    ),
    (
        "/burst N [PROMPT]",
        "send N prompts at once (max 50) to watch pacing and 429s",
    ),
    ("/copy", "copy the last reply to the clipboard (OSC 52)"),
    (
        "/copy code [N]",
        "copy the last code block, or the one marked [N]",
    ),
    ("/export [FILE]", "write the conversation as Markdown"),
    (
        "/cost",
        "the session's cost: tokens by kind, cache hit rate, dollars saved",
    ),
    (
        "/attach PATH",
        "attach a file (text, image, PDF) to the next prompt",
    ),
    ("/detach", "drop the attachments waiting to be sent"),
    ("/find TEXT", "search the transcript (n/N jump, Esc leaves)"),
    ("/help", "this help"),
    ("/quit", "leave"),
];

/// The action for a key, if any.
pub fn action_for(key: &KeyEvent, ctx: KeyContext) -> Option<Action> {
    let m = key.modifiers;
    let ctrl = m.contains(KeyModifiers::CONTROL);
    let alt = m.contains(KeyModifiers::ALT);
    let shift = m.contains(KeyModifiers::SHIFT);
    if ctx.help_open {
        return match key.code {
            KeyCode::Char('c') if ctrl => Some(Action::Interrupt),
            KeyCode::Esc | KeyCode::F(1) | KeyCode::Char('q' | '?') => Some(Action::CloseHelp),
            KeyCode::Enter => Some(Action::CloseHelp),
            KeyCode::Up | KeyCode::Char('k') => Some(Action::HelpScroll(-1)),
            KeyCode::Down | KeyCode::Char('j') => Some(Action::HelpScroll(1)),
            KeyCode::PageUp => Some(Action::HelpScroll(-10)),
            KeyCode::PageDown | KeyCode::Char(' ') => Some(Action::HelpScroll(10)),
            KeyCode::Home => Some(Action::HelpScroll(isize::MIN)),
            KeyCode::End => Some(Action::HelpScroll(isize::MAX)),
            _ => None,
        };
    }
    if ctx.picker_open {
        return match key.code {
            KeyCode::Char('c') if ctrl => Some(Action::Interrupt),
            KeyCode::Esc | KeyCode::Char('q') => Some(Action::PickerClose),
            KeyCode::Enter => Some(Action::PickerOpen),
            KeyCode::Up | KeyCode::Char('k') => Some(Action::PickerMove(-1)),
            KeyCode::Down | KeyCode::Char('j') => Some(Action::PickerMove(1)),
            KeyCode::PageUp => Some(Action::PickerMove(-10)),
            KeyCode::PageDown => Some(Action::PickerMove(10)),
            KeyCode::Home => Some(Action::PickerMove(isize::MIN)),
            KeyCode::End => Some(Action::PickerMove(isize::MAX)),
            _ => None,
        };
    }
    if ctx.resume_choice {
        return match key.code {
            KeyCode::Char('c') if ctrl => Some(Action::Interrupt),
            KeyCode::Char('r' | 'R') if !ctrl => Some(Action::ResumeRetry),
            KeyCode::Char('c' | 'C') | KeyCode::Enter => Some(Action::ResumeContinue),
            KeyCode::Esc => Some(Action::ResumeClose),
            _ => None,
        };
    }
    if let Some(editing) = ctx.search {
        return match key.code {
            KeyCode::Char('c') if ctrl => Some(Action::Interrupt),
            KeyCode::Esc => Some(Action::SearchClose),
            KeyCode::Enter if shift || alt => Some(Action::SearchPrev),
            KeyCode::Enter => Some(Action::SearchNext),
            KeyCode::PageUp => Some(Action::PageUp),
            KeyCode::PageDown => Some(Action::PageDown),
            KeyCode::Up if !editing || shift => Some(Action::LineUp),
            KeyCode::Down if !editing || shift => Some(Action::LineDown),
            KeyCode::Backspace if editing => Some(Action::SearchBackspace),
            KeyCode::Char('f') if ctrl => Some(Action::SearchOpen),
            KeyCode::Char(c) if editing && !ctrl && !alt => Some(Action::SearchType(c)),
            KeyCode::Char('n') if !ctrl && !alt => Some(Action::SearchNext),
            KeyCode::Char('N') if !ctrl && !alt => Some(Action::SearchPrev),
            KeyCode::Char('/') => Some(Action::SearchOpen),
            _ => None,
        };
    }
    let edit = |op| Some(Action::Edit(op));
    match key.code {
        KeyCode::Esc => Some(Action::Cancel),
        KeyCode::Char('c') if ctrl => Some(Action::Interrupt),
        KeyCode::Char('r') if ctrl => Some(Action::Retry),
        KeyCode::Char('q') if ctrl => Some(Action::ToggleQuota),
        KeyCode::Char('o') if ctrl => Some(Action::ToggleThinking),
        KeyCode::Char('l') if ctrl => Some(Action::Redraw),
        KeyCode::Char('z') if ctrl => Some(Action::Suspend),
        KeyCode::Char('f') if ctrl => Some(Action::SearchOpen),
        KeyCode::Char('j') if ctrl => edit(EditOp::Newline),
        KeyCode::Char('u') if ctrl => edit(EditOp::DeleteToStart),
        KeyCode::Char('w') if ctrl => edit(EditOp::DeleteWordBack),
        KeyCode::Char('k') if ctrl => edit(EditOp::DeleteToEnd),
        KeyCode::Char('a') if ctrl => edit(EditOp::Home),
        KeyCode::Char('e') if ctrl && ctx.recalling => Some(Action::EditLast),
        KeyCode::Char('e') if ctrl => edit(EditOp::End),
        KeyCode::Char('b') if alt => edit(EditOp::WordLeft),
        KeyCode::Char('f') if alt => edit(EditOp::WordRight),
        KeyCode::F(1) => Some(Action::Help),
        KeyCode::F(2) => Some(Action::ToggleMouse),
        KeyCode::F(3) => Some(Action::ToggleQuota),
        KeyCode::Char('?') if ctx.composer_empty && !ctrl && !alt => Some(Action::Help),
        KeyCode::Enter if shift || alt || ctrl => edit(EditOp::Newline),
        KeyCode::Enter => Some(Action::Submit),
        KeyCode::PageUp => Some(Action::PageUp),
        KeyCode::PageDown => Some(Action::PageDown),
        KeyCode::Up if shift => Some(Action::LineUp),
        KeyCode::Down if shift => Some(Action::LineDown),
        KeyCode::Home if ctrl || ctx.composer_empty => Some(Action::Top),
        KeyCode::End if ctrl || ctx.composer_empty => Some(Action::Bottom),
        KeyCode::Home => edit(EditOp::Home),
        KeyCode::End => edit(EditOp::End),
        KeyCode::Left if ctrl || alt => edit(EditOp::WordLeft),
        KeyCode::Right if ctrl || alt => edit(EditOp::WordRight),
        KeyCode::Left => edit(EditOp::Left),
        KeyCode::Right => edit(EditOp::Right),
        KeyCode::Up => edit(EditOp::Up),
        KeyCode::Down => edit(EditOp::Down),
        KeyCode::Backspace if ctrl || alt => edit(EditOp::DeleteWordBack),
        KeyCode::Backspace => edit(EditOp::Backspace),
        KeyCode::Delete => edit(EditOp::Delete),
        KeyCode::Tab => Some(Action::Complete),
        KeyCode::Char(c) if !ctrl && !alt => edit(EditOp::Insert(c)),
        // AltGr arrives as Ctrl+Alt on some platforms: it types a character.
        KeyCode::Char(c) if ctrl && alt => edit(EditOp::Insert(c)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn enter_sends_and_modified_enter_breaks_the_line() {
        let ctx = KeyContext::default();
        let none = KeyModifiers::NONE;
        assert_eq!(
            action_for(&key(KeyCode::Enter, none), ctx),
            Some(Action::Submit)
        );
        for m in [KeyModifiers::SHIFT, KeyModifiers::ALT] {
            assert_eq!(
                action_for(&key(KeyCode::Enter, m), ctx),
                Some(Action::Edit(EditOp::Newline))
            );
        }
        assert_eq!(
            action_for(&key(KeyCode::Char('j'), KeyModifiers::CONTROL), ctx),
            Some(Action::Edit(EditOp::Newline))
        );
    }

    #[test]
    fn question_mark_opens_help_only_on_an_empty_composer() {
        let q = key(KeyCode::Char('?'), KeyModifiers::NONE);
        let empty = KeyContext {
            composer_empty: true,
            ..KeyContext::default()
        };
        assert_eq!(action_for(&q, empty), Some(Action::Help));
        assert_eq!(
            action_for(&q, KeyContext::default()),
            Some(Action::Edit(EditOp::Insert('?')))
        );
        let help = KeyContext {
            help_open: true,
            ..KeyContext::default()
        };
        assert_eq!(
            action_for(&key(KeyCode::Esc, KeyModifiers::NONE), help),
            Some(Action::CloseHelp)
        );
    }

    #[test]
    fn home_end_scroll_when_the_composer_is_empty() {
        let home = key(KeyCode::Home, KeyModifiers::NONE);
        let empty = KeyContext {
            composer_empty: true,
            ..KeyContext::default()
        };
        assert_eq!(action_for(&home, empty), Some(Action::Top));
        assert_eq!(
            action_for(&home, KeyContext::default()),
            Some(Action::Edit(EditOp::Home))
        );
    }
}
