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

/// Watches a reply's bytes go by and keeps its usage and stop reason: from the SSE `data:`
/// lines of a stream (usage is cumulative, so the last word wins), or from the whole JSON
/// body of a non-streamed reply.
#[derive(Debug, Default)]
pub struct UsageScanner {
    stream: bool,
    /// The incomplete last line (a stream) or the body so far (a whole reply).
    pending: Vec<u8>,
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
            ..UsageScanner::default()
        }
    }

    /// Bytes as they went to the client.
    pub fn feed(&mut self, chunk: &[u8]) {
        if !self.stream {
            if self.pending.len() + chunk.len() <= MAX_WHOLE_BODY {
                self.pending.extend_from_slice(chunk);
            }
            return;
        }
        self.pending.extend_from_slice(chunk);
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            self.line(&line);
        }
    }

    fn line(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
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

    /// The reply's usage, once seen.
    pub fn usage(&mut self) -> Option<Usage> {
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

        let mut w = UsageScanner::new(false);
        w.feed(br#"{"usage":{"input_tokens":3,"output_tokens":4},"stop_reason":"max_tokens"}"#);
        let u = w.usage().expect("usage");
        assert_eq!((u.input_tokens, u.output_tokens), (3, 4));
        assert_eq!(w.stop_reason(), Some("max_tokens"));
    }
}
