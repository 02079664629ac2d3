//! The terminal view of `backchat proxy`: the chat's quota gauges and timeline, fed by the
//! proxy's events instead of a conversation's. One timeline row per request, labelled by its
//! client (`User-Agent`) and key fingerprint; the gauges of the key and model class that
//! reported last; a status bar with the proxy's counters. `q` or Ctrl+C stops the proxy.
//!
//! State and drawing ([`ProxyView`]) are apart from the terminal loop ([`run`]), so that the
//! tests can draw it into a buffer.

use std::collections::{HashMap, HashSet};
use std::io;
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Widget};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::msg::TurnId;
use super::sanitize::sanitize;
use super::theme::Theme;
use super::timeline::{self, CellKind, EntryKind, MarkKind, SpanKind, Timeline};
use super::view::quota_panel::{GAUGE_ROWS, WIDTH, render_gauges};
use super::view::status_bar::compact;
use crate::api::StreamFailure;
use crate::proxy::{ProxyEvent, ProxyEventKind, ProxyServer, Totals};
use crate::quota::QuotaSnapshot;
use crate::retry::TurnEvent;

/// What the proxy's screen shows.
#[derive(Debug)]
pub struct ProxyView {
    /// The lanes and the log.
    pub timeline: Timeline,
    /// Each request's row label.
    labels: HashMap<u64, String>,
    /// Requests whose reply started (a 2xx went out).
    streaming: HashSet<u64>,
    /// The latest quota, and whose (`key class`).
    quota: Option<(String, QuotaSnapshot)>,
    /// Where requests come in and go out.
    banner: String,
    started_at: Instant,
    theme: Theme,
}

impl ProxyView {
    /// An empty view; `banner` names the listening address and the upstream.
    pub fn new(banner: String, now: Instant, theme: Theme) -> Self {
        ProxyView {
            timeline: Timeline::default(),
            labels: HashMap::new(),
            streaming: HashSet::new(),
            quota: None,
            banner,
            started_at: now,
            theme,
        }
    }

    /// Take in one event.
    pub fn record(&mut self, ev: &ProxyEvent, now: Instant) {
        let id = TurnId(ev.id);
        match &ev.kind {
            ProxyEventKind::Received(label) => {
                self.timeline.begin(id, now);
                let key: String = label.key.chars().take(8).collect();
                self.labels.insert(
                    ev.id,
                    format!("#{} {} {key}", ev.id, crate::util::clip(&label.client, 22)),
                );
            }
            ProxyEventKind::Turn(TurnEvent::Quota(q)) => {
                let whose = self
                    .labels
                    .get(&ev.id)
                    .and_then(|l| l.rsplit(' ').next())
                    .unwrap_or("-")
                    .to_string();
                match &mut self.quota {
                    Some((w, old)) if *w == whose => old.merge_newer(q),
                    _ => self.quota = Some((whose, q.clone())),
                }
            }
            ProxyEventKind::Turn(t) => self.timeline.record(id, t, now),
            ProxyEventKind::Responded { status, .. } => {
                if (200..300).contains(status) {
                    self.streaming.insert(ev.id);
                    let started = TurnEvent::Started {
                        request_id: None,
                        model: String::new(),
                    };
                    self.timeline.record(id, &started, now);
                }
            }
            ProxyEventKind::Ended {
                usage,
                stop_reason,
                broken,
                ..
            } => {
                if self.streaming.remove(&ev.id) {
                    let end = match broken {
                        Some(why) => TurnEvent::Interrupted {
                            error: StreamFailure::Disconnected(why.clone()),
                            partial_kept: true,
                        },
                        None => TurnEvent::Finished {
                            stop_reason: stop_reason.clone(),
                            usage: usage.clone().unwrap_or_default(),
                        },
                    };
                    self.timeline.record(id, &end, now);
                }
            }
        }
    }

