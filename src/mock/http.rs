//! HTTP helpers of the mock: the API key from the request headers, query parameters, the
//! request body under a size cap, and the JSON and error responses every handler builds.

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use serde_json::Value;

use super::faults::{self, ErrorReply};
use super::sse;

/// The key from `x-api-key`, else from `Authorization: Bearer` (what new SDKs send).
pub(super) fn api_key(headers: &HeaderMap) -> Option<String> {
    if let Some(k) = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        return Some(k.to_string());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = auth.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// The decoded value of `name` in a query string, if present.
pub(super) fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// Enough percent-decoding for model ids and numbers; malformed escapes are kept as is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a request body could not be read.
pub(super) enum BodyError {
    /// More than the cap arrived.
    TooLarge,
    /// The connection failed while the body was arriving.
    Broken,
}

/// The whole body, or [`BodyError::TooLarge`] as soon as it passes `max` bytes, so an
/// oversized body (one with no `content-length`, say) is never buffered whole.
pub(super) async fn read_body(body: Body, max: usize) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        if buf.len().saturating_add(chunk.len()) > max {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    json_text_response(status, body.to_string())
}

/// A response whose body is already JSON text.
pub(crate) fn json_text_response(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A 400 `invalid_request_error` with `message`.
pub(super) fn invalid(message: &str, request_id: &str) -> Response {
    error_response(
        &ErrorReply::new(400, "invalid_request_error", message),
        request_id,
    )
}

/// An error response with the envelope (or HTML page) and the error's own headers.
pub(crate) fn error_response(err: &ErrorReply, request_id: &str) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = if err.html_body {
        let page = if err.status == 503 {
            faults::HTML_503.to_string()
        } else {
            let reason = status.canonical_reason().unwrap_or("Error");
            format!(
                "<html>\r\n<head><title>{0} {1}</title></head>\r\n<body>\r\n<center><h1>{0} {1}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
                err.status, reason
            )
        };
        let mut r = Response::new(Body::from(page));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        r
    } else {
        json_text_response(
            status,
            sse::error_body(
                &err.error_type,
                &err.message,
                err.details.as_ref(),
                request_id,
            ),
        )
    };
    *r.status_mut() = status;
    let h = r.headers_mut();
    let mut put = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            h.insert(n, v);
        }
    };
    if let Some(v) = &err.retry_after {
        put("retry-after", v);
    }
    if let Some(v) = &err.retry_after_ms {
        put("retry-after-ms", v);
    }
    if let Some(b) = err.should_retry {
        put("x-should-retry", if b { "true" } else { "false" });
    }
    for (name, value) in &err.headers {
        put(name, value);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(api_key(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tok"),
        );
        assert_eq!(api_key(&h).as_deref(), Some("tok"));
        h.insert("x-api-key", HeaderValue::from_static("sk-1"));
        assert_eq!(api_key(&h).as_deref(), Some("sk-1"));
        let mut e = HeaderMap::new();
        e.insert("x-api-key", HeaderValue::from_static("  "));
        e.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(api_key(&e), None);
    }

    #[test]
    fn query_parsing() {
        assert_eq!(
            query_param("limit=5&after_id=a%2Db", "after_id").as_deref(),
            Some("a-b")
        );
        assert_eq!(query_param("limit=5", "before_id"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
