//! A 10 MB transcript costs no more per frame than a short one, and holds no more rendered
//! lines. Laying it out renders and measures every unit once (heights are needed to scroll);
//! after that a frame whose view did not change renders and wraps nothing, a scroll renders
//! only the units that come into view and are not cached, and the rendered lines kept stay
//! within the cache's limit (plus the units in view) whatever the transcript's size. A reply
//! that streams one huge paragraph costs each frame what arrived plus a bounded piece, not
//! the paragraph. Work is counted, not timed.

use backchat::chat::ReplyState;
use backchat::retry::TurnEvent;
use backchat::tui::app::Scroll;
use backchat::tui::harness::{Harness, sample_turns};
use backchat::tui::markdown::PIECE;
use backchat::tui::transcript::{CACHE_BYTES, Stats};
use backchat::tui::{Effect, TurnId};

const TEN_MB: usize = 10 * 1024 * 1024;

fn stats(h: &Harness) -> Stats {
    h.app.transcript.borrow().stats()
}

/// The first visible row and the units that hold the rows in view, for the view as it is.
fn view(h: &Harness) -> (usize, usize) {
    let m = h.app.metrics.get();
    let top = h.app.scroll.top(m.total_rows, m.height);
    let units = h.app.transcript.borrow().units_in_view(top, m.height);
    (top, units)
}

/// Start a turn and have its reply begin; returns its id.
fn start_streaming(h: &mut Harness, prompt: &str) -> TurnId {
    let fx = h.submit(prompt);
    let id = fx
        .iter()
        .find_map(|e| match e {
            Effect::StartTurn { id, .. } => Some(*id),
            _ => None,
        })
        .expect("a turn starts");
    h.turn(
        id,
        TurnEvent::Started {
            request_id: None,
            model: "m".into(),
        },
    );
    id
}

#[test]
fn a_10_mb_transcript_draws_only_the_visible_rows() {
    let mut h = Harness::new(100, 40);
    let turns = sample_turns(TEN_MB);
    let bytes: usize = turns.iter().map(|t| t.assistant.len()).sum();
    assert!(bytes >= TEN_MB);
    h.load(turns);

    // The first frame measures every unit once (heights must be known to scroll), and
    // keeps the lines of the ones in view only.
    let _ = h.draw();
    let first = stats(&h);
    assert!(first.bytes_rendered >= bytes as u64, "{first:?}");
    let m = h.app.metrics.get();
    assert!(m.total_rows > 100_000, "{m:?}");
    assert!(m.total_rows > usize::from(u16::MAX), "past the u16 limit");
    let visible = m.height;
    assert_eq!(m.drawn_rows, visible);
    assert!(h.app.transcript.borrow().cached_bytes() <= CACHE_BYTES);

    // A frame whose view did not change renders and wraps nothing.
    let _ = h.draw();
    assert_eq!(stats(&h), first);

    // A scroll renders at most the units that come into view; drawing that view again
    // renders nothing.
    for scroll in [
        Scroll::At(m.total_rows / 2),
        Scroll::At(0),
        Scroll::At(m.total_rows / 3),
    ] {
        h.app.scroll = scroll;
        let before = stats(&h);
        let (buf, _) = h.draw();
        let after = stats(&h);
        let (_, in_view) = view(&h);
        let rendered = after.units_rendered - before.units_rendered;
        assert!(
            (1..=in_view as u64).contains(&rendered),
            "{scroll:?}: {rendered} units rendered, {in_view} in view"
        );
        assert_eq!(after.rebuilds, before.rebuilds);
        assert_eq!(h.app.metrics.get().drawn_rows, visible);
        assert!(!backchat::tui::harness::buffer_text(&buf).trim().is_empty());
        let _ = h.draw();
        assert_eq!(stats(&h), after, "{scroll:?}: the same view again");
    }
    // Back to a view seen a moment ago: still cached, nothing rendered.
    h.app.scroll = Scroll::At(m.total_rows / 2);
    let before = stats(&h);
    assert!(h.screen().contains("Rate limits are measured"));
    assert_eq!(stats(&h), before);
    // One row down: at most the unit coming in at the bottom.
    h.app.scroll = Scroll::At(m.total_rows / 2 + 1);
    let _ = h.draw();
    assert!(stats(&h).units_rendered - before.units_rendered <= 1);

    // Scrolled through end to end, the cache stays within its limit.
    let (most, _) = scroll_through(&mut h, 300);
    assert!(most <= CACHE_BYTES, "{most} bytes cached");

    // A new turn streaming at the end wraps only its own lines.
    h.app.scroll = Scroll::Bottom;
    let id = start_streaming(&mut h, "one more");
    let _ = h.draw();
    let before = stats(&h);
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
    let after = stats(&h);
    assert!(screen.contains("Hello there, streaming."), "{screen}");
    assert!(
        after.lines_wrapped - before.lines_wrapped <= 4,
        "{before:?} → {after:?}"
    );
    assert_eq!(after.rebuilds, before.rebuilds);
    assert_eq!(after.units_rendered, before.units_rendered);
}

