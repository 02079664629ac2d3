//! Decoding a Messages stream: bytes → SSE frames (eventsource-stream) → [`StreamEvent`]s.
//!
//! Dispatch is on the SSE event name, as the official SDKs do (docs/protocol.md, *Framing and dispatch*), falling back
//! to the JSON `type` when a frame has no name. Unknown event, block and delta types are
//! skipped; a known event whose JSON does not parse ends the stream with a decode error.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use eventsource_stream::Eventsource;
use futures::{FutureExt, Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;

use super::error::StreamFailure;
use super::types::{
    Delta, ErrorEnvelope, MessageDeltaBody, MessageResponse, ResponseBlock, StreamEvent, UsageDelta,
};

/// Decode one SSE frame. `Ok(None)` means "not ours, skip it" (an unknown event type).
pub fn decode_event(name: &str, data: &str) -> Result<Option<StreamEvent>, String> {
    let name = if name.is_empty() || name == "message" {
        // No `event:` line: fall back to the JSON `type`.
        match serde_json::from_str::<Value>(data) {
            Ok(v) => v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            Err(e) => return Err(format!("undecodable SSE data: {e}")),
        }
    } else {
        name.to_string()
    };
    let bad = |e: serde_json::Error| format!("malformed `{name}` event: {e}");
    let event = match name.as_str() {
        "message_start" => {
            #[derive(Deserialize)]
            struct W {
                message: MessageResponse,
            }
            StreamEvent::MessageStart(serde_json::from_str::<W>(data).map_err(bad)?.message)
        }
        "content_block_start" => {
            #[derive(Deserialize)]
            struct W {
                index: usize,
                content_block: ResponseBlock,
            }
            let w: W = serde_json::from_str(data).map_err(bad)?;
            StreamEvent::ContentBlockStart {
                index: w.index,
                block: w.content_block,
            }
        }
        "content_block_delta" => {
            #[derive(Deserialize)]
            struct W {
                index: usize,
                delta: Delta,
            }
            if let Some(event) = text_delta_exact(data).or_else(|| text_delta_fast(data)) {
                return Ok(Some(event));
            }
            let w: W = serde_json::from_str(data).map_err(bad)?;
            StreamEvent::ContentBlockDelta {
                index: w.index,
                delta: w.delta,
            }
        }
        "content_block_stop" => {
            #[derive(Deserialize)]
            struct W {
                index: usize,
            }
            StreamEvent::ContentBlockStop {
                index: serde_json::from_str::<W>(data).map_err(bad)?.index,
            }
        }
        "message_delta" => {
            #[derive(Deserialize)]
            struct W {
                #[serde(default)]
                delta: MessageDeltaBody,
                #[serde(default)]
                usage: UsageDelta,
            }
            let w: W = serde_json::from_str(data).map_err(bad)?;
            StreamEvent::MessageDelta {
                delta: w.delta,
                usage: w.usage,
            }
        }
        "message_stop" => StreamEvent::MessageStop,
        "ping" => StreamEvent::Ping,
        "error" => match serde_json::from_str::<ErrorEnvelope>(data) {
            Ok(env) => StreamEvent::Error(env),
            // An error frame we cannot read is still an error, not something to skip.
            Err(_) => StreamEvent::Error(ErrorEnvelope {
                error: super::types::ErrorObject {
                    kind: "api_error".into(),
                    message: format!("unreadable error event: {}", crate::util::clip(data, 200)),
                    details: None,
                },
                request_id: None,
            }),
        },
        _ => return Ok(None),
    };
    Ok(Some(event))
}

/// The delta nearly every event of a reply carries, a text or thinking delta, read straight
/// into its fields. [`Delta`] is internally tagged, so serde reads each delta into an
/// intermediate tree first and then again from it; on a long reply that was a tenth of the
/// decoding time. Anything this does not read as exactly such a delta (another type, a
/// missing or mistyped field) returns `None` and goes the general way, so the outcome,
/// errors included, is the same.
fn text_delta_fast(data: &str) -> Option<StreamEvent> {
    #[derive(Deserialize)]
    struct W {
        index: usize,
        delta: D,
    }
    #[derive(Deserialize)]
    struct D {
        #[serde(rename = "type")]
        kind: Kind,
        text: Option<String>,
        thinking: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        TextDelta,
        ThinkingDelta,
    }
    let w: W = serde_json::from_str(data).ok()?;
    let delta = match (w.delta.kind, w.delta.text, w.delta.thinking) {
        (Kind::TextDelta, Some(text), _) => Delta::TextDelta { text },
        (Kind::ThinkingDelta, _, Some(thinking)) => Delta::ThinkingDelta { thinking },
        _ => return None,
    };
    Some(StreamEvent::ContentBlockDelta {
        index: w.index,
        delta,
    })
}

/// The delta in exactly the shape the API and the mock send it, in this key order:
/// `{"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"…"}}` (or
/// `thinking_delta` / `"thinking"`), with or without JSON whitespace between the tokens. Only
/// the string is given to serde_json; every other token is compared byte for byte, so the
/// result is what serde makes of the whole, and anything else (another order, more keys, a
/// bad string) returns `None` and goes the general way. serde reading the whole object was a
/// fifth of headless mode's time.
fn text_delta_exact(data: &str) -> Option<StreamEvent> {
    let mut c = Cursor(data);
    for t in [
        "{",
        r#""type""#,
        ":",
        r#""content_block_delta""#,
        ",",
        r#""index""#,
        ":",
    ] {
        c.token(t)?;
    }
    let index = c.index()?;
    for t in [",", r#""delta""#, ":", "{", r#""type""#, ":"] {
        c.token(t)?;
    }
    let thinking = if c.token(r#""text_delta""#).is_some() {
        c.token(",")?;
        c.token(r#""text""#)?;
        false
    } else {
        c.token(r#""thinking_delta""#)?;
        c.token(",")?;
        c.token(r#""thinking""#)?;
        true
    };
    c.token(":")?;
    let text = c.string()?;
    c.token("}")?;
    c.token("}")?;
    if !skip_space(c.0).is_empty() {
        return None;
    }
    let delta = if thinking {
        Delta::ThinkingDelta { thinking: text }
    } else {
        Delta::TextDelta { text }
    };
    Some(StreamEvent::ContentBlockDelta { index, delta })
}

/// `s` without the JSON whitespace it starts with.
fn skip_space(s: &str) -> &str {
    let n = s
        .bytes()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count();
    &s[n..]
}

/// What is left of the JSON text [`text_delta_exact`] reads.
struct Cursor<'a>(&'a str);

impl Cursor<'_> {
    /// Skip whitespace, then `t`.
    fn token(&mut self, t: &str) -> Option<()> {
        self.0 = skip_space(self.0).strip_prefix(t)?;
        Some(())
    }

    /// A non-negative integer as serde reads a `usize`: no sign, no leading zero, and few
    /// enough digits to fit.
    fn index(&mut self) -> Option<usize> {
        let rest = skip_space(self.0);
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 || (digits > 1 && rest.starts_with('0')) {
            return None;
        }
        let n = rest[..digits].parse().ok()?;
        self.0 = &rest[digits..];
        Some(n)
    }

    /// A JSON string. One with no escape is its bytes (JSON allows any character there but
    /// the controls below U+0020, which serde refuses); one with escapes is read by serde.
    fn string(&mut self) -> Option<String> {
        let rest = skip_space(self.0);
        let (end, escaped) = json_string_end(rest)?;
        let quoted = &rest[..end];
        let text = if escaped {
            serde_json::from_str(quoted).ok()?
        } else {
            let inner = &quoted[1..end - 1];
            if inner.bytes().any(|b| b < 0x20) {
                return None;
            }
            inner.to_owned()
        };
        self.0 = &rest[end..];
        Some(text)
    }
}

/// Where the JSON string at the start of `s` ends (just past its closing quote), skipping
/// escaped characters, and whether it has any escape.
fn json_string_end(s: &str) -> Option<(usize, bool)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    let mut escaped = false;
    loop {
        i += memchr::memchr2(b'"', b'\\', &b[i..])?;
        if b[i] == b'"' {
            return Some((i + 1, escaped));
        }
        escaped = true;
        // A backslash escapes the next byte (a quote or another backslash).
        i += 2;
        if i > b.len() {
            return None;
        }
    }
}

/// Largest single SSE event accepted (its lines together, terminators included). A real
/// event is a few hundred bytes; anything near this is a hostile or broken server.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// Bytes of reply text (text and thinking together) allowed per output token of
/// `max_tokens`. A token is about four bytes of English; 32 leaves room for any script and
/// for long runs of punctuation, while still bounding an endless stream.
pub const REPLY_BYTES_PER_TOKEN: usize = 32;

/// The smallest reply cap, whatever `max_tokens` says.
pub const MIN_REPLY_BYTES: usize = 64 << 10;

/// Bounds on one decoded stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// Largest single event, in bytes ([`MAX_EVENT_BYTES`] by default).
    pub max_event_bytes: usize,
    /// Largest reply text (text plus thinking), in bytes; `None` for no cap.
    pub max_reply_bytes: Option<usize>,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_event_bytes: MAX_EVENT_BYTES,
            max_reply_bytes: None,
        }
    }
}

