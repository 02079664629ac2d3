//! What the proxy reads from the bytes it forwards, without changing them: the request's
//! model, token estimate and whether it streams (for pacing), and the reply's usage and stop
//! reason (to settle the reservation). Both read copies; the bytes sent on are the ones
//! received.

use serde_json::Value;

use crate::api::{Message, MessagesRequest, Role, Usage};

/// What pacing needs to know about a `POST /v1/messages` body.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestFacts {
    /// The `model` field (empty when absent: the server will refuse it anyway).
    pub model: String,
    /// Whether the reply is streamed.
    pub stream: bool,
    /// A stand-in request with the same model, `max_tokens` and text, for
    /// [`Limiter::estimate`](crate::limiter::Limiter::estimate): the client's body may carry
    /// fields this crate's wire types do not model (tools, images, an array `system`), so
    /// the text of every string in it is gathered into one user message.
    pub estimate: MessagesRequest,
}

impl RequestFacts {
    /// Read `body`; `None` when it is not a JSON object (the server will say what is wrong).
    pub fn read(body: &[u8]) -> Option<RequestFacts> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let obj = value.as_object()?;
        let model = obj
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let max_tokens = obj
            .get("max_tokens")
            .and_then(Value::as_u64)
            .map_or(4096, |n| u32::try_from(n).unwrap_or(u32::MAX));
        let stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
        let mut text = String::new();
        for field in ["system", "messages", "tools"] {
            if let Some(v) = obj.get(field) {
                gather_text(v, &mut text);
            }
        }
        let estimate = MessagesRequest::new(
            model.clone(),
            max_tokens,
            vec![Message::text(Role::User, text)],
        );
        Some(RequestFacts {
            model,
            stream,
            estimate,
        })
    }
}

/// The keys whose values are the wire format's structure, not text the model reads (`"role":
/// "user"`, `"type": "text"`): the chat's estimate does not count them either, so a plain
/// request is estimated exactly as the chat estimates it.
const STRUCTURAL_KEYS: [&str; 2] = ["role", "type"];

/// Append every string of `v` (values, not keys, nor the values of [`STRUCTURAL_KEYS`]), a
/// space between each.
fn gather_text(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(s);
        }
        Value::Array(items) => items.iter().for_each(|i| gather_text(i, out)),
        Value::Object(map) => map
            .iter()
            .filter(|(k, v)| !(v.is_string() && STRUCTURAL_KEYS.contains(&k.as_str())))
            .for_each(|(_, i)| gather_text(i, out)),
        _ => {}
    }
}

/// The largest non-streamed reply read for its usage; a larger one is forwarded all the same,
/// its usage unknown.
const MAX_WHOLE_BODY: usize = 4 << 20;

/// The longest SSE line kept whole across chunks. The lines read for usage are short (a
/// `message_start` carries no content); a longer line is skipped, not buffered.
const MAX_LINE: usize = 64 << 10;

/// The SSE events that can carry usage, a stop reason or an error. The data of every other
/// named event (the many `content_block_delta`s, pings) is not parsed.
const EVENTS_READ: [&[u8]; 3] = [b"message_start", b"message_delta", b"error"];

/// How much of a stream's start is read as it goes by, at most: until its `message_start`
/// (the first event) has been read.
const HEAD: usize = 64 << 10;

/// How much of a stream's end is kept to be read when it ends. What comes last is
/// `message_delta` (the usage and stop reason) and `message_stop`, or an `error` event, after
/// which the API ends the stream: a few hundred bytes.
const TAIL: usize = 8 << 10;

/// Watches a reply's bytes go by and keeps its usage and stop reason: from the SSE `data:`
/// lines of a stream (usage is cumulative, so the last word wins), or from the whole JSON
/// body of a non-streamed reply.
///
/// It sits on the path of every chunk, so a stream's middle costs it next to nothing: it
/// reads the start line by line until `message_start`, then only keeps a copy of the last
/// [`TAIL`] bytes and reads them when the stream ends. (A copy, not the chunks themselves:
/// holding on to those would keep the HTTP client from reusing its read buffer.) Lines are
/// found with one search per chunk; only a line cut by a chunk boundary is copied, and only
/// the data of the events in [`EVENTS_READ`] (or of an unnamed event) is parsed.
#[derive(Debug, Default)]
pub struct UsageScanner {
    stream: bool,
    /// Bytes of a stream still to be read as they go by ([`HEAD`], then 0).
    head_left: usize,
    /// The last bytes of a stream, past its head: up to 2 × [`TAIL`], at least [`TAIL`] once
    /// there are.
    tail: Vec<u8>,
    /// Bytes were dropped from the front of `tail`: it may start in the middle of a line.
    tail_cut: bool,
    /// The incomplete last line (a stream) or the body so far (a whole reply).
    pending: Vec<u8>,
    /// The incomplete last line is longer than [`MAX_LINE`]: skip to the next newline.
    skipping: bool,
    /// The current event's `data:` is worth parsing: no `event:` line named it yet, or the
    /// name is one of [`EVENTS_READ`].
    wanted: bool,
    usage: Option<Usage>,
    stop_reason: Option<String>,
    /// An `event: error` frame went by.
    error: Option<String>,
}

