//! The help overlay: every key and command, from the keymap's own tables.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Widget};

use crate::tui::app::App;
use crate::tui::keymap::{BINDINGS, COMMANDS};

/// The help text as lines.
pub fn lines(app: &App) -> Vec<Line<'static>> {
    let theme = app.theme;
    let bold = ratatui::style::Style::new().add_modifier(Modifier::BOLD);
    let mut out = vec![Line::from(Span::styled("Keys", bold))];
    for (k, d) in BINDINGS {
        out.push(Line::from(vec![
            Span::styled(format!(" {k:<31}"), theme.user_header()),
            Span::raw(d.to_string()),
        ]));
    }
    out.push(Line::default());
    out.push(Line::from(Span::styled("Commands", bold)));
    for (c, d) in COMMANDS {
        out.push(Line::from(vec![
            Span::styled(format!(" {c:<31}"), theme.user_header()),
            Span::raw(d.to_string()),
        ]));
    }
    out.push(Line::default());
    out.push(Line::from(Span::styled(
        " The status bar shows the state, quota left/limit, and how old those numbers are.",
        theme.dim(),
    )));
    out
}

/// Draw help centred over `area`.
pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let content = lines(app);
    let popup = super::centered_popup(area, 96, content.len());
    let h = popup.height;
    Clear.render(popup, buf);
    let rows = usize::from(h.saturating_sub(2));
    let top = app.help_scroll.min(content.len().saturating_sub(rows));
    let more = top + rows < content.len();
    let title = match (top > 0, more) {
        (false, false) => " help · Esc to close ",
        (false, true) => " help · ↓ more · Esc to close ",
        (true, true) => " help · ↑↓ more · Esc to close ",
        (true, false) => " help · ↑ more · Esc to close ",
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(popup);
    block.render(popup, buf);
    for (i, line) in content
        .iter()
        .skip(top)
        .take(usize::from(inner.height))
        .enumerate()
    {
        buf.set_line(inner.x, inner.y + i as u16, line, inner.width);
    }
}