impl StreamLimits {
    /// The limits for a request asking for at most `max_tokens` output tokens.
    pub fn for_max_tokens(max_tokens: u32) -> Self {
        StreamLimits {
            max_event_bytes: MAX_EVENT_BYTES,
            max_reply_bytes: Some(reply_cap(max_tokens)),
        }
    }
}

/// The reply cap for `max_tokens`: [`REPLY_BYTES_PER_TOKEN`] per token, at least
/// [`MIN_REPLY_BYTES`].
pub fn reply_cap(max_tokens: u32) -> usize {
    (max_tokens as usize)
        .saturating_mul(REPLY_BYTES_PER_TOKEN)
        .max(MIN_REPLY_BYTES)
}

/// Why the line splitter stopped. Rides inside eventsource-stream's `Transport` error.
#[derive(Debug)]
enum LineError<E> {
    /// The body stream failed.
    Transport(E),
    /// One event grew past the cap.
    TooLarge(usize),
    /// A line was not UTF-8.
    Utf8,
}

impl<E: std::fmt::Display> std::fmt::Display for LineError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::Transport(e) => write!(f, "{e}"),
            LineError::TooLarge(cap) => write!(
                f,
                "an event is larger than {} MiB; the server is misbehaving",
                cap >> 20
            ),
            LineError::Utf8 => f.write_str("the stream is not valid UTF-8"),
        }
    }
}

