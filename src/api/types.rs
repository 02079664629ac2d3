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
        /// An explicit cache breakpoint after this block (`breakpoints` mode only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
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
        /// An explicit cache breakpoint after this block (`breakpoints` mode only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    /// A PDF, base64-encoded.
    Document {
        /// The bytes.
        source: Base64Source,
        /// Its name, shown to the model.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// An explicit cache breakpoint after this block (`breakpoints` mode only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
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

impl ContentBlock {
    /// A text block with no cache marker.
    pub fn text(text: impl Into<String>) -> ContentBlock {
        ContentBlock::Text {
            text: text.into(),
            cache_control: None,
        }
    }

    /// Put (or clear) an explicit cache breakpoint on this block. Thinking blocks cannot
    /// carry one; they are left as they are.
    fn set_cache_control(&mut self, marker: Option<CacheControl>) {
        match self {
            ContentBlock::Text { cache_control, .. }
            | ContentBlock::Image { cache_control, .. }
            | ContentBlock::Document { cache_control, .. } => *cache_control = marker,
            ContentBlock::Thinking { .. } => {}
        }
    }
}

/// How long a cache entry lives after its last use (docs/protocol.md, *Prompt caching*).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CacheTtl {
    /// Five minutes: the API's default, written at 1.25× the input price.
    #[default]
    #[serde(rename = "5m")]
    FiveMinutes,
    /// One hour, written at 2× the input price.
    #[serde(rename = "1h")]
    OneHour,
}

impl CacheTtl {
    /// `"5m"` or `"1h"`, as on the wire and in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheTtl::FiveMinutes => "5m",
            CacheTtl::OneHour => "1h",
        }
    }

    /// The lifetime.
    pub fn duration(self) -> std::time::Duration {
        match self {
            CacheTtl::FiveMinutes => std::time::Duration::from_mins(5),
            CacheTtl::OneHour => std::time::Duration::from_hours(1),
        }
    }

    /// Parse `"5m"` / `"1h"`.
    pub fn parse(s: &str) -> Option<CacheTtl> {
        match s {
            "5m" => Some(CacheTtl::FiveMinutes),
            "1h" => Some(CacheTtl::OneHour),
            _ => None,
        }
    }
}

/// How a request asks for prompt caching (config key `cache`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CacheMode {
    /// Automatic caching: one top-level `cache_control`; the API places the breakpoint on
    /// the last cacheable block and moves it forward as the conversation grows.
    #[default]
    Auto,
    /// Explicit breakpoints on the system prompt and on the last block of the newest
    /// message, for gateways and platforms without automatic caching.
    Breakpoints,
    /// No caching.
    Off,
}

impl CacheMode {
    /// Every mode, in the order they are listed to a person.
    pub const ALL: [CacheMode; 3] = [CacheMode::Auto, CacheMode::Breakpoints, CacheMode::Off];

    /// `"auto"`, `"breakpoints"` or `"off"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheMode::Auto => "auto",
            CacheMode::Breakpoints => "breakpoints",
            CacheMode::Off => "off",
        }
    }

    /// Parse a mode name.
    pub fn parse(s: &str) -> Option<CacheMode> {
        CacheMode::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// A `cache_control` object: `{"type":"ephemeral"}`, with `"ttl":"1h"` when asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheControl {
    /// Always `ephemeral`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The lifetime; absent means the API's default of five minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<CacheTtl>,
}

impl CacheControl {
    /// An ephemeral marker with this TTL. The default TTL is left off the wire, so a
    /// default request looks exactly like the SDKs' own examples.
    pub fn ephemeral(ttl: CacheTtl) -> CacheControl {
        CacheControl {
            kind: "ephemeral".into(),
            ttl: (ttl != CacheTtl::FiveMinutes).then_some(ttl),
        }
    }
}

/// The system prompt: a plain string, or text blocks (needed to carry a cache breakpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SystemPrompt {
    /// A plain string.
    Text(String),
    /// Text blocks.
    Blocks(Vec<ContentBlock>),
}

impl SystemPrompt {
    /// The text of the prompt, blocks joined.
    pub fn text(&self) -> String {
        match self {
            SystemPrompt::Text(s) => s.clone(),
            SystemPrompt::Blocks(blocks) => Message {
                role: Role::User,
                content: blocks.clone(),
            }
            .joined_text(),
        }
    }
}

impl From<&str> for SystemPrompt {
    fn from(s: &str) -> Self {
        SystemPrompt::Text(s.to_string())
    }
}