    /// Draw everything into `area`.
    pub fn render(&self, totals: Totals, area: Rect, buf: &mut Buffer, now: Instant) {
        if area.height < 4 || area.width < 20 {
            return;
        }
        let theme = self.theme;
        buf.set_line(
            area.x,
            area.y,
            &Line::from(Span::styled(
                self.banner.clone(),
                Style::new().add_modifier(Modifier::BOLD),
            )),
            area.width,
        );
        let bar_y = area.y + area.height - 1;
        let bar = format!(
            " {} requests · {} in flight · {} attempts · {} 429s absorbed · {} other errors absorbed · {} waits · {} gave up │ q quit",
            compact(totals.requests),
            totals.in_flight,
            compact(totals.attempts),
            compact(totals.absorbed_429),
            compact(totals.absorbed_other),
            compact(totals.waits),
            totals.give_ups
        );
        let bar_line = Line::from(Span::styled(
            format!("{bar:<width$}", width = usize::from(area.width)),
            theme.status_bar(),
        ));
        buf.set_line(area.x, bar_y, &bar_line, area.width);
        let body = Rect {
            x: area.x,
            y: area.y + 1,
            width: area.width,
            height: area.height - 2,
        };
        let panel_w = if body.width >= WIDTH + 40 { WIDTH } else { 0 };
        let left = Rect {
            width: body.width - panel_w,
            ..body
        };
        self.render_timeline(left, buf, now);
        if panel_w > 0 {
            let panel = Rect {
                x: body.x + body.width - panel_w,
                width: panel_w,
                ..body
            };
            let title = match &self.quota {
                Some((whose, _)) => format!(" quota · key {whose} "),
                None => " quota ".to_string(),
            };
            let block = Block::default()
                .borders(Borders::LEFT | Borders::TOP)
                .border_style(theme.dim())
                .title(Span::styled(title, theme.dim()));
            let inner = block.inner(panel);
            block.render(panel, buf);
            let g = Rect {
                x: inner.x + 1,
                width: inner.width.saturating_sub(1),
                height: inner.height.min(GAUGE_ROWS),
                ..inner
            };
            render_gauges(self.quota.as_ref().map(|(_, q)| q), g, buf, now, theme);
        }
    }

