//! The session picker (`/sessions`): saved sessions, newest first, with their size, age and
//! first prompt. Enter opens one, Esc closes.

use std::time::SystemTime;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Widget};

use crate::tui::app::{App, Picker};
use crate::tui::sanitize::sanitize;

/// How long ago, in words: "just now", "5 min ago", "3 h ago", "2 days ago".
pub fn ago(modified: SystemTime, now: SystemTime) -> String {
    let secs = now.duration_since(modified).map_or(0, |d| d.as_secs());
    match secs {
        0..=59 => "just now".to_string(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// The picker's rows: name, turns, age, first prompt; the selected one reversed.
pub fn lines(app: &App, picker: &Picker, wall_now: SystemTime, width: u16) -> Vec<Line<'static>> {
    let theme = app.theme;
    let name_w = picker
        .items
        .iter()
        .map(|i| i.name.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(8, 32);
    picker
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let current = app.session_name.as_deref() == Some(item.name.as_str());
            let marker = if current { "•" } else { " " };
            let name: String = item.name.chars().take(name_w).collect();
            let meta = format!(
                "{:>4} {} · {:<11}",
                item.turns,
                if item.turns == 1 { "turn " } else { "turns" },
                ago(item.modified, wall_now)
            );
            let prompt = item
                .first_prompt
                .as_deref()
                .map(|p| sanitize(p, 0).replace('\n', " "))
                .unwrap_or_default();
            let used = name_w + meta.chars().count() + 6;
            let room = usize::from(width).saturating_sub(used);
            let prompt: String = prompt.chars().take(room).collect();
            let style = if i == picker.selected {
                Style::new().add_modifier(Modifier::REVERSED)
            } else {
                Style::new()
            };
            Line::from(vec![
                Span::styled(format!("{marker} {name:<name_w$}  "), style),
                Span::styled(meta, style.patch(theme.dim())),
                Span::styled(format!("  {prompt}"), style),
            ])
        })
        .collect()
}

/// Draw the picker centred over `area`, scrolled to keep the selection in view.
pub fn render(app: &App, picker: &Picker, area: Rect, buf: &mut Buffer, wall_now: SystemTime) {
    let popup = super::centered_popup(area, 110, picker.items.len());
    Clear.render(popup, buf);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" sessions · Enter to open · Esc to close ");
    let inner = block.inner(popup);
    block.render(popup, buf);
    let rows = usize::from(inner.height);
    let top = picker.selected.saturating_sub(rows.saturating_sub(1));
    for (i, line) in lines(app, picker, wall_now, inner.width)
        .iter()
        .skip(top)
        .take(rows)
        .enumerate()
    {
        buf.set_line(inner.x, inner.y + i as u16, line, inner.width);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ages_read_well() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |s: u64| now - Duration::from_secs(s);
        assert_eq!(ago(at(5), now), "just now");
        assert_eq!(ago(at(300), now), "5 min ago");
        assert_eq!(ago(at(7200), now), "2 h ago");
        assert_eq!(ago(at(200_000), now), "2 days ago");
        assert_eq!(ago(now + Duration::from_secs(9), now), "just now");
    }
}
