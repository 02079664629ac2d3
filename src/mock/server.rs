//! The HTTP server: routing, body limit, auth, and the order of checks on
//! `POST /v1/messages`.
//!
//! Order, as the real API (and the Cloudflare in front of it) applies it:
//! body size (413) → route (404/405) → key (401) → `anthropic-version` (400) → scripted step
//! → validation (400) → scheduled outage → random faults → rate limits (429) → slow first
//! byte → the reply. Every response carries `request-id`; every response after auth carries
//! the `anthropic-ratelimit-*` headers of the caller's key.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::{FaultRates, MockConfig, MockLimits};
use super::faults::{self, ErrorReply, RandomStreamFault, StreamFault};
use super::generate::{self, Plan};
use super::limits::{
    Admission, KeyId, Limiter, limit_message, retry_after_millis, retry_after_secs,
};
use super::script::ScriptStep;
use super::stats::{MockStats, RequestRecord};
use super::{models, sse, validate};
use crate::clock;

/// The organization id every response names (`anthropic-organization-id`, 429 messages).
pub const ORG_ID: &str = "00000000-0000-4000-8000-000000000000";

/// State shared by the handlers, the stream tasks and [`MockControl`].
pub(crate) struct Shared {
    pub(crate) config: MockConfig,
    rejected: Vec<KeyId>,
    started: Instant,
    state: Mutex<MockState>,
    shutdown: watch::Receiver<bool>,
}

/// The mutable part, behind one lock that is never held across an await.
pub(crate) struct MockState {
    pub(crate) limiter: Limiter,
    script: VecDeque<ScriptStep>,
    pub(crate) stats: MockStats,
    pub(crate) rng: StdRng,
    faults: FaultRates,
}

impl Shared {
    fn new(config: MockConfig, shutdown: watch::Receiver<bool>) -> Shared {
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_rng(&mut rand::rng()),
        };
        Shared {
            rejected: config.rejected_keys.iter().map(|k| KeyId::of(k)).collect(),
            started: Instant::now(),
            state: Mutex::new(MockState {
                limiter: Limiter::new(config.limits.clone(), config.time_scale),
                script: config
                    .script
                    .iter()
                    .cloned()
                    .map(ScriptStep::normalized)
                    .collect(),
                stats: MockStats::default(),
                rng,
                faults: config.faults.clone(),
            }),
            config,
            shutdown,
        }
    }

    /// The state; a poisoned lock (a panicking handler) still holds consistent data.
    pub(crate) fn lock(&self) -> MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `prefix` + `n` random base-62 characters, like the API's ids.
    pub(crate) fn random_id(&self, prefix: &str, n: usize) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut st = self.lock();
        let mut id = String::with_capacity(prefix.len() + n);
        id.push_str(prefix);
        for _ in 0..n {
            let i = st.rng.random_range(0..ALPHABET.len());
            id.push(char::from(ALPHABET[i]));
        }
        id
    }

    /// Sleep until `deadline` on tokio's clock; `false` if the server is shutting down.
    pub(crate) async fn sleep_until(&self, deadline: Instant) -> bool {
        let mut rx = self.shutdown.clone();
        if *rx.borrow() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => true,
            _ = wait_for_shutdown(&mut rx) => false,
        }
    }

    /// Resolves when the server shuts down.
    pub(crate) async fn shutting_down(&self) {
        let mut rx = self.shutdown.clone();
        wait_for_shutdown(&mut rx).await;
    }
}

