//! The model picker (`/model` with no name): the models `GET /v1/models` lists, newest
//! first, with their display names; the one in use marked. Enter picks, Esc closes.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Widget};

use crate::tui::app::{App, ModelPicker};
use crate::tui::sanitize::sanitize;

/// The picker's rows: a mark for the model in use, the id, the display name and the date it
/// came out; the selected row reversed.
pub fn lines(app: &App, picker: &ModelPicker) -> Vec<Line<'static>> {
    let id_w = picker
        .items
        .iter()
        .map(|m| m.id.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(8, 40);
    picker
        .items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let current = m.id == app.config.model;
            let marker = if current { "•" } else { " " };
            let style = if i == picker.selected {
                Style::new().add_modifier(Modifier::REVERSED)
            } else {
                Style::new()
            };
            let id: String = sanitize(&m.id, 0).chars().take(id_w).collect();
            let date = m.created_at.get(..10).unwrap_or("");
            Line::from(vec![
                Span::styled(format!("{marker} {id:<id_w$}  "), style),
                Span::styled(
                    format!("{:<22}", sanitize(&m.display_name, 0)),
                    style.add_modifier(Modifier::BOLD),
                ),
                Span::styled(format!("  {date}"), style.patch(app.theme.dim())),
            ])
        })
        .collect()
}

/// Draw the picker centred over `area`, scrolled to keep the selection in view.
pub fn render(app: &App, picker: &ModelPicker, area: Rect, buf: &mut Buffer) {
    let popup = super::centered_popup(area, 80, picker.items.len());
    Clear.render(popup, buf);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" models · Enter to use · Esc to close ");
    let inner = block.inner(popup);
    block.render(popup, buf);
    let rows = usize::from(inner.height);
    let top = picker.selected.saturating_sub(rows.saturating_sub(1));
    for (i, line) in lines(app, picker).iter().skip(top).take(rows).enumerate() {
        buf.set_line(inner.x, inner.y + i as u16, line, inner.width);
    }
}
