//! The real transport: reqwest over HTTP(S), SSE decoded as it arrives.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::future::BoxFuture;

use super::error::{StreamFailure, TransportError};
use super::sse::{StreamLimits, decode_stream_with};
use super::transport::{ResponseBody, Transport, TransportResponse};
use super::types::{ANTHROPIC_VERSION, MessagesRequest, ModelInfo};
use crate::secret::ApiKey;

/// The public API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// How long a request waits for its response headers unless told otherwise.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_mins(1);

/// Settings of the HTTP transport.
#[derive(Clone, Debug)]
pub struct HttpTransportConfig {
    /// Base URL; may carry a path prefix (`http://host:port/anthropic`), to which
    /// `/v1/messages` is appended, as the official SDKs do.
    pub base_url: String,
    /// The key, sent as `x-api-key`. `None` sends no key (the server answers 401).
    pub api_key: Option<ApiKey>,
    /// Time allowed to open the connection.
    pub connect_timeout: Duration,
    /// Time allowed until the response headers arrive.
    pub header_timeout: Duration,
    /// Longest gap allowed between two SSE events before the stream counts as stalled.
    pub idle_timeout: Duration,
    /// How long an idle keep-alive connection is kept (`None`: no expiry timer; tests on a
    /// paused clock use that, so the pool's timer cannot make the clock jump).
    pub pool_idle_timeout: Option<Duration>,
}

impl HttpTransportConfig {
    /// Defaults for a base URL: connect 10 s, headers 60 s, idle 90 s. The SDKs allow ten
    /// minutes for the headers, but they also serve non-streaming requests, which answer only
    /// when the whole reply is ready; a streamed reply starts within seconds, and a person
    /// should not wait ten minutes to learn that a server hangs.
    pub fn new(base_url: impl Into<String>, api_key: Option<ApiKey>) -> Self {
        HttpTransportConfig {
            base_url: base_url.into(),
            api_key,
            connect_timeout: Duration::from_secs(10),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: Duration::from_secs(90),
            pool_idle_timeout: Some(Duration::from_secs(90)),
        }
    }
}

/// Sends Messages requests with reqwest.
#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    config: HttpTransportConfig,
    messages_url: String,
}

/// Largest error body we read; anything beyond is cut (an error body is small).
const MAX_ERROR_BODY: usize = 1 << 20;

impl HttpTransport {
    /// Build a transport. Fails only if the TLS stack cannot be set up.
    pub fn new(config: HttpTransportConfig) -> Result<Self, TransportError> {
        // reqwest is built without a default crypto provider; install ring once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(config.pool_idle_timeout)
            .user_agent(concat!("backchat/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::Other(format!("cannot set up the HTTP client: {e}")))?;
        let messages_url = join_url(&config.base_url, "/v1/messages");
        Ok(HttpTransport {
            client,
            config,
            messages_url,
        })
    }

    /// The URL requests are sent to (it may carry a password: show
    /// [`Transport::describe`] instead).
    pub fn messages_url(&self) -> &str {
        &self.messages_url
    }

    /// `GET /v1/models`, every page, newest first (docs/protocol.md, *Models*). An error is
    /// one line for a person: the status and the API's message, or what went wrong on the way.
    pub async fn list_models(&self) -> Result<Vec<ModelInfo>, String> {
        #[derive(serde::Deserialize)]
        struct Page {
            data: Vec<ModelInfo>,
            #[serde(default)]
            has_more: bool,
            #[serde(default)]
            last_id: Option<String>,
        }
        let url = join_url(&self.config.base_url, "/v1/models");
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        // A bound on pages, in case a server keeps saying has_more.
        for _ in 0..20 {
            // Model ids are URL-safe ([a-z0-9-.]), so the cursor needs no escaping.
            let page_url = match &after {
                Some(a) => format!("{url}?limit=1000&after_id={a}"),
                None => format!("{url}?limit=1000"),
            };
            let mut builder = self
                .client
                .get(&page_url)
                .header("anthropic-version", ANTHROPIC_VERSION);
            if let Some(key) = &self.config.api_key {
                builder = builder.header("x-api-key", key.expose());
            }
            let response = tokio::time::timeout(self.config.connect_timeout * 3, builder.send())
                .await
                .map_err(|_| "the model list timed out".to_string())?
                .map_err(|e| classify(e).to_string())?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = read_capped(response, self.config.idle_timeout)
                .await
                .map_err(|e| e.to_string())?;
            if !status.is_success() {
                let api = super::ApiError::from_response(status.as_u16(), headers, &body);
                return Err(crate::secret::redact(&format!(
                    "{} {}: {}",
                    status.as_u16(),
                    api.error_type,
                    api.message
                )));
            }
            let page: Page = serde_json::from_slice(&body)
                .map_err(|e| format!("the model list could not be read: {e}"))?;
            out.extend(page.data);
            match (page.has_more, page.last_id) {
                (true, Some(last)) => after = Some(last),
                _ => break,
            }
        }
        Ok(out)
    }
}

/// `url` with the password of its userinfo (`http://user:pw@host`) replaced by `***`, for
/// anything a person or a log may read. The URL still works as sent; only its display is
/// redacted. Borrows when there is no password.
pub fn redact_url_password(url: &str) -> std::borrow::Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return url.into();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.into();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.into();
    };
    let start = scheme_end + 3 + colon + 1;
    let end = scheme_end + 3 + at;
    format!("{}***{}", &url[..start], &url[end..]).into()
}

