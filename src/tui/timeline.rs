//! This session's attempts, so that pacing, backoff and jitter can be seen at work.
//!
//! Two views of the same events: a lane per turn on a time axis (spans for pacing, waiting
//! and streaming; marks for sends, 429s, 529s and endings), and a log with relative times and
//! delays. Both are bounded, so a long session cannot grow them without limit.

use std::collections::VecDeque;

use tokio::time::Instant;

use super::msg::TurnId;
use crate::clock::human_duration;
use crate::retry::{TurnEvent, WaitCause};

/// Lanes kept (the panel shows the most recent that fit).
pub const MAX_LANES: usize = 200;
/// Log entries kept.
pub const MAX_ENTRIES: usize = 500;

/// What a stretch of a lane was doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// Held back by the pacer or the shared limiter.
    Paced,
    /// A request on the wire, before its reply started.
    InFlight,
    /// Waiting before a retry.
    Waiting,
    /// The reply streaming.
    Streaming,
}

/// A point event on a lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    /// An attempt was sent.
    Sent,
    /// A 429.
    RateLimited,
    /// A 529.
    Overloaded,
    /// Another server error (5xx, 408, 409).
    ServerError,
    /// A network error.
    Network,
    /// The reply finished.
    Finished,
    /// The stream broke after it started.
    Interrupted,
    /// The turn failed before its stream started.
    Failed,
    /// The person cancelled it.
    Cancelled,
}

impl MarkKind {
    /// The glyph drawn on the time axis (one cell, not an emoji).
    pub fn glyph(self) -> char {
        match self {
            MarkKind::Sent => 'S',
            MarkKind::RateLimited => '4',
            MarkKind::Overloaded => '5',
            MarkKind::ServerError => 'E',
            MarkKind::Network => 'N',
            MarkKind::Finished => '✓',
            MarkKind::Interrupted => '!',
            MarkKind::Failed => 'x',
            MarkKind::Cancelled => 'c',
        }
    }

    /// Marks that end a turn or report trouble outrank a plain send in a crowded cell.
    pub fn priority(self) -> u8 {
        match self {
            MarkKind::Sent => 0,
            MarkKind::Finished => 1,
            MarkKind::Cancelled => 2,
            _ => 3,
        }
    }
}

impl SpanKind {
    /// The glyph that fills the span on the time axis.
    pub fn glyph(self) -> char {
        match self {
            SpanKind::Paced => '·',
            SpanKind::InFlight => '-',
            SpanKind::Waiting => '░',
            SpanKind::Streaming => '=',
        }
    }
}

/// A stretch of time on a lane; `end` is `None` while it lasts.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeSpan {
    /// What.
    pub kind: SpanKind,
    /// From.
    pub start: Instant,
    /// To (planned end for waits, cut short if something else happens first).
    pub end: Option<Instant>,
}

/// A point on a lane.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    /// What.
    pub kind: MarkKind,
    /// When.
    pub at: Instant,
}

/// One turn's run on the time axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Lane {
    /// The run.
    pub id: TurnId,
    /// When it started.
    pub start: Instant,
    /// Its spans, in order.
    pub spans: Vec<TimeSpan>,
    /// Its marks, in order.
    pub marks: Vec<Mark>,
    /// True once the turn has ended.
    pub done: bool,
}

/// How a log entry reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Plain.
    Info,
    /// A wait (pacing, backoff).
    Wait,
    /// An error.
    Error,
    /// A finished reply.
    Ok,
}

/// A line of the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// When.
    pub at: Instant,
    /// The run.
    pub id: TurnId,
    /// What happened, with its delay and cause.
    pub text: String,
    /// How it reads.
    pub kind: EntryKind,
}

/// The session's attempts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// Lanes, oldest first.
    pub lanes: VecDeque<Lane>,
    /// The log, oldest first.
    pub entries: VecDeque<Entry>,
}

