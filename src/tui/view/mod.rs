//! Pure render functions: `render(state, area, buf, now)`. No IO and no clock: `now` is a
//! parameter, so snapshots are deterministic.

pub mod composer;
pub mod help;
pub mod model_picker;
pub mod notice;
pub mod picker;
pub mod quota_panel;
pub mod status_bar;
pub mod transcript;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::text::{Line, Span};
use tokio::time::Instant;

use super::app::App;

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

/// Most rows a notice may take on a screen of `area`: a third of its height, at least one
/// and at most [`notice::MAX_ROWS`].
fn max_notice_rows(area: Rect) -> u16 {
    (area.height / 3).clamp(1, notice::MAX_ROWS)
}

/// Split the screen; `None` when it is smaller than [`MIN_WIDTH`]×[`MIN_HEIGHT`].
///
/// Top to bottom: the body (transcript, and the quota panel beside or under it), the rule
/// (one row, or as many as a long notice needs, at most a third of the screen), the
/// composer (as tall as its text, at most a third of the screen and ten rows) and the status
/// bar. Every length but the body's is fixed, and the minimum size leaves the body rows, so
/// the layout always fits exactly.
pub fn layout(app: &App, area: Rect) -> Option<Areas> {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        return None;
    }
    let max_composer = (area.height / 3).clamp(1, 10);
    let composer_h = composer::wanted_height(app, area.width).min(max_composer);
    let rule_h = u16::try_from(notice::rows(app, area.width, max_notice_rows(area)).len())
        .unwrap_or(1)
        .max(1);
    let [body, rule, composer, status] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(rule_h),
        Constraint::Length(composer_h),
        Constraint::Length(1),
    ])
    .areas(area);
    let (transcript, panel) = if !app.quota_open {
        (body, None)
    } else if area.width >= PANEL_SIDE_MIN_WIDTH {
        let [t, p] =
            Layout::horizontal([Constraint::Fill(1), Constraint::Length(quota_panel::WIDTH)])
                .areas(body);
        (t, Some(p))
    } else if area.height >= PANEL_BELOW_MIN_HEIGHT {
        // Half the body, at most 16 rows: the gauges and a few timeline rows.
        let panel_h = (body.height / 2).min(16);
        let [t, p] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(panel_h)]).areas(body);
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
    // The session's name at the right end (a notice's first row leaves room for it).
    if let Some(label) = notice::session_label(app, area.width) {
        let w = u16::try_from(unicode_width::UnicodeWidthStr::width(label.as_str()))
            .unwrap_or(u16::MAX);
        buf.set_stringn(
            area.right().saturating_sub(w),
            area.y,
            &label,
            usize::from(w),
            theme.dim(),
        );
    }
    if let Some(i) = app.resume_choice {
        let label = app.labels.get(i).copied().unwrap_or(i as u64 + 1);
        let kept = app
            .conversation
            .turns
            .get(i)
            .map_or(0, |t| t.assistant.trim_end().chars().count());
        let line = Line::from(vec![
            Span::styled("─ ", theme.dim()),
            Span::styled(format!("#{label} broke off: "), theme.warn()),
            Span::styled("c", theme.badge()),
            Span::raw(format!(" continue its {kept} chars · ")),
            Span::styled("r", theme.badge()),
            Span::raw(" retry from scratch · "),
            Span::styled("Esc", theme.badge()),
            Span::raw(" "),
        ]);
        buf.set_line(area.x, area.y, &line, area.width);
        return;
    }
    if let Some(s) = &app.search {
        let hint = if s.editing {
            "Enter: go · Esc: close"
        } else {
            "n/Enter next · N/Shift+Enter previous · Ctrl+F edit · Esc close"
        };
        let line = Line::from(vec![
            Span::styled("─ ", theme.dim()),
            Span::styled("find: ", theme.user_header()),
            Span::raw(crate::tui::sanitize::sanitize(&s.query, 0)),
            Span::raw("  "),
            Span::styled(s.position(), theme.badge()),
            Span::styled(format!(" · {hint} "), theme.dim()),
        ]);
        buf.set_line(area.x, area.y, &line, area.width);
        return;
    }
    let Some((_, style)) = notice::current(app) else {
        return;
    };
    // As many rows as the layout gave the rule: the notice wrapped to its width.
    for (i, row) in notice::rows(app, area.width, area.height)
        .into_iter()
        .enumerate()
    {
        let y = area.y + u16::try_from(i).unwrap_or(u16::MAX);
        if y >= area.bottom() {
            break;
        }
        let line = if i == 0 {
            Line::from(vec![
                Span::styled("─ ", theme.dim()),
                Span::styled(row, style),
                Span::styled(" ", theme.dim()),
            ])
        } else {
            Line::from(vec![
                Span::raw(" ".repeat(notice::PREFIX)),
                Span::styled(row, style),
            ])
        };
        buf.set_line(area.x, y, &line, area.width);
    }
}