/// `base` + `path`, whatever slashes `base` ends with.
pub fn join_url(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

impl Transport for HttpTransport {
    fn send(
        &self,
        request: &MessagesRequest,
        _attempt: u32,
    ) -> BoxFuture<'static, Result<TransportResponse, TransportError>> {
        let body = serde_json::to_vec(request);
        let client = self.client.clone();
        let url = self.messages_url.clone();
        let key = self.config.api_key.clone();
        let header_timeout = self.config.header_timeout;
        let idle_timeout = self.config.idle_timeout;
        let limits = StreamLimits::for_max_tokens(request.max_tokens);
        Box::pin(async move {
            let body =
                body.map_err(|e| TransportError::Other(format!("cannot encode the request: {e}")))?;
            let size = body.len();
            if size > MAX_REQUEST_BYTES {
                return Ok(too_large(format!(
                    "The request is {} MB, over the API's {} MB limit; it was not sent.",
                    size / 1_000_000,
                    MAX_REQUEST_BYTES / 1_000_000
                )));
            }
            let mut builder = client
                .post(&url)
                .header("anthropic-version", ANTHROPIC_VERSION)
                .header("content-type", "application/json")
                .header("accept", "text/event-stream")
                .body(body);
            if let Some(key) = &key {
                builder = builder.header("x-api-key", key.expose());
            }
            let response = match tokio::time::timeout(header_timeout, builder.send()).await {
                Err(_) => {
                    return Err(TransportError::Timeout(format!(
                        "{}s (--header-timeout)",
                        header_timeout.as_secs()
                    )));
                }
                Ok(Err(e)) if size >= LARGE_REQUEST_BYTES && closed_while_sending(&e) => {
                    // A server that refuses a large body answers 413 and closes without
                    // reading it; the client then sees a broken pipe or a reset instead of the
                    // 413, depending on timing. Retrying would resend the whole body each time.
                    return Ok(too_large(format!(
                        "The server closed the connection while the {} MB request was being sent \
                         ({}); taken as 413 request_too_large, not retried.",
                        size / 1_000_000,
                        root_cause(&e)
                    )));
                }
                Ok(Err(e)) => return Err(classify(e)),
                Ok(Ok(r)) => r,
            };
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let content_type = super::error::header_str(&headers, "content-type");
            if (200..300).contains(&status)
                && let Some(ct) = content_type.filter(|ct| !ct.contains("event-stream"))
            {
                // A captive portal or a misrouted proxy answers 200 with a web page: say so,
                // instead of "the stream could not be read".
                let body = read_capped(response, idle_timeout)
                    .await
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
                let message = format!(
                    "the server answered {status} with content-type `{}`, not an event stream; \
                     is the base URL right? The body begins: {}",
                    crate::util::clip(&ct, 80),
                    crate::util::clip(text.trim(), 200)
                );
                let events =
                    futures::stream::once(async move { Err(StreamFailure::Decode(message)) })
                        .boxed();
                return Ok(TransportResponse {
                    status,
                    headers,
                    body: ResponseBody::Events(events),
                });
            }
            if (200..300).contains(&status) {
                let bytes = response.bytes_stream();
                let events = decode_stream_with(bytes, idle_timeout, limits).boxed();
                Ok(TransportResponse {
                    status,
                    headers,
                    body: ResponseBody::Events(events),
                })
            } else {
                let body = read_capped(response, idle_timeout).await?;
                Ok(TransportResponse {
                    status,
                    headers,
                    body: ResponseBody::Bytes(body),
                })
            }
        })
    }

    fn describe(&self) -> String {
        redact_url_password(&self.messages_url).into_owned()
    }
}

