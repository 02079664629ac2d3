//! Fault injection: what goes wrong with a request, from the script, a scheduled outage or
//! the random rates, and the error replies that result.

use std::time::{Duration, SystemTime};

use rand::RngExt;
use serde_json::{Value, json};

use super::config::{FaultRates, Outage};
use super::script::{ScriptStep, default_error_type, default_message};

/// An error response to send instead of a reply.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ErrorReply {
    pub status: u16,
    pub error_type: String,
    pub message: String,
    pub retry_after: Option<String>,
    pub retry_after_ms: Option<String>,
    pub should_retry: Option<bool>,
    pub details: Option<Value>,
    pub html_body: bool,
    pub headers: Vec<(String, String)>,
}

impl ErrorReply {
    /// An error with the usual type and message for `status`.
    pub(crate) fn of_status(status: u16) -> ErrorReply {
        let error_type = default_error_type(status).to_string();
        ErrorReply {
            status,
            message: default_message(&error_type).to_string(),
            error_type,
            retry_after: None,
            retry_after_ms: None,
            should_retry: None,
            details: None,
            html_body: false,
            headers: Vec::new(),
        }
    }

    /// An error with this type and message.
    pub(crate) fn new(status: u16, error_type: &str, message: impl Into<String>) -> ErrorReply {
        ErrorReply {
            error_type: error_type.to_string(),
            message: message.into(),
            ..ErrorReply::of_status(status)
        }
    }
}

/// How a 200 reply misbehaves, if it does.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StreamFault {
    None,
    MidStreamError { after: u64, error_type: String },
    Drop { after: u64 },
    EndWithoutStop { after: u64 },
    Stall { after: u64 },
    Pause { after: u64, delay: Duration },
}

impl StreamFault {
    /// The output-token count at which the fault strikes.
    pub(crate) fn after(&self) -> Option<u64> {
        match self {
            StreamFault::None => None,
            StreamFault::MidStreamError { after, .. }
            | StreamFault::Drop { after }
            | StreamFault::EndWithoutStop { after }
            | StreamFault::Stall { after }
            | StreamFault::Pause { after, .. } => Some(*after),
        }
    }
}

/// A stream fault drawn at random, before the reply's length is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RandomStreamFault {
    MidStreamError,
    Drop,
    EndWithoutStop,
    Stall,
}

impl RandomStreamFault {
    /// Strike somewhere in the first half of a reply of `total` tokens ("after some text").
    pub(crate) fn resolve(self, total: u64, rng: &mut impl rand::Rng) -> StreamFault {
        let after = rng.random_range(1..=(total / 2).max(1));
        match self {
            RandomStreamFault::MidStreamError => StreamFault::MidStreamError {
                after,
                error_type: "overloaded_error".into(),
            },
            RandomStreamFault::Drop => StreamFault::Drop { after },
            RandomStreamFault::EndWithoutStop => StreamFault::EndWithoutStop { after },
            RandomStreamFault::Stall => StreamFault::Stall { after },
        }
    }
}

/// What the random rates decided for one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Draw {
    pub error: Option<ErrorReply>,
    pub stream: Option<RandomStreamFault>,
    pub slow_first_byte: Option<Duration>,
}

/// One draw over the rates: error and stream faults are exclusive (one uniform number walks
/// their cumulative probabilities); a slow first byte is drawn on its own.
pub(crate) fn draw(rates: &FaultRates, rng: &mut impl rand::Rng, now: SystemTime) -> Draw {
    let mut out = Draw::default();
    if rates.is_quiet() {
        return out;
    }
    let u: f64 = rng.random();
    let mut acc = 0.0;
    let mut hit = |p: f64| {
        let lo = acc;
        acc += p.max(0.0);
        u >= lo && u < acc
    };
    if hit(rates.overloaded) {
        out.error = Some(with_should_retry(ErrorReply::of_status(529), rates));
    } else if hit(rates.server_error) {
        out.error = Some(with_should_retry(ErrorReply::of_status(500), rates));
    } else if hit(rates.unavailable) {
        let mut e = ErrorReply::new(503, "api_error", "Service Unavailable");
        e.html_body = rates.unavailable_html;
        out.error = Some(with_should_retry(e, rates));
    } else if hit(rates.spend_cap) {
        out.error = Some(spend_cap(now));
    } else if hit(rates.midstream_error) {
        out.stream = Some(RandomStreamFault::MidStreamError);
    } else if hit(rates.drop) {
        out.stream = Some(RandomStreamFault::Drop);
    } else if hit(rates.end_without_stop) {
        out.stream = Some(RandomStreamFault::EndWithoutStop);
    } else if hit(rates.stall) {
        out.stream = Some(RandomStreamFault::Stall);
    }
    if rates.slow_first_byte > 0.0 && rng.random::<f64>() < rates.slow_first_byte {
        out.slow_first_byte = Some(rates.slow_first_byte_delay);
    }
    out
}

