//! The quota panel: a gauge per bucket (left / limit, reset countdown, age of the data) and
//! the timeline of this session's attempts (a lane per turn on a time axis, then a log).
//! Between them, once a turn has reported usage, the session's cost and the prompt cache's
//! effect: this turn's cost, the hit rate, and the input tokens and dollars it saved.

use std::time::Duration;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Widget};
use tokio::time::Instant;

use super::status_bar::{bucket_stale, compact, cost_summary, dollars};
use crate::quota::{Bucket, BucketQuota, QuotaSnapshot};
use crate::tui::app::App;
use crate::tui::live;
use crate::tui::sanitize::sanitize;
use crate::tui::theme::Theme;
use crate::tui::timeline::{self, CellKind, EntryKind, MarkKind, SpanKind};
use crate::tui::wrap::{StyledLine, WrapMode, wrap_into};

/// Width of the panel beside the transcript.
pub const WIDTH: u16 = 46;

/// Rows the gauges take.
pub const GAUGE_ROWS: u16 = 1 + 3 * 3;

fn set(buf: &mut Buffer, area: Rect, y: u16, line: &Line<'_>) {
    if y < area.height {
        buf.set_line(area.x, area.y + y, line, area.width);
    }
}

/// Draw the three gauges into `area` (at most [`GAUGE_ROWS`] rows).
pub fn render_gauges(
    quota: Option<&QuotaSnapshot>,
    area: Rect,
    buf: &mut Buffer,
    now: Instant,
    theme: Theme,
) {
    let header = match quota {
        None => Line::from(Span::styled("no rate-limit headers yet", theme.dim())),
        Some(q) => {
            let age = live::age_text(now.saturating_duration_since(q.read_at));
            Line::from(vec![
                Span::styled("data from ", theme.dim()),
                Span::raw(age),
            ])
        }
    };
    set(buf, area, 0, &header);
    for (i, b) in Bucket::PACED.iter().enumerate() {
        let y = 1 + 3 * i as u16;
        let bq = quota.and_then(|q| q.bucket(*b));
        gauge(*b, bq, area, buf, y, now, theme);
    }
}

fn gauge(
    b: Bucket,
    q: Option<&BucketQuota>,
    area: Rect,
    buf: &mut Buffer,
    y: u16,
    now: Instant,
    theme: Theme,
) {
    let w = usize::from(area.width);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let stale = q.is_some_and(|q| bucket_stale(q, now));
    let value = match q {
        Some(BucketQuota {
            remaining: Some(r),
            limit: Some(l),
            ..
        }) => format!("{} / {} left", compact(*r), compact(*l)),
        Some(BucketQuota {
            remaining: Some(r), ..
        }) => format!("{} left", compact(*r)),
        _ => "unknown".to_string(),
    };
    let label = b.label();
    let pad = w.saturating_sub(label.len() + value.chars().count());
    let value_style = if stale {
        theme.dim()
    } else {
        super::status_bar::bucket_style(q, theme)
    };
    set(
        buf,
        area,
        y,
        &Line::from(vec![
            Span::styled(label, bold),
            Span::raw(" ".repeat(pad)),
            Span::styled(value, value_style),
        ]),
    );
    // The bar.
    let frac = q.and_then(BucketQuota::fraction_left);
    let pct = frac.map(|f| format!(" {:>3}%", (f * 100.0).round() as u64));
    let bar_w = w.saturating_sub(pct.as_ref().map_or(5, std::string::String::len));
    let filled = frac.map_or(0, |f| ((f * bar_w as f64).round() as usize).min(bar_w));
    let fill_style = if stale {
        theme.dim()
    } else {
        theme.gauge(frac)
    };
    let (full, empty) = if theme.color {
        ('█', '░')
    } else {
        ('#', '.')
    };
    set(
        buf,
        area,
        y + 1,
        &Line::from(vec![
            Span::styled(full.to_string().repeat(filled), fill_style),
            Span::styled(empty.to_string().repeat(bar_w - filled), theme.dim()),
            Span::raw(pct.unwrap_or_default()),
        ]),
    );
    let reset = match q.and_then(|q| q.reset) {
        None => Line::from(Span::styled("reset time unknown", theme.dim())),
        Some(r) if r > now => Line::from(vec![
            Span::styled("resets in ", theme.dim()),
            Span::styled(live::countdown_text(r, now), theme.warn()),
        ]),
        Some(_) if stale => Line::from(Span::styled(
            "stale: reset passed, refilled since",
            theme.warn(),
        )),
        Some(_) => Line::from(Span::styled("full", theme.dim())),
    };
    set(buf, area, y + 2, &reset);
}

