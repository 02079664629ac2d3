//! Long notices on the rule read completely on a narrow terminal: `/cost` lays its breakdown
//! out as several lines and every notice is word-wrapped to the width (up to a cap), leaving
//! the session's name in view, instead of being cut at the right edge.

use backchat::api::{CacheCreation, Usage};
use backchat::chat::{ReplyState, Turn};
use backchat::tui::harness::Harness;
use backchat::tui::msg::Msg;
use backchat::tui::view;
use crossterm::event::KeyCode;
use insta::assert_snapshot;
use ratatui::layout::Rect;

/// A finished turn with this usage: `(uncached, 5m writes, reads, output)`.
fn turn(n: usize, (input, write, read, output): (u64, u64, u64, u64)) -> Turn {
    let mut t = Turn::new(format!("question {n}"), "claude-sonnet-4-6");
    t.assistant = format!("answer {n}");
    t.state = ReplyState::Complete {
        stop_reason: Some("end_turn".into()),
    };
    t.usage = Some(Usage {
        input_tokens: input,
        output_tokens: output,
        cache_creation_input_tokens: Some(write),
        cache_read_input_tokens: Some(read),
        cache_creation: Some(CacheCreation {
            ephemeral_5m_input_tokens: write,
            ephemeral_1h_input_tokens: 0,
        }),
    });
    t
}

/// Scenario E's shape: a 13.5k-token first turn written, then each turn reads the history
/// and writes ~1.2k new tokens.
fn cached_session() -> Vec<Turn> {
    let mut turns = vec![turn(0, (10, 13_500, 0, 700))];
    let mut prefix = 13_500;
    for n in 1..6 {
        turns.push(turn(n, (10, 1_200, prefix, 700)));
        prefix += 1_200;
    }
    turns
}

fn slash_cost(width: u16, height: u16, session: Option<&str>) -> Harness {
    let mut h = Harness::new(width, height);
    h.load(cached_session());
    h.app.session_name = session.map(str::to_string);
    h.type_str("/cost");
    h.press(KeyCode::Enter);
    h
}

/// The rows of the rule (the notice) on screen.
fn rule_rows(h: &Harness) -> Vec<String> {
    let area = Rect::new(0, 0, h.width, h.height);
    let a = view::layout(&h.app, area).unwrap();
    let screen = h.screen();
    let lines: Vec<&str> = screen.lines().collect();
    (a.rule.y..a.rule.bottom())
        .map(|y| lines[usize::from(y)].to_string())
        .collect()
}

#[test]
fn slash_cost_reads_completely_at_80_columns() {
    let h = slash_cost(80, 24, Some("notes"));
    let rows = rule_rows(&h);
    let text = rows.join("\n");
    // Every part of the breakdown is on screen, none cut at the edge.
    for part in [
        "cost: $",
        "this session (6 turns)",
        "this turn $",
        "input: 60 $0.0002 uncached",
        "19.5k $0.0731 written 5m",
        "79.5k $0.0238 read",
        "output: 4.2k $0.0630",
        "cache 80% read, saved $",
    ] {
        assert!(text.contains(part), "{part:?} in\n{text}");
    }
    // The session's name stays at the right end of the first row.
    assert!(rows[0].ends_with("session notes ─"), "{}", rows[0]);
    for row in &rows {
        assert!(
            unicode_width::UnicodeWidthStr::width(row.as_str()) <= 80,
            "{row}"
        );
    }
    assert_snapshot!("slash_cost_at_80_columns", h.screen());
}

#[test]
fn the_notice_gives_its_rows_back_when_it_goes() {
    let mut h = slash_cost(80, 24, None);
    assert!(rule_rows(&h).len() > 1);
    h.press(KeyCode::Esc);
    h.app.notice = None;
    assert_eq!(rule_rows(&h).len(), 1);
}

#[test]
fn a_long_error_wraps_and_a_short_screen_caps_it() {
    let mut h = Harness::new(80, 24);
    let path = "/no/such/directory/with/a/rather/long/name/that/goes/on/and/on/report-final-v2.pdf";
    // What `/attach` answers when the file is not there (the harness does not read files).
    h.send(Msg::Attached(Err(format!(
        "{path}: No such file or directory (os error 2)"
    ))));
    let rows = rule_rows(&h);
    assert!(rows.len() >= 2, "{rows:?}");
    let joined: String = rows
        .iter()
        .map(|r| r.trim_start_matches("─ ").trim())
        .collect();
    assert!(joined.contains(path), "{rows:?}");

    // On the smallest screen the notice takes at most a third of it, and says it was cut.
    let mut h = slash_cost(40, 10, None);
    let rows = rule_rows(&h);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows[2].ends_with('…'), "{rows:?}");
    // A taller one shows it all.
    h.height = 30;
    let rows = rule_rows(&h);
    assert!(rows.len() > 3, "{rows:?}");
    assert!(rows.iter().all(|r| !r.ends_with('…')), "{rows:?}");
    assert!(rows.join(" ").contains("saved $"), "{rows:?}");
}
