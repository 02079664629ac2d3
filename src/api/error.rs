//! Errors from the wire: HTTP error responses, failures before the first byte, and breaks
//! after a stream has started.

use std::collections::BTreeMap;
use std::time::Duration;

use http::HeaderMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::types::{ErrorEnvelope, ErrorObject};

/// A non-2xx response, or an `event: error` inside a 200 stream, typed.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize)]
#[error("{}", self.summary())]
pub struct ApiError {
    /// HTTP status; `None` for an error that arrived inside a 200 stream.
    pub status: Option<u16>,
    /// `error.type`, e.g. `rate_limit_error`. For bodies that are not the JSON envelope this is
    /// derived from the status (`http_502`).
    pub error_type: String,
    /// The server's message, or a description of the body when it was not JSON.
    pub message: String,
    /// The `request-id` header (or the body's `request_id`).
    pub request_id: Option<String>,
    /// `error.details`, such as `{"error_code": "enforced_spend_limit_reached"}`.
    pub details: Option<Value>,
    /// The response headers (none of them carries the key).
    #[serde(serialize_with = "headers_as_map")]
    pub headers: HeaderMap,
}

/// `error.details.error_code` of a spend-cap 429 (docs/protocol.md, *Spend-cap 429*).
pub const SPEND_CAP_CODE: &str = "enforced_spend_limit_reached";

impl ApiError {
    /// Build from an HTTP error response. Never fails: a body that is not the JSON envelope
    /// (an HTML 502 page from a proxy, say) still gives a clear error.
    pub fn from_response(status: u16, headers: HeaderMap, body: &[u8]) -> ApiError {
        let header_id = header_str(&headers, "request-id");
        match serde_json::from_slice::<ErrorEnvelope>(body) {
            Ok(env) if !env.error.kind.is_empty() || !env.error.message.is_empty() => ApiError {
                status: Some(status),
                error_type: if env.error.kind.is_empty() {
                    fallback_type(status)
                } else {
                    env.error.kind
                },
                message: env.error.message,
                request_id: header_id.or(env.request_id),
                details: env.error.details.filter(|d| !d.is_null()),
                headers,
            },
            _ => {
                let text = String::from_utf8_lossy(body);
                let looks_html = text.trim_start().starts_with('<');
                let snippet = if looks_html {
                    html_title(&text).unwrap_or_else(|| "an HTML page".to_string())
                } else {
                    crate::util::clip(text.trim(), 200)
                };
                let message = if snippet.is_empty() {
                    format!("HTTP {status} with an empty body")
                } else {
                    format!("HTTP {status}, not an API error body: {snippet}")
                };
                ApiError {
                    status: Some(status),
                    error_type: fallback_type(status),
                    message,
                    request_id: header_id,
                    details: None,
                    headers,
                }
            }
        }
    }

    /// Build from an `event: error` frame received after HTTP 200.
    pub fn from_stream(env: ErrorEnvelope, headers: &HeaderMap) -> ApiError {
        let ErrorObject {
            kind,
            message,
            details,
        } = env.error;
        ApiError {
            status: None,
            error_type: kind,
            message,
            request_id: header_str(headers, "request-id").or(env.request_id),
            details: details.filter(|d| !d.is_null()),
            headers: headers.clone(),
        }
    }

    /// `error.details.error_code`, if any.
    pub fn error_code(&self) -> Option<&str> {
        self.details.as_ref()?.get("error_code")?.as_str()
    }

    /// The spend-cap 429: retrying cannot help until the cap resets.
    pub fn is_spend_cap(&self) -> bool {
        self.error_code() == Some(SPEND_CAP_CODE)
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        header_str(&self.headers, name)
    }

    /// One line: `429 rate_limit_error: message (request req_…)`.
    pub fn summary(&self) -> String {
        let status = match self.status {
            Some(s) => format!("{s} "),
            None => "stream ".to_string(),
        };
        let mut out = format!("{status}{}: {}", self.error_type, self.message);
        if let Some(id) = &self.request_id {
            out.push_str(&format!(" (request {id})"));
        }
        out
    }
}