async fn read_capped(response: reqwest::Response, idle: Duration) -> Result<Bytes, TransportError> {
    let mut out = BytesMut::new();
    let mut stream = response.bytes_stream();
    loop {
        match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => return Err(TransportError::Timeout("reading the error body".into())),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(classify(e)),
            Ok(Some(Ok(chunk))) => {
                let room = MAX_ERROR_BODY.saturating_sub(out.len());
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if out.len() >= MAX_ERROR_BODY {
                    break;
                }
            }
        }
    }
    Ok(out.freeze())
}

/// The API's largest request body (docs/protocol.md): a larger one is answered 413 without
/// being read, so it is not sent at all.
pub const MAX_REQUEST_BYTES: usize = 32_000_000;

/// From this size on, a connection closed while the body is being sent is taken as a 413.
pub const LARGE_REQUEST_BYTES: usize = 1 << 20;

/// A 413 `request_too_large` made here, its message saying why.
fn too_large(message: String) -> TransportResponse {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": "request_too_large", "message": message},
    });
    TransportResponse {
        status: 413,
        headers: http::HeaderMap::new(),
        body: ResponseBody::Bytes(Bytes::from(body.to_string())),
    }
}

/// True when the connection broke while the request was being written (a broken pipe or a
/// reset), as when a server answers 413 early and closes.
fn closed_while_sending(e: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            )
        {
            return true;
        }
        source = s.source();
    }
    false
}

fn classify(e: reqwest::Error) -> TransportError {
    // reqwest's Display never includes request headers, so the key cannot leak through it.
    // The outer layers only repeat the URL ("error sending request for url …"); the host and
    // the innermost cause are what a person needs.
    let host = e
        .url()
        .map(|u| match (u.host_str(), u.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => String::new(),
        })
        .unwrap_or_default();
    let cause = root_cause(&e);
    let text = if host.is_empty() {
        cause
    } else {
        format!("{host}: {cause}")
    };
    if e.is_connect() {
        TransportError::Connect(text)
    } else if e.is_timeout() {
        TransportError::Timeout(text)
    } else {
        TransportError::Other(text)
    }
}

/// The innermost error's text ("Connection refused (os error 111)").
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_may_carry_a_path_prefix() {
        assert_eq!(
            join_url("http://h:1/anthropic/", "/v1/messages"),
            "http://h:1/anthropic/v1/messages"
        );
        assert_eq!(
            join_url("https://api.anthropic.com", "/v1/messages"),
            "https://api.anthropic.com/v1/messages"
        );
    }

    #[test]
    fn a_url_password_is_redacted() {
        assert_eq!(
            redact_url_password("http://u:pw@host:8080/p?q=a@b"),
            "http://u:***@host:8080/p?q=a@b"
        );
        assert_eq!(redact_url_password("https://u@host/"), "https://u@host/");
        assert_eq!(
            redact_url_password("https://host/a:b@c"),
            "https://host/a:b@c"
        );
        assert_eq!(redact_url_password("not a url"), "not a url");
    }

    #[tokio::test]
    async fn connection_refused_is_a_connect_error() {
        // Bind then drop a listener to get a loopback port nobody listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let t = HttpTransport::new(HttpTransportConfig::new(
            format!("http://127.0.0.1:{port}"),
            None,
        ))
        .expect("client");
        let req = MessagesRequest::new("m", 10, vec![]);
        match t.send(&req, 1).await {
            Err(TransportError::Connect(m)) => {
                assert!(m.starts_with(&format!("127.0.0.1:{port}: ")), "{m}");
                assert!(m.to_lowercase().contains("refused"), "{m}");
            }
            Err(other) => panic!("expected a connect error, got {other:?}"),
            Ok(_) => panic!("expected a connect error, got a response"),
        }
    }
}