/// A box of at most `max_width` columns and `rows` lines of content (plus its border),
/// centred in `area`.
///
/// By hand rather than with `Rect::centered`: `Flex::Center` puts an odd spare cell before
/// the box, this puts it after, and moving every popup by a cell would change what people
/// (and the snapshots) have seen so far.
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
    let mut cursor = composer::render(app, a.composer, buf);
    // While the search query is typed, the cursor is at its end on the rule line.
    if let Some(s) = app.search.as_ref().filter(|s| s.editing) {
        let w = unicode_width::UnicodeWidthStr::width("─ find: ")
            + unicode_width::UnicodeWidthStr::width(s.query.as_str());
        let w = u16::try_from(w).unwrap_or(u16::MAX);
        cursor = Some(Position::new(
            a.rule.x + w.min(a.rule.width.saturating_sub(1)),
            a.rule.y,
        ));
    }
    status_bar::render(app, a.status, buf, now);
    if app.help_open {
        help::render(app, area, buf);
        return None;
    }
    if let Some(p) = &app.picker {
        picker::render(app, p, area, buf, crate::clock::wall_at(now));
        return None;
    }
    if let Some(p) = &app.model_picker {
        model_picker::render(app, p, area, buf);
        return None;
    }
    cursor
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::tui::theme::Theme;

    /// The areas tile the screen: the body on top (transcript and panel side by side or
    /// stacked), then the rule, the composer and the status bar, one row each but the
    /// composer, whose height follows its text within its cap.
    #[test]
    fn the_areas_tile_the_screen() {
        let mut app = App::new(
            Config::default(),
            true,
            false,
            Theme::default(),
            Instant::now(),
        );
        for (quota, text) in [
            (false, "one line"),
            (true, "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl"),
        ] {
            app.quota_open = quota;
            app.composer.set_text(text);
            for width in [
                MIN_WIDTH,
                60,
                PANEL_SIDE_MIN_WIDTH - 1,
                PANEL_SIDE_MIN_WIDTH,
                200,
            ] {
                for height in [
                    MIN_HEIGHT,
                    17,
                    PANEL_BELOW_MIN_HEIGHT - 1,
                    PANEL_BELOW_MIN_HEIGHT,
                    80,
                ] {
                    let area = Rect::new(2, 3, width, height);
                    let Some(a) = layout(&app, area) else {
                        panic!("{width}×{height} is big enough");
                    };
                    let what = format!("{width}×{height}, quota {quota}");
                    let cap = (height / 3).min(10);
                    assert_eq!(
                        a.status,
                        Rect::new(2, area.bottom() - 1, width, 1),
                        "{what}"
                    );
                    assert_eq!(a.composer.bottom(), a.status.y, "{what}");
                    assert!((1..=cap).contains(&a.composer.height), "{what}");
                    assert_eq!(a.rule, Rect::new(2, a.composer.y - 1, width, 1), "{what}");
                    let body = Rect::new(2, 3, width, a.rule.y - 3);
                    match a.panel {
                        None => assert_eq!(a.transcript, body, "{what}"),
                        Some(p) => {
                            assert_eq!(a.transcript.union(p), body, "{what}");
                            assert!(!a.transcript.intersects(p), "{what}");
                            if width >= PANEL_SIDE_MIN_WIDTH {
                                assert_eq!(p.width, quota_panel::WIDTH, "{what}");
                            } else {
                                assert_eq!(p.height, (body.height / 2).min(16), "{what}");
                            }
                        }
                    }
                    let panel_fits =
                        width >= PANEL_SIDE_MIN_WIDTH || height >= PANEL_BELOW_MIN_HEIGHT;
                    assert_eq!(a.panel.is_some(), quota && panel_fits, "{what}");
                }
            }
        }
        assert_eq!(layout(&app, Rect::new(0, 0, MIN_WIDTH - 1, 30)), None);
        assert_eq!(layout(&app, Rect::new(0, 0, 80, MIN_HEIGHT - 1)), None);
    }
}
