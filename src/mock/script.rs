//! Scripted responses: a FIFO queue of steps, one consumed by each `POST /v1/messages`.
//!
//! Error steps answer at once (with the current rate-limit headers, consuming nothing).
//! The other steps shape a normal reply: the request is still validated and admitted by the
//! rate limiter, and the step replaces the random fault draw for it. A step is consumed even
//! when the request it shaped ends in a 400 or 429. The same steps come from scenario files
//! (`[[script]]`), from code ([`super::MockControl::push_script`]) and from the test-only
//! `POST /_mock/script` endpoint, all in one serde form: `{"type": "error", "status": 429, …}`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One scripted response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScriptStep {
    /// Normal behaviour (validation, limits, a reply), with no random fault.
    Ok,
    /// A normal reply whose text is `text` instead of a canned reply.
    Reply {
        /// The reply text (streamed in chunks like any other).
        text: String,
    },
    /// An error response instead of a reply.
    Error {
        /// HTTP status.
        status: u16,
        /// `error.type`; empty means the usual type for the status (429 → `rate_limit_error`).
        #[serde(default)]
        error_type: String,
        /// `error.message`; empty means the usual message for the type.
        #[serde(default)]
        message: String,
        /// Raw `retry-after` header text ("2", "2.5", an HTTP-date, or garbage).
        #[serde(default)]
        retry_after: Option<String>,
        /// Raw `retry-after-ms` header text.
        #[serde(default)]
        retry_after_ms: Option<String>,
        /// `x-should-retry: true|false`.
        #[serde(default)]
        should_retry: Option<bool>,
        /// `error.details` (e.g. `{"error_code": "…"}`); absent when `None`.
        #[serde(default)]
        details: Option<Value>,
        /// Send an HTML page instead of the JSON envelope, as a proxy would.
        #[serde(default)]
        html_body: bool,
        /// Extra response headers.
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    /// A 200 stream that sends `event: error` after `after_tokens` output tokens.
    MidStreamError {
        /// Output tokens sent before the error.
        after_tokens: u64,
        /// `error.type` of the frame.
        #[serde(default = "overloaded_error")]
        error_type: String,
    },
    /// A 200 stream whose connection is cut after `after_tokens` output tokens.
    Drop {
        /// Output tokens sent before the cut.
        after_tokens: u64,
    },
    /// A 200 stream that ends cleanly at the HTTP level after `after_tokens`, with no
    /// `message_stop`.
    EndWithoutStop {
        /// Output tokens sent before the end.
        after_tokens: u64,
    },
    /// A 200 stream that stops sending after `after_tokens` and keeps the connection open
    /// (until the client gives up or the server shuts down).
    Stall {
        /// Output tokens sent before the stall.
        after_tokens: u64,
    },
    /// A 200 stream that goes silent for `delay` after `after_tokens`, then carries on.
    Pause {
        /// Output tokens sent before the pause.
        after_tokens: u64,
        /// How long it is silent (`delay_ms` in files and JSON).
        #[serde(rename = "delay_ms", with = "millis")]
        delay: Duration,
    },
    /// A normal reply whose response headers come only after `delay`.
    SlowFirstByte {
        /// The delay (`delay_ms` in files and JSON).
        #[serde(rename = "delay_ms", with = "millis")]
        delay: Duration,
    },
    /// The spend-cap 429: `rate_limit_error`, `details.error_code =
    /// "enforced_spend_limit_reached"`, no `retry-after`.
    SpendCap,
}

fn overloaded_error() -> String {
    "overloaded_error".into()
}

impl ScriptStep {
    /// An error step with the usual type and message for `status`.
    pub fn error(status: u16) -> ScriptStep {
        ScriptStep::Error {
            status,
            error_type: String::new(),
            message: String::new(),
            retry_after: None,
            retry_after_ms: None,
            should_retry: None,
            details: None,
            html_body: false,
            headers: Vec::new(),
        }
        .normalized()
    }

    /// A 429 `rate_limit_error` with this raw `retry-after` text.
    pub fn rate_limited(retry_after: impl Into<String>) -> ScriptStep {
        ScriptStep::error(429).with_retry_after(retry_after)
    }

    /// A 529 `overloaded_error` with no `retry-after`.
    pub fn overloaded() -> ScriptStep {
        ScriptStep::error(529)
    }

    /// Set `retry-after` (error steps only; other steps are returned unchanged).
    pub fn with_retry_after(mut self, value: impl Into<String>) -> ScriptStep {
        if let ScriptStep::Error { retry_after, .. } = &mut self {
            *retry_after = Some(value.into());
        }
        self
    }