fn cell_style(kind: CellKind, theme: Theme) -> Style {
    match kind {
        CellKind::Mark(
            MarkKind::RateLimited
            | MarkKind::Overloaded
            | MarkKind::ServerError
            | MarkKind::Network
            | MarkKind::Failed
            | MarkKind::Interrupted,
        ) => theme.error(),
        CellKind::Mark(MarkKind::Finished) => theme.ok(),
        CellKind::Mark(_) => Style::new().add_modifier(Modifier::BOLD),
        CellKind::Span(SpanKind::Paced | SpanKind::Waiting) => {
            theme.warn().remove_modifier(Modifier::BOLD)
        }
        CellKind::Span(SpanKind::Streaming) => theme.ok(),
        CellKind::Span(SpanKind::InFlight) => theme.dim(),
    }
}

/// Draw the timeline into `area`.
pub fn render_timeline(app: &App, area: Rect, buf: &mut Buffer, now: Instant) {
    let theme = app.theme;
    if area.is_empty() {
        return;
    }
    let tl = &app.timeline;
    if tl.lanes.is_empty() {
        set(
            buf,
            area,
            0,
            &Line::from(Span::styled("timeline: no attempts yet", theme.dim())),
        );
        return;
    }
    let rows = area.height;
    // Lanes get up to half the rows (at most 10); the log the rest.
    let lane_rows = usize::from(rows.saturating_sub(3) / 2).clamp(1, 10);
    let lanes: Vec<_> = tl.lanes.iter().rev().take(lane_rows).rev().collect();
    let label_w = lanes
        .iter()
        .map(|l| format!("#{}", l.id.0).len())
        .max()
        .unwrap_or(2)
        + 1;
    let cols = usize::from(area.width).saturating_sub(label_w).max(1);
    let start = lanes.iter().map(|l| l.start).min().unwrap_or(now);
    // While something runs the axis ends now; once all is done it stops growing, so
    // finished lanes keep their shape instead of shrinking into the left edge.
    let last = if lanes.iter().any(|l| !l.done) {
        now
    } else {
        lanes
            .iter()
            .map(|l| l.last_activity(now))
            .max()
            .unwrap_or(now)
    };
    let end = last.max(start + Duration::from_secs(5));
    let window = Duration::from_mins(10);
    let start = if end.saturating_duration_since(start) > window {
        end - window
    } else {
        start
    };
    let span = end.saturating_duration_since(start);
    let origin = app.started_at;
    let head = format!(
        "timeline {}…{}",
        timeline::relative(start, origin),
        timeline::relative(end, origin)
    );
    set(
        buf,
        area,
        0,
        &Line::from(Span::styled(
            head,
            Style::new().add_modifier(Modifier::BOLD),
        )),
    );
    let mut y = 1u16;
    for lane in &lanes {
        let mut spans = vec![Span::styled(
            format!("{:<label_w$}", format!("#{}", lane.id.0)),
            theme.dim(),
        )];
        for c in 0..cols {
            let from = start + span.mul_f64(c as f64 / cols as f64);
            let to = start + span.mul_f64((c + 1) as f64 / cols as f64);
            match timeline::cell(lane, from, to, now) {
                Some((ch, kind)) => {
                    spans.push(Span::styled(ch.to_string(), cell_style(kind, theme)));
                }
                None => spans.push(Span::raw(" ")),
            }
        }
        set(buf, area, y, &Line::from(spans));
        y += 1;
    }
    // The legend, each glyph in the style it has on the axis.
    let key = |kind: CellKind, glyph: &str, label: &str| {
        [
            Span::styled(glyph.to_string(), cell_style(kind, theme)),
            Span::styled(format!(" {label} "), theme.dim()),
        ]
    };
    let legend: Vec<Span<'static>> = [
        key(CellKind::Mark(MarkKind::Sent), "S", "sent"),
        key(CellKind::Mark(MarkKind::RateLimited), "4", "429"),
        key(CellKind::Mark(MarkKind::Overloaded), "5", "529"),
        key(CellKind::Span(SpanKind::Waiting), "░", "wait"),
        key(CellKind::Span(SpanKind::Paced), "·", "paced"),
        key(CellKind::Span(SpanKind::Streaming), "=", "stream"),
    ]
    .into_iter()
    .flatten()
    .collect();
    set(buf, area, y, &Line::from(legend));
    y += 1;
    // The log, newest at the bottom; long entries wrap under their text.
    let log_rows = usize::from(rows.saturating_sub(y));
    let mut wrapped: Vec<Line<'static>> = Vec::new();
    for e in tl.entries.iter().rev() {
        if wrapped.len() >= log_rows {
            break;
        }
        let style = match e.kind {
            EntryKind::Info => Style::new(),
            EntryKind::Wait => theme.warn().remove_modifier(Modifier::BOLD),
            EntryKind::Error => theme.error(),
            EntryKind::Ok => theme.ok(),
        };
        let head = format!("{:>7} #{} ", timeline::relative(e.at, origin), e.id.0);
        let indent = " ".repeat(head.chars().count());
        let line = StyledLine {
            first_prefix: vec![Span::styled(head, theme.dim())],
            prefix: vec![Span::raw(indent)],
            // Entries quote server messages: neutralise them like any outside text.
            spans: vec![Span::styled(sanitize(&e.text, 0).into_owned(), style)],
            mode: WrapMode::Word,
        };
        let mut lines = Vec::new();
        wrap_into(&line, area.width, &mut lines);
        for l in lines.into_iter().rev() {
            wrapped.push(l);
        }
    }
    let start = wrapped.len().saturating_sub(log_rows);
    for l in wrapped[start..].iter().rev() {
        set(buf, area, y, l);
        y += 1;
    }
}