fn mark_for(status: Option<u16>, cause: WaitCause) -> MarkKind {
    match (status, cause) {
        (Some(429), _) => MarkKind::RateLimited,
        (Some(529), _) | (_, WaitCause::Overloaded) => MarkKind::Overloaded,
        (None, _) => MarkKind::Network,
        _ => MarkKind::ServerError,
    }
}

impl Lane {
    /// The latest moment anything happened on the lane (planned waits count up to `now`).
    pub fn last_activity(&self, now: Instant) -> Instant {
        let marks = self.marks.iter().map(|m| m.at);
        let spans = self
            .spans
            .iter()
            .map(|s| s.end.unwrap_or(now).min(now).max(s.start));
        marks.chain(spans).max().unwrap_or(self.start)
    }

    fn close(&mut self, at: Instant) {
        if let Some(last) = self.spans.last_mut() {
            match last.end {
                None => last.end = Some(at),
                Some(end) if end > at => last.end = Some(at),
                _ => {}
            }
        }
    }

    fn open(&mut self, kind: SpanKind, start: Instant, end: Option<Instant>) {
        self.close(start);
        self.spans.push(TimeSpan { kind, start, end });
    }

    fn mark(&mut self, kind: MarkKind, at: Instant) {
        self.marks.push(Mark { kind, at });
    }
}

impl Timeline {
    /// A run started.
    pub fn begin(&mut self, id: TurnId, now: Instant) {
        if self.lanes.len() >= MAX_LANES {
            self.lanes.pop_front();
        }
        self.lanes.push_back(Lane {
            id,
            start: now,
            spans: Vec::new(),
            marks: Vec::new(),
            done: false,
        });
    }

    fn lane(&mut self, id: TurnId) -> Option<&mut Lane> {
        self.lanes.iter_mut().rev().find(|l| l.id == id)
    }

    fn log(&mut self, id: TurnId, at: Instant, kind: EntryKind, text: String) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry { at, id, text, kind });
    }

    /// Record an event of a run.
    pub fn record(&mut self, id: TurnId, event: &TurnEvent, now: Instant) {
        let Some(lane) = self.lane(id) else {
            return;
        };
        let entry = match event {
            TurnEvent::Pacing {
                delay,
                until,
                bucket,
                source,
            } => {
                lane.open(SpanKind::Paced, now, Some(*until));
                Some((
                    EntryKind::Wait,
                    format!(
                        "paced {} ({}, {})",
                        human_duration(*delay),
                        bucket.label(),
                        source.label()
                    ),
                ))
            }
            TurnEvent::Sending {
                attempt,
                max_attempts,
            } => {
                lane.open(SpanKind::InFlight, now, None);
                lane.mark(MarkKind::Sent, now);
                Some((EntryKind::Info, format!("sent {attempt}/{max_attempts}")))
            }
            TurnEvent::RetryScheduled {
                attempt,
                max_attempts,
                delay,
                until,
                cause,
                status,
                source,
                ..
            } => {
                lane.mark(mark_for(*status, *cause), now);
                lane.open(SpanKind::Waiting, now, Some(*until));
                let what = match status {
                    Some(s) => format!("{s} {}", cause.label()),
                    None => format!("{} error", cause.label()),
                };
                Some((
                    EntryKind::Wait,
                    format!(
                        "{what} → retry {attempt}/{max_attempts} in {} ({})",
                        human_duration(*delay),
                        source.label()
                    ),
                ))
            }
            TurnEvent::Started { .. } => {
                lane.open(SpanKind::Streaming, now, None);
                Some((EntryKind::Info, "stream started".to_string()))
            }
            TurnEvent::Finished { usage, .. } => {
                lane.close(now);
                lane.mark(MarkKind::Finished, now);
                lane.done = true;
                Some((
                    EntryKind::Ok,
                    format!("done, {} tok out", usage.output_tokens),
                ))
            }
            TurnEvent::Interrupted { error, .. } => {
                lane.close(now);
                lane.mark(MarkKind::Interrupted, now);
                lane.done = true;
                Some((EntryKind::Error, format!("interrupted: {error}")))
            }
            TurnEvent::Failed(f) => {
                lane.close(now);
                let status = f.api.as_ref().and_then(|a| a.status);
                let mark = match status {
                    Some(429) => MarkKind::RateLimited,
                    Some(529) => MarkKind::Overloaded,
                    _ => MarkKind::Failed,
                };
                lane.mark(mark, now);
                lane.done = true;
                let kind = format!("{:?}", f.kind);
                Some((EntryKind::Error, format!("failed: {}", split_camel(&kind))))
            }
            TurnEvent::Quota(_)
            | TurnEvent::TextDelta { .. }
            | TurnEvent::ThinkingDelta { .. }
            | TurnEvent::Usage(_) => None,
        };
        if let Some((kind, text)) = entry {
            self.log(id, now, kind, text);
        }
    }

    /// The person cancelled a run.
    pub fn cancelled(&mut self, id: TurnId, now: Instant) {
        if let Some(lane) = self.lane(id) {
            lane.close(now);
            lane.mark(MarkKind::Cancelled, now);
            lane.done = true;
            self.log(id, now, EntryKind::Info, "cancelled".to_string());
        }
    }
}