fn fallback_type(status: u16) -> String {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        500 => "api_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => return format!("http_{status}"),
    }
    .to_string()
}

fn html_title(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title>")? + "<title>".len();
    let end = lower[start..].find("</title>")? + start;
    let title = text.get(start..end)?.trim();
    (!title.is_empty())
        .then(|| format!("an HTML page titled \"{}\"", crate::util::clip(title, 120)))
}

/// A header as a string, if present and readable.
pub fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn headers_as_map<S: Serializer>(headers: &HeaderMap, s: S) -> Result<S::Ok, S::Error> {
    let map: BTreeMap<&str, String> = headers
        .iter()
        .filter(|(k, _)| !is_sensitive(k.as_str()))
        .map(|(k, v)| {
            (
                k.as_str(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    map.serialize(s)
}

fn is_sensitive(name: &str) -> bool {
    matches!(
        name,
        "x-api-key" | "authorization" | "set-cookie" | "cookie" | "proxy-authorization"
    )
}

/// A failure before any response arrived (connect, TLS, timeout, a body we could not read).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum TransportError {
    /// Could not connect.
    #[error("could not connect to {0}")]
    Connect(String),
    /// No response headers within the timeout.
    #[error("no response within {0}")]
    Timeout(String),
    /// Anything else (a reset connection, an unreadable error body).
    #[error("network error: {0}")]
    Other(String),
}

/// How a stream broke after it had started (the turn ends `Interrupted`).
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StreamFailure {
    /// The server sent `event: error` after HTTP 200.
    #[error("the server ended the stream with an error: {0}")]
    Server(ApiError),
    /// The connection dropped.
    #[error("the connection dropped mid-reply: {0}")]
    Disconnected(String),
    /// No event arrived for this long.
    #[error("no data for {}s: the stream stalled", .0.as_secs())]
    IdleTimeout(#[serde(with = "crate::clock::serde_secs")] Duration),
    /// The stream ended without `message_stop`.
    #[error("the stream ended before the reply was complete")]
    EndedEarly,
    /// The bytes were not a valid event stream.
    #[error("the stream could not be read: {0}")]
    Decode(String),
    /// The reply grew past what its `max_tokens` allows (bytes); the text up to the cap is
    /// kept, the rest dropped.
    #[error("the reply exceeded {0} bytes, more than its max_tokens allows; the rest was dropped")]
    TooLong(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn envelope_is_typed() {
        let body = br#"{"type":"error","error":{"type":"rate_limit_error","message":"Spend cap","details":{"error_code":"enforced_spend_limit_reached"}},"request_id":"req_body"}"#;
        let e = ApiError::from_response(429, headers(&[("request-id", "req_hdr")]), body);
        assert_eq!(e.status, Some(429));
        assert_eq!(e.error_type, "rate_limit_error");
        assert_eq!(e.request_id.as_deref(), Some("req_hdr"));
        assert!(e.is_spend_cap());
        assert_eq!(
            e.summary(),
            "429 rate_limit_error: Spend cap (request req_hdr)"
        );
    }

    #[test]
    fn html_body_still_gives_a_clear_error() {
        let body = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>";
        let e = ApiError::from_response(502, HeaderMap::new(), body);
        assert_eq!(e.error_type, "http_502");
        assert!(e.message.contains("502 Bad Gateway"), "{}", e.message);
        let empty = ApiError::from_response(503, HeaderMap::new(), b"");
        assert_eq!(empty.message, "HTTP 503 with an empty body");
        let garbage = ApiError::from_response(500, HeaderMap::new(), &[0xff, 0xfe, b'x']);
        assert_eq!(garbage.error_type, "api_error");
    }

    #[test]
    fn sensitive_headers_are_never_serialized() {
        let e = ApiError::from_response(
            401,
            headers(&[("x-api-key", "sk-ant-secret"), ("request-id", "req_1")]),
            b"{}",
        );
        let json = serde_json::to_string(&e).expect("serializable");
        assert!(!json.contains("sk-ant-secret"));
        assert!(json.contains("req_1"));
    }
}