async fn wait_for_shutdown(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        // A dropped sender (the MockServer handle is gone) also means "stop".
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// A running mock server. Dropping it stops the server, like [`MockServer::shutdown`]
/// without waiting; keep it alive as long as it is used.
pub struct MockServer {
    addr: SocketAddr,
    control: MockControl,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Start on `127.0.0.1` with a free port, serving in a spawned task.
    pub async fn start(config: MockConfig) -> std::io::Result<MockServer> {
        Self::bind(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Start on `addr`. Fails if the address cannot be bound or the config is invalid.
    pub async fn bind(config: MockConfig, addr: SocketAddr) -> std::io::Result<MockServer> {
        config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = watch::channel(false);
        let shared = Arc::new(Shared::new(config, rx.clone()));
        let app = Router::new()
            .fallback(dispatch)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let mut rx = rx;
            // Small SSE frames must leave at once: with Nagle's algorithm a frame can wait for
            // the peer's delayed ACK, and on a paused test clock that idle moment makes tokio
            // jump to the next timer.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!("cannot set TCP_NODELAY: {e}");
                }
            });
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { wait_for_shutdown(&mut rx).await })
                .await;
            if let Err(e) = served {
                tracing::warn!("mock server stopped with an error: {e}");
            }
        });
        Ok(MockServer {
            addr,
            control: MockControl { shared },
            shutdown: tx,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, to use as the client's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A handle to script, inspect and retune the running server.
    pub fn control(&self) -> MockControl {
        self.control.clone()
    }

    /// Stop accepting, end open streams (stalls included) and wait for the server task
    /// (at most 5 s, then it is aborted).
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Scripts, inspects and retunes a running [`MockServer`]; cheap to clone.
#[derive(Clone)]
pub struct MockControl {
    shared: Arc<Shared>,
}

impl MockControl {
    /// Queue steps; each `POST /v1/messages` consumes the oldest one.
    pub fn push_script(&self, steps: impl IntoIterator<Item = ScriptStep>) {
        let mut st = self.shared.lock();
        st.script
            .extend(steps.into_iter().map(ScriptStep::normalized));
    }

    /// Drop every queued step.
    pub fn clear_script(&self) {
        self.shared.lock().script.clear();
    }

    /// Steps still queued.
    pub fn pending_script(&self) -> usize {
        self.shared.lock().script.len()
    }

    /// A copy of the counters.
    pub fn stats(&self) -> MockStats {
        self.shared.lock().stats.clone()
    }

    /// Change every key's limits (levels are kept, clamped to the new capacities).
    pub fn set_limits(&self, limits: MockLimits) {
        self.shared
            .lock()
            .limiter
            .set_limits(limits, Instant::now());
    }

    /// The limits in force.
    pub fn limits(&self) -> MockLimits {
        self.shared.lock().limiter.limits().clone()
    }

    /// Change the random fault rates.
    pub fn set_faults(&self, faults: FaultRates) {
        self.shared.lock().faults = faults;
    }

    /// The configuration the server started with.
    pub fn config(&self) -> MockConfig {
        self.shared.config.clone()
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Route {
    Messages,
    CountTokens,
    ListModels,
    GetModel(String),
    AdminScript,
    AdminStats,
    WrongMethod(&'static str),
    NotFound,
}

fn route(method: &Method, path: &str, admin: bool) -> Route {
    let path = path.trim_end_matches('/');
    let want = |m: Method, allow: &'static str, ok: Route| {
        if *method == m {
            ok
        } else {
            Route::WrongMethod(allow)
        }
    };
    match path {
        "/v1/messages" => want(Method::POST, "POST", Route::Messages),
        "/v1/messages/count_tokens" => want(Method::POST, "POST", Route::CountTokens),
        "/v1/models" => want(Method::GET, "GET", Route::ListModels),
        "/_mock/script" if admin => want(Method::POST, "POST", Route::AdminScript),
        "/_mock/stats" if admin => want(Method::GET, "GET", Route::AdminStats),
        p => match p.strip_prefix("/v1/models/") {
            Some(id) if !id.is_empty() && !id.contains('/') => {
                want(Method::GET, "GET", Route::GetModel(id.to_string()))
            }
            _ => Route::NotFound,
        },
    }
}

/// Every request comes through here.
async fn dispatch(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let request_id = shared.random_id("req_011C", 20);
    let arrived = Instant::now();
    let (parts, body) = req.into_parts();
    let route = route(
        &parts.method,
        parts.uri.path(),
        shared.config.admin_endpoint,
    );
    let record = if route == Route::Messages {
        let mut st = shared.lock();
        st.stats.messages_requests += 1;
        st.stats.requests.push(RequestRecord {
            at: arrived,
            status: 0,
            input_tokens: 0,
            stream: false,
        });
        Some(st.stats.requests.len() - 1)
    } else {
        shared.lock().stats.other_requests += 1;
        None
    };
    let mut seen = Seen::default();
    let mut response = handle(&shared, &request_id, route, parts, body, &mut seen).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("request-id", v);
    }
    if let Some(index) = record {
        let status = response.status().as_u16();
        let mut st = shared.lock();
        if let Some(r) = st.stats.requests.get_mut(index) {
            r.status = status;
            r.input_tokens = seen.input_tokens;
            r.stream = seen.stream;
        }
        *st.stats.by_status.entry(status).or_insert(0) += 1;
    }
    tracing::debug!(
        status = response.status().as_u16(),
        request_id = %request_id,
        "mock answered"
    );
    response
}

/// What the messages handler learned about a request, for its stats record.
#[derive(Default)]
struct Seen {
    input_tokens: u64,
    stream: bool,
}

async fn handle(
    shared: &Arc<Shared>,
    request_id: &str,
    route: Route,
    parts: http::request::Parts,
    body: Body,
    seen: &mut Seen,
) -> Response {
    let max = shared.config.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        error_response(
            &ErrorReply::new(
                413,
                "request_too_large",
                "Request exceeds the maximum allowed number of bytes.",
            ),
            request_id,
        )
    };
    if declared.is_some_and(|n| n > max as u64) {
        return too_large();
    }
    let body = match read_body(body, max).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Broken) => {
            return error_response(
                &ErrorReply::new(
                    400,
                    "invalid_request_error",
                    "The request body could not be read.",
                ),
                request_id,
            );
        }
    };
    match &route {
        Route::NotFound => {
            return error_response(
                &ErrorReply::new(404, "not_found_error", "Not Found"),
                request_id,
            );
        }
        Route::WrongMethod(allow) => {
            let mut r = error_response(
                &ErrorReply::new(405, "invalid_request_error", "Method Not Allowed"),
                request_id,
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            return r;
        }
        Route::AdminScript => return admin_script(shared, &body, request_id),
        Route::AdminStats => {
            let stats = serde_json::to_value(shared.lock().stats.clone()).unwrap_or(Value::Null);
            return json_response(StatusCode::OK, &stats);
        }
        _ => {}
    }
    let key = match api_key(&parts.headers) {
        None => {
            return error_response(
                &ErrorReply::new(401, "authentication_error", "x-api-key header is required"),
                request_id,
            );
        }
        Some(k) => KeyId::of(&k),
    };
    if shared.rejected.contains(&key) {
        return error_response(
            &ErrorReply::new(401, "authentication_error", "invalid x-api-key"),
            request_id,
        );
    }
    let mut response = if shared.config.require_anthropic_version
        && parts
            .headers
            .get("anthropic-version")
            .is_none_or(|v| v.is_empty())
    {
        error_response(
            &ErrorReply::new(
                400,
                "invalid_request_error",
                "anthropic-version: header is required",
            ),
            request_id,
        )
    } else {
        match route {
            Route::Messages => messages(shared, key, &body, request_id, seen).await,
            Route::CountTokens => match validate::count_tokens_request(&body) {
                Ok(n) => json_response(StatusCode::OK, &json!({"input_tokens": n})),
                Err(msg) => invalid(&msg, request_id),
            },
            Route::ListModels => {
                let q = parts.uri.query().unwrap_or("");
                let (limit, after, before) = (
                    query_param(q, "limit"),
                    query_param(q, "after_id"),
                    query_param(q, "before_id"),
                );
                match models::list(limit.as_deref(), after.as_deref(), before.as_deref()) {
                    Ok(page) => json_response(StatusCode::OK, &page),
                    Err(msg) => invalid(&msg, request_id),
                }
            }
            Route::GetModel(id) => match models::get(&id) {
                Some(m) => json_response(StatusCode::OK, &m),
                None => error_response(
                    &ErrorReply::new(404, "not_found_error", format!("model: {id}")),
                    request_id,
                ),
            },
            _ => error_response(&ErrorReply::of_status(500), request_id),
        }
    };
    // After auth, every response tells the caller where its buckets stand (a scripted
    // header of the same name wins, so tests can send odd values).
    let rl = shared.lock().limiter.headers(key, Instant::now());
    let headers = response.headers_mut();
    for (name, value) in rl {
        if !headers.contains_key(&name) {
            headers.insert(name, value);
        }
    }
    headers.insert(
        "anthropic-organization-id",
        HeaderValue::from_static(ORG_ID),
    );
    response
}

/// `POST /v1/messages` after auth.
async fn messages(
    shared: &Arc<Shared>,
    key: KeyId,
    body: &[u8],
    request_id: &str,
    seen: &mut Seen,
) -> Response {
    let now = Instant::now();
    let step = shared.lock().script.pop_front();
    if let Some(err) = step
        .as_ref()
        .and_then(|s| faults::scripted_error(s, clock::wall_now()))
    {
        return error_response(&err, request_id);
    }
    let params = match validate::messages_request(body) {
        Ok(p) => p,
        Err(msg) => return invalid(&msg, request_id),
    };
    seen.input_tokens = params.input_tokens;
    seen.stream = params.stream;

    // A scripted step decides this request's fate; otherwise outages and the random rates.
    let mut reply_text: Option<String> = None;
    let mut fixed_fault = StreamFault::None;
    let mut random_fault: Option<RandomStreamFault> = None;
    let mut slow: Option<Duration> = None;
    match step {
        Some(ScriptStep::Reply { text }) => reply_text = Some(text),
        Some(ScriptStep::MidStreamError {
            after_tokens,
            error_type,
        }) => {
            fixed_fault = StreamFault::MidStreamError {
                after: after_tokens,
                error_type,
            }
        }
        Some(ScriptStep::Drop { after_tokens }) => {
            fixed_fault = StreamFault::Drop {
                after: after_tokens,
            }
        }
        Some(ScriptStep::EndWithoutStop { after_tokens }) => {
            fixed_fault = StreamFault::EndWithoutStop {
                after: after_tokens,
            }
        }
        Some(ScriptStep::Stall { after_tokens }) => {
            fixed_fault = StreamFault::Stall {
                after: after_tokens,
            }
        }
        Some(ScriptStep::Pause {
            after_tokens,
            delay,
        }) => {
            fixed_fault = StreamFault::Pause {
                after: after_tokens,
                delay,
            }
        }
        Some(ScriptStep::SlowFirstByte { delay }) => slow = Some(delay),
        Some(ScriptStep::Ok | ScriptStep::Error { .. } | ScriptStep::SpendCap) => {}
        None => {
            let elapsed = now.saturating_duration_since(shared.started);
            if let Some(err) = faults::outage(&shared.config.outages, elapsed) {
                return error_response(&err, request_id);
            }
            let draw = {
                let mut st = shared.lock();
                let rates = st.faults.clone();
                faults::draw(&rates, &mut st.rng, clock::wall_now())
            };
            if let Some(err) = draw.error {
                return error_response(&err, request_id);
            }
            random_fault = draw.stream;
            slow = draw.slow_first_byte;
        }
    }

    let admission = shared.lock().limiter.admit(key, params.input_tokens, now);
    match admission {
        Admission::Admitted => {
            shared.lock().stats.input_tokens_charged += params.input_tokens;
        }
        Admission::Short { dim, wait } => {
            let limits = shared.lock().limiter.limits().clone();
            let mut err = ErrorReply::new(
                429,
                "rate_limit_error",
                limit_message(dim, &limits, &params.model),
            );
            err.retry_after = Some(retry_after_secs(wait).to_string());
            if shared.config.emit_retry_after_ms {
                err.retry_after_ms = Some(retry_after_millis(wait).to_string());
            }
            err.should_retry = Some(true);
            return error_response(&err, request_id);
        }
        Admission::Impossible { dim } => {
            let limits = shared.lock().limiter.limits().clone();
            let err = ErrorReply::new(
                429,
                "rate_limit_error",
                limit_message(dim, &limits, &params.model),
            );
            return error_response(&err, request_id);
        }
    }

    let plan = {
        let message_id = shared.random_id("msg_01", 22);
        let mut st = shared.lock();
        Plan::new(
            &shared.config,
            &params,
            reply_text.as_deref(),
            key,
            message_id,
            fixed_fault,
            random_fault,
            &mut st.rng,
        )
    };
    if let Some(delay) = slow
        && !shared.sleep_until(Instant::now() + delay).await
    {
        return error_response(
            &ErrorReply::new(503, "api_error", "The server is shutting down."),
            request_id,
        );
    }
    shared.lock().stats.streams_started += 1;
    if params.stream {
        generate::stream_response(Arc::clone(shared), plan)
    } else {
        generate::whole_response(Arc::clone(shared), plan, request_id).await
    }
}

/// `POST /_mock/script`: a JSON list of steps (or one step) to queue.
fn admin_script(shared: &Shared, body: &[u8], request_id: &str) -> Response {
    let steps: Result<Vec<ScriptStep>, _> = serde_json::from_slice::<Vec<ScriptStep>>(body)
        .or_else(|_| serde_json::from_slice::<ScriptStep>(body).map(|s| vec![s]));
    match steps {
        Ok(steps) => {
            let n = steps.len();
            let mut st = shared.lock();
            st.script
                .extend(steps.into_iter().map(ScriptStep::normalized));
            json_response(
                StatusCode::OK,
                &json!({"queued": n, "pending": st.script.len()}),
            )
        }
        Err(e) => invalid(&format!("script: {e}"), request_id),
    }
}

/// The key from `x-api-key`, else from `Authorization: Bearer` (what new SDKs send).
fn api_key(headers: &HeaderMap) -> Option<String> {
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

fn query_param(query: &str, name: &str) -> Option<String> {
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

enum BodyError {
    TooLarge,
    Broken,
}

async fn read_body(body: Body, max: usize) -> Result<Bytes, BodyError> {
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

fn invalid(message: &str, request_id: &str) -> Response {
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
    fn routes() {
        assert_eq!(route(&Method::POST, "/v1/messages", false), Route::Messages);
        assert_eq!(
            route(&Method::GET, "/v1/messages", false),
            Route::WrongMethod("POST")
        );
        assert_eq!(
            route(&Method::GET, "/v1/models/claude-opus-5", false),
            Route::GetModel("claude-opus-5".into())
        );
        assert_eq!(
            route(&Method::POST, "/_mock/script", false),
            Route::NotFound
        );
        assert_eq!(
            route(&Method::POST, "/_mock/script", true),
            Route::AdminScript
        );
        assert_eq!(route(&Method::GET, "/v2/whatever", false), Route::NotFound);
    }

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