    /// One row per request (newest at the bottom) on a shared time axis, then the log.
    fn render_timeline(&self, area: Rect, buf: &mut Buffer, now: Instant) {
        let theme = self.theme;
        let tl = &self.timeline;
        let set = |buf: &mut Buffer, y: u16, line: &Line<'_>| {
            if y < area.height {
                buf.set_line(area.x, area.y + y, line, area.width);
            }
        };
        if tl.lanes.is_empty() {
            set(
                buf,
                0,
                &Line::from(Span::styled(
                    "no requests yet: point a client's ANTHROPIC_BASE_URL here",
                    theme.dim(),
                )),
            );
            return;
        }
        let lane_rows = usize::from(area.height.saturating_sub(3) / 2).clamp(1, 20);
        let lanes: Vec<_> = tl.lanes.iter().rev().take(lane_rows).rev().collect();
        let label = |id: TurnId| {
            self.labels
                .get(&id.0)
                .cloned()
                .unwrap_or_else(|| format!("#{}", id.0))
        };
        let label_w = lanes
            .iter()
            .map(|l| label(l.id).chars().count())
            .max()
            .unwrap_or(2)
            + 1;
        let cols = usize::from(area.width).saturating_sub(label_w).max(1);
        let start = lanes.iter().map(|l| l.start).min().unwrap_or(now);
        let end = now.max(start + Duration::from_secs(5));
        let window = Duration::from_mins(5);
        let start = if end.saturating_duration_since(start) > window {
            end - window
        } else {
            start
        };
        let span = end.saturating_duration_since(start);
        set(
            buf,
            0,
            &Line::from(Span::styled(
                format!(
                    "requests {}…{}   S sent  4 429  5 529  ░ wait  · paced  = stream",
                    timeline::relative(start, self.started_at),
                    timeline::relative(end, self.started_at)
                ),
                Style::new().add_modifier(Modifier::BOLD),
            )),
        );
        let mut y = 1u16;
        for lane in &lanes {
            let mut spans = vec![Span::styled(
                format!("{:<label_w$}", label(lane.id)),
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
            set(buf, y, &Line::from(spans));
            y += 1;
        }
        y += 1;
        let log_rows = usize::from(area.height.saturating_sub(y));
        let entries: Vec<_> = tl.entries.iter().rev().take(log_rows).collect();
        for e in entries.into_iter().rev() {
            let style = match e.kind {
                EntryKind::Info => Style::new(),
                EntryKind::Wait => theme.warn().remove_modifier(Modifier::BOLD),
                EntryKind::Error => theme.error(),
                EntryKind::Ok => theme.ok(),
            };
            let line = Line::from(vec![
                Span::styled(
                    format!(
                        "{:>7} #{} ",
                        timeline::relative(e.at, self.started_at),
                        e.id.0
                    ),
                    theme.dim(),
                ),
                // Entries quote server messages: neutralise them like any outside text.
                Span::styled(sanitize(&e.text, 0).into_owned(), style),
            ]);
            set(buf, y, &line);
            y += 1;
        }
    }
}

fn cell_style(kind: CellKind, theme: Theme) -> Style {
    match kind {
        CellKind::Mark(MarkKind::Sent | MarkKind::Finished) => theme.ok(),
        CellKind::Mark(
            MarkKind::RateLimited
            | MarkKind::Overloaded
            | MarkKind::ServerError
            | MarkKind::Network,
        ) => theme.warn(),
        CellKind::Mark(MarkKind::Interrupted | MarkKind::Failed | MarkKind::Cancelled) => {
            theme.error()
        }
        CellKind::Span(SpanKind::Paced | SpanKind::Waiting) => {
            theme.warn().remove_modifier(Modifier::BOLD)
        }
        CellKind::Span(SpanKind::Streaming) => theme.ok(),
        CellKind::Span(SpanKind::InFlight) => theme.dim(),
    }
}

/// Raw mode and the alternate screen, undone when dropped.
struct Screen;

impl Screen {
    fn enter() -> io::Result<Screen> {
        enable_raw_mode()?;
        let screen = Screen;
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        Ok(screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
        let _ = disable_raw_mode();
    }
}

/// Show the proxy until `q`, Ctrl+C or the end of its events; then stop it. The exit code.
pub async fn run(server: ProxyServer, banner: String, theme: Theme) -> i32 {
    let mut rx = server.subscribe();
    let metrics = server.metrics();
    let mut view = ProxyView::new(banner, Instant::now(), theme);
    let screen = match Screen::enter() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("backchat proxy: cannot use the terminal ({e}); run with --headless");
            server.shutdown().await;
            return crate::exit::FAILED;
        }
    };
    let mut terminal = match Terminal::new(CrosstermBackend::new(io::stdout())) {
        Ok(t) => t,
        Err(e) => {
            drop(screen);
            eprintln!("backchat proxy: cannot use the terminal ({e}); run with --headless");
            server.shutdown().await;
            return crate::exit::FAILED;
        }
    };
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => view.record(&ev, Instant::now()),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            key = keys.next() => match key {
                Some(Ok(Event::Key(k))) if k.kind == KeyEventKind::Press => {
                    let ctrl_c = k.code == KeyCode::Char('c')
                        && k.modifiers.contains(KeyModifiers::CONTROL);
                    if ctrl_c || k.code == KeyCode::Char('q') {
                        break;
                    }
                }
                None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {
                let now = Instant::now();
                let totals = metrics.totals();
                let drawn = terminal.draw(|f| {
                    let area = f.area();
                    view.render(totals, area, f.buffer_mut(), now);
                });
                if drawn.is_err() {
                    break;
                }
            }
        }
    }
    drop(terminal);
    drop(screen);
    server.shutdown().await;
    eprintln!("backchat proxy stopped");
    crate::exit::OK
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::RequestLabel;

    fn text(buf: &Buffer) -> String {
        let mut s = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                s.push_str(buf[(x, y)].symbol());
            }
            s.push('\n');
        }
        s
    }

    #[tokio::test(start_paused = true)]
    async fn a_row_per_request_labelled_by_client_and_key() {
        let now = Instant::now();
        let mut v = ProxyView::new("proxy on 127.0.0.1:8788".into(), now, Theme::monochrome());
        let ev = |id, kind| ProxyEvent { id, kind };
        v.record(
            &ev(
                1,
                ProxyEventKind::Received(RequestLabel {
                    method: "POST".into(),
                    path: "/v1/messages".into(),
                    client: "Anthropic/Python 2.14.0".into(),
                    key: "74d2f4d50df1b4d3".into(),
                    class: Some("sonnet-4".into()),
                    stream: true,
                }),
            ),
            now,
        );
        v.record(
            &ev(
                1,
                ProxyEventKind::Turn(TurnEvent::Sending {
                    attempt: 1,
                    max_attempts: 9,
                }),
            ),
            now,
        );
        v.record(
            &ev(
                1,
                ProxyEventKind::Responded {
                    status: 200,
                    attempts: 1,
                    waited: Duration::ZERO,
                    gave_up: false,
                },
            ),
            now,
        );
        let area = Rect::new(0, 0, 120, 20);
        let mut buf = Buffer::empty(area);
        let totals = Totals {
            requests: 1,
            attempts: 1,
            in_flight: 1,
            ..Totals::default()
        };
        v.render(totals, area, &mut buf, now + Duration::from_secs(1));
        let t = text(&buf);
        assert!(t.contains("#1 Anthropic/Python 2.14… 74d2f4d5"), "{t}");
        assert!(t.contains("1 requests · 1 in flight"), "{t}");
        assert!(t.contains("quota"), "{t}");
    }
}
