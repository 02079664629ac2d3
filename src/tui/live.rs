//! The state of a turn in flight, and the words the status bar and transcript use for it.
//!
//! A countdown is `until - now`, computed when drawn (`now` is a parameter), and saturates at
//! zero: it is never negative, whatever the clock does.

use std::time::Duration;

use tokio::time::Instant;

use super::msg::TurnId;
use crate::clock::human_duration;
use crate::quota::Bucket;
use crate::retry::{DelaySource, WaitCause};

/// Where a turn in flight is.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// Started; the driver has not reported yet.
    Queued,
    /// Waiting for quota before sending.
    Pacing {
        /// Until when.
        until: Instant,
        /// Which bucket is short.
        bucket: Bucket,
        /// The local pacer or the shared limiter.
        source: DelaySource,
    },
    /// An attempt is on the wire.
    Sending {
        /// 1 for the first try.
        attempt: u32,
        /// `max_retries + 1`.
        max_attempts: u32,
        /// When it was sent.
        since: Instant,
        /// How long the server has to start answering (`--header-timeout`).
        header_timeout: Duration,
    },
    /// Waiting before a retry.
    Waiting {
        /// The attempt that will follow.
        attempt: u32,
        /// `max_retries + 1`.
        max_attempts: u32,
        /// Until when.
        until: Instant,
        /// Why.
        cause: WaitCause,
        /// The status that caused it (`None`: network).
        status: Option<u16>,
        /// Where the length came from.
        source: DelaySource,
    },
    /// Text is arriving.
    Streaming,
}

/// How a status reads: plain, or something the person is waiting on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// Streaming.
    Active,
    /// Sending.
    Busy,
    /// Pacing.
    Paced,
    /// Waiting to retry.
    Waiting,
}

/// A turn in flight.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveTurn {
    /// The run.
    pub id: TurnId,
    /// Its turn in the conversation.
    pub turn_index: usize,
    /// Where it is.
    pub phase: Phase,
    /// When it started.
    pub started_at: Instant,
    /// Characters of reply text so far (for the token estimate while streaming).
    pub streamed_chars: u64,
    /// Output tokens the server reported (cumulative).
    pub output_tokens: u64,
}

impl LiveTurn {
    /// A turn just started.
    pub fn new(id: TurnId, turn_index: usize, now: Instant) -> LiveTurn {
        LiveTurn {
            id,
            turn_index,
            phase: Phase::Queued,
            started_at: now,
            streamed_chars: 0,
            output_tokens: 0,
        }
    }

    /// Output tokens so far: the server's count, or about four characters per token while
    /// the server has not said (it reports the count near the end of the stream).
    pub fn tokens(&self) -> u64 {
        self.output_tokens.max(self.streamed_chars.div_ceil(4))
    }

    /// How urgent its phase reads.
    pub fn urgency(&self) -> Urgency {
        match self.phase {
            Phase::Waiting { .. } => Urgency::Waiting,
            Phase::Pacing { .. } => Urgency::Paced,
            Phase::Queued | Phase::Sending { .. } => Urgency::Busy,
            Phase::Streaming => Urgency::Active,
        }
    }

    /// One line for a person: `pacing 2.1s (input tokens)`, `retry 2/8 in 4.2s — 429 rate
    /// limit (retry-after)`, `streaming 312 tok`.
    pub fn describe(&self, now: Instant) -> String {
        match &self.phase {
            Phase::Queued => "sending".to_string(),
            Phase::Pacing {
                until,
                bucket,
                source,
            } => {
                let via = match source {
                    DelaySource::SharedLimiter => ", shared limiter",
                    _ => "",
                };
                format!(
                    "pacing {} ({}{via})",
                    countdown_text(*until, now),
                    bucket.label()
                )
            }
            Phase::Sending {
                attempt,
                max_attempts,
                since,
                header_timeout,
            } => {
                let sending = if *attempt <= 1 {
                    "sending".to_string()
                } else {
                    format!("sending {attempt}/{max_attempts}")
                };
                // A server that does not answer is announced once the wait is noticeable, with
                // the limit it runs against, so a hung request never looks like a frozen screen.
                let silent = now.saturating_duration_since(*since);
                if silent >= SLOW_ANSWER {
                    format!(
                        "{sending} — no answer yet after {} (gives up at {}, --header-timeout)",
                        human_duration(Duration::from_secs(silent.as_secs())),
                        human_duration(*header_timeout)
                    )
                } else {
                    sending
                }
            }
            Phase::Waiting {
                attempt,
                max_attempts,
                until,
                cause,
                status,
                source,
            } => {
                let what = match status {
                    Some(s) => format!("{s} {}", cause.label()),
                    None => cause.label().to_string(),
                };
                format!(
                    "retry {attempt}/{max_attempts} in {} — {what} ({})",
                    countdown_text(*until, now),
                    source.label()
                )
            }
            Phase::Streaming => format!("streaming {} tok", self.tokens()),
        }
    }

