//! Request validation, as the real API does it, and the input-token count.
//!
//! Messages mimic the API's (pydantic-style paths such as `messages.1.content`). The count
//! follows `crate::tokens`: `PER_REQUEST_OVERHEAD`, plus the system text, plus for each
//! message `PER_MESSAGE_OVERHEAD` and its text, each text counted with `count_text`. For a
//! text-only request it equals `MessagesRequest::estimated_input_tokens()` of the client.

use serde_json::{Map, Value};

use crate::tokens::{PER_MESSAGE_OVERHEAD, PER_REQUEST_OVERHEAD, count_text};

/// How the request asked for thinking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ThinkingMode {
    /// No thinking block.
    Off,
    /// A thinking block with its text.
    Shown,
    /// `display: "omitted"`: the block opens, gets one signature, and closes.
    Omitted,
}

/// What the mock needs from a valid `POST /v1/messages` body.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MessagesParams {
    pub model: String,
    pub max_tokens: u64,
    pub stream: bool,
    pub thinking: ThinkingMode,
    pub last_user_prompt: String,
    pub input_tokens: u64,
    /// The reply already written when this request continues one: a final assistant
    /// message (prefill), or the assistant message before a user turn asking to continue.
    /// The mock then sends the rest of its reply, as a model that continues well would.
    pub continues: Option<String>,
    /// Files attached to the last user message: (name, bytes received).
    pub attachments: Vec<(String, usize)>,
}

/// Parse the body as JSON, or the API's message for a body that is not.
pub(crate) fn parse_json(body: &[u8]) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("The request body is not valid JSON: {e}"))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err("Input should be a valid dictionary or object to extract fields from".into()),
    }
}

/// Validate a Messages request body.
pub(crate) fn messages_request(body: &[u8]) -> Result<MessagesParams, String> {
    let obj = parse_json(body)?;
    let model = model_field(&obj)?;
    let max_tokens = match obj.get("max_tokens") {
        None => return Err("max_tokens: Field required".into()),
        Some(v) => match v.as_u64().or_else(|| v.as_i64().map(|_| 0)) {
            Some(n) if n >= 1 => n,
            Some(_) => return Err("max_tokens: Input should be greater than or equal to 1".into()),
            None => return Err("max_tokens: Input should be a valid integer".into()),
        },
    };
    let messages = messages_field(&obj)?;
    system_field(&obj)?;
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("stream: Input should be a valid boolean".into()),
    };
    if let Some(t) = obj.get("temperature").filter(|v| !v.is_null()) {
        match t.as_f64() {
            Some(x) if (0.0..=1.0).contains(&x) => {}
            Some(x) if x < 0.0 => {
                return Err("temperature: Input should be greater than or equal to 0".into());
            }
            Some(_) => return Err("temperature: Input should be less than or equal to 1".into()),
            None => return Err("temperature: Input should be a valid number".into()),
        }
    }
    let thinking = thinking_field(&obj, max_tokens)?;
    let prefill = messages.last().and_then(|m| {
        (m.get("role").and_then(Value::as_str) == Some("assistant")).then(|| message_text(m))
    });
    if prefill.is_some() && rejects_prefill(&model) {
        return Err(
            "This model does not support assistant message prefill. The conversation must end with a user message."
                .into(),
        );
    }
    let (continues, prompt_messages) = match prefill {
        Some(text) => (Some(text), messages.len()),
        None => match asks_to_continue(messages) {
            Some(text) => (Some(text), messages.len() - 2),
            None => (None, messages.len()),
        },
    };
    Ok(MessagesParams {
        model,
        max_tokens,
        stream,
        thinking,
        last_user_prompt: last_user_prompt(&messages[..prompt_messages]),
        input_tokens: count_input_tokens(&obj),
        continues: continues.map(|t| t.trim_end().to_string()),
        attachments: attachments_received(messages),
    })
}

/// Validate a `count_tokens` body and count its input tokens.
pub(crate) fn count_tokens_request(body: &[u8]) -> Result<u64, String> {
    let obj = parse_json(body)?;
    model_field(&obj)?;
    messages_field(&obj)?;
    system_field(&obj)?;
    Ok(count_input_tokens(&obj))
}

