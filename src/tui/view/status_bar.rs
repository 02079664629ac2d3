//! The status bar: model, state with its countdown, quota against limits, the age of the
//! numbers, and the `mock` marker. Always one row; narrower terminals get shorter variants.
//! A wait shows its countdown, quota reads as what is left (not used), and stale numbers say
//! how old they are (what the waits and readings mean: docs/retries.md). Once a turn has
//! reported usage, the widest variants add the session's cost, this turn's, and the share of
//! input read from the prompt cache ([`cost_summary`]).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use tokio::time::Instant;

use crate::cost::{Tally, Tokens, usd_text};
use crate::limiter::LimiterHealth;
use crate::quota::{Bucket, BucketQuota, QuotaSnapshot};
use crate::tui::app::{App, Outcome};
use crate::tui::live::{self, Urgency};
use crate::tui::theme::Theme;
use crate::tui::wrap::spans_width;

/// What the session has cost so far, from the final usage of each turn (priced per turn's
/// model with [`crate::cost`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CostSummary {
    /// Every turn with usage.
    pub session: Tally,
    /// The newest turn with usage.
    pub turn: Tally,
}

impl CostSummary {
    /// Input tokens the cache saved from being charged at the full price (its reads).
    pub fn tokens_saved(&self) -> u64 {
        self.session.tokens.cache_read
    }
}

/// The session's cost summary, or `None` before any turn has reported usage.
pub fn cost_summary(app: &App) -> Option<CostSummary> {
    let mut summary = CostSummary::default();
    let mut any = false;
    for turn in &app.conversation.turns {
        if let Some(u) = &turn.usage {
            let tokens = Tokens::from(u);
            summary.session.add(&turn.model, &tokens);
            summary.turn = Tally::default();
            summary.turn.add(&turn.model, &tokens);
            any = true;
        }
    }
    any.then_some(summary)
}

/// `$0.0123`, or `price unknown` when no turn's model has a price.
pub fn dollars(t: &Tally) -> String {
    if t.priced() {
        usd_text(t.usd)
    } else {
        "price unknown".to_string()
    }
}

/// Cost spans: `$0.0123 session · $0.0021 turn · 93% cached`, or compact `$0.0123 · 93%c`.
fn cost_spans(app: &App, compact_form: bool) -> Vec<Span<'static>> {
    let Some(c) = cost_summary(app) else {
        return Vec::new();
    };
    let theme = app.theme;
    let hit = (c.session.tokens.hit_rate() * 100.0).round() as u64;
    if compact_form {
        return vec![Span::raw(format!("{} · {hit}%c", dollars(&c.session)))];
    }
    vec![
        Span::raw(dollars(&c.session)),
        Span::styled(" session · ", theme.dim()),
        Span::raw(dollars(&c.turn)),
        Span::styled(" turn · ", theme.dim()),
        Span::raw(format!("{hit}%")),
        Span::styled(" cached", theme.dim()),
    ]
}

/// `1234` → `1.2k`, `20000` → `20k`, `1500000` → `1.5M`.
pub fn compact(n: u64) -> String {
    fn trim(x: f64, unit: &str) -> String {
        if x >= 100.0 || (x - x.round()).abs() < 0.05 {
            format!("{}{unit}", x.round() as u64)
        } else {
            format!("{x:.1}{unit}")
        }
    }
    if n < 1000 {
        n.to_string()
    } else if n < 1_000_000 {
        trim(n as f64 / 1000.0, "k")
    } else {
        trim(n as f64 / 1_000_000.0, "M")
    }
}

/// True when this bucket's numbers are out of date: its reset time has passed, so it has
/// refilled since it was read. (A bucket that was full when read is still full: not stale.)
pub fn bucket_stale(q: &BucketQuota, now: Instant) -> bool {
    let below_limit = match (q.remaining, q.limit) {
        (Some(r), Some(l)) => r < l,
        _ => true,
    };
    q.reset.is_some_and(|r| r <= now) && below_limit
}

