//! Pure render functions: `render(state, area, buf, now)`. No IO and no clock: `now` is a
//! parameter, so snapshots are deterministic.

pub mod composer;
pub mod help;
pub mod picker;
pub mod quota_panel;
pub mod status_bar;
pub mod transcript;

use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use tokio::time::Instant;

use super::app::{App, DEMO_HINT};
use super::msg::NoticeKind;

/// Narrowest usable terminal.
pub const MIN_WIDTH: u16 = 40;
/// Lowest usable terminal.
pub const MIN_HEIGHT: u16 = 10;
/// From this width the quota panel sits beside the transcript.
pub const PANEL_SIDE_MIN_WIDTH: u16 = 90;
/// From this height (when too narrow for the side) the panel sits under the transcript.
pub const PANEL_BELOW_MIN_HEIGHT: u16 = 26;

/// Where everything goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Areas {
    /// The transcript.
    pub transcript: Rect,
    /// The quota panel, when open and there is room.
    pub panel: Option<Rect>,
    /// The line between transcript and composer (hints and notices).
    pub rule: Rect,
    /// The composer.
    pub composer: Rect,
    /// The status bar.
    pub status: Rect,
}

/// Split the screen; `None` when it is smaller than [`MIN_WIDTH`]×[`MIN_HEIGHT`].
pub fn layout(app: &App, area: Rect) -> Option<Areas> {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        return None;
    }
    let max_composer = (area.height / 3).clamp(1, 10);
    let composer_h = composer::wanted_height(app, area.width).min(max_composer);
    let status = Rect::new(area.x, area.bottom() - 1, area.width, 1);
    let composer = Rect::new(area.x, status.y - composer_h, area.width, composer_h);
    let rule = Rect::new(area.x, composer.y - 1, area.width, 1);
    let body = Rect::new(area.x, area.y, area.width, rule.y - area.y);
    let (transcript, panel) = if !app.quota_open {
        (body, None)
    } else if area.width >= PANEL_SIDE_MIN_WIDTH {
        let t = Rect {
            width: body.width - quota_panel::WIDTH,
            ..body
        };
        let p = Rect {
            x: t.right(),
            width: quota_panel::WIDTH,
            ..body
        };
        (t, Some(p))
    } else if area.height >= PANEL_BELOW_MIN_HEIGHT {
        let ph = (body.height / 2).min(16);
        let t = Rect {
            height: body.height - ph,
            ..body
        };
        let p = Rect {
            y: t.bottom(),
            height: ph,
            ..body
        };
        (t, Some(p))
    } else {
        (body, None)
    };
    Some(Areas {
        transcript,
        panel,
        rule,
        composer,
        status,
    })
}

fn render_rule(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = app.theme;
    let fill = "─".repeat(usize::from(area.width));
    buf.set_stringn(area.x, area.y, &fill, usize::from(area.width), theme.dim());
    // The session's name at the right end (a notice may cover it).
    if let Some(name) = &app.session_name {
        let label = format!(" session {} ─", crate::util::clip(name, 40));
        let w = u16::try_from(label.chars().count()).unwrap_or(u16::MAX);
        if w + 20 < area.width {
            buf.set_stringn(
                area.right() - w,
                area.y,
                &label,
                usize::from(w),
                theme.dim(),
            );
        }
    }
    let (text, style) = match &app.notice {
        Some(n) => (
            n.text.clone(),
            match n.kind {
                NoticeKind::Info => ratatui::style::Style::new(),
                NoticeKind::Warn => theme.warn(),
                NoticeKind::Error => theme.error(),
            },
        ),
        None if app.demo => (DEMO_HINT.to_string(), theme.warn()),
        None if app.quota_open && !app.mouse_captured => (
            "mouse released: select with the mouse · F2 to scroll".to_string(),
            theme.dim(),
        ),
        None => return,
    };
    let line = Line::from(vec![
        Span::styled("─ ", theme.dim()),
        Span::styled(text, style),
        Span::styled(" ", theme.dim()),
    ]);
    buf.set_line(area.x, area.y, &line, area.width);
}

/// A box of at most `max_width` columns and `rows` lines of content (plus its border),
/// centred in `area`.
pub fn centered_popup(area: Rect, max_width: u16, rows: usize) -> Rect {
    let w = area.width.min(max_width);
    let h = area
        .height
        .min(u16::try_from(rows).unwrap_or(u16::MAX).saturating_add(2));
    let x = area.x + (area.width - w) / 2;
    let y = area.y + (area.height - h) / 2;
    Rect::new(x, y, w, h)
}

fn render_too_small(area: Rect, buf: &mut Buffer) {
    let lines = [
        format!("terminal too small ({}×{})", area.width, area.height),
        format!("need at least {MIN_WIDTH}×{MIN_HEIGHT}"),
    ];
    let top = area.y + area.height.saturating_sub(2) / 2;
    for (i, text) in lines.iter().enumerate() {
        let y = top + i as u16;
        if y >= area.bottom() {
            break;
        }
        let w = u16::try_from(text.chars().count()).unwrap_or(u16::MAX);
        let x = area.x + area.width.saturating_sub(w) / 2;
        buf.set_stringn(
            x,
            y,
            text,
            usize::from(area.width),
            ratatui::style::Style::new(),
        );
    }
}

/// Draw the whole screen. Returns where the terminal cursor goes (none under help).
pub fn render(app: &App, area: Rect, buf: &mut Buffer, now: Instant) -> Option<Position> {
    let Some(a) = layout(app, area) else {
        render_too_small(area, buf);
        return None;
    };
    transcript::render(app, a.transcript, buf, now);
    if let Some(p) = a.panel {
        quota_panel::render(app, p, buf, now);
    }
    render_rule(app, a.rule, buf);
    let cursor = composer::render(app, a.composer, buf);
    status_bar::render(app, a.status, buf, now);
    if app.help_open {
        help::render(app, area, buf);
        return None;
    }
    if let Some(p) = &app.picker {
        picker::render(app, p, area, buf, crate::clock::wall_at(now));
        return None;
    }
    cursor
}