fn model_field(obj: &Map<String, Value>) -> Result<String, String> {
    match obj.get("model") {
        None => Err("model: Field required".into()),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err("model: String should have at least 1 character".into()),
        Some(_) => Err("model: Input should be a valid string".into()),
    }
}

fn system_field(obj: &Map<String, Value>) -> Result<(), String> {
    match obj.get("system") {
        None | Some(Value::Null | Value::String(_)) => Ok(()),
        Some(Value::Array(blocks)) => {
            for (i, b) in blocks.iter().enumerate() {
                if b.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(format!("system.{i}.type: Input should be 'text'"));
                }
                match b.get("text").and_then(Value::as_str) {
                    Some(t) if !t.is_empty() => {}
                    _ => return Err("system: text content blocks must be non-empty".into()),
                }
            }
            Ok(())
        }
        Some(_) => Err("system: Input should be a valid string".into()),
    }
}

fn messages_field(obj: &Map<String, Value>) -> Result<&Vec<Value>, String> {
    let messages = match obj.get("messages") {
        None => return Err("messages: Field required".into()),
        Some(Value::Array(m)) => m,
        Some(_) => return Err("messages: Input should be a valid list".into()),
    };
    if messages.is_empty() {
        return Err("messages: at least one message is required".into());
    }
    let last = messages.len() - 1;
    for (i, m) in messages.iter().enumerate() {
        let Some(m) = m.as_object() else {
            return Err(format!("messages.{i}: Input should be a valid dictionary"));
        };
        let role = match m.get("role") {
            None => return Err(format!("messages.{i}.role: Field required")),
            Some(Value::String(r)) if r == "user" || r == "assistant" => r.as_str(),
            Some(_) => {
                return Err(format!(
                    "messages.{i}.role: Input should be 'user' or 'assistant'"
                ));
            }
        };
        if i == 0 && role != "user" {
            return Err("messages: first message must use the \"user\" role".into());
        }
        let may_be_empty = i == last && role == "assistant";
        let empty_content = || {
            Err(format!(
                "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
            ))
        };
        match m.get("content") {
            None => return Err(format!("messages.{i}.content: Field required")),
            Some(Value::String(s)) => {
                if s.is_empty() && !may_be_empty {
                    return empty_content();
                }
            }
            Some(Value::Array(blocks)) => {
                if blocks.is_empty() && !may_be_empty {
                    return empty_content();
                }
                for (j, b) in blocks.iter().enumerate() {
                    let Some(kind) = b.get("type").and_then(Value::as_str) else {
                        return Err(format!("messages.{i}.content.{j}.type: Field required"));
                    };
                    if kind == "image" || kind == "document" {
                        source_block(b, kind, i, j)?;
                    }
                    if kind == "text" {
                        match b.get("text") {
                            Some(Value::String(t)) if t.is_empty() => {
                                return Err(
                                    "messages: text content blocks must be non-empty".into()
                                );
                            }
                            Some(Value::String(t)) if t.trim().is_empty() => {
                                return Err(
                                    "messages: text content blocks must contain non-whitespace text"
                                        .into(),
                                );
                            }
                            Some(Value::String(_)) => {}
                            None => {
                                return Err(format!(
                                    "messages.{i}.content.{j}.text: Field required"
                                ));
                            }
                            Some(_) => {
                                return Err(format!(
                                    "messages.{i}.content.{j}.text: Input should be a valid string"
                                ));
                            }
                        }
                    }
                }
            }
            Some(_) => {
                return Err(format!(
                    "messages.{i}.content: Input should be a valid list"
                ));
            }
        }
    }
    Ok(messages)
}

/// Most bytes one image may have (decoded).
const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