/// Splits a body into complete lines and hands eventsource-stream one line at a time.
///
/// eventsource-stream keeps everything it was given in one `String`, re-parses it from the
/// start on every chunk while a line is incomplete, and copies the rest of the buffer after
/// each line (`split_off`): quadratic in the chunk size and in the line length. Given one
/// complete line at a time, its buffer never holds more than that line, so its cost per line
/// is linear. This splitter scans each byte once (`scanned` remembers where it stopped), caps
/// one event's size, and checks UTF-8 per line (a bad byte would otherwise park in
/// eventsource-stream's UTF-8 buffer and grow it for the rest of the stream).
struct Lines<S> {
    inner: S,
    buf: BytesMut,
    /// Bytes of `buf` already searched for a line end.
    scanned: usize,
    /// Bytes of the current event's complete lines so far.
    event_bytes: usize,
    max_event: usize,
    /// The comment line that primes eventsource-stream has been sent.
    primed: bool,
    /// The first line has been passed on (a byte-order mark is stripped from it, after the
    /// size check, so that chunking cannot change the outcome).
    started: bool,
    done: bool,
    failed: bool,
}

impl<S> Lines<S> {
    fn new(inner: S, max_event: usize) -> Self {
        Lines {
            inner,
            buf: BytesMut::new(),
            scanned: 0,
            event_bytes: 0,
            max_event,
            primed: false,
            started: false,
            done: false,
            failed: false,
        }
    }

    /// Append to `batch` the complete lines that follow it in `buf`, up to [`BATCH_LINES`]
    /// lines and [`BATCH_BYTES`] bytes in all, so that eventsource-stream gets a whole
    /// event at once: a line at a time, each of its stages (UTF-8, buffering, parsing)
    /// allocated and polled three times per event. The bound keeps its cost linear: it
    /// copies what follows each line it parses, at most the rest of one batch.
    ///
    /// A batch stops before a line that is not ended by LF or CRLF (a lone CR is rewritten
    /// alone, by `take_line`), and before one that would break the event cap or is not
    /// UTF-8: that line comes next, alone, and fails as it would have, after the lines
    /// before it have been delivered.
    fn extend_batch(&mut self, batch: &mut BytesMut) {
        let mut lines = 1;
        while lines < BATCH_LINES && batch.len() < BATCH_BYTES {
            // Only a line that fits in what is left of the batch: the search never goes
            // further, however long the line after it is.
            let window = (BATCH_BYTES - batch.len()).min(self.buf.len());
            let Some(pos) = memchr::memchr2(b'\n', b'\r', &self.buf[..window]) else {
                return;
            };
            let end = match self.buf[pos] {
                b'\n' => pos + 1,
                _ if pos + 1 < window && self.buf[pos + 1] == b'\n' => pos + 2,
                _ => return,
            };
            let line = &self.buf[..end];
            let blank = end <= 2 && line.iter().all(|&b| b == b'\r' || b == b'\n');
            let event_bytes = if blank { 0 } else { self.event_bytes + end };
            if event_bytes > self.max_event || std::str::from_utf8(line).is_err() {
                return;
            }
            self.event_bytes = event_bytes;
            batch.unsplit(self.buf.split_to(end));
            lines += 1;
        }
    }