/// `RetriesExhausted` → `retries exhausted`.
fn split_camel(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Relative time since `origin`: `+12.3s`, `+2m05s`.
pub fn relative(at: Instant, origin: Instant) -> String {
    format!("+{}", human_duration(at.saturating_duration_since(origin)))
}

/// The glyph for a lane in the cell covering `[from, to)`, with whether it is a mark.
pub fn cell(lane: &Lane, from: Instant, to: Instant, now: Instant) -> Option<(char, CellKind)> {
    let mark = lane
        .marks
        .iter()
        .filter(|m| m.at >= from && m.at < to)
        .max_by_key(|m| m.kind.priority());
    if let Some(m) = mark {
        return Some((m.kind.glyph(), CellKind::Mark(m.kind)));
    }
    let mid = from + (to.saturating_duration_since(from) / 2);
    lane.spans
        .iter()
        .rev()
        .find(|s| {
            // A planned wait is drawn only up to now: the future has not happened yet.
            let end = s.end.unwrap_or(now).min(now);
            s.start <= mid && mid < end
        })
        .map(|s| (s.kind.glyph(), CellKind::Span(s.kind)))
}

/// What a drawn cell stands for (for its style).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// A mark.
    Mark(MarkKind),
    /// A span.
    Span(SpanKind),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::DelaySource;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_429_then_success_reads_on_the_lane_and_in_the_log() {
        let t0 = Instant::now();
        let mut tl = Timeline::default();
        let id = TurnId(1);
        tl.begin(id, t0);
        tl.record(
            id,
            &TurnEvent::Sending {
                attempt: 1,
                max_attempts: 9,
            },
            t0,
        );
        let t1 = t0 + Duration::from_millis(300);
        tl.record(
            id,
            &TurnEvent::RetryScheduled {
                attempt: 2,
                max_attempts: 9,
                delay: Duration::from_millis(4200),
                until: t1 + Duration::from_millis(4200),
                cause: WaitCause::RateLimit,
                status: Some(429),
                error_type: Some("rate_limit_error".into()),
                source: DelaySource::RetryAfter,
                message: String::new(),
                request_id: None,
            },
            t1,
        );
        let texts: Vec<&str> = tl.entries.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "sent 1/9",
                "429 rate limit → retry 2/9 in 4.2s (retry-after)"
            ]
        );
        let lane = &tl.lanes[0];
        let now = t1 + Duration::from_secs(1);
        let c = cell(lane, t1, t1 + Duration::from_millis(100), now);
        assert_eq!(c.map(|c| c.0), Some('4'));
        let c = cell(
            lane,
            t1 + Duration::from_millis(500),
            t1 + Duration::from_millis(600),
            now,
        );
        assert_eq!(c.map(|c| c.0), Some('░'));
        assert_eq!(split_camel("RetriesExhausted"), "retries exhausted");
    }
}