/// Scroll from the top to the bottom in `steps` jumps, drawing each view; returns the most
/// bytes the cache held after a frame, and the units rendered on the way.
fn scroll_through(h: &mut Harness, steps: usize) -> (usize, u64) {
    let total = h.app.metrics.get().total_rows;
    let before = stats(h);
    let mut most = 0;
    for k in 0..=steps {
        h.app.scroll = Scroll::At(total * k / steps);
        let _ = h.draw();
        most = most.max(h.app.transcript.borrow().cached_bytes());
    }
    (most, stats(h).units_rendered - before.units_rendered)
}

#[test]
fn rendered_lines_stay_within_the_cache_limit_whatever_the_size() {
    const LIMIT: usize = 256 << 10;
    for size in [1 << 20, 4 << 20] {
        let mut h = Harness::new(100, 40);
        h.load(sample_turns(size));
        h.app.transcript.borrow_mut().set_cache_limit(LIMIT);
        let _ = h.draw();
        let (most, rendered) = scroll_through(&mut h, 400);
        // Far more was rendered than the cache holds: it evicted as it went.
        assert!(rendered > 400, "{size}: {rendered} units rendered");
        // The units in view of one frame are a few KB here; the limit bounds the rest.
        assert!(most <= LIMIT + (64 << 10), "{size}: {most} bytes cached");
        assert!(most >= LIMIT / 2, "{size}: the cache is used ({most})");
    }
}

#[test]
fn a_new_width_measures_everything_once() {
    let mut h = Harness::new(100, 40);
    h.load(sample_turns(1 << 20));
    let _ = h.draw();
    let first = stats(&h);
    let rows_100 = h.app.metrics.get().total_rows;
    h.width = 70;
    let _ = h.draw();
    let wide = stats(&h);
    assert!(
        h.app.metrics.get().total_rows > rows_100,
        "narrower: more rows"
    );
    // Every turn laid out again, once.
    assert_eq!(wide.rebuilds - first.rebuilds, first.rebuilds);
    let _ = h.draw();
    assert_eq!(stats(&h), wide);
    h.app.scroll = Scroll::At(0);
    assert!(h.screen().contains("Question number 0"));
}

#[test]
fn streaming_a_huge_paragraph_renders_a_bounded_piece_per_frame() {
    const DELTA: usize = 16 << 10;
    let mut h = Harness::new(100, 40);
    let id = start_streaming(&mut h, "one long paragraph, please");
    let _ = h.draw();
    let words = "lorem ipsum dolor sit amet ";
    let delta: String = words.repeat(DELTA / words.len() + 1)[..DELTA].to_string();
    let mut worst = 0;
    let mut total = 0;
    // 2 MB in 16 KB deltas, one frame each: one paragraph, no line break at all.
    for _ in 0..128 {
        h.turn(
            id,
            TurnEvent::TextDelta {
                text: delta.clone(),
            },
        );
        total += DELTA;
        let before = stats(&h);
        let _ = h.draw();
        let after = stats(&h);
        worst = worst.max(after.bytes_rendered - before.bytes_rendered);
        assert_eq!(after.units_rendered, before.units_rendered, "all in cache");
    }
    // What arrived, and at most the unfinished piece: not the paragraph so far.
    assert!(
        worst <= (DELTA + 2 * PIECE) as u64,
        "{worst} bytes rendered in one frame of a {total}-byte paragraph"
    );
    let screen = h.screen();
    assert!(screen.contains("lorem ipsum dolor"), "{screen}");
    assert!(screen.contains("Esc to cancel"), "{screen}");

    // Esc: the turn ends cancelled, with a bounded frame too.
    let before = stats(&h);
    let fx = h.press(crossterm::event::KeyCode::Esc);
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::CancelTurn { id: c, .. } if *c == id))
    );
    let screen = h.screen();
    assert!(screen.contains("■ cancelled"), "{screen}");
    let after = stats(&h);
    assert!(after.bytes_rendered - before.bytes_rendered <= 2 * PIECE as u64);
    assert!(matches!(
        h.app.conversation.turns[0].state,
        ReplyState::Cancelled
    ));

    // The whole paragraph is there, row after row: scrolled to its top, its first words.
    h.app.scroll = Scroll::At(0);
    let screen = h.screen();
    assert!(screen.contains("one long paragraph"), "{screen}");
    assert!(
        screen.contains("  lorem ipsum dolor sit amet lorem"),
        "{screen}"
    );
}