impl UsageScanner {
    /// A scanner for an SSE stream (`stream`) or a whole JSON body.
    pub fn new(stream: bool) -> Self {
        UsageScanner {
            stream,
            head_left: HEAD,
            wanted: true,
            ..UsageScanner::default()
        }
    }

    /// A chunk as it went to the client.
    pub fn feed(&mut self, chunk: &[u8]) {
        if !self.stream {
            if self.pending.len() + chunk.len() <= MAX_WHOLE_BODY {
                self.pending.extend_from_slice(chunk);
            }
            return;
        }
        if self.head_left > 0 {
            self.scan(chunk);
            self.head_left = if self.usage.is_some() {
                0
            } else {
                self.head_left.saturating_sub(chunk.len())
            };
            return;
        }
        if self.tail.len() + chunk.len() <= 2 * TAIL {
            self.tail.extend_from_slice(chunk);
            return;
        }
        // Keep the last TAIL bytes of tail + chunk: a copy of at most TAIL bytes per chunk,
        // and a move of at most TAIL bytes per TAIL bytes that went by.
        let from_chunk = chunk.len().min(TAIL);
        let from_tail = TAIL - from_chunk;
        self.tail.drain(..self.tail.len().saturating_sub(from_tail));
        self.tail
            .extend_from_slice(&chunk[chunk.len() - from_chunk..]);
        self.tail_cut = true;
    }

    /// Read the kept chunks of a stream (its end, when it has ended).
    fn catch_up(&mut self) {
        if self.tail.is_empty() {
            return;
        }
        if std::mem::take(&mut self.tail_cut) {
            // Start at the first whole line.
            self.pending.clear();
            self.skipping = true;
            self.wanted = true;
        }
        let tail = std::mem::take(&mut self.tail);
        self.scan(&tail);
    }

    /// Read the lines of `bytes`, the next bytes of a stream.
    fn scan(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        // First the end of a line the previous chunk cut.
        if self.skipping || !self.pending.is_empty() {
            let Some(end) = memchr::memchr(b'\n', rest) else {
                self.keep_partial(rest);
                return;
            };
            let (head, tail) = rest.split_at(end + 1);
            rest = tail;
            if self.skipping {
                self.skipping = false;
            } else {
                let mut line = std::mem::take(&mut self.pending);
                line.extend_from_slice(head);
                self.line(&line);
                line.clear();
                // Keep the allocation for the next cut line.
                self.pending = line;
            }
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', rest) {
            self.line(&rest[start..=end]);
            start = end + 1;
        }
        self.keep_partial(&rest[start..]);
    }

    /// Keep the start of a line cut by the end of a chunk, unless it is too long to be one
    /// worth reading.
    fn keep_partial(&mut self, part: &[u8]) {
        if self.skipping || part.is_empty() {
            return;
        }
        if self.pending.len() + part.len() > MAX_LINE {
            self.pending.clear();
            self.skipping = true;
        } else {
            self.pending.extend_from_slice(part);
        }
    }

