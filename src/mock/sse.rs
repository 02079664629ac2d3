//! The JSON the mock sends: SSE frames of a Messages stream (PROTOCOL.md §2), the Message
//! object (§1.4) and the error envelope (§3.1).
//!
//! Built here with `serde_json::json!` rather than with the client's types in `api/types.rs`,
//! so that a bug in those types cannot hide behind a shared definition.

use bytes::Bytes;
use serde_json::{Value, json};

/// One SSE frame: `event: NAME\ndata: JSON\n\n`. The JSON's `type` equals the event name.
pub(crate) fn frame(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// The full usage object of a Message (§1.4).
pub(crate) fn usage(input_tokens: u64, output_tokens: u64) -> Value {
    json!({
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard"
    })
}

/// A Message object: the non-streaming response, or (with no content and no stop reason) the
/// snapshot inside `message_start`.
pub(crate) fn message(
    id: &str,
    model: &str,
    content: Vec<Value>,
    stop_reason: Option<&str>,
    input_tokens: u64,
    output_tokens: u64,
) -> Value {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": usage(input_tokens, output_tokens)
    })
}

/// `message_start`: real input count, a small placeholder output count.
pub(crate) fn message_start(id: &str, model: &str, input_tokens: u64) -> Bytes {
    frame(
        "message_start",
        &json!({"type": "message_start", "message": message(id, model, vec![], None, input_tokens, 1)}),
    )
}

/// `ping`.
pub(crate) fn ping() -> Bytes {
    frame("ping", &json!({"type": "ping"}))
}

/// `content_block_start` of a text block.
pub(crate) fn text_block_start(index: usize) -> Bytes {
    frame(
        "content_block_start",
        &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
    )
}

/// `content_block_start` of a thinking block.
pub(crate) fn thinking_block_start(index: usize) -> Bytes {
    frame(
        "content_block_start",
        &json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    )
}

/// A `text_delta`.
pub(crate) fn text_delta(index: usize, text: &str) -> Bytes {
    frame(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
    )
}

/// A `thinking_delta`.
pub(crate) fn thinking_delta(index: usize, thinking: &str) -> Bytes {
    frame(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "thinking_delta", "thinking": thinking}}),
    )
}

/// The one `signature_delta` that closes a thinking block.
pub(crate) fn signature_delta(index: usize, signature: &str) -> Bytes {
    frame(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "signature_delta", "signature": signature}}),
    )
}

/// `content_block_stop`.
pub(crate) fn block_stop(index: usize) -> Bytes {
    frame(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}),
    )
}

/// `message_delta` with the stop reason and cumulative usage (input repeated, as the API
/// does now; a client must overwrite, not add).
pub(crate) fn message_delta(stop_reason: &str, input_tokens: u64, output_tokens: u64) -> Bytes {
    frame(
        "message_delta",
        &json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0, "output_tokens": output_tokens}}),
    )
}

/// `message_stop`.
pub(crate) fn message_stop() -> Bytes {
    frame("message_stop", &json!({"type": "message_stop"}))
}

/// The terminal `event: error` frame, with `"details": null` as seen in practice (§2.3).
pub(crate) fn error_event(error_type: &str, message: &str) -> Bytes {
    frame(
        "error",
        &json!({"type": "error", "error": {"details": null, "type": error_type, "message": message}}),
    )
}

/// The error envelope of a non-2xx response (§3.1).
pub(crate) fn error_body(
    error_type: &str,
    message: &str,
    details: Option<&Value>,
    request_id: &str,
) -> Value {
    let mut error = json!({"type": error_type, "message": message});
    if let (Some(d), Some(obj)) = (details, error.as_object_mut()) {
        obj.insert("details".into(), d.clone());
    }
    json!({"type": "error", "error": error, "request_id": request_id})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_name_their_event_and_type_alike() {
        let f = text_delta(0, "Grüße 🦀");
        let s = std::str::from_utf8(&f).expect("utf-8");
        assert!(s.starts_with("event: content_block_delta\ndata: {"));
        assert!(s.ends_with("}\n\n"));
        let data: Value =
            serde_json::from_str(s.lines().nth(1).unwrap_or("").trim_start_matches("data: "))
                .expect("json");
        assert_eq!(data["type"], "content_block_delta");
        assert_eq!(data["delta"]["text"], "Grüße 🦀");
    }

    #[test]
    fn envelope_carries_details_only_when_given() {
        let e = error_body("api_error", "x", None, "req_1");
        assert!(e["error"].get("details").is_none());
        let d = json!({"error_code": "enforced_spend_limit_reached"});
        let e = error_body("rate_limit_error", "x", Some(&d), "req_1");
        assert_eq!(e["error"]["details"], d);
        assert_eq!(e["request_id"], "req_1");
    }
}