/// Every match of `query` in the rows as drawn, found the slow way: each row laid out.
fn every_match(h: &Harness, query: &str) -> Vec<backchat::tui::search::Hit> {
    let mut hits = Vec::new();
    let turns = &h.app.conversation.turns;
    h.app.transcript.borrow_mut().for_each_row(turns, |row, r| {
        if let backchat::tui::transcript::Row::Line(l) = r {
            let n = backchat::tui::search::find_in_row(&l.to_string(), query).len();
            hits.extend((0..n).map(|nth| backchat::tui::search::Hit { row, nth }));
        }
    });
    hits
}

#[test]
fn search_finds_what_is_drawn_without_laying_everything_out() {
    let mut h = Harness::new(100, 40);
    h.load(sample_turns(1 << 20));
    let _ = h.draw();
    // Matches across markup (emphasis, code, bold), in decorations (list markers, quote
    // bars, code block numbers, headers) and in prefixes; and one that is nowhere.
    for query in [
        "little JITTER before",
        "with a retry-after header",
        "answers 429 with",
        "• first",
        "  │ That is",
        "```rust [1]",
        "▌ you  #3",
        "turn 57)",
        "no such text anywhere",
    ] {
        h.app.search = None;
        let before = stats(&h);
        assert!(h.submit(&format!("/find {query}")).is_empty());
        let s = h.app.search.clone().expect("search is open");
        let searched = stats(&h);
        let all = every_match(&h, query);
        let first_difference = s.hits.iter().zip(&all).position(|(a, b)| a != b);
        assert_eq!(
            (s.hits.len(), first_difference),
            (all.len(), None),
            "{query}: {:?} / {:?}",
            first_difference.map(|i| s.hits[i]),
            first_difference.map(|i| all[i])
        );
        if query.starts_with("no such") {
            assert!(s.hits.is_empty());
            // Nothing could match: no part was laid out to look.
            assert_eq!(searched.lines_wrapped, before.lines_wrapped, "{query}");
        } else {
            assert!(!s.hits.is_empty(), "{query}");
        }
    }
}

#[test]
fn a_search_typed_letter_by_letter_finds_what_is_drawn() {
    use crossterm::event::{KeyCode, KeyModifiers};
    let mut h = Harness::new(100, 40);
    h.load(sample_turns(300 << 10));
    let _ = h.draw();
    h.key(KeyCode::Char('f'), KeyModifiers::CONTROL);
    let mut typed = String::new();
    for c in "Turn 17)".chars() {
        let before = stats(&h);
        h.press(KeyCode::Char(c));
        typed.push(c);
        let s = h.app.search.clone().expect("search is open");
        assert_eq!(s.query, typed);
        let looked = stats(&h).units_rendered - before.units_rendered;
        assert_eq!(s.hits, every_match(&h, &typed), "{typed}");
        if typed == "T" {
            assert!(looked > 100, "the first letter: {looked} units rendered");
        }
        if typed == "Turn 17)" {
            // Only the rows that held "Turn 17" (turns 17 and 170 on): a few units, not
            // the transcript's hundreds.
            assert!(looked <= 10, "{typed}: {looked} units rendered");
        }
    }
    assert!(!h.app.search.as_ref().expect("open").hits.is_empty());
    // Shorter again: looked for everywhere.
    h.press(KeyCode::Backspace);
    let s = h.app.search.clone().expect("search is open");
    assert_eq!(s.hits, every_match(&h, "Turn 17"));
}
