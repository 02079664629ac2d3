//! The cost and prompt-cache figures in the TUI: the status bar, the quota panel and `/cost`,
//! for a cached conversation, a conversation without caching, and a model with no price.

use backchat::api::{CacheCreation, Usage};
use backchat::chat::{ReplyState, Turn};
use backchat::tui::harness::{Harness, buffer_text};
use backchat::tui::view::{quota_panel, status_bar};
use crossterm::event::KeyCode;
use insta::assert_snapshot;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

/// A finished turn of `model` with this usage: `(uncached, 5m writes, reads, output)`.
fn turn(model: &str, n: usize, (input, write, read, output): (u64, u64, u64, u64)) -> Turn {
    let mut t = Turn::new(format!("question {n}"), model);
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

/// Scenario E's shape: a 13k-token first turn written, then each turn reads the history
/// and writes ~1.2k new tokens.
fn cached_session(model: &str) -> Vec<Turn> {
    let mut turns = vec![turn(model, 0, (10, 13_500, 0, 700))];
    let mut prefix = 13_500;
    for n in 1..6 {
        turns.push(turn(model, n, (10, 1_200, prefix, 700)));
        prefix += 1_200;
    }
    turns
}

fn status_line(h: &Harness, width: u16) -> String {
    let area = Rect::new(0, 0, width, 1);
    let mut buf = Buffer::empty(area);
    status_bar::render(&h.app, area, &mut buf, h.now);
    buffer_text(&buf)
}

fn panel(h: &Harness) -> String {
    let area = Rect::new(0, 0, quota_panel::WIDTH, 20);
    let mut buf = Buffer::empty(area);
    quota_panel::render(&h.app, area, &mut buf, h.now);
    buffer_text(&buf)
}

#[test]
fn status_bar_shows_session_cost_turn_cost_and_hit_rate() {
    let mut h = Harness::new(140, 30);
    h.load(cached_session("claude-sonnet-4-6"));
    let wide = status_line(&h, 140);
    assert!(
        wide.contains("session") && wide.contains("% cached"),
        "{wide}"
    );
    assert_snapshot!("status_bar_cost_wide", wide);
    let compact = status_line(&h, 100);
    assert_snapshot!("status_bar_cost_compact", compact);
}

#[test]
fn quota_panel_shows_cost_and_what_the_cache_saved() {
    let mut h = Harness::new(140, 30);
    h.load(cached_session("claude-sonnet-4-6"));
    let text = panel(&h);
    assert!(text.contains("saved"), "{text}");
    assert_snapshot!("quota_panel_cost", text);
}

#[test]
fn an_unknown_model_shows_tokens_and_price_unknown() {
    let mut h = Harness::new(140, 30);
    h.load(cached_session("claude-future-9"));
    let line = status_line(&h, 140);
    assert!(line.contains("price unknown"), "{line}");
    assert!(!line.contains('$'), "{line}");
    let text = panel(&h);
    assert!(
        text.contains("price unknown") && !text.contains('$'),
        "{text}"
    );
    assert_snapshot!("quota_panel_cost_unknown", text);
}

#[test]
fn slash_cost_gives_the_breakdown() {
    let mut h = Harness::new(200, 30);
    h.load(cached_session("claude-sonnet-4-6"));
    h.type_str("/cost");
    h.press(KeyCode::Enter);
    let screen = h.screen();
    assert!(screen.contains("cost: $"), "{screen}");
    assert!(screen.contains("this session (6 turns)"), "{screen}");
}