    /// Set `retry-after-ms` (error steps only).
    pub fn with_retry_after_ms(mut self, value: impl Into<String>) -> ScriptStep {
        if let ScriptStep::Error { retry_after_ms, .. } = &mut self {
            *retry_after_ms = Some(value.into());
        }
        self
    }

    /// Set `x-should-retry` (error steps only).
    pub fn with_should_retry(mut self, value: bool) -> ScriptStep {
        if let ScriptStep::Error { should_retry, .. } = &mut self {
            *should_retry = Some(value);
        }
        self
    }

    /// Set `error.details` (error steps only).
    pub fn with_details(mut self, value: Value) -> ScriptStep {
        if let ScriptStep::Error { details, .. } = &mut self {
            *details = Some(value);
        }
        self
    }

    /// Set `error.message` (error steps only).
    pub fn with_message(mut self, value: impl Into<String>) -> ScriptStep {
        if let ScriptStep::Error { message, .. } = &mut self {
            *message = value.into();
        }
        self
    }

    /// Add a response header (error steps only).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> ScriptStep {
        if let ScriptStep::Error { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }

    /// Send an HTML body instead of JSON (error steps only).
    pub fn with_html_body(mut self) -> ScriptStep {
        if let ScriptStep::Error { html_body, .. } = &mut self {
            *html_body = true;
        }
        self
    }

    /// Fill an error step's empty type and message from its status.
    pub fn normalized(mut self) -> ScriptStep {
        if let ScriptStep::Error {
            status,
            error_type,
            message,
            ..
        } = &mut self
        {
            if error_type.is_empty() {
                *error_type = default_error_type(*status).to_string();
            }
            if message.is_empty() {
                *message = default_message(error_type).to_string();
            }
        }
        self
    }
}

/// The `error.type` the API uses for a status (the table is in docs/protocol.md).
pub fn default_error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        s if (400..500).contains(&s) => "invalid_request_error",
        _ => "api_error",
    }
}

/// A message like the API's for an error type.
pub fn default_message(error_type: &str) -> &'static str {
    match error_type {
        "overloaded_error" => "Overloaded",
        "api_error" => "Internal server error",
        "rate_limit_error" => {
            "This request would exceed the rate limit for your organization. Please try again later."
        }
        "timeout_error" => "Request timed out",
        "authentication_error" => "invalid x-api-key",
        "permission_error" => {
            "Your API key does not have permission to use the specified resource."
        }
        "not_found_error" => "Not found",
        "billing_error" => "Your credit balance is too low to access the Anthropic API.",
        "request_too_large" => "Request exceeds the maximum allowed number of bytes.",
        "conflict_error" => "Conflict",
        _ => "Invalid request",
    }
}

/// The HTTP status that carries an error type outside a stream.
pub fn status_for_error_type(error_type: &str) -> u16 {
    match error_type {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// Durations as whole milliseconds in files and JSON.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_through_json() {
        let steps = vec![
            ScriptStep::rate_limited("2.5").with_should_retry(true),
            ScriptStep::Ok,
            ScriptStep::SlowFirstByte {
                delay: Duration::from_millis(1500),
            },
            ScriptStep::SpendCap,
        ];
        let json = serde_json::to_string(&steps).expect("serializable");
        let back: Vec<ScriptStep> = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, steps);
    }

    #[test]
    fn short_forms_parse_and_fill_defaults() {
        let s: ScriptStep =
            serde_json::from_str(r#"{"type":"error","status":529}"#).expect("parses");
        assert_eq!(s.normalized(), ScriptStep::overloaded());
        let m: ScriptStep =
            serde_json::from_str(r#"{"type":"mid_stream_error","after_tokens":5}"#).expect("ok");
        assert_eq!(
            m,
            ScriptStep::MidStreamError {
                after_tokens: 5,
                error_type: "overloaded_error".into()
            }
        );
        let bad = serde_json::from_str::<ScriptStep>(r#"{"type":"drop","after_tokenz":5}"#);
        assert!(bad.is_err(), "unknown fields are rejected");
    }

    #[test]
    fn error_types_follow_the_status_table() {
        assert_eq!(default_error_type(429), "rate_limit_error");
        assert_eq!(default_error_type(503), "api_error");
        assert_eq!(default_error_type(422), "invalid_request_error");
        assert_eq!(status_for_error_type("overloaded_error"), 529);
        assert_eq!(status_for_error_type("whatever"), 500);
    }
}
