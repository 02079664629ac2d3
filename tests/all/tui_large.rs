//! A 10 MB transcript costs no more per frame than a short one: after the first frame has
//! wrapped everything once, frames wrap nothing and look up only the visible rows, wherever
//! the view is scrolled. Work is counted, not timed.

use backchat::retry::TurnEvent;
use backchat::tui::app::Scroll;
use backchat::tui::harness::{Harness, sample_turns};
use backchat::tui::{Effect, TurnId};

const TEN_MB: usize = 10 * 1024 * 1024;

#[test]
fn a_10_mb_transcript_draws_only_the_visible_rows() {
    let mut h = Harness::new(100, 40);
    let turns = sample_turns(TEN_MB);
    let bytes: usize = turns.iter().map(|t| t.assistant.len()).sum();
    assert!(bytes >= TEN_MB);
    h.load(turns);

    // The first frame wraps every line once (heights must be known to scroll).
    let _ = h.draw();
    let first = h.app.transcript.borrow().stats();
    let m = h.app.metrics.get();
    assert!(m.total_rows > 100_000, "{m:?}");
    assert!(m.total_rows > usize::from(u16::MAX), "past the u16 limit");
    let visible = m.height;
    assert_eq!(m.drawn_rows, visible);

    // Later frames at the bottom, the middle and the top wrap nothing.
    for scroll in [Scroll::Bottom, Scroll::At(m.total_rows / 2), Scroll::At(0)] {
        h.app.scroll = scroll;
        let (buf, _) = h.draw();
        assert_eq!(h.app.transcript.borrow().stats(), first, "{scroll:?}");
        assert_eq!(h.app.metrics.get().drawn_rows, visible);
        assert!(!backchat::tui::harness::buffer_text(&buf).trim().is_empty());
    }
    h.app.scroll = Scroll::At(m.total_rows / 2);
    assert!(h.screen().contains("Rate limits are measured"));

    // A new turn streaming at the end wraps only its own lines.
    h.app.scroll = Scroll::Bottom;
    let fx = h.submit("one more");
    let id = fx
        .iter()
        .find_map(|e| match e {
            Effect::StartTurn { id, .. } => Some(*id),
            _ => None,
        })
        .unwrap_or(TurnId(0));
    h.turn(
        id,
        TurnEvent::Started {
            request_id: None,
            model: "m".into(),
        },
    );
    let _ = h.draw();
    let before = h.app.transcript.borrow().stats();
    h.turn(
        id,
        TurnEvent::TextDelta {
            text: "Hello there, ".into(),
        },
    );
    let _ = h.draw();
    h.turn(
        id,
        TurnEvent::TextDelta {
            text: "streaming.".into(),
        },
    );
    let screen = h.screen();
    let after = h.app.transcript.borrow().stats();
    assert!(screen.contains("Hello there, streaming."), "{screen}");
    assert!(
        after.lines_wrapped - before.lines_wrapped <= 4,
        "{before:?} → {after:?}"
    );
    assert_eq!(after.rebuilds, before.rebuilds);
}
