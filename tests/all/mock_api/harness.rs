//! The helpers every mock API test uses: a [`Harness`] (the mock and a client without an idle
//! pool), whole-response reads, SSE parsing, and request builders.

use std::time::Duration;

use backchat::api::types::{Message, MessagesRequest, Role};
use backchat::mock::{MockConfig, MockServer};
use serde_json::{Value, json};

/// The API key the tests send.
pub(crate) const KEY: &str = "sk-ant-test-key";

/// A response, read to its end (or to the transport error that broke it off).
pub(crate) struct Reply {
    /// The HTTP status.
    pub(crate) status: u16,
    headers: reqwest::header::HeaderMap,
    /// The body as text.
    pub(crate) body: String,
    /// The body broke off with a transport error.
    pub(crate) broken: bool,
}

impl Reply {
    /// A header's value, if present and text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (panics if it is not).
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    /// The body as SSE frames: (event name, data).
    pub(crate) fn events(&self) -> Vec<(String, Value)> {
        parse_sse(&self.body)
    }
}

/// A mock server and a client for it.
pub(crate) struct Harness {
    /// The running mock.
    pub(crate) server: MockServer,
    /// A client without an idle pool.
    pub(crate) client: reqwest::Client,
}

impl Harness {
    /// Start a mock with `config` and a client for it.
    pub(crate) async fn start(config: MockConfig) -> Harness {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = MockServer::start(config).await.expect("mock starts");
        let client = reqwest::Client::builder()
            // No idle pool: its cleanup timer would make a paused clock jump.
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        Harness { server, client }
    }

    /// The full URL of `path` on the mock.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    /// POST `body` as JSON to `path`, with `key` as `x-api-key` if given.
    pub(crate) async fn post_as(&self, path: &str, body: &Value, key: Option<&str>) -> Reply {
        let mut rb = self
            .client
            .post(self.url(path))
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(k) = key {
            rb = rb.header("x-api-key", k);
        }
        send(rb).await
    }

    /// POST `body` to `/v1/messages` with the test key.
    pub(crate) async fn post(&self, body: &Value) -> Reply {
        self.post_as("/v1/messages", body, Some(KEY)).await
    }

    /// GET `path` with the test key.
    pub(crate) async fn get(&self, path: &str) -> Reply {
        send(
            self.client
                .get(self.url(path))
                .header("anthropic-version", "2023-06-01")
                .header("x-api-key", KEY),
        )
        .await
    }
}

/// Send and read the whole response, noting a body that breaks off.
pub(crate) async fn send(rb: reqwest::RequestBuilder) -> Reply {
    let mut resp = rb.send().await.expect("response headers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut bytes = Vec::new();
    let mut broken = false;
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => bytes.extend_from_slice(&c),
            Ok(None) => break,
            Err(_) => {
                broken = true;
                break;
            }
        }
    }
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes).expect("UTF-8 body"),
        broken,
    }
}

/// Split an SSE body into (event name, data) frames, checking that name and `type` agree.
pub(crate) fn parse_sse(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|frame| {
            let mut event = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d.to_string();
                }
            }
            let value: Value = serde_json::from_str(&data).expect("frame data is JSON");
            assert_eq!(value["type"], event.as_str(), "event name and type agree");
            (event, value)
        })
        .collect()
}

/// The text of every `text_delta`, joined.
pub(crate) fn text_of(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(_, v)| v["delta"]["type"] == "text_delta")
        .map(|(_, v)| v["delta"]["text"].as_str().expect("text").to_string())
        .collect()
}

/// The event names, in order.
pub(crate) fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

/// A request built with the client's own types, so counts can be compared with its estimate.
pub(crate) fn request(prompt: &str, stream: bool) -> MessagesRequest {
    let mut r = MessagesRequest::new(
        "claude-sonnet-4-6",
        1024,
        vec![
            Message::text(Role::User, "Hi!"),
            Message::text(Role::Assistant, "Hello — how can I help? 🙂"),
            Message::text(Role::User, prompt),
        ],
    );
    r.system = Some("You are concise.".into());
    r.stream = stream;
    r
}

/// A request as the JSON body sent.
pub(crate) fn body(r: &MessagesRequest) -> Value {
    serde_json::to_value(r).expect("serializable")
}

/// A one-message request for `claude-sonnet-4-6`.
pub(crate) fn simple(prompt: &str, max_tokens: u64, stream: bool) -> Value {
    json!({"model": "claude-sonnet-4-6", "max_tokens": max_tokens, "stream": stream,
           "messages": [{"role": "user", "content": prompt}]})
}

/// Generates instantly: only the test moves the clock.
pub(crate) fn instant() -> MockConfig {
    MockConfig {
        token_rate: 1e9,
        first_token_latency: Duration::ZERO,
        ..MockConfig::default()
    }
}

/// Check an error reply: status, envelope, `error.type` and the `request_id` that matches
/// the header. Returns the message.
pub(crate) fn assert_envelope(r: &Reply, status: u16, error_type: &str) -> String {
    assert_eq!(r.status, status, "{}", r.body);
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], error_type, "{}", r.body);
    let rid = r.header("request-id").expect("request-id header");
    assert!(rid.starts_with("req_"), "{rid}");
    assert_eq!(v["request_id"], rid);
    v["error"]["message"].as_str().expect("message").to_string()
}