/// The decoded bytes of an image or document block's base64 source, checked as the API does:
/// the source type, the media type for the kind, base64 data, and an image's size.
fn source_block(b: &Value, kind: &str, i: usize, j: usize) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let at = format!("messages.{i}.content.{j}.source");
    let Some(source) = b.get("source").and_then(Value::as_object) else {
        return Err(format!("{at}: Field required"));
    };
    if source.get("type").and_then(Value::as_str) != Some("base64") {
        return Err(format!(
            "{at}.type: Input should be 'base64' (this mock takes base64 sources only)"
        ));
    }
    let media = source
        .get("media_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let allowed: &[&str] = if kind == "image" {
        &["image/jpeg", "image/png", "image/gif", "image/webp"]
    } else {
        &["application/pdf"]
    };
    if !allowed.contains(&media) {
        return Err(format!(
            "{at}.media_type: Input should be {}",
            allowed
                .iter()
                .map(|m| format!("'{m}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let data = source.get("data").and_then(Value::as_str).unwrap_or("");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| format!("{at}.data: The {kind} data is not valid base64"))?;
    if kind == "image" && bytes.len() > MAX_IMAGE_BYTES {
        return Err(format!(
            "{at}: image exceeds 5 MB maximum: {} bytes > {MAX_IMAGE_BYTES} bytes",
            bytes.len()
        ));
    }
    if kind == "document" && !bytes.starts_with(b"%PDF-") {
        return Err(format!("{at}: The PDF specified was not valid."));
    }
    Ok(bytes)
}

/// The files in the last user message, as `(name, bytes received)`: each
/// `[attachment: NAME (TYPE, N bytes)]` label with the size of what actually came, the text
/// after the label or the image or document block after it. The mock's echo of these proves
/// what it received.
pub(crate) fn attachments_received(messages: &[Value]) -> Vec<(String, usize)> {
    use base64::Engine;
    let Some(last) = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return Vec::new();
    };
    let Some(Value::Array(blocks)) = last.get("content") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, b) in blocks.iter().enumerate() {
        let Some(text) = b.get("text").and_then(Value::as_str) else {
            continue;
        };
        let Some(rest) = text.strip_prefix("[attachment: ") else {
            continue;
        };
        let (label, body) = rest.split_once('\n').unwrap_or((rest, ""));
        let Some(name) = label.rsplit_once(" (").map(|(n, _)| n.to_string()) else {
            continue;
        };
        let size = if label.contains("(text/plain") {
            body.len()
        } else {
            blocks
                .get(k + 1)
                .and_then(|n| n.get("source"))
                .and_then(|s| s.get("data"))
                .and_then(Value::as_str)
                .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
                .map_or(0, |d| d.len())
        };
        out.push((name, size));
    }
    out
}

fn thinking_field(obj: &Map<String, Value>, max_tokens: u64) -> Result<ThinkingMode, String> {
    let Some(t) = obj.get("thinking").filter(|v| !v.is_null()) else {
        return Ok(ThinkingMode::Off);
    };
    let omitted = t.get("display").and_then(Value::as_str) == Some("omitted");
    let mode = if omitted {
        ThinkingMode::Omitted
    } else {
        ThinkingMode::Shown
    };
    match t.get("type").and_then(Value::as_str) {
        Some("disabled") => Ok(ThinkingMode::Off),
        Some("adaptive") => Ok(mode),
        Some("enabled") => match t.get("budget_tokens").and_then(Value::as_u64) {
            None => Err("thinking.enabled.budget_tokens: Field required".into()),
            Some(b) if b < 1024 => Err(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
                    .into(),
            ),
            Some(b) if b >= max_tokens => {
                Err("`max_tokens` must be greater than `thinking.budget_tokens`".into())
            }
            Some(_) => Ok(mode),
        },
        _ => Err(
            "thinking: Input tag found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'"
                .into(),
        ),
    }
}

/// The text of the last user message (what picks the reply).
fn last_user_prompt(messages: &[Value]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(message_text)
        .unwrap_or_default()
}

/// A message's text blocks, joined.
fn message_text(m: &Value) -> String {
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// Claude 4.6 and later reject an assistant prefill (400). Ids that do not read as
/// `claude-<family>-<major>[-<minor>]`, and the older `claude-3-…` ones, take it.
fn rejects_prefill(model: &str) -> bool {
    let mut parts = model.strip_prefix("claude-").unwrap_or("").split('-');
    if parts
        .next()
        .is_none_or(|family| family.parse::<u32>().is_ok())
    {
        return false;
    }
    let numbers: Vec<u32> = parts
        .filter(|p| p.len() <= 2)
        .map_while(|p| p.parse().ok())
        .collect();
    match numbers.as_slice() {
        [major, ..] if *major >= 5 => true,
        [4, minor, ..] => *minor >= 6,
        _ => false,
    }
}

/// When the conversation ends `…, assistant A, user "…cut off… continue…"`: A, without the
/// marker a client may have added to it. The mock reads the request as a model would.
fn asks_to_continue(messages: &[Value]) -> Option<String> {
    let [.., before, last] = messages else {
        return None;
    };
    if before.get("role").and_then(Value::as_str) != Some("assistant") {
        return None;
    }
    let ask = message_text(last).to_lowercase();
    if !(ask.contains("cut off") && ask.contains("continue")) {
        return None;
    }
    let text = message_text(before);
    let text = text
        .trim_end()
        .strip_suffix("[reply interrupted]")
        .unwrap_or(&text)
        .trim_end()
        .to_string();
    Some(text)
}

/// Input tokens of a request body (see the module docs). Non-text blocks (images, tool
/// calls…) are counted by their JSON text, a rough but stable stand-in; tools likewise.
pub fn count_input_tokens(body: &Map<String, Value>) -> u64 {
    let mut total = PER_REQUEST_OVERHEAD;
    match body.get("system") {
        Some(Value::String(s)) => total += count_text(s),
        Some(Value::Array(blocks)) => total += blocks.iter().map(block_tokens).sum::<u64>(),
        _ => {}
    }
    if let Some(Value::Array(messages)) = body.get("messages") {
        for m in messages {
            total += PER_MESSAGE_OVERHEAD;
            match m.get("content") {
                Some(Value::String(s)) => total += count_text(s),
                Some(Value::Array(blocks)) => total += blocks.iter().map(block_tokens).sum::<u64>(),
                _ => {}
            }
        }
    }
    if let Some(tools) = body.get("tools").filter(|t| !t.is_null()) {
        total += count_text(&tools.to_string());
    }
    total
}

pub(crate) fn block_tokens(block: &Value) -> u64 {
    match block.get("type").and_then(Value::as_str) {
        Some("text") => count_text(block.get("text").and_then(Value::as_str).unwrap_or("")),
        Some("thinking") => count_text(block.get("thinking").and_then(Value::as_str).unwrap_or("")),
        Some(kind @ ("image" | "document")) => {
            use base64::Engine;
            let bytes = block
                .get("source")
                .and_then(|s| s.get("data"))
                .and_then(Value::as_str)
                .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
                .unwrap_or_default();
            if kind == "image" {
                crate::tokens::image_tokens(&bytes)
            } else {
                crate::tokens::pdf_tokens(&bytes)
            }
        }
        Some("tool_result") => match block.get("content") {
            Some(Value::String(s)) => count_text(s),
            Some(Value::Array(inner)) => inner.iter().map(block_tokens).sum(),
            _ => 0,
        },
        _ => count_text(&block.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::{Message, MessagesRequest, Role};

    fn err(body: &str) -> String {
        messages_request(body.as_bytes()).expect_err("invalid")
    }

    #[test]
    fn the_count_equals_the_clients_estimate() {
        let mut req = MessagesRequest::new(
            "claude-sonnet-4-6",
            1024,
            vec![
                Message::text(Role::User, "Hello there, how are you?"),
                Message::text(Role::Assistant, "Fine. And you? 🦀 Grüße"),
                Message::text(Role::User, "x"),
            ],
        );
        req.system = Some("Be brief and kind.".into());
        let body = serde_json::to_vec(&req).expect("json");
        let p = messages_request(&body).expect("valid");
        assert_eq!(p.input_tokens, req.estimated_input_tokens());
        assert_eq!(p.last_user_prompt, "x");
        assert!(p.stream);
    }

    #[test]
    fn string_content_counts_like_a_text_block() {
        let a = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"abcdefgh"}]}"#;
        let p = messages_request(a.as_bytes()).expect("valid");
        assert_eq!(p.input_tokens, 3 + 4 + 2);
    }

    #[test]
    fn every_rule_has_its_message() {
        assert!(err("{nope").starts_with("The request body is not valid JSON"));
        assert_eq!(
            err("[1]"),
            "Input should be a valid dictionary or object to extract fields from"
        );
        assert_eq!(
            err(r#"{"max_tokens":5,"messages":[]}"#),
            "model: Field required"
        );
        assert_eq!(
            err(r#"{"model":"m","messages":[]}"#),
            "max_tokens: Field required"
        );
        assert_eq!(
            err(r#"{"model":"m","max_tokens":0,"messages":[]}"#),
            "max_tokens: Input should be greater than or equal to 1"
        );
        assert_eq!(
            err(r#"{"model":"m","max_tokens":-3,"messages":[]}"#),
            "max_tokens: Input should be greater than or equal to 1"
        );
        assert_eq!(
            err(r#"{"model":"m","max_tokens":"10","messages":[]}"#),
            "max_tokens: Input should be a valid integer"
        );
        assert_eq!(
            err(r#"{"model":"m","max_tokens":5}"#),
            "messages: Field required"
        );
        assert_eq!(
            err(r#"{"model":"m","max_tokens":5,"messages":[]}"#),
            "messages: at least one message is required"
        );
        assert_eq!(
            err(r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":""}]}"#),
            "messages.0: all messages must have non-empty content except for the optional final assistant message"
        );
        assert_eq!(
            err(r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[]}]}"#),
            "messages.0: all messages must have non-empty content except for the optional final assistant message"
        );
        assert_eq!(
            err(
                r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":""}]}]}"#
            ),
            "messages: text content blocks must be non-empty"
        );
        assert_eq!(
            err(r#"{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}"#),
            "messages.0.role: Input should be 'user' or 'assistant'"
        );
        assert_eq!(
            err(r#"{"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":"x"}]}"#),
            "messages: first message must use the \"user\" role"
        );
        // A final assistant turn may be empty (prefill).
        let ok = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":""}]}"#;
        assert!(messages_request(ok.as_bytes()).is_ok());
    }

    #[test]
    fn thinking_modes() {
        let body = |t: &str| {
            format!(
                r#"{{"model":"m","max_tokens":4096,"messages":[{{"role":"user","content":"x"}}],"thinking":{t}}}"#
            )
        };
        let mode = |t: &str| messages_request(body(t).as_bytes()).map(|p| p.thinking);
        assert_eq!(mode(r#"{"type":"adaptive"}"#), Ok(ThinkingMode::Shown));
        assert_eq!(
            mode(r#"{"type":"enabled","budget_tokens":2048}"#),
            Ok(ThinkingMode::Shown)
        );
        assert_eq!(
            mode(r#"{"type":"adaptive","display":"omitted"}"#),
            Ok(ThinkingMode::Omitted)
        );
        assert_eq!(mode(r#"{"type":"disabled"}"#), Ok(ThinkingMode::Off));
        assert!(mode(r#"{"type":"enabled","budget_tokens":10}"#).is_err());
        assert!(mode(r#"{"type":"enabled","budget_tokens":5000}"#).is_err());
        assert!(mode(r#"{"type":"sometimes"}"#).is_err());
    }

    #[test]
    fn count_tokens_needs_no_max_tokens() {
        let b = r#"{"model":"m","messages":[{"role":"user","content":"abcd"}],"system":"abcd"}"#;
        assert_eq!(count_tokens_request(b.as_bytes()), Ok(3 + 1 + 4 + 1));
        assert_eq!(
            count_tokens_request(br#"{"model":"m"}"#),
            Err("messages: Field required".into())
        );
    }
}
