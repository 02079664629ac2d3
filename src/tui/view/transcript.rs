//! The transcript: only the visible rows are drawn, from the cache; the live status line of
//! a turn in flight is drawn fresh each frame (it counts down).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use tokio::time::Instant;

use crate::tui::app::{App, ViewMetrics};
use crate::tui::live::{self, Urgency};
use crate::tui::search;
use crate::tui::transcript::{INDENT, Row};

fn welcome(app: &App) -> Vec<Line<'static>> {
    let theme = app.theme;
    let mut out = vec![
        Line::default(),
        Line::from(vec![
            Span::styled("  backchat", theme.assistant_header()),
            Span::raw(" — chat with Claude; see the rate limits at work."),
        ]),
        Line::from(Span::styled(
            "  Type a message and press Enter. F1 lists keys and commands.",
            theme.dim(),
        )),
    ];
    if app.mock {
        out.push(Line::from(Span::styled(
            "  Embedded mock API: canned replies, real rate limits.",
            theme.dim(),
        )));
    }
    out
}

/// The live line of turn `index`: spinner, state, countdown.
pub fn live_line(app: &App, index: usize, now: Instant) -> Line<'static> {
    let theme = app.theme;
    match app.live_for(index) {
        Some(l) => {
            let style = match l.urgency() {
                Urgency::Waiting | Urgency::Paced => theme.warn(),
                _ => theme.dim(),
            };
            Line::from(vec![
                Span::raw(INDENT),
                Span::styled(format!("{} ", live::spinner(now, app.started_at)), style),
                Span::styled(l.describe(now), style),
                Span::styled("  · Esc to cancel", theme.dim()),
            ])
        }
        None => Line::from(vec![
            Span::raw(INDENT),
            Span::styled("waiting…", theme.dim()),
        ]),
    }
}

/// Mark the search's matches on transcript row `row` (drawn at `area.y`); the current one
/// stands out.
fn highlight_matches(app: &App, row: usize, line: &Line<'_>, area: Rect, buf: &mut Buffer) {
    let Some(s) = &app.search else { return };
    if s.query.is_empty() {
        return;
    }
    let current = s.current.and_then(|i| s.hits.get(i)).copied();
    for (nth, (from, to)) in search::find_in_row(&line.to_string(), &s.query)
        .into_iter()
        .enumerate()
    {
        let style = if current == Some(search::Hit { row, nth }) {
            app.theme.search_current()
        } else {
            app.theme.search_match()
        };
        for x in from..to.min(usize::from(area.width)) {
            if let Some(cell) = buf.cell_mut((area.x + x as u16, area.y)) {
                cell.set_style(style);
            }
        }
    }
}

/// Draw the visible part of the transcript.
pub fn render(app: &App, area: Rect, buf: &mut Buffer, now: Instant) {
    if area.is_empty() {
        return;
    }
    app.sync_transcript(area.width);
    let height = usize::from(area.height);
    let total = app.transcript.try_borrow().map_or(0, |c| c.total_rows());
    let top = app.scroll.top(total, height);
    // Render the units in view that are not cached; then only borrow.
    app.prepare_transcript(top, height);
    let Ok(cache) = app.transcript.try_borrow() else {
        return;
    };
    let mut metrics = ViewMetrics {
        total_rows: total,
        height,
        drawn_rows: 0,
    };
    app.metrics.set(metrics);
    if app.conversation.turns.is_empty() {
        for (i, line) in welcome(app).iter().take(height).enumerate() {
            buf.set_line(area.x, area.y + i as u16, line, area.width);
        }
        return;
    }
    for (y, row) in cache.rows(top, height).into_iter().enumerate() {
        metrics.drawn_rows += 1;
        let yy = area.y + y as u16;
        match row {
            Row::Line(line) => {
                buf.set_line(area.x, yy, &line, area.width);
                highlight_matches(app, top + y, &line, Rect { y: yy, ..area }, buf);
            }
            Row::Live(i) => {
                buf.set_line(area.x, yy, &live_line(app, i, now), area.width);
            }
            Row::Blank => {}
        }
    }
    app.metrics.set(metrics);
    let below = total.saturating_sub(top + height);
    if below > 0 {
        let text = format!(" ↓ {below} more · End to follow ");
        let w = u16::try_from(text.chars().count()).unwrap_or(u16::MAX);
        if w < area.width {
            let x = area.x + area.width - w;
            let y = area.y + area.height - 1;
            let style = if app.theme.color {
                app.theme.badge()
            } else {
                Style::new().add_modifier(ratatui::style::Modifier::REVERSED)
            };
            buf.set_stringn(x, y, &text, usize::from(w), style);
        }
    }
}
