//! The real transport: reqwest over HTTP(S), SSE decoded as it arrives.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::future::BoxFuture;

use super::error::TransportError;
use super::sse::decode_stream;
use super::transport::{ResponseBody, Transport, TransportResponse};
use super::types::{ANTHROPIC_VERSION, MessagesRequest, ModelInfo};
use crate::secret::ApiKey;

/// The public API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

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
    /// Defaults for a base URL: connect 10 s, headers 10 min (the SDKs' figure), idle 90 s.
    pub fn new(base_url: impl Into<String>, api_key: Option<ApiKey>) -> Self {
        HttpTransportConfig {
            base_url: base_url.into(),
            api_key,
            connect_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_mins(10),
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

    /// The URL requests are sent to.
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
        Box::pin(async move {
            let body =
                body.map_err(|e| TransportError::Other(format!("cannot encode the request: {e}")))?;
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
                        "{}s",
                        header_timeout.as_secs()
                    )));
                }
                Ok(Err(e)) => return Err(classify(e)),
                Ok(Ok(r)) => r,
            };
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            if (200..300).contains(&status) {
                let bytes = response.bytes_stream();
                let events = decode_stream(bytes, idle_timeout).boxed();
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
        self.messages_url.clone()
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