    /// The next complete line in `buf`, with its terminator. A lone CR is rewritten to LF:
    /// eventsource-stream's parser cannot tell a CR at the end of its input from the start
    /// of a CRLF and would wait for the next line.
    fn take_line(&mut self) -> Option<BytesMut> {
        let rest = &self.buf[self.scanned..];
        let Some(pos) = memchr::memchr2(b'\n', b'\r', rest) else {
            self.scanned = self.buf.len();
            return None;
        };
        let at = self.scanned + pos;
        let line = if self.buf[at] == b'\n' {
            self.buf.split_to(at + 1)
        } else if at + 1 < self.buf.len() {
            if self.buf[at + 1] == b'\n' {
                self.buf.split_to(at + 2)
            } else {
                lf_for_cr(&self.buf.split_to(at + 1))
            }
        } else if self.done {
            lf_for_cr(&self.buf.split_to(at + 1))
        } else {
            // A CR at the end: wait to see whether an LF follows.
            self.scanned = at;
            return None;
        };
        self.scanned = 0;
        Some(line)
    }
}

/// Most lines handed to eventsource-stream at once (an event is usually three: `event:`,
/// `data:` and the blank line that ends it).
const BATCH_LINES: usize = 4;

/// A batch stops growing once it holds this many bytes.
const BATCH_BYTES: usize = 4 << 10;

/// U+FEFF in UTF-8: a stream may start with it (the SSE spec strips one).
const BOM: &[u8] = "\u{feff}".as_bytes();

fn lf_for_cr(line: &[u8]) -> BytesMut {
    let mut v = BytesMut::from(line);
    if let Some(last) = v.last_mut() {
        *last = b'\n';
    }
    v
}

impl<S, E> Stream for Lines<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, LineError<E>>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        if !this.primed {
            // eventsource-stream strips a BOM from the first text it gets with
            // `&string[1..]`, which panics (a BOM is three bytes). A comment line first means
            // it never looks; `take_line` strips the BOM instead.
            this.primed = true;
            return Poll::Ready(Some(Ok(Bytes::from_static(b":\n"))));
        }
        loop {
            // The cap is checked before UTF-8, on complete and partial lines alike, so that
            // the same bytes fail the same way however they are chunked.
            if let Some(line) = this.take_line() {
                let blank = line.len() <= 2 && line.iter().all(|&b| b == b'\r' || b == b'\n');
                if blank {
                    this.event_bytes = 0;
                } else {
                    this.event_bytes += line.len();
                }
                if this.event_bytes > this.max_event {
                    this.failed = true;
                    return Poll::Ready(Some(Err(LineError::TooLarge(this.max_event))));
                }
                if std::str::from_utf8(&line).is_err() {
                    this.failed = true;
                    return Poll::Ready(Some(Err(LineError::Utf8)));
                }
                let mut line = line;
                if !this.started {
                    this.started = true;
                    if line.starts_with(BOM) {
                        let _ = line.split_to(BOM.len());
                    }
                }
                this.extend_batch(&mut line);
                return Poll::Ready(Some(Ok(line.freeze())));
            }
            // `buf` now holds only the current, unfinished line. A lone CR waiting to see
            // whether an LF follows is a blank line either way: it ends the event, it is not
            // a byte of it.
            let partial = if this.buf[..] == b"\r"[..] {
                0
            } else {
                this.buf.len()
            };
            if this.event_bytes + partial > this.max_event {
                this.failed = true;
                return Poll::Ready(Some(Err(LineError::TooLarge(this.max_event))));
            }
            if this.done {
                // An unterminated last line is never dispatched (as the SSE spec says).
                return Poll::Ready(None);
            }
            match this.inner.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.buf.extend_from_slice(&chunk),
                Poll::Ready(Some(Err(e))) => {
                    this.failed = true;
                    return Poll::Ready(Some(Err(LineError::Transport(e))));
                }
                Poll::Ready(None) => this.done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Turn a body of bytes into decoded events, with the default limits (no reply cap). See
/// [`decode_stream_with`].
pub fn decode_stream<S, E>(
    bytes: S,
    idle_timeout: Duration,
) -> impl Stream<Item = Result<StreamEvent, StreamFailure>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    decode_stream_with(bytes, idle_timeout, StreamLimits::default())
}

/// State of [`decode_stream_with`]'s unfold.
struct Decoder<F> {
    frames: F,
    /// Reply bytes (text and thinking) passed on so far.
    reply_bytes: usize,
    /// A failure to report after the truncated delta that hit the reply cap.
    pending: Option<StreamFailure>,
    /// Events passed on since the last yield to the scheduler.
    since_yield: usize,
    done: bool,
}

/// Events decoded between two yields to the scheduler (see [`decode_stream_with`]).
const YIELD_EVERY: usize = 32;

