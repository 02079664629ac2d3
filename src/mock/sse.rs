//! The JSON the mock sends: SSE frames of a Messages stream, the Message object and the
//! error envelope, as docs/protocol.md describes them.
//!
//! Written with the mock's own serde structs rather than the client's types in
//! `api/types.rs`, so that a bug in those types cannot hide behind a shared definition.
//! Structs (not `json!` maps, which serde_json sorts) keep the API's field order, `type` first.

use super::cache::InputUsage;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

/// A content block of a reply.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Block<'a> {
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    Text {
        text: &'a str,
    },
}

#[derive(Serialize)]
struct CacheCreation {
    ephemeral_5m_input_tokens: u64,
    ephemeral_1h_input_tokens: u64,
}

#[derive(Serialize)]
struct Usage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation: CacheCreation,
    output_tokens: u64,
    service_tier: &'static str,
}

impl Usage {
    fn new(input: InputUsage, output_tokens: u64) -> Usage {
        Usage {
            input_tokens: input.input,
            cache_creation_input_tokens: input.write(),
            cache_read_input_tokens: input.read,
            cache_creation: CacheCreation {
                ephemeral_5m_input_tokens: input.write_5m,
                ephemeral_1h_input_tokens: input.write_1h,
            },
            output_tokens,
            service_tier: "standard",
        }
    }
}

#[derive(Serialize)]
struct MessageOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: Option<&'a str>,
    stop_sequence: Option<&'a str>,
    usage: Usage,
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum DeltaOut<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
}

#[derive(Serialize)]
struct StopOut<'a> {
    stop_reason: &'a str,
    stop_sequence: Option<&'a str>,
}

#[derive(Serialize)]
struct DeltaUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

/// The error inside an `event: error` frame: `details` first and always present (null). The
/// API docs' example has no `details`, but the frames users report carry it, so a client
/// must accept both.
#[derive(Serialize)]
struct StreamErrorOut<'a> {
    details: Option<Value>,
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart {
        message: MessageOut<'a>,
    },
    Ping,
    ContentBlockStart {
        index: usize,
        content_block: Block<'a>,
    },
    ContentBlockDelta {
        index: usize,
        delta: DeltaOut<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: StopOut<'a>,
        usage: DeltaUsage,
    },
    MessageStop,
    Error {
        error: StreamErrorOut<'a>,
    },
}

/// One SSE frame: `event: NAME\ndata: JSON\n\n`, the JSON's `type` equal to the name.
fn frame(event: &str, data: &Event<'_>) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("event: {event}\ndata: {json}\n\n"))
}

fn message_out<'a>(
    id: &'a str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: Option<&'a str>,
    input: InputUsage,
    output_tokens: u64,
) -> MessageOut<'a> {
    MessageOut {
        id,
        kind: "message",
        role: "assistant",
        model,
        content,
        stop_reason,
        stop_sequence: None,
        usage: Usage::new(input, output_tokens),
    }
}

/// The non-streaming response body: a whole Message as JSON text.
pub(crate) fn message(
    id: &str,
    model: &str,
    content: Vec<Block<'_>>,
    stop_reason: Option<&str>,
    input: impl Into<InputUsage>,
    output_tokens: u64,
) -> String {
    let m = message_out(id, model, content, stop_reason, input.into(), output_tokens);
    serde_json::to_string(&m).unwrap_or_else(|_| "{}".into())
}

/// `message_start`: real input count, a small placeholder output count.
pub(crate) fn message_start(id: &str, model: &str, input: impl Into<InputUsage>) -> Bytes {
    frame(
        "message_start",
        &Event::MessageStart {
            message: message_out(id, model, Vec::new(), None, input.into(), 1),
        },
    )
}

/// `ping`.
pub(crate) fn ping() -> Bytes {
    frame("ping", &Event::Ping)
}

/// `content_block_start` of a text block.
pub(crate) fn text_block_start(index: usize) -> Bytes {
    frame(
        "content_block_start",
        &Event::ContentBlockStart {
            index,
            content_block: Block::Text { text: "" },
        },
    )
}

/// `content_block_start` of a thinking block.
pub(crate) fn thinking_block_start(index: usize) -> Bytes {
    frame(
        "content_block_start",
        &Event::ContentBlockStart {
            index,
            content_block: Block::Thinking {
                thinking: "",
                signature: "",
            },
        },
    )
}

