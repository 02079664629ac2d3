//! What the proxy tells its onlookers: one [`ProxyEvent`] stream for every request, carrying
//! the same [`TurnEvent`]s the chat's driver emits (pacing, sending, quota, retries, give-ups)
//! between a `Received` and an `Ended`. The headless log below and the terminal view both
//! read it from a broadcast channel; a slow reader loses events, never slows a request.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::api::Usage;
use crate::clock::human_duration;
use crate::retry::TurnEvent;

/// Who sent a request and what it asks for: the label of its row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLabel {
    /// `POST`, `GET`.
    pub method: String,
    /// The path (and query) as the client sent it.
    pub path: String,
    /// The client's `User-Agent` (clipped), `-` when absent.
    pub client: String,
    /// The fingerprint of the client's API key, `nokey` when it sent none.
    pub key: String,
    /// The model class (messages and count_tokens), if the body named a model.
    pub class: Option<String>,
    /// Whether the client asked for a stream.
    pub stream: bool,
}

/// What happened.
#[derive(Clone, Debug)]
pub enum ProxyEventKind {
    /// A request arrived.
    Received(RequestLabel),
    /// The engine's view of it: `Pacing`, `Sending`, `Quota`, `RetryScheduled`, `Failed`.
    Turn(TurnEvent),
    /// The response's head went to the client.
    Responded {
        /// Its status.
        status: u16,
        /// Attempts made upstream.
        attempts: u32,
        /// Time spent waiting (pacing and retries).
        waited: Duration,
        /// The proxy gave up and passed the last error on.
        gave_up: bool,
    },
    /// The response body ended (or the client went away).
    Ended {
        /// Bytes forwarded to the client.
        bytes: u64,
        /// The reply's usage, if it carried one.
        usage: Option<Usage>,
        /// The reply's stop reason, if seen.
        stop_reason: Option<String>,
        /// Why it ended early: an upstream error mid-stream, or the client disconnecting.
        broken: Option<String>,
    },
}

/// One event of one request.
#[derive(Clone, Debug)]
pub struct ProxyEvent {
    /// The request's number (from 1, in order of arrival).
    pub id: u64,
    /// What happened.
    pub kind: ProxyEventKind,
}

/// The log line of a wait, if `event` is one.
pub fn wait_line(id: u64, event: &TurnEvent) -> Option<String> {
    match event {
        TurnEvent::Pacing {
            delay,
            bucket,
            source,
            ..
        } => Some(format!(
            "proxy #{id} pacing: waits {} for the {} quota ({})",
            human_duration(*delay),
            bucket.label(),
            source.label()
        )),
        TurnEvent::RetryScheduled {
            attempt,
            max_attempts,
            delay,
            cause,
            source,
            message,
            ..
        } => Some(format!(
            "proxy #{id} retry: attempt {attempt}/{max_attempts} in {} ({}, {}) after {message}",
            human_duration(*delay),
            cause.label(),
            source.label()
        )),
        _ => None,
    }
}

/// Prints one line per request (when it ends) and one per wait on stderr, until the channel
/// closes.
pub async fn log_to_stderr(mut rx: broadcast::Receiver<ProxyEvent>) {
    let mut log = RequestLog::default();
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                eprintln!("proxy: (the log fell behind; {n} events not shown)");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Some(line) = log.line(&ev) {
            eprintln!("{}", crate::secret::redact(&line));
        }
    }
}

/// A response head, as the log line shows it.
#[derive(Clone, Copy, Debug)]
struct Head {
    status: u16,
    attempts: u32,
    waited: Duration,
    gave_up: bool,
}

/// Turns events into log lines: remembers each open request's label and response head until
/// its `Ended`.
#[derive(Debug, Default)]
pub struct RequestLog {
    open: HashMap<u64, (RequestLabel, Option<Head>)>,
}

impl RequestLog {
    /// The log line `ev` produces, if any.
    pub fn line(&mut self, ev: &ProxyEvent) -> Option<String> {
        line_for(&mut self.open, ev)
    }
}

fn line_for(
    open: &mut HashMap<u64, (RequestLabel, Option<Head>)>,
    ev: &ProxyEvent,
) -> Option<String> {
    let id = ev.id;
    match &ev.kind {
        ProxyEventKind::Received(label) => {
            open.insert(id, (label.clone(), None));
            None
        }
        ProxyEventKind::Turn(t) => wait_line(id, t).or_else(|| match t {
            TurnEvent::Failed(f) => Some(format!("proxy #{id} gave up: {}", f.message)),
            _ => None,
        }),
        ProxyEventKind::Responded {
            status,
            attempts,
            waited,
            gave_up,
        } => {
            if let Some(entry) = open.get_mut(&id) {
                entry.1 = Some(Head {
                    status: *status,
                    attempts: *attempts,
                    waited: *waited,
                    gave_up: *gave_up,
                });
            }
            None
        }
        ProxyEventKind::Ended {
            bytes,
            usage,
            stop_reason,
            broken,
        } => {
            let (label, head) = open.remove(&id)?;
            Some(request_line(
                id,
                &label,
                head,
                *bytes,
                usage.as_ref(),
                stop_reason.as_deref(),
                broken.as_deref(),
            ))
        }
    }
}

/// One request, summed up.
fn request_line(
    id: u64,
    label: &RequestLabel,
    head: Option<Head>,
    bytes: u64,
    usage: Option<&Usage>,
    stop_reason: Option<&str>,
    broken: Option<&str>,
) -> String {
    let mut line = format!(
        "proxy #{id} {} {} key={} client={:?}",
        label.method, label.path, label.key, label.client
    );
    if let Some(class) = &label.class {
        line.push_str(&format!(" class={class}"));
    }
    if label.stream {
        line.push_str(" stream");
    }
    match head {
        Some(Head {
            status,
            attempts,
            waited,
            gave_up,
        }) => {
            line.push_str(&format!(
                " -> {status} attempts={attempts} waited={}",
                human_duration(waited)
            ));
            if gave_up {
                line.push_str(" GAVE UP");
            }
        }
        None => line.push_str(" -> (no response: the client went away)"),
    }
    line.push_str(&format!(" bytes={bytes}"));
    if let Some(u) = usage {
        line.push_str(&format!(" in={} out={}", u.input_tokens, u.output_tokens));
    }
    if let Some(s) = stop_reason {
        line.push_str(&format!(" stop={s}"));
    }
    if let Some(b) = broken {
        line.push_str(&format!(" broken: {b}"));
    }
    line
}
