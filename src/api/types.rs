//! Request and response types of `POST /v1/messages` (docs/protocol.md, *Request* and *Streaming*).
//!
//! Only what a chat client sends is typed strictly; everything the server may add later is
//! tolerated (`#[serde(default)]`, unknown fields ignored, unknown block types kept as JSON).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `anthropic-version` header value every official SDK sends with `x-api-key`.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Who said a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person.
    User,
    /// Claude.
    Assistant,
}

impl Role {
    /// `"user"` or `"assistant"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// A content block of a message we send (docs/protocol.md, *Conversation rules*).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// A thinking block, echoed back unmodified with its signature.
    Thinking {
        /// The thinking text.
        thinking: String,
        /// The signature that must accompany it.
        signature: String,
    },
    /// An image (PNG, JPEG, GIF or WebP), base64-encoded.
    Image {
        /// The bytes.
        source: Base64Source,
    },
    /// A PDF, base64-encoded.
    Document {
        /// The bytes.
        source: Base64Source,
        /// Its name, shown to the model.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
}

/// `{"type": "base64", "media_type": …, "data": …}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Base64Source {
    /// Always `"base64"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `image/png`, `application/pdf`, …
    pub media_type: String,
    /// The bytes, base64 (standard alphabet, padded).
    pub data: String,
}

/// One turn of the conversation as sent to the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: Vec<ContentBlock>,
}

impl Message {
    /// A message of a single text block.
    pub fn text(role: Role, text: impl Into<String>) -> Message {
        Message {
            role,
            content: vec![ContentBlock::Text { text: text.into() }],
        }
    }

    /// All text blocks joined.
    pub fn joined_text(&self) -> String {
        let mut out = String::new();
        for block in &self.content {
            if let ContentBlock::Text { text } = block {
                out.push_str(text);
            }
        }
        out
    }
}

/// Extended-thinking settings (docs/protocol.md, *Body*).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Thinking {
    /// Thinking with a token budget.
    Enabled {
        /// Tokens the model may spend thinking.
        budget_tokens: u32,
    },
    /// The model decides.
    Adaptive,
    /// No thinking.
    Disabled,
}

/// The body of `POST /v1/messages`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    /// Model id or alias.
    pub model: String,
    /// Upper bound on generated tokens.
    pub max_tokens: u32,
    /// The conversation, alternating user/assistant, starting with the user.
    pub messages: Vec<Message>,
    /// System prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Stream the reply as SSE.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Extended thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
}

impl MessagesRequest {
    /// A streaming request for one user prompt.
    pub fn new(model: impl Into<String>, max_tokens: u32, messages: Vec<Message>) -> Self {
        MessagesRequest {
            model: model.into(),
            max_tokens,
            messages,
            system: None,
            stream: true,
            temperature: None,
            thinking: None,
        }
    }

    /// Our estimate of the input tokens this request will be charged (see [`crate::tokens`]).
    pub fn estimated_input_tokens(&self) -> u64 {
        let mut total = crate::tokens::PER_REQUEST_OVERHEAD;
        if let Some(system) = &self.system {
            total += crate::tokens::count_text(system);
        }
        for m in &self.messages {
            total += crate::tokens::PER_MESSAGE_OVERHEAD;
            for block in &m.content {
                total += match block {
                    ContentBlock::Text { text } => crate::tokens::count_text(text),
                    ContentBlock::Thinking { thinking, .. } => crate::tokens::count_text(thinking),
                    ContentBlock::Image { source } => {
                        crate::tokens::image_tokens(&decode_base64(&source.data))
                    }
                    ContentBlock::Document { source, .. } => {
                        crate::tokens::pdf_tokens(&decode_base64(&source.data))
                    }
                };
            }
        }
        total
    }
}

/// The bytes of base64 data (empty if it is not base64).
fn decode_base64(data: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap_or_default()
}

/// Token usage. Every field is optional on the wire except the two counts; values in a stream
/// are cumulative (docs/protocol.md, *Usage is cumulative*): merge with [`Usage::overwrite_from`], never add.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens after the last cache breakpoint.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens so far.
    #[serde(default)]
    pub output_tokens: u64,
    /// Tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
}

impl Usage {
    /// Apply a cumulative update: each field present replaces the stored one.
    pub fn overwrite_from(&mut self, delta: &UsageDelta) {
        if let Some(v) = delta.input_tokens {
            self.input_tokens = v;
        }
        if let Some(v) = delta.output_tokens {
            self.output_tokens = v;
        }
        if let Some(v) = delta.cache_creation_input_tokens {
            self.cache_creation_input_tokens = Some(v);
        }
        if let Some(v) = delta.cache_read_input_tokens {
            self.cache_read_input_tokens = Some(v);
        }
    }

    /// Input tokens that count against ITPM: `input + cache_creation` (docs/protocol.md, *How the limits work*).
    pub fn rate_limited_input(&self) -> u64 {
        self.input_tokens + self.cache_creation_input_tokens.unwrap_or(0)
    }
}

/// Usage as `message_delta` carries it: any field may be absent or null.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageDelta {
    /// Cumulative input tokens, when present.
    #[serde(default)]
    pub input_tokens: Option<u64>,
    /// Cumulative output tokens.
    #[serde(default)]
    pub output_tokens: Option<u64>,
    /// Cumulative cache-creation tokens, when present.
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    /// Cumulative cache-read tokens, when present.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