fn with_should_retry(mut e: ErrorReply, rates: &FaultRates) -> ErrorReply {
    e.should_retry = rates.should_retry;
    e
}

/// The error of the outage covering `elapsed` (time since server start), if any.
pub(crate) fn outage(outages: &[Outage], elapsed: Duration) -> Option<ErrorReply> {
    outages
        .iter()
        .find(|o| o.covers(elapsed))
        .map(|o| ErrorReply::of_status(o.status))
}

/// The spend-cap 429: `rate_limit_error` with `details.error_code =
/// "enforced_spend_limit_reached"`, no `retry-after`, access back on the 1st of next month.
pub(crate) fn spend_cap(now: SystemTime) -> ErrorReply {
    let mut e = ErrorReply::new(
        429,
        "rate_limit_error",
        format!(
            "You have reached your specified API usage limits. You will regain access on {} at 00:00 UTC.",
            first_of_next_month(now)
        ),
    );
    e.details = Some(json!({"error_code": "enforced_spend_limit_reached"}));
    e
}

/// `YYYY-MM-01` of the month after `now` (UTC).
fn first_of_next_month(now: SystemTime) -> String {
    let stamp = crate::clock::rfc3339_seconds(now);
    let year: i32 = stamp.get(0..4).and_then(|s| s.parse().ok()).unwrap_or(1970);
    let month: u32 = stamp.get(5..7).and_then(|s| s.parse().ok()).unwrap_or(1);
    let (y, m) = if month >= 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    format!("{y:04}-{m:02}-01")
}

/// The page a proxy sends for a 503, instead of the API's JSON.
pub(crate) const HTML_503: &str = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// The error reply of a scripted error step, or `None` for the other steps.
pub(crate) fn scripted_error(step: &ScriptStep, now: SystemTime) -> Option<ErrorReply> {
    match step.clone().normalized() {
        ScriptStep::Error {
            status,
            error_type,
            message,
            retry_after,
            retry_after_ms,
            should_retry,
            details,
            html_body,
            headers,
        } => Some(ErrorReply {
            status,
            error_type,
            message,
            retry_after,
            retry_after_ms,
            should_retry,
            details,
            html_body,
            headers,
        }),
        ScriptStep::SpendCap => Some(spend_cap(now)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn rates_of_one_always_fire_and_quiet_rates_never() {
        let mut rng = StdRng::seed_from_u64(1);
        let now = SystemTime::now();
        let always = FaultRates {
            overloaded: 1.0,
            slow_first_byte: 1.0,
            ..FaultRates::default()
        };
        for _ in 0..50 {
            let d = draw(&always, &mut rng, now);
            assert_eq!(d.error.map(|e| e.status), Some(529));
            assert!(d.slow_first_byte.is_some());
        }
        for _ in 0..50 {
            assert_eq!(draw(&FaultRates::default(), &mut rng, now), Draw::default());
        }
    }

    #[test]
    fn rates_are_roughly_honoured() {
        let mut rng = StdRng::seed_from_u64(7);
        let now = SystemTime::now();
        let rates = FaultRates {
            overloaded: 0.2,
            drop: 0.3,
            ..FaultRates::default()
        };
        let (mut e, mut d) = (0, 0);
        for _ in 0..10_000 {
            let x = draw(&rates, &mut rng, now);
            e += usize::from(x.error.is_some());
            d += usize::from(x.stream == Some(RandomStreamFault::Drop));
        }
        assert!((1_800..2_200).contains(&e), "{e}");
        assert!((2_800..3_200).contains(&d), "{d}");
    }

    #[test]
    fn spend_cap_points_at_next_month() {
        // 2026-12-15 → 2027-01-01.
        let t = SystemTime::UNIX_EPOCH + Duration::from_hours(499_248);
        let e = spend_cap(t);
        assert!(
            e.message.contains("2027-01-01 at 00:00 UTC"),
            "{}",
            e.message
        );
        assert_eq!(
            e.details,
            Some(json!({"error_code": "enforced_spend_limit_reached"}))
        );
        assert_eq!(e.retry_after, None);
    }
}
