//! The composer: the editor's text wrapped to the width, scrolled to keep the cursor in view.

use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::tui::app::App;

/// Cells before the text: the prompt marker on the first row, spaces on the others.
pub const PREFIX: u16 = 2;

/// Rows the composer wants at `width` (before the layout caps it): the attachment chips'
/// row, if any, and the text.
pub fn wanted_height(app: &App, width: u16) -> u16 {
    let (rows, _) = app.composer.layout(width.saturating_sub(PREFIX).max(1));
    let chips = u16::from(!app.attachments.is_empty());
    u16::try_from(rows.len())
        .unwrap_or(u16::MAX)
        .max(1)
        .saturating_add(chips)
}

/// The chips row: each attachment waiting with its estimated token cost.
fn render_chips(app: &App, area: Rect, buf: &mut Buffer) {
    let mut spans = vec![Span::raw("  ")];
    for a in &app.attachments {
        spans.push(Span::styled(
            format!(" {} ", crate::tui::sanitize::sanitize(&a.chip(), 0)),
            app.theme.badge(),
        ));
        spans.push(Span::raw(" "));
    }
    buf.set_line(area.x, area.y, &Line::from(spans), area.width);
}

/// Draw the composer; returns where the terminal cursor goes.
pub fn render(app: &App, area: Rect, buf: &mut Buffer) -> Option<Position> {
    if area.is_empty() {
        return None;
    }
    let mut area = area;
    if !app.attachments.is_empty() && area.height > 1 {
        render_chips(app, Rect { height: 1, ..area }, buf);
        area.y += 1;
        area.height -= 1;
    }
    let theme = app.theme;
    let text_w = area.width.saturating_sub(PREFIX).max(1);
    app.composer.set_width(text_w);
    if app.composer.is_empty() {
        let line = Line::from(vec![
            Span::styled("› ", theme.user_header()),
            Span::styled(
                "Type a message · Enter to send · Shift+Enter for a new line · F1 help",
                theme.dim(),
            ),
        ]);
        buf.set_line(area.x, area.y, &line, area.width);
        return Some(Position::new(area.x + PREFIX.min(area.width - 1), area.y));
    }
    let (rows, (cur_row, cur_col)) = app.composer.layout(text_w);
    let h = usize::from(area.height);
    let top = cur_row.saturating_sub(h.saturating_sub(1));
    let lines = app.composer.lines();
    for (y, row) in rows.iter().skip(top).take(h).enumerate() {
        let text = lines
            .get(row.line)
            .and_then(|l| l.get(row.start..row.end))
            .unwrap_or("");
        // A pencil while a sent prompt is being edited: Enter replaces that turn.
        let first = if app.editing.is_some() {
            "✎ "
        } else {
            "› "
        };
        let marker = if top + y == 0 { first } else { "  " };
        let line = Line::from(vec![
            Span::styled(marker, theme.user_header()),
            Span::styled(text.to_string(), Style::new()),
        ]);
        buf.set_line(area.x, area.y + y as u16, &line, area.width);
    }
    let y = cur_row.saturating_sub(top);
    let x = PREFIX
        .saturating_add(cur_col)
        .min(area.width.saturating_sub(1));
    Some(Position::new(area.x + x, area.y + y as u16))
}