/// True when any bucket's numbers are out of date.
pub fn quota_stale(q: &QuotaSnapshot, now: Instant) -> bool {
    Bucket::PACED
        .iter()
        .filter_map(|b| q.bucket(*b))
        .any(|b| bucket_stale(b, now))
}

/// The style of a bucket's numbers: warning when low, error when empty.
pub fn bucket_style(q: Option<&BucketQuota>, theme: Theme) -> Style {
    match q.and_then(BucketQuota::fraction_left) {
        Some(f) if f <= 0.0 => theme.error(),
        Some(f) if f < 0.2 => theme.warn(),
        _ => Style::new(),
    }
}

fn short_label(b: Bucket, compact_labels: bool) -> &'static str {
    match (b, compact_labels) {
        (Bucket::Requests, false) => "req",
        (Bucket::InputTokens, false) => "in",
        (Bucket::OutputTokens, false) => "out",
        (Bucket::Tokens, false) => "tok",
        (Bucket::Requests, true) => "r",
        (Bucket::InputTokens, true) => "i",
        (Bucket::OutputTokens, true) => "o",
        (Bucket::Tokens, true) => "t",
    }
}

/// The state: `idle`, `pacing 2.1s (input tokens)`, `retry 2/8 in 4.2s — 429 rate limit
/// (retry-after)`, `streaming 312 tok`, `interrupted`, `error`; with a count when several
/// turns are in flight.
pub fn state_spans(app: &App, now: Instant) -> Vec<Span<'static>> {
    state_spans_as(app, now, false)
}

fn state_spans_as(app: &App, now: Instant, short: bool) -> Vec<Span<'static>> {
    let theme = app.theme;
    let Some(focus) = app.focus() else {
        return match app.outcome() {
            Outcome::Idle => vec![Span::raw("idle")],
            Outcome::Interrupted => vec![Span::styled("interrupted", theme.warn())],
            Outcome::Error => vec![Span::styled("error", theme.error())],
        };
    };
    let mut out = Vec::new();
    out.push(Span::raw(format!(
        "{} ",
        live::spinner(now, app.started_at)
    )));
    if app.live.len() > 1 {
        if short {
            out.push(Span::raw(format!("{}× ", app.live.len())));
        } else {
            out.push(Span::raw(format!("{} in flight · ", app.live.len())));
        }
    }
    let style = match focus.urgency() {
        Urgency::Waiting | Urgency::Paced => theme.warn(),
        Urgency::Busy | Urgency::Active => Style::new(),
    };
    let text = if short {
        focus.describe_short(now)
    } else {
        focus.describe(now)
    };
    out.push(Span::styled(text, style));
    out
}

fn quota_spans(
    app: &App,
    now: Instant,
    compact_labels: bool,
    with_age: bool,
) -> Vec<Span<'static>> {
    let theme = app.theme;
    let Some(q) = &app.quota else {
        return vec![Span::styled("quota unknown", theme.dim())];
    };
    let mut out = Vec::new();
    for (i, b) in Bucket::PACED.iter().enumerate() {
        if i > 0 {
            out.push(Span::styled(" · ", theme.dim()));
        }
        let bq = q.bucket(*b);
        let value = match bq {
            Some(BucketQuota {
                remaining: Some(r),
                limit: Some(l),
                ..
            }) => format!("{}/{}", compact(*r), compact(*l)),
            Some(BucketQuota {
                remaining: Some(r), ..
            }) => compact(*r),
            _ => "?".to_string(),
        };
        out.push(Span::raw(format!("{} ", short_label(*b, compact_labels))));
        let style = if bq.is_some_and(|x| bucket_stale(x, now)) {
            theme.dim()
        } else {
            bucket_style(bq, theme)
        };
        out.push(Span::styled(value, style));
    }
    if with_age {
        out.push(Span::styled(
            format!(
                " · {}",
                live::age_text(now.saturating_duration_since(q.read_at))
            ),
            theme.dim(),
        ));
        if quota_stale(q, now) {
            out.push(Span::styled(", ", theme.dim()));
            out.push(Span::styled("stale", theme.warn()));
        }
    }
    out
}