    /// One whole line, its newline included.
    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            // The end of an event: the next one is unnamed until its `event:` line.
            self.wanted = true;
            return;
        }
        if let Some(name) = line.strip_prefix(b"event:") {
            self.wanted = EVENTS_READ.contains(&name.trim_ascii());
            return;
        }
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        if !self.wanted {
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(data.trim_ascii()) else {
            return;
        };
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                if let Some(u) = v.pointer("/message/usage") {
                    self.merge_usage(u);
                }
            }
            Some("message_delta") => {
                if let Some(u) = v.get("usage") {
                    self.merge_usage(u);
                }
                if let Some(s) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(s.to_string());
                }
            }
            Some("error") => {
                self.error = Some(
                    v.pointer("/error/type")
                        .and_then(Value::as_str)
                        .unwrap_or("error")
                        .to_string(),
                );
            }
            _ => {}
        }
    }

    fn merge_usage(&mut self, u: &Value) {
        let Ok(delta) = serde_json::from_value::<crate::api::UsageDelta>(u.clone()) else {
            return;
        };
        self.usage
            .get_or_insert_with(Usage::default)
            .overwrite_from(&delta);
    }

    /// The reply's usage, once seen (the end of a stream is read now, if it was not yet).
    pub fn usage(&mut self) -> Option<Usage> {
        self.catch_up();
        if !self.stream && self.usage.is_none() && !self.pending.is_empty() {
            if let Ok(v) = serde_json::from_slice::<Value>(&self.pending) {
                if let Some(u) = v.get("usage") {
                    self.merge_usage(u);
                }
                self.stop_reason = v
                    .get("stop_reason")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            self.pending.clear();
        }
        self.usage.clone()
    }

    /// The stop reason, once seen (call [`UsageScanner::usage`] first for a whole body).
    pub fn stop_reason(&self) -> Option<&str> {
        self.stop_reason.as_deref()
    }

    /// The `error.type` of an `event: error` frame that went by.
    pub fn stream_error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_with_unmodelled_fields_still_gives_model_and_text() {
        let body = br#"{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,
            "system":[{"type":"text","text":"be brief"}],
            "tools":[{"name":"t","input_schema":{}}],
            "messages":[{"role":"user","content":[{"type":"text","text":"hello there"}]}]}"#;
        let f = RequestFacts::read(body).expect("facts");
        assert_eq!(f.model, "claude-sonnet-4-5");
        assert!(f.stream);
        assert_eq!(f.estimate.max_tokens, 100);
        assert!(RequestFacts::read(b"not json").is_none());
    }

    #[test]
    fn a_plain_request_is_estimated_like_the_chat_estimates_it() {
        for text in ["hello there ", "x"] {
            let request = MessagesRequest::new(
                "claude-sonnet-4-6",
                100,
                vec![Message::text(Role::User, text.repeat(1000))],
            );
            let body = serde_json::to_vec(&request).expect("json");
            let f = RequestFacts::read(&body).expect("facts");
            let ours = f.estimate.estimated_input_tokens();
            let chat = request.estimated_input_tokens();
            // Exact, so that the pacer's learned input scale has nothing to correct.
            assert_eq!(ours, chat);
        }
    }

    #[test]
    fn usage_is_read_across_chunk_boundaries() {
        let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n\
                   event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":40}}\n\n";
        let mut s = UsageScanner::new(true);
        for chunk in sse.as_bytes().chunks(7) {
            s.feed(chunk);
        }
        let u = s.usage().expect("usage");
        assert_eq!((u.input_tokens, u.output_tokens), (12, 40));
        assert_eq!(s.stop_reason(), Some("end_turn"));

        // Every chunk boundary, CRLF line ends, and an unnamed event.
        let crlf = sse
            .replace('\n', "\r\n")
            .replace("event: message_delta\r\n", "");
        let mut s = UsageScanner::new(true);
        for chunk in crlf.as_bytes().chunks(1) {
            s.feed(chunk);
        }
        let u = s.usage().expect("usage");
        assert_eq!((u.input_tokens, u.output_tokens), (12, 40));
        assert_eq!(s.stop_reason(), Some("end_turn"));

        let mut w = UsageScanner::new(false);
        w.feed(br#"{"usage":{"input_tokens":3,"output_tokens":4},"stop_reason":"max_tokens"}"#);
        let u = w.usage().expect("usage");
        assert_eq!((u.input_tokens, u.output_tokens), (3, 4));
        assert_eq!(w.stop_reason(), Some("max_tokens"));
    }

    #[test]
    fn only_the_events_that_carry_usage_are_read_and_a_huge_line_is_skipped() {
        let mut s = UsageScanner::new(true);
        // A delta event whose text happens to look like usage is not parsed.
        s.feed(b"event: content_block_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":999}}\n\n");
        assert_eq!(s.usage(), None);
        // A line longer than MAX_LINE, cut across chunks, is dropped without being kept.
        s.feed(b"event: content_block_delta\ndata: {\"x\":\"");
        let filler = vec![b'a'; 16 << 10];
        for _ in 0..8 {
            s.feed(&filler);
        }
        assert!(s.pending.len() <= MAX_LINE);
        s.feed(b"\"}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":7}}\n\n");
        let u = s.usage().expect("usage");
        assert_eq!(u.output_tokens, 7);
        assert_eq!(s.stop_reason(), Some("max_tokens"));
    }

    #[test]
    fn a_long_stream_is_read_at_its_start_and_its_end_only() {
        let mut sse = String::from(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n",
        );
        let mut n = 0;
        while sse.len() < 1 << 20 {
            n += 1;
            sse.push_str(&format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"word {n} \"}}}}\n\n"));
        }
        let end = format!(
            "event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":{n}}}}}\n\nevent: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
        );
        for (tail, chunk) in [
            ("", 16_000),
            (
                "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n",
                333,
            ),
        ] {
            let body = format!("{sse}{end}{tail}");
            let mut s = UsageScanner::new(true);
            for c in body.as_bytes().chunks(chunk) {
                s.feed(c);
                assert!(s.tail.len() <= 2 * TAIL, "only the end is kept");
            }
            let u = s.usage().expect("usage");
            assert_eq!((u.input_tokens, u.output_tokens), (12, n));
            assert_eq!(s.stop_reason(), Some("end_turn"));
            assert_eq!(
                s.stream_error(),
                (!tail.is_empty()).then_some("overloaded_error")
            );
        }
    }
}