/// Turn a body of bytes into decoded events. Transport errors end the stream with
/// [`StreamFailure::Disconnected`]; a stall longer than `idle_timeout` between frames ends it
/// with [`StreamFailure::IdleTimeout`]; an event larger than `limits.max_event_bytes` with
/// [`StreamFailure::Decode`]. Reply text past `limits.max_reply_bytes` is cut at the cap
/// (on a character boundary) and the stream ends with [`StreamFailure::TooLong`].
///
/// The cost per event does not depend on how the bytes are chunked (see `Lines`).
pub fn decode_stream_with<S, E>(
    bytes: S,
    idle_timeout: Duration,
    limits: StreamLimits,
) -> impl Stream<Item = Result<StreamEvent, StreamFailure>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let frames = Lines::new(Box::pin(bytes), limits.max_event_bytes).eventsource();
    let state = Decoder {
        frames: Box::pin(frames),
        reply_bytes: 0,
        pending: None,
        since_yield: 0,
        done: false,
    };
    futures::stream::unfold(state, move |mut st| async move {
        // Hand control back now and then: with the body already in memory every frame is
        // ready, and a consumer that queues what it is given (the turn driver's generator)
        // would otherwise queue the whole reply before anyone printed a byte of it.
        st.since_yield += 1;
        if st.since_yield >= YIELD_EVERY {
            st.since_yield = 0;
            tokio::task::yield_now().await;
        }
        if let Some(f) = st.pending.take() {
            st.done = true;
            return Some((Err(f), st));
        }
        if st.done {
            return None;
        }
        loop {
            // Arm the idle timer only when no frame is ready: a timer per event cost more
            // than decoding the event.
            let next = if let Some(next) = st.frames.next().now_or_never() {
                next
            } else {
                let Ok(next) = tokio::time::timeout(idle_timeout, st.frames.next()).await else {
                    st.done = true;
                    return Some((Err(StreamFailure::IdleTimeout(idle_timeout)), st));
                };
                next
            };
            match next {
                None => return None,
                Some(Ok(frame)) => match decode_event(&frame.event, &frame.data) {
                    Ok(Some(mut ev)) => {
                        if let Some(cap) = limits.max_reply_bytes
                            && let Some(text) = reply_text_mut(&mut ev)
                        {
                            let room = cap.saturating_sub(st.reply_bytes);
                            if text.len() > room {
                                let cut = floor_char_boundary(text, room);
                                text.truncate(cut);
                                st.reply_bytes = cap;
                                st.pending = Some(StreamFailure::TooLong(cap));
                                if text.is_empty() {
                                    st.pending = None;
                                    st.done = true;
                                    return Some((Err(StreamFailure::TooLong(cap)), st));
                                }
                            } else {
                                st.reply_bytes += text.len();
                            }
                        }
                        return Some((Ok(ev), st));
                    }
                    Ok(None) => {
                        tracing::debug!(event = %frame.event, "skipping unknown SSE event");
                    }
                    Err(msg) => {
                        st.done = true;
                        return Some((Err(StreamFailure::Decode(msg)), st));
                    }
                },
                Some(Err(e)) => {
                    let failure = match e {
                        eventsource_stream::EventStreamError::Transport(LineError::Transport(
                            t,
                        )) => StreamFailure::Disconnected(t.to_string()),
                        eventsource_stream::EventStreamError::Transport(other) => {
                            StreamFailure::Decode(other.to_string())
                        }
                        other => StreamFailure::Decode(other.to_string()),
                    };
                    st.done = true;
                    return Some((Err(failure), st));
                }
            }
        }
    })
}

/// The reply text an event carries, if any (text and thinking deltas).
fn reply_text_mut(ev: &mut StreamEvent) -> Option<&mut String> {
    match ev {
        StreamEvent::ContentBlockDelta {
            delta: Delta::TextDelta { text },
            ..
        } => Some(text),
        StreamEvent::ContentBlockDelta {
            delta: Delta::ThinkingDelta { thinking },
            ..
        } => Some(thinking),
        _ => None,
    }
}