/// A content block of a response (non-streaming `content`, or a stream's `content_block_start`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseBlock {
    /// Text.
    Text {
        /// The text so far.
        #[serde(default)]
        text: String,
    },
    /// Visible thinking.
    Thinking {
        /// The thinking so far.
        #[serde(default)]
        thinking: String,
        /// Its signature.
        #[serde(default)]
        signature: String,
    },
    /// Thinking the API returns encrypted.
    RedactedThinking {
        /// Opaque data.
        #[serde(default)]
        data: String,
    },
    /// A tool call.
    ToolUse {
        /// Call id.
        #[serde(default)]
        id: String,
        /// Tool name.
        #[serde(default)]
        name: String,
        /// Arguments.
        #[serde(default)]
        input: Value,
    },
    /// Any block type this client does not know; kept, not fatal.
    #[serde(other)]
    Unknown,
}

/// The non-streaming response object (docs/protocol.md, *The non-streaming response*), and the snapshot in `message_start`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageResponse {
    /// `msg_…`
    #[serde(default)]
    pub id: String,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// Always `assistant`.
    #[serde(default = "assistant")]
    pub role: Role,
    /// Content blocks.
    #[serde(default)]
    pub content: Vec<ResponseBlock>,
    /// Why generation stopped; null in the `message_start` snapshot.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The stop sequence matched, if any.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Usage.
    #[serde(default)]
    pub usage: Usage,
}

fn assistant() -> Role {
    Role::Assistant
}

/// A `content_block_delta`'s `delta` (docs/protocol.md, *Deltas*).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delta {
    /// `text_delta`: append.
    TextDelta {
        /// Text to append.
        text: String,
    },
    /// `thinking_delta`: append.
    ThinkingDelta {
        /// Thinking to append.
        thinking: String,
    },
    /// `signature_delta`: replace.
    SignatureDelta {
        /// The signature.
        signature: String,
    },
    /// `input_json_delta`: append, parse at block stop.
    InputJsonDelta {
        /// A fragment of JSON.
        partial_json: String,
    },
    /// `citations_delta`: push.
    CitationsDelta {
        /// One citation.
        citation: Value,
    },
    /// A delta type this client does not know: skipped.
    #[serde(other)]
    Unknown,
}

/// `message_delta`'s `delta`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageDeltaBody {
    /// Why generation stopped.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The stop sequence matched.
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

/// The error object inside the error envelope (docs/protocol.md, *Error envelope*).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// e.g. `rate_limit_error`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Human text from the server.
    #[serde(default)]
    pub message: String,
    /// Extra details, such as `{"error_code": "enforced_spend_limit_reached"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// `{"type":"error","error":{…},"request_id":"req_…"}`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorObject,
    /// Matches the `request-id` header.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// One decoded server-sent event of a Messages stream (docs/protocol.md, *Streaming*).
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// First event: the message snapshot with initial usage.
    MessageStart(MessageResponse),
    /// A block opens.
    ContentBlockStart {
        /// Position in the final `content`.
        index: usize,
        /// The block's initial state.
        block: ResponseBlock,
    },
    /// A block grows.
    ContentBlockDelta {
        /// Which block.
        index: usize,
        /// How.
        delta: Delta,
    },
    /// A block closes.
    ContentBlockStop {
        /// Which block.
        index: usize,
    },
    /// Top-level changes and cumulative usage.
    MessageDelta {
        /// Stop reason and sequence.
        delta: MessageDeltaBody,
        /// Cumulative usage.
        usage: UsageDelta,
    },
    /// Last event of a complete stream.
    MessageStop,
    /// Keep-alive.
    Ping,
    /// An error after HTTP 200; terminal.
    Error(ErrorEnvelope),
}

/// `GET /v1/models` entry (docs/protocol.md, *Models*).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model id.
    pub id: String,
    /// Human name.
    #[serde(default)]
    pub display_name: String,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_serializes_like_the_sdks() {
        let mut req = MessagesRequest::new(
            "claude-sonnet-4-6",
            1024,
            vec![Message::text(Role::User, "Hi")],
        );
        req.system = Some("Be brief.".into());
        let v: Value = serde_json::to_value(&req).expect("serializable");
        assert_eq!(
            v,
            serde_json::json!({
                "model": "claude-sonnet-4-6",
                "max_tokens": 1024,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                "system": "Be brief.",
                "stream": true
            })
        );
    }

    #[test]
    fn usage_is_overwritten_not_added() {
        let mut u = Usage {
            input_tokens: 25,
            output_tokens: 1,
            ..Usage::default()
        };
        u.overwrite_from(&UsageDelta {
            output_tokens: Some(15),
            ..UsageDelta::default()
        });
        u.overwrite_from(&UsageDelta {
            output_tokens: Some(40),
            ..UsageDelta::default()
        });
        assert_eq!((u.input_tokens, u.output_tokens), (25, 40));
    }

    #[test]
    fn unknown_block_and_delta_types_are_tolerated() {
        let b: ResponseBlock =
            serde_json::from_str(r#"{"type":"web_search_tool_result","x":1}"#).expect("tolerated");
        assert_eq!(b, ResponseBlock::Unknown);
        let d: Delta = serde_json::from_str(r#"{"type":"future_delta","y":2}"#).expect("tolerated");
        assert_eq!(d, Delta::Unknown);
    }
}
