//! The chat features people expect of a terminal client (edit and resend, copy, search,
//! models, resume, export, attachments, and the small things): a state test for each (keys
//! in, effects out, no terminal) and a snapshot of what it looks like.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test may fail by panicking"
)]

use backchat::tui::Effect;
use backchat::tui::harness::Harness;
use crossterm::event::{KeyCode, KeyModifiers};
use insta::assert_snapshot;

/// The screen with the cursor drawn as `▮`.
fn screen_with_cursor(h: &Harness) -> String {
    let (mut buf, cursor) = h.draw();
    if let Some(p) = cursor
        && let Some(cell) = buf.cell_mut((p.x, p.y))
    {
        cell.set_symbol("▮");
    }
    backchat::tui::harness::buffer_text(&buf)
}

#[test]
fn ctrl_z_suspends_and_keeps_the_mouse_as_it_was() {
    let mut h = Harness::new(80, 24);
    h.type_str("a draft");
    let fx = h.key(KeyCode::Char('z'), KeyModifiers::CONTROL);
    assert_eq!(fx, vec![Effect::Suspend, Effect::SetMouseCapture(true)]);
    assert_eq!(h.app.composer.text(), "a draft", "the draft survives");
    h.key(KeyCode::F(2), KeyModifiers::NONE);
    let fx = h.key(KeyCode::Char('z'), KeyModifiers::CONTROL);
    assert_eq!(fx, vec![Effect::Suspend, Effect::SetMouseCapture(false)]);
}

#[test]
fn up_and_down_move_by_wrapped_row_in_the_composer() {
    let mut h = Harness::new(40, 10);
    h.type_str("one two three four five six seven eight nine ten eleven twelve thirteen");
    // Draw once: the composer learns its width (38 cells of text).
    let _ = h.draw();
    let before = h.app.composer.cursor();
    h.press(KeyCode::Up);
    let after = h.app.composer.cursor();
    assert_eq!(after.0, 0, "same logical line");
    assert!(
        after.1 < before.1,
        "{before:?} -> {after:?}: moved up a row"
    );
    assert_eq!(
        h.app.composer.text(),
        "one two three four five six seven eight nine ten eleven twelve thirteen",
        "no history recall from the middle of the text"
    );
    assert_snapshot!("composer_up_moves_by_wrapped_row", screen_with_cursor(&h));
    h.press(KeyCode::Down);
    assert_eq!(h.app.composer.cursor(), before);
}