/// The largest char boundary of `s` at or below `at`.
fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::Usage;

    const STREAM: &str = "event: message_start\r\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\r\n\
\r\n\
event: ping\r\n\
data: {\"type\": \"ping\"}\r\n\
\r\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\
\n\
event: some_future_event\n\
data: {\"type\":\"some_future_event\",\"x\":1}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Grüße, 世界 🦀\"}}\n\
\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"future_delta\",\"q\":1}}\r\n\
\r\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\
\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\
\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\
\n";

    async fn decode_chunks(chunks: Vec<Vec<u8>>) -> Vec<Result<StreamEvent, StreamFailure>> {
        let s = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
        );
        decode_stream(s, Duration::from_mins(1)).collect().await
    }

    #[tokio::test]
    async fn decodes_a_whole_stream_skipping_unknowns() {
        let events = decode_chunks(vec![STREAM.as_bytes().to_vec()]).await;
        let events: Vec<StreamEvent> = events.into_iter().map(|e| e.expect("ok")).collect();
        assert_eq!(events.len(), 8, "{events:#?}");
        assert!(
            matches!(events[0], StreamEvent::MessageStart(ref m) if m.usage == Usage { input_tokens: 25, output_tokens: 1, ..Usage::default() })
        );
        assert_eq!(events[1], StreamEvent::Ping);
        assert_eq!(
            events[3],
            StreamEvent::ContentBlockDelta {
                index: 0,
                delta: Delta::TextDelta {
                    text: "Grüße, 世界 🦀".into()
                }
            }
        );
        assert_eq!(
            events[4],
            StreamEvent::ContentBlockDelta {
                index: 0,
                delta: Delta::Unknown
            }
        );
        assert_eq!(events[7], StreamEvent::MessageStop);
    }

    #[tokio::test]
    async fn every_split_point_decodes_the_same() {
        let bytes = STREAM.as_bytes();
        let whole = decode_chunks(vec![bytes.to_vec()]).await;
        for cut in 1..bytes.len() {
            let parts = vec![bytes[..cut].to_vec(), bytes[cut..].to_vec()];
            let got = decode_chunks(parts).await;
            assert_eq!(got, whole, "split at byte {cut}");
        }
        // And byte by byte.
        let got = decode_chunks(bytes.iter().map(|b| vec![*b]).collect()).await;
        assert_eq!(got, whole, "byte by byte");
    }

    #[test]
    fn error_event_is_decoded_with_details() {
        let ev = decode_event(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded","details":null}}"#,
        )
        .expect("decodes")
        .expect("known");
        match ev {
            StreamEvent::Error(env) => {
                assert_eq!(env.error.kind, "overloaded_error");
                assert_eq!(env.error.message, "Overloaded");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_fast_delta_path_reads_exactly_what_the_general_one_does() {
        #[derive(Deserialize)]
        struct W {
            index: usize,
            delta: Delta,
        }
        let general = |d: &str| {
            serde_json::from_str::<W>(d)
                .map(|w| StreamEvent::ContentBlockDelta {
                    index: w.index,
                    delta: w.delta,
                })
                .ok()
        };
        for d in [
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi \"you\"\n"}}"#,
            r#"{"index":3,"delta":{"text":"x","type":"text_delta","extra":[1,2]}}"#,
            r#"{"index":1,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            r#"{"index":1,"delta":{"type":"thinking_delta","thinking":"hmm","text":"t"}}"#,
            r#"{"index":1,"delta":{"type":"text_delta","thinking":"hmm","text":"t"}}"#,
            r#"{"index":1,"delta":{"type":"text_delta"}}"#,
            r#"{"index":1,"delta":{"type":"text_delta","text":null}}"#,
            r#"{"index":1,"delta":{"type":"text_delta","text":"a","text":"b"}}"#,
            r#"{"index":1,"delta":{"type":"text_delta","text":"a","thinking":7}}"#,
            r#"{"index":-1,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"index":1,"delta":{"type":"signature_delta","signature":"s"}}"#,
            r#"{"index":1,"delta":{"type":"brand_new","text":"a"}}"#,
            r#"{"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"index":1,"delta":{"type":"text_delta","text":"a"}} trailing"#,
        ] {
            if let Some(fast) = text_delta_fast(d) {
                assert_eq!(Some(fast), general(d), "{d}");
            }
            assert_eq!(
                decode_event("content_block_delta", d).ok().flatten(),
                general(d),
                "{d}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// The exact-shape reader agrees with serde on every delta it accepts, and accepts
        /// every compact delta serde writes.
        #[test]
        fn the_exact_shape_reader_agrees_with_serde(
            text in ".*",
            index in 0usize..100_000,
            thinking in proptest::prelude::any::<bool>(),
            cut in 0usize..200,
            junk in "[\\\\\"}a ]{0,3}",
        ) {
            let (kind, field) = if thinking { ("thinking_delta", "thinking") } else { ("text_delta", "text") };
            // Compact and in the API's key order, as serde_json writes a struct.
            let data = format!(
                r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"{kind}","{field}":{}}}}}"#,
                serde_json::to_string(&text).expect("a string serializes"),
            );
            let general = |d: &str| {
                #[derive(Deserialize)]
                struct W {
                    index: usize,
                    delta: Delta,
                }
                serde_json::from_str::<W>(d)
                    .map(|w| StreamEvent::ContentBlockDelta { index: w.index, delta: w.delta })
                    .ok()
            };
            let exact = text_delta_exact(&data);
            proptest::prop_assert!(exact.is_some(), "{}", data);
            proptest::prop_assert_eq!(&exact, &general(&data));
            // With whitespace between the tokens, as Python's json.dumps writes it.
            let value: serde_json::Value = serde_json::from_str(&data).expect("valid");
            let spaced = serde_json::to_string_pretty(&value).expect("valid");
            if let Some(e) = text_delta_exact(&spaced) {
                proptest::prop_assert_eq!(Some(e), general(&spaced));
            }
            let spaced = data.replace(r#"",""#, r#"", ""#).replace(r#"":"#, r#"": "#);
            if let Some(e) = text_delta_exact(&spaced) {
                proptest::prop_assert_eq!(Some(e), general(&spaced), "{}", spaced);
            }
            // Damaged: whatever it accepts, serde reads the same way.
            let mut cut_at = cut.min(data.len());
            while !data.is_char_boundary(cut_at) {
                cut_at -= 1;
            }
            let damaged = format!("{}{}{}", &data[..cut_at], junk, &data[cut_at..]);
            if let Some(e) = text_delta_exact(&damaged) {
                proptest::prop_assert_eq!(Some(e), general(&damaged), "{}", damaged);
            }
        }
    }

    #[test]
    fn the_exact_shape_reader_takes_compact_and_spaced_json() {
        for d in [
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\"b"}}"#,
            r#"{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a\"b"}}"#,
        ] {
            assert_eq!(
                text_delta_exact(d),
                Some(StreamEvent::ContentBlockDelta {
                    index: 0,
                    delta: Delta::TextDelta {
                        text: "a\"b".into()
                    },
                }),
                "{d}"
            );
        }
        // A raw control character is not JSON: serde refuses it, and so does this.
        let raw = "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\u{1}b\"}}";
        assert_eq!(text_delta_exact(raw), None);
        assert!(serde_json::from_str::<serde_json::Value>(raw).is_err());
        // Another key order is not the exact shape: serde reads it.
        assert_eq!(
            text_delta_exact(
                r#"{"index":0,"type":"content_block_delta","delta":{"type":"text_delta","text":"a"}}"#
            ),
            None
        );
    }

    #[test]
    fn malformed_known_event_is_an_error_not_a_panic() {
        assert!(decode_event("content_block_delta", "{not json").is_err());
        assert!(decode_event("", "{not json").is_err());
        assert_eq!(decode_event("brand_new", "whatever").expect("skip"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_stream_times_out() {
        let s = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from_static(
            b"event: ping\ndata: {\"type\":\"ping\"}\n\n",
        ))])
        .chain(futures::stream::pending());
        let got: Vec<_> = decode_stream(s, Duration::from_secs(5)).collect().await;
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1],
            Err(StreamFailure::IdleTimeout(Duration::from_secs(5)))
        );
    }

    fn delta(text: &str) -> String {
        format!(
            "event: content_block_delta\ndata: {}\n\n",
            serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":text}})
        )
    }

    async fn decode_with(
        chunks: Vec<Vec<u8>>,
        limits: StreamLimits,
    ) -> Vec<Result<StreamEvent, StreamFailure>> {
        let s = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
        );
        decode_stream_with(s, Duration::from_mins(1), limits)
            .collect()
            .await
    }

    #[tokio::test]
    async fn a_cr_waiting_for_its_lf_is_a_blank_line_not_part_of_the_event() {
        // An event exactly at the cap, then a lone CR (a blank line) cut off at the end of a
        // chunk: the CR must not count as a byte of the event while it waits for a
        // possible LF (found by the split-invariance property).
        let limits = StreamLimits {
            max_event_bytes: 21,
            max_reply_bytes: None,
        };
        let body = b"event: ping\ndata: {}\n\rdata: x".to_vec();
        let whole = decode_with(vec![body.clone()], limits).await;
        let cut = body.len() - "data: x".len();
        let split = decode_with(vec![body[..cut].to_vec(), body[cut..].to_vec()], limits).await;
        assert_eq!(split, whole);
        assert!(whole.iter().all(Result::is_ok), "{whole:?}");
    }

    #[tokio::test]
    async fn an_event_past_the_cap_is_a_clear_error() {
        // One line with no end, in small chunks: stops at the cap instead of growing forever.
        let limits = StreamLimits {
            max_event_bytes: 1 << 20,
            max_reply_bytes: None,
        };
        let chunks: Vec<Vec<u8>> = std::iter::once(b"data: ".to_vec())
            .chain(std::iter::repeat_n(vec![b'x'; 1000], 2000))
            .collect();
        let got = decode_with(chunks, limits).await;
        assert_eq!(got.len(), 1, "{got:?}");
        match &got[0] {
            Err(StreamFailure::Decode(m)) => assert!(m.contains("larger than 1 MiB"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Many short lines in one event count together.
        let many = "data: x\n".repeat(200_000);
        let got = decode_with(vec![many.into_bytes()], limits).await;
        assert!(
            matches!(&got[0], Err(StreamFailure::Decode(m)) if m.contains("MiB")),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_big_event_in_small_chunks_decodes_in_linear_time() {
        // 3 MB of text in one event, 100-byte chunks: quadratic decoding took minutes.
        let text = "y".repeat(3 << 20);
        let body = delta(&text).into_bytes();
        let chunks: Vec<Vec<u8>> = body.chunks(100).map(<[u8]>::to_vec).collect();
        let t = std::time::Instant::now();
        let got = decode_with(chunks, StreamLimits::default()).await;
        assert_eq!(got.len(), 1);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn reply_text_is_cut_at_the_cap_and_the_stream_ends() {
        let limits = StreamLimits {
            max_event_bytes: MAX_EVENT_BYTES,
            max_reply_bytes: Some(9),
        };
        let body = format!("{}{}{}", delta("12345"), delta("678é0abc"), delta("never"));
        let got = decode_with(vec![body.into_bytes()], limits).await;
        let texts: Vec<String> = got
            .iter()
            .filter_map(|e| match e {
                Ok(StreamEvent::ContentBlockDelta {
                    delta: Delta::TextDelta { text },
                    ..
                }) => Some(text.clone()),
                _ => None,
            })
            .collect();
        // "678é" would be 5 bytes, past the 4 left: cut before the é, never inside it.
        assert_eq!(texts, vec!["12345".to_string(), "678".to_string()]);
        assert_eq!(got.last(), Some(&Err(StreamFailure::TooLong(9))));
        assert_eq!(got.len(), 3);
        assert_eq!(reply_cap(1), MIN_REPLY_BYTES);
        assert_eq!(reply_cap(100_000), 100_000 * REPLY_BYTES_PER_TOKEN);
    }

    #[tokio::test]
    async fn lone_cr_ends_a_line_and_bad_utf8_is_an_error() {
        let body = "event: ping\rdata: {\"type\":\"ping\"}\r\r";
        let got = decode_chunks(vec![body.as_bytes().to_vec()]).await;
        assert_eq!(got, vec![Ok(StreamEvent::Ping)]);
        let mut bad = b"event: ping\ndata: {\"type\":\"ping\"}\n\n: \xff\n".to_vec();
        bad.extend(delta("after").into_bytes());
        let got = decode_chunks(vec![bad]).await;
        assert_eq!(got.len(), 2);
        assert!(
            matches!(&got[1], Err(StreamFailure::Decode(m)) if m.contains("UTF-8")),
            "{got:?}"
        );
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// Bytes that look like SSE often enough to reach the decoder's inner paths.
        fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                Just(b"event: ".to_vec()),
                Just(b"data: ".to_vec()),
                Just(b"\n".to_vec()),
                Just(b"\r".to_vec()),
                Just(b"\r\n".to_vec()),
                Just(b":".to_vec()),
                Just(b"{\"type\":\"ping\"}".to_vec()),
                Just(b"content_block_delta".to_vec()),
                Just(b"{\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}".to_vec()),
                Just("\u{feff}".as_bytes().to_vec()),
                Just("é".as_bytes().to_vec()),
                proptest::collection::vec(any::<u8>(), 0..8),
            ];
            proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
        }

        fn run(chunks: Vec<Vec<u8>>) -> Vec<Result<StreamEvent, StreamFailure>> {
            thread_local! {
                static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("runtime");
            }
            let limits = StreamLimits {
                max_event_bytes: 64,
                max_reply_bytes: Some(8),
            };
            RT.with(|rt| rt.block_on(decode_with(chunks, limits)))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(10_000))]

            /// No panic, and every split of the same bytes gives the same events.
            #[test]
            fn any_split_decodes_the_same(
                bytes in prop_oneof![sse_bytes(), proptest::collection::vec(any::<u8>(), 0..300)],
                cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
            ) {
                let whole = run(vec![bytes.clone()]);
                let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
                at.sort_unstable();
                let mut chunks = Vec::new();
                let mut prev = 0;
                for c in at {
                    chunks.push(bytes[prev..c].to_vec());
                    prev = c;
                }
                chunks.push(bytes[prev..].to_vec());
                prop_assert_eq!(run(chunks), whole);
            }
        }
    }
}