impl From<String> for SystemPrompt {
    fn from(s: String) -> Self {
        SystemPrompt::Text(s)
    }
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
            content: vec![ContentBlock::text(text)],
        }
    }

    /// All text blocks joined.
    pub fn joined_text(&self) -> String {
        let mut out = String::new();
        for block in &self.content {
            if let ContentBlock::Text { text, .. } = block {
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
    pub system: Option<SystemPrompt>,
    /// Stream the reply as SSE.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Extended thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
    /// Automatic prompt caching (docs/protocol.md, *Prompt caching*).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
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
            cache_control: None,
        }
    }

    /// Ask for prompt caching in `mode`. `Auto` sets the top-level marker; `Breakpoints`
    /// marks the system prompt and the last block of the newest message (turning a string
    /// system prompt into one text block); `Off` clears every marker. Only markers change:
    /// the text of every block stays byte for byte what it was.
    pub fn apply_cache(&mut self, mode: CacheMode, ttl: CacheTtl) {
        let marker = CacheControl::ephemeral(ttl);
        self.cache_control = (mode == CacheMode::Auto).then(|| marker.clone());
        let explicit = (mode == CacheMode::Breakpoints).then_some(marker);
        for m in &mut self.messages {
            for b in &mut m.content {
                b.set_cache_control(None);
            }
        }
        if let Some(system) = self.system.take() {
            self.system = Some(match (&explicit, system) {
                (Some(marker), SystemPrompt::Text(text)) => {
                    SystemPrompt::Blocks(vec![ContentBlock::Text {
                        text,
                        cache_control: Some(marker.clone()),
                    }])
                }
                (_, SystemPrompt::Blocks(mut blocks)) => {
                    let last = blocks.len().saturating_sub(1);
                    for (i, b) in blocks.iter_mut().enumerate() {
                        b.set_cache_control(if i == last { explicit.clone() } else { None });
                    }
                    SystemPrompt::Blocks(blocks)
                }
                (None, text) => text,
            });
        }
        if let Some(marker) = explicit
            && let Some(block) = self.messages.last_mut().and_then(|m| m.content.last_mut())
        {
            block.set_cache_control(Some(marker));
        }
    }

    /// The TTL of the cache entries this request writes, or `None` when it asks for no
    /// caching (no top-level marker and no block marker).
    pub fn cache_ttl(&self) -> Option<CacheTtl> {
        let ttl = |c: &CacheControl| c.ttl.unwrap_or_default();
        if let Some(c) = &self.cache_control {
            return Some(ttl(c));
        }
        let system = match &self.system {
            Some(SystemPrompt::Blocks(b)) => b.as_slice(),
            _ => &[],
        };
        system
            .iter()
            .chain(self.messages.iter().flat_map(|m| m.content.iter()))
            .find_map(|b| match b {
                ContentBlock::Text {
                    cache_control: Some(c),
                    ..
                } => Some(ttl(c)),
                _ => None,
            })
    }

    /// A fingerprint of the conversation this request belongs to: its model, system prompt
    /// and first message. Two requests of one conversation share it; cache predictions are
    /// kept under it.
    pub fn conversation_key(&self) -> u64 {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut h = DefaultHasher::new();
        self.model.hash(&mut h);
        self.system.as_ref().map(SystemPrompt::text).hash(&mut h);
        self.messages.first().map(Message::joined_text).hash(&mut h);
        h.finish()
    }

    /// Our estimate of the input tokens this request will be charged (see [`crate::tokens`]).
    pub fn estimated_input_tokens(&self) -> u64 {
        let mut total = crate::tokens::PER_REQUEST_OVERHEAD;
        match &self.system {
            Some(SystemPrompt::Text(text)) => total += crate::tokens::count_text(text),
            Some(SystemPrompt::Blocks(blocks)) => {
                total += blocks.iter().map(block_tokens).sum::<u64>();
            }
            None => {}
        }
        for m in &self.messages {
            total += crate::tokens::PER_MESSAGE_OVERHEAD;
            total += m.content.iter().map(block_tokens).sum::<u64>();
        }
        total
    }
}

fn block_tokens(block: &ContentBlock) -> u64 {
    match block {
        ContentBlock::Text { text, .. } => crate::tokens::count_text(text),
        ContentBlock::Thinking { thinking, .. } => crate::tokens::count_text(thinking),
        ContentBlock::Image { source, .. } => {
            crate::tokens::image_tokens(&decode_base64(&source.data))
        }
        ContentBlock::Document { source, .. } => {
            crate::tokens::pdf_tokens(&decode_base64(&source.data))
        }
    }
}

/// Model-id prefixes whose cache reads count toward ITPM (older models, per the rate-limits
/// page). Every other model's reads are free.
pub const CACHE_READS_COUNT: [&str; 3] = ["claude-3-5-haiku", "claude-3-haiku", "claude-3-opus"];

/// Whether cache reads count toward ITPM on `model`.
pub fn cache_reads_count(model: &str) -> bool {
    CACHE_READS_COUNT.iter().any(|p| model.starts_with(p))
}