/// Rows the cost block takes (with the blank row before it).
pub const COST_ROWS: u16 = 3;

/// The cost block: `cost $0.0123 session · $0.0021 turn` and `cache 93% hit · saved 45k tok
/// ($0.0410)`; `None` before any usage.
pub fn cost_lines(app: &App) -> Option<[Line<'static>; 2]> {
    let c = cost_summary(app)?;
    let theme = app.theme;
    let hit = (c.session.tokens.hit_rate() * 100.0).round() as u64;
    let saved = if c.session.priced() {
        format!(" ({})", crate::cost::usd_text(c.session.saved_usd()))
    } else {
        String::new()
    };
    let first = if c.session.priced() {
        Line::from(vec![
            Span::styled("cost  ", theme.dim()),
            Span::raw(dollars(&c.session)),
            Span::styled(" session · ", theme.dim()),
            Span::raw(dollars(&c.turn)),
            Span::styled(" turn", theme.dim()),
        ])
    } else {
        // No price: the token counts, never a guessed figure.
        let t = c.session.tokens;
        Line::from(vec![
            Span::styled("cost  ", theme.dim()),
            Span::styled("price unknown", theme.warn()),
            Span::styled(" · ", theme.dim()),
            Span::raw(format!(
                "{} in / {} out",
                compact(t.total_input()),
                compact(t.output)
            )),
        ])
    };
    Some([
        first,
        Line::from(vec![
            Span::styled("cache ", theme.dim()),
            Span::raw(format!("{hit}%")),
            Span::styled(" hit · saved ", theme.dim()),
            Span::raw(format!("{} tok{saved}", compact(c.tokens_saved()))),
        ]),
    ])
}

/// Draw the whole panel (border, gauges, cost, timeline).
pub fn render(app: &App, area: Rect, buf: &mut Buffer, now: Instant) {
    if area.is_empty() {
        return;
    }
    let block = Block::default()
        .borders(Borders::LEFT | Borders::TOP)
        .border_style(app.theme.dim())
        .title(Span::styled(" quota · F3 ", app.theme.dim()));
    let inner = block.inner(area);
    block.render(area, buf);
    let inner = Rect {
        x: inner.x + 1,
        width: inner.width.saturating_sub(1),
        ..inner
    };
    let g = Rect {
        height: inner.height.min(GAUGE_ROWS),
        ..inner
    };
    render_gauges(app.quota.as_ref(), g, buf, now, app.theme);
    let mut top = GAUGE_ROWS;
    if let Some(lines) = cost_lines(app)
        && inner.height > GAUGE_ROWS + COST_ROWS
    {
        for (i, l) in lines.iter().enumerate() {
            set(buf, inner, GAUGE_ROWS + 1 + i as u16, l);
        }
        top += COST_ROWS;
    }
    if inner.height > top + 1 {
        let t = Rect {
            y: inner.y + top + 1,
            height: inner.height - top - 1,
            ..inner
        };
        render_timeline(app, t, buf, now);
    }
}