fn join(parts: Vec<Vec<Span<'static>>>, theme: Theme) -> Vec<Span<'static>> {
    let mut out = Vec::new();
    for (i, p) in parts.into_iter().filter(|p| !p.is_empty()).enumerate() {
        if i > 0 {
            out.push(Span::styled(" │ ", theme.dim()));
        }
        out.extend(p);
    }
    out
}

/// The spans of the status bar for `width` cells: the most detailed variant that fits.
pub fn spans(app: &App, width: u16, now: Instant) -> Vec<Span<'static>> {
    let theme = app.theme;
    let mock = if app.mock {
        vec![Span::styled(" mock ", theme.badge())]
    } else {
        Vec::new()
    };
    let model = vec![Span::raw(
        crate::tui::sanitize::sanitize(&app.model_label(), 0).into_owned(),
    )];
    // Where pacing state lives: shared through Redis, or local because Redis is unreachable.
    let (limiter, limiter_short) = match &app.limiter {
        LimiterHealth::Local => (Vec::new(), Vec::new()),
        LimiterHealth::Shared => (
            vec![Span::styled("shared quota", theme.dim())],
            vec![Span::styled("shared", theme.dim())],
        ),
        LimiterHealth::Degraded(_) => (
            vec![Span::styled(
                "shared limiter down · pacing locally",
                theme.warn(),
            )],
            vec![Span::styled("limiter down", theme.warn())],
        ),
    };
    let state = state_spans(app, now);
    let short = state_spans_as(app, now, true);
    let help = vec![Span::styled("F1 help", theme.dim())];
    let full_quota = quota_spans(app, now, false, true);
    let compact_quota = quota_spans(app, now, true, true);
    let bare_quota = quota_spans(app, now, true, false);
    let cost = cost_spans(app, false);
    let cost_compact = cost_spans(app, true);
    // From the most detailed to the least; the first that fits is drawn.
    let variants: Vec<Vec<Vec<Span<'static>>>> = vec![
        vec![
            mock.clone(),
            limiter.clone(),
            model.clone(),
            state.clone(),
            full_quota.clone(),
            cost,
            help.clone(),
        ],
        vec![
            mock.clone(),
            limiter.clone(),
            model.clone(),
            state.clone(),
            full_quota.clone(),
            cost_compact,
            help.clone(),
        ],
        vec![
            mock.clone(),
            limiter.clone(),
            model.clone(),
            state.clone(),
            full_quota.clone(),
            help,
        ],
        vec![
            mock.clone(),
            limiter.clone(),
            model.clone(),
            state.clone(),
            full_quota.clone(),
        ],
        vec![
            mock.clone(),
            limiter.clone(),
            model.clone(),
            state.clone(),
            compact_quota.clone(),
        ],
        vec![
            mock.clone(),
            limiter_short.clone(),
            model.clone(),
            short.clone(),
            compact_quota.clone(),
        ],
        vec![
            mock.clone(),
            limiter_short.clone(),
            short.clone(),
            compact_quota.clone(),
        ],
        vec![
            mock.clone(),
            limiter_short.clone(),
            short.clone(),
            bare_quota,
        ],
        vec![mock.clone(), limiter_short.clone(), short.clone()],
        vec![limiter_short, short.clone()],
        vec![short],
    ];
    let width = usize::from(width);
    let mut last = Vec::new();
    for v in variants {
        let mut line = vec![Span::raw(" ")];
        line.extend(join(v, theme));
        if spans_width(&line) <= width {
            return line;
        }
        last = line;
    }
    last
}

/// Draw the status bar.
pub fn render(app: &App, area: Rect, buf: &mut Buffer, now: Instant) {
    if area.is_empty() {
        return;
    }
    let base = app.theme.status_bar();
    buf.set_style(area, base);
    let line = Line::from(spans(app, area.width, now));
    buf.set_line(area.x, area.y, &line, area.width);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_compact() {
        assert_eq!(compact(999), "999");
        assert_eq!(compact(1234), "1.2k");
        assert_eq!(compact(20_000), "20k");
        assert_eq!(compact(450_000), "450k");
        assert_eq!(compact(1_500_000), "1.5M");
    }
}