/// `usage.cache_creation`: the tokens written to the cache, split by TTL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCreation {
    /// Written with the five-minute TTL.
    #[serde(default)]
    pub ephemeral_5m_input_tokens: u64,
    /// Written with the one-hour TTL.
    #[serde(default)]
    pub ephemeral_1h_input_tokens: u64,
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
    /// The cache writes split by TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
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
        if let Some(v) = delta.cache_creation {
            self.cache_creation = Some(v);
        }
    }

    /// Input tokens that count against ITPM: `input + cache_creation` (docs/protocol.md, *How the limits work*).
    pub fn rate_limited_input(&self) -> u64 {
        self.input_tokens + self.cache_write()
    }

    /// Tokens written to the cache.
    pub fn cache_write(&self) -> u64 {
        self.cache_creation_input_tokens.unwrap_or(0)
    }

    /// Tokens read from the cache.
    pub fn cache_read(&self) -> u64 {
        self.cache_read_input_tokens.unwrap_or(0)
    }

    /// Every input token of the request: uncached, written and read.
    pub fn total_input(&self) -> u64 {
        self.input_tokens + self.cache_write() + self.cache_read()
    }

    /// The cache writes split by TTL. A server that reports only the total is taken to
    /// have written it with the five-minute TTL, the API's default.
    pub fn cache_writes_by_ttl(&self) -> CacheCreation {
        self.cache_creation.unwrap_or(CacheCreation {
            ephemeral_5m_input_tokens: self.cache_write(),
            ephemeral_1h_input_tokens: 0,
        })
    }
}

impl From<&Usage> for crate::cost::Tokens {
    fn from(u: &Usage) -> Self {
        let writes = u.cache_writes_by_ttl();
        crate::cost::Tokens {
            input: u.input_tokens,
            cache_write_5m: writes.ephemeral_5m_input_tokens,
            cache_write_1h: writes.ephemeral_1h_input_tokens,
            cache_read: u.cache_read(),
            output: u.output_tokens,
        }
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
    /// Cumulative cache writes by TTL, when present.
    #[serde(default)]
    pub cache_creation: Option<CacheCreation>,
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
    fn cache_modes_put_the_markers_where_docs_say() {
        let mut req = MessagesRequest::new(
            "claude-sonnet-4-6",
            1024,
            vec![
                Message::text(Role::User, "Hi"),
                Message::text(Role::Assistant, "Hello"),
                Message::text(Role::User, "More"),
            ],
        );
        req.system = Some("Be brief.".into());
        req.apply_cache(CacheMode::Auto, CacheTtl::FiveMinutes);
        let v: Value = serde_json::to_value(&req).expect("serializable");
        assert_eq!(v["cache_control"], serde_json::json!({"type": "ephemeral"}));
        assert_eq!(v["system"], "Be brief.");
        assert!(
            v["messages"][2]["content"][0]
                .get("cache_control")
                .is_none()
        );

        req.apply_cache(CacheMode::Breakpoints, CacheTtl::OneHour);
        let v: Value = serde_json::to_value(&req).expect("serializable");
        let marker = serde_json::json!({"type": "ephemeral", "ttl": "1h"});
        assert!(v.get("cache_control").is_none());
        assert_eq!(
            v["system"],
            serde_json::json!([{"type": "text", "text": "Be brief.", "cache_control": marker}])
        );
        assert_eq!(v["messages"][2]["content"][0]["cache_control"], marker);
        assert!(
            v["messages"][0]["content"][0]
                .get("cache_control")
                .is_none()
        );
        assert_eq!(req.estimated_input_tokens(), {
            let mut plain = req.clone();
            plain.apply_cache(CacheMode::Off, CacheTtl::FiveMinutes);
            plain.estimated_input_tokens()
        });

        req.apply_cache(CacheMode::Off, CacheTtl::FiveMinutes);
        let text = serde_json::to_string(&req).expect("serializable");
        assert!(!text.contains("cache_control"), "{text}");
    }

    #[test]
    fn usage_reads_the_cache_fields() {
        let u: Usage = serde_json::from_str(
            r#"{"input_tokens":50,"output_tokens":3,"cache_creation_input_tokens":1000,
                "cache_read_input_tokens":9000,
                "cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":1000}}"#,
        )
        .expect("usage");
        assert_eq!(u.rate_limited_input(), 1050);
        assert_eq!(u.total_input(), 10_050);
        assert_eq!(u.cache_writes_by_ttl().ephemeral_1h_input_tokens, 1000);
        let bare = Usage {
            cache_creation_input_tokens: Some(7),
            ..Usage::default()
        };
        assert_eq!(bare.cache_writes_by_ttl().ephemeral_5m_input_tokens, 7);
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