    /// A shorter form for narrow status bars: `retry 2/8 in 4.2s (429)`, `pacing 2.1s`.
    pub fn describe_short(&self, now: Instant) -> String {
        match &self.phase {
            Phase::Pacing { until, .. } => format!("pacing {}", countdown_text(*until, now)),
            Phase::Waiting {
                attempt,
                max_attempts,
                until,
                status,
                ..
            } => {
                let what = status.map_or_else(|| "net".to_string(), |s| s.to_string());
                format!(
                    "retry {attempt}/{max_attempts} in {} ({what})",
                    countdown_text(*until, now)
                )
            }
            _ => self.describe(now),
        }
    }
}

/// How long an attempt may go unanswered before the status bar says so.
pub const SLOW_ANSWER: Duration = Duration::from_secs(5);

/// Time left until `until`, never negative.
pub fn countdown(until: Instant, now: Instant) -> Duration {
    until.saturating_duration_since(now)
}

/// `4.2s`, `2m05s`; `0.0s` once passed.
pub fn countdown_text(until: Instant, now: Instant) -> String {
    human_duration(countdown(until, now))
}

/// A spinner frame for `now` (braille: one cell wide in every terminal, not an emoji).
pub fn spinner(now: Instant, since: Instant) -> char {
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let ms = now.saturating_duration_since(since).as_millis();
    FRAMES[(ms / 100 % 10) as usize]
}

/// "12s ago", "3m ago", "2h ago".
pub fn age_text(age: Duration) -> String {
    let s = age.as_secs();
    if s < 60 {
        format!("{s}s ago")
    } else if s < 3600 {
        format!("{}m ago", s / 60)
    } else {
        format!("{}h ago", s / 3600)
    }
}

/// When [`age_text`] for something read at `read_at` next changes.
pub fn age_text_changes_at(read_at: Instant, now: Instant) -> Instant {
    let s = now.saturating_duration_since(read_at).as_secs();
    let step = if s < 60 {
        1
    } else if s < 3600 {
        60
    } else {
        3600
    };
    read_at + Duration::from_secs((s / step + 1) * step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_silent_server_is_announced_with_the_header_timeout() {
        let now = Instant::now();
        let t = LiveTurn {
            phase: Phase::Sending {
                attempt: 1,
                max_attempts: 9,
                since: now,
                header_timeout: Duration::from_mins(1),
            },
            ..LiveTurn::new(TurnId(1), 0, now)
        };
        assert_eq!(t.describe(now + Duration::from_secs(4)), "sending");
        assert_eq!(
            t.describe(now + Duration::from_millis(7300)),
            "sending — no answer yet after 7.0s (gives up at 1m00s, --header-timeout)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn countdowns_never_go_negative() {
        let now = Instant::now();
        let until = now + Duration::from_millis(4200);
        assert_eq!(countdown_text(until, now), "4.2s");
        let later = now + Duration::from_secs(10);
        assert_eq!(countdown(until, later), Duration::ZERO);
        assert_eq!(countdown_text(until, later), "0.0s");
        let t = LiveTurn {
            phase: Phase::Waiting {
                attempt: 2,
                max_attempts: 8,
                until,
                cause: WaitCause::RateLimit,
                status: Some(429),
                source: DelaySource::RetryAfter,
            },
            ..LiveTurn::new(TurnId(1), 0, now)
        };
        assert_eq!(
            t.describe(now),
            "retry 2/8 in 4.2s — 429 rate limit (retry-after)"
        );
        assert!(t.describe(later).contains("in 0.0s"));
    }

    #[tokio::test(start_paused = true)]
    async fn ages_read_well_and_say_when_they_change() {
        let t0 = Instant::now();
        assert_eq!(age_text(Duration::from_secs(12)), "12s ago");
        assert_eq!(age_text(Duration::from_secs(125)), "2m ago");
        let now = t0 + Duration::from_millis(12_300);
        assert_eq!(age_text_changes_at(t0, now), t0 + Duration::from_secs(13));
        let now = t0 + Duration::from_secs(125);
        assert_eq!(age_text_changes_at(t0, now), t0 + Duration::from_mins(3));
    }
}