fn delta(index: usize, delta: DeltaOut<'_>) -> Bytes {
    frame(
        "content_block_delta",
        &Event::ContentBlockDelta { index, delta },
    )
}

/// A `text_delta`.
pub(crate) fn text_delta(index: usize, text: &str) -> Bytes {
    delta(index, DeltaOut::Text { text })
}

/// A `thinking_delta`.
pub(crate) fn thinking_delta(index: usize, thinking: &str) -> Bytes {
    delta(index, DeltaOut::Thinking { thinking })
}

/// The one `signature_delta` that closes a thinking block.
pub(crate) fn signature_delta(index: usize, signature: &str) -> Bytes {
    delta(index, DeltaOut::Signature { signature })
}

/// `content_block_stop`.
pub(crate) fn block_stop(index: usize) -> Bytes {
    frame("content_block_stop", &Event::ContentBlockStop { index })
}

/// `message_delta` with the stop reason and cumulative usage (input repeated, as the API
/// does now; a client must overwrite, not add).
pub(crate) fn message_delta(
    stop_reason: &str,
    input: impl Into<InputUsage>,
    output_tokens: u64,
) -> Bytes {
    let input = input.into();
    frame(
        "message_delta",
        &Event::MessageDelta {
            delta: StopOut {
                stop_reason,
                stop_sequence: None,
            },
            usage: DeltaUsage {
                input_tokens: input.input,
                cache_creation_input_tokens: input.write(),
                cache_read_input_tokens: input.read,
                output_tokens,
            },
        },
    )
}

/// `message_stop`.
pub(crate) fn message_stop() -> Bytes {
    frame("message_stop", &Event::MessageStop)
}

/// The terminal `event: error` frame.
pub(crate) fn error_event(error_type: &str, message: &str) -> Bytes {
    frame(
        "error",
        &Event::Error {
            error: StreamErrorOut {
                details: None,
                kind: error_type,
                message,
            },
        },
    )
}

#[derive(Serialize)]
struct EnvelopeError<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Value>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: EnvelopeError<'a>,
    request_id: &'a str,
}

/// The error envelope of a non-2xx response, as JSON text; its `request_id` repeats the
/// `request-id` header.
pub(crate) fn error_body(
    error_type: &str,
    message: &str,
    details: Option<&Value>,
    request_id: &str,
) -> String {
    let e = Envelope {
        kind: "error",
        error: EnvelopeError {
            kind: error_type,
            message,
            details,
        },
        request_id,
    };
    serde_json::to_string(&e).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data(frame: &Bytes) -> String {
        let s = std::str::from_utf8(frame).expect("utf-8");
        s.lines()
            .nth(1)
            .unwrap_or("")
            .trim_start_matches("data: ")
            .to_string()
    }

    #[test]
    fn frames_look_like_the_apis() {
        let f = text_delta(0, "Grüße 🦀");
        let s = std::str::from_utf8(&f).expect("utf-8");
        assert!(s.starts_with("event: content_block_delta\ndata: {"));
        assert!(s.ends_with("}\n\n"));
        assert_eq!(
            data(&f),
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Grüße 🦀"}}"#
        );
        assert_eq!(
            data(&error_event("overloaded_error", "Overloaded")),
            r#"{"type":"error","error":{"details":null,"type":"overloaded_error","message":"Overloaded"}}"#
        );
        assert_eq!(
            data(&message_delta("end_turn", 25, 15)),
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":15}}"#
        );
        let start: Value =
            serde_json::from_str(&data(&message_start("msg_1", "m", 25))).expect("json");
        assert_eq!(start["message"]["usage"]["input_tokens"], 25);
        assert_eq!(start["message"]["content"], json!([]));
        assert!(data(&ping()) == r#"{"type":"ping"}"#);
    }

    #[test]
    fn envelope_carries_details_only_when_given() {
        assert_eq!(
            error_body("api_error", "x", None, "req_1"),
            r#"{"type":"error","error":{"type":"api_error","message":"x"},"request_id":"req_1"}"#
        );
        let d = json!({"error_code": "enforced_spend_limit_reached"});
        let e: Value =
            serde_json::from_str(&error_body("rate_limit_error", "x", Some(&d), "req_1"))
                .expect("json");
        assert_eq!(e["error"]["details"], d);
    }
}
