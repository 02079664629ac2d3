//! Forwarding: the handler every proxied request goes through.
//!
//! Before the first byte of a reply, an attempt that fails with a status or network error the
//! policy retries (429, 529, 5xx, a refused connection) is retried with the chat's engine
//! ([`decide_retry`], the per-key limiter and retry budget), while the client's connection stays
//! open and sees nothing. Once upstream answers 2xx, its status, headers and body go to the
//! client as they came, chunk by chunk, never retried; the client going away drops the
//! upstream request. When the proxy gives up, the client gets upstream's last response as it
//! was, plus `x-should-retry: false` so that its SDK does not retry what the proxy already
//! retried. Every response carries `x-backchat-attempts` and `x-backchat-waited-ms`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use tokio::time::Instant;

use super::events::{ProxyEventKind, RequestLabel};
use super::inspect::{RequestFacts, UsageScanner};
use super::metrics::{InFlight, WaitKind};
use super::server::{Lane, MAX_REQUEST_BODY, Shared, TOKEN_HEADER};
use crate::api::{ApiError, TransportError};
use crate::clock::{human_duration, local_clock};
use crate::limiter::{Limiter, Reservation, Ticket};
use crate::quota::{self, Bucket, ModelClass, QuotaSnapshot};
use crate::retry::{
    Attempt, DelaySource, FailedAttempt, FailureKind, TurnEvent, TurnFailure, decide_retry,
    headers::{RetryHints, parse_retry_hints},
    policy,
};
use crate::secret::ApiKey;

/// Attempts made for the request (1 when the first one went through).
pub const ATTEMPTS_HEADER: &str = "x-backchat-attempts";
/// Milliseconds the request spent waiting in the proxy (pacing and retries).
pub const WAITED_HEADER: &str = "x-backchat-waited-ms";
/// On a give-up: why, in words (ASCII).
pub const GAVE_UP_HEADER: &str = "x-backchat-gave-up";

/// Request headers never forwarded: hop-by-hop ones, the ones reqwest sets itself, and the
/// proxy's own token.
const DROP_REQUEST: [&str; 10] = [
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// Response headers never passed back: hop-by-hop ones (hyper frames the body itself).
const DROP_RESPONSE: [&str; 5] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "trailer",
    "upgrade",
];

/// What a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// `POST /v1/messages`: paced and retried.
    Messages,
    /// `POST /v1/messages/count_tokens`: retried, not paced (its own limits).
    CountTokens,
    /// `GET /v1/models` and `/v1/models/{id}`: retried, not paced.
    Models,
}

impl Route {
    fn of(method: &Method, path: &str) -> Option<Route> {
        match (method, path.trim_end_matches('/')) {
            (&Method::POST, "/v1/messages") => Some(Route::Messages),
            (&Method::POST, "/v1/messages/count_tokens") => Some(Route::CountTokens),
            (&Method::GET, p) if p == "/v1/models" || p.starts_with("/v1/models/") => {
                Some(Route::Models)
            }
            _ => None,
        }
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}

/// Every other request.
pub(crate) async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(token) = &shared.config.token
        && !token_matches(&parts.headers, token)
    {
        return error_response(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            &format!(
                "backchat proxy: this proxy needs its token in the {TOKEN_HEADER} header \
                 (or Proxy-Authorization: Bearer TOKEN)"
            ),
        );
    }
    let Some(route) = Route::of(&parts.method, parts.uri.path()) else {
        return error_response(
            StatusCode::NOT_FOUND,
            "not_found_error",
            &format!(
                "backchat proxy forwards POST /v1/messages, POST /v1/messages/count_tokens and \
                 GET /v1/models*, not {} {}",
                parts.method,
                parts.uri.path()
            ),
        );
    };
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                &format!("backchat proxy: cannot read the request body: {e}"),
            );
        }
    };
    let key = client_key(&parts.headers);
    if let Some(k) = &key {
        // Nothing the proxy prints may show a client's key.
        crate::secret::register_secret(k);
    }
    let fingerprint = key
        .as_ref()
        .map_or_else(|| "nokey".to_string(), ApiKey::fingerprint);
    let facts = match route {
        Route::Messages | Route::CountTokens => RequestFacts::read(&body),
        Route::Models => None,
    };
    let id = shared.next_id();
    shared.metrics.request();
    let in_flight = shared.metrics.in_flight();
    let class = facts.as_ref().map(|f| ModelClass::of(&f.model));
    shared.emit(
        id,
        ProxyEventKind::Received(RequestLabel {
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_string(), ToString::to_string),
            client: parts
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map_or_else(|| "-".to_string(), |s| crate::util::clip(s, 48)),
            key: fingerprint.clone(),
            class: class.map(|c| c.as_str().to_string()),
            stream: facts.as_ref().is_some_and(|f| f.stream),
        }),
    );
    let lane = shared.lane(&fingerprint, key.as_ref()).await;
    let url = format!(
        "{}{}",
        shared.config.upstream.trim_end_matches('/'),
        parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path(), http::uri::PathAndQuery::as_str)
    );
    let request = Forward {
        id,
        method: parts.method.clone(),
        url,
        headers: forwarded_headers(&parts.headers),
        body,
        route,
        facts,
        class,
        fingerprint,
    };
    request.run(&shared, &lane, in_flight).await
}

/// One request on its way.
struct Forward {
    id: u64,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Bytes,
    route: Route,
    facts: Option<RequestFacts>,
    class: Option<ModelClass>,
    fingerprint: String,
}

impl Forward {
    async fn run(self, shared: &Arc<Shared>, lane: &Lane, in_flight: InFlight) -> Response {
        let config = &shared.config;
        let started = Instant::now();
        let deadline = started + config.retry.deadline;
        let max_attempts = config.retry.max_retries.saturating_add(1);
        // Only messages spend the messages quota; count_tokens and models have their own.
        let limiter = match (self.route, &self.facts) {
            (Route::Messages, Some(_)) => lane.limiter.clone(),
            _ => None,
        };
        let class = self.class.unwrap_or_default();
        let estimated_input = self.facts.as_ref().map_or(0, |f| {
            limiter.as_ref().map_or_else(
                || f.estimate.estimated_input_tokens(),
                |l| l.estimate(&f.estimate).input_tokens as u64,
            )
        });
        let mut waited = Duration::ZERO;
        if let Some(l) = &limiter
            && let Some(failure) =
                crate::retry::driver::refuse_unsent(l.as_ref(), &class, estimated_input)
        {
            shared.metrics.give_up();
            shared.emit(
                self.id,
                ProxyEventKind::Turn(TurnEvent::Failed(failure.clone())),
            );
            return self.synthesized(shared, &failure, waited, in_flight);
        }
        let mut last_quota: Option<QuotaSnapshot> = None;
        let mut attempt: u32 = 0;
        // Failures that were waits the server scheduled: they do not count against --max-retries.
        let mut scheduled: u32 = 0;

        loop {
            attempt += 1;
            let mut ticket = match (&limiter, &self.facts) {
                (Some(l), Some(f)) => {
                    match self
                        .pace(shared, l, &f.estimate, deadline, attempt, &mut waited)
                        .await
                    {
                        Ok(t) => Some(t),
                        Err(failure) => {
                            shared.metrics.give_up();
                            shared.emit(
                                self.id,
                                ProxyEventKind::Turn(TurnEvent::Failed(failure.clone())),
                            );
                            return self.synthesized(shared, &failure, waited, in_flight);
                        }
                    }
                }
                _ => None,
            };
            shared.emit(
                self.id,
                ProxyEventKind::Turn(TurnEvent::Sending {
                    attempt,
                    max_attempts,
                }),
            );
            shared.metrics.attempt();
            let sent = tokio::time::timeout(
                config.header_timeout,
                shared
                    .client
                    .request(self.method.clone(), &self.url)
                    .headers(self.headers.clone())
                    .body(self.body.clone())
                    .send(),
            )
            .await;
            let now = Instant::now();
            let (error, hints, quota, last_response) = match sent {
                Err(_) => {
                    drop(ticket.take());
                    let e =
                        TransportError::Timeout(format!("{}s", config.header_timeout.as_secs()));
                    (Attempt::Network(e), RetryHints::default(), None, None)
                }
                Ok(Err(e)) => {
                    drop(ticket.take());
                    (
                        Attempt::Network(classify(&e)),
                        RetryHints::default(),
                        None,
                        None,
                    )
                }
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let quota = quota::parse_quota(&headers, now);
                    let ok = (200..300).contains(&status);
                    // Settle the slot before the headers correct the limiter (as the driver
                    // does): the server counted this request, or did not.
                    let committed = if ok {
                        ticket.take().map(Ticket::commit)
                    } else {
                        drop(ticket.take());
                        None
                    };
                    if !quota.is_empty() {
                        if let Some(l) = &limiter {
                            l.observe(&class, &quota);
                        }
                        shared
                            .metrics
                            .quota(&self.fingerprint, class.as_str(), &quota);
                        shared.emit(
                            self.id,
                            ProxyEventKind::Turn(TurnEvent::Quota(quota.clone())),
                        );
                        match &mut last_quota {
                            Some(q) => q.merge_newer(&quota),
                            None => last_quota = Some(quota.clone()),
                        }
                    }
                    if ok {
                        lane.budget.record_success();
                        return self
                            .pass_through(shared, response, committed, attempt, waited, in_flight);
                    }
                    match read_whole(response, config.idle_timeout).await {
                        Ok(bytes) => {
                            let api = ApiError::from_response(status, headers.clone(), &bytes);
                            let hints = parse_retry_hints(&headers, now);
                            (
                                Attempt::Api(api),
                                hints,
                                Some(quota),
                                Some((status, headers, bytes)),
                            )
                        }
                        Err(e) => (Attempt::Network(e), RetryHints::default(), None, None),
                    }
                }
            };
            let failed = FailedAttempt {
                attempt,
                scheduled,
                error: &error,
                hints: &hints,
                quota: quota.as_ref(),
                last_quota: last_quota.as_ref(),
                estimated_input,
            };
            let decision = decide_retry(
                &failed,
                deadline,
                (&config.retry, &lane.budget, &shared.rng),
                limiter.as_deref().map(|l| (l, &class)),
            );
            let wait = match decision {
                Ok(w) => w,
                Err(failure) => {
                    if is_give_up(failure.kind) {
                        shared.metrics.give_up();
                    }
                    shared.emit(
                        self.id,
                        ProxyEventKind::Turn(TurnEvent::Failed((*failure).clone())),
                    );
                    return match last_response {
                        Some((status, headers, body)) => self.verbatim(
                            shared, status, &headers, body, &failure, attempt, waited, in_flight,
                        ),
                        None => self.synthesized(shared, &failure, waited, in_flight),
                    };
                }
            };
            if !wait.counted {
                scheduled += 1;
            }
            shared.metrics.absorbed(error.status());
            shared.metrics.wait(WaitKind::Retry, wait.delay);
            shared.emit(
                self.id,
                ProxyEventKind::Turn(TurnEvent::RetryScheduled {
                    attempt: attempt + 1,
                    max_attempts,
                    delay: wait.delay,
                    until: wait.until,
                    cause: wait.cause,
                    status: error.status(),
                    error_type: match &error {
                        Attempt::Api(a) => Some(a.error_type.clone()),
                        Attempt::Network(_) => None,
                    },
                    source: wait.source,
                    message: error.summary(),
                    request_id: match &error {
                        Attempt::Api(a) => a.request_id.clone(),
                        Attempt::Network(_) => None,
                    },
                }),
            );
            waited += wait.delay;
            tokio::time::sleep_until(wait.until).await;
        }
    }

    /// Wait for a slot, as the driver does, announcing and counting the wait.
    async fn pace(
        &self,
        shared: &Shared,
        limiter: &Arc<dyn Limiter>,
        estimate: &crate::api::MessagesRequest,
        deadline: Instant,
        attempt: u32,
        waited: &mut Duration,
    ) -> Result<Ticket, TurnFailure> {
        let config = &shared.config;
        let demand = limiter.estimate(estimate);
        let mut may_await_probe = true;
        loop {
            match limiter.reserve(demand, may_await_probe).await {
                Reservation::AwaitFirstHeaders { until, ready } => {
                    may_await_probe = false;
                    let begun = Instant::now();
                    let delay = until.saturating_duration_since(begun);
                    shared.emit(
                        self.id,
                        ProxyEventKind::Turn(TurnEvent::Pacing {
                            delay,
                            until,
                            bucket: Bucket::Requests,
                            source: DelaySource::Pacer,
                        }),
                    );
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = ready => {}
                    }
                    let spent = begun.elapsed();
                    shared.metrics.wait(WaitKind::Pacing, spent);
                    *waited += spent;
                }
                Reservation::Granted(grant) => {
                    let ticket = Ticket::new(Arc::clone(limiter), grant);
                    let now = Instant::now();
                    let start = now
                        + policy::whole_millis(
                            ticket.grant().start_at.saturating_duration_since(now),
                        );
                    if start > now {
                        let delay = start - now;
                        let bucket = ticket.grant().bucket.unwrap_or(Bucket::Requests);
                        // A proxy's client holds its connection open to be served, and the
                        // queue ahead of it is other clients' requests: refusing at --max-wait
                        // would only send it to the back of the same queue with a 429 (which
                        // unpaced clients retry at once). So only --deadline bounds a pacing
                        // wait here; --max-wait bounds the waits the server asks for.
                        if start > deadline {
                            return Err(TurnFailure {
                                kind: FailureKind::DeadlineExceeded,
                                message: format!(
                                    "The {} quota would make this request wait {}, past the proxy's --deadline ({}). \
                                     It frees up at {}; try again then, or raise --deadline.",
                                    bucket.label(),
                                    human_duration(delay),
                                    human_duration(config.retry.deadline),
                                    local_clock(start)
                                ),
                                api: None,
                                transport: None,
                                resets_at: Some(start),
                                attempts: attempt - 1,
                            });
                        }
                        shared.emit(
                            self.id,
                            ProxyEventKind::Turn(TurnEvent::Pacing {
                                delay,
                                until: start,
                                bucket,
                                source: ticket.grant().source.into(),
                            }),
                        );
                        shared.metrics.wait(WaitKind::Pacing, delay);
                        *waited += delay;
                        tokio::time::sleep_until(start).await;
                    }
                    return Ok(ticket);
                }
            }
        }
    }

    /// Upstream's 2xx, as it came: status, headers, and the body chunk by chunk.
    fn pass_through(
        &self,
        shared: &Arc<Shared>,
        response: reqwest::Response,
        ticket: Option<Ticket>,
        attempts: u32,
        waited: Duration,
        in_flight: InFlight,
    ) -> Response {
        let status = response.status();
        let mut headers = response.headers().clone();
        strip(&mut headers, &DROP_RESPONSE);
        add_backchat_headers(&mut headers, attempts, waited);
        shared.metrics.response(status.as_u16());
        shared.emit(
            self.id,
            ProxyEventKind::Responded {
                status: status.as_u16(),
                attempts,
                waited,
                gave_up: false,
            },
        );
        let streamed = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let watch = Watch {
            shared: Arc::clone(shared),
            id: self.id,
            ticket,
            scanner: (self.route == Route::Messages).then(|| UsageScanner::new(streamed)),
            bytes: 0,
            ended: false,
            broken: None,
            _in_flight: in_flight,
        };
        let idle = shared.config.idle_timeout;
        let upstream = response.bytes_stream();
        let body = futures::stream::unfold(
            (upstream, watch),
            move |(mut upstream, mut watch)| async move {
                if watch.ended {
                    return None;
                }
                match tokio::time::timeout(idle, upstream.next()).await {
                    Ok(Some(Ok(chunk))) => {
                        watch.bytes += chunk.len() as u64;
                        if let Some(s) = &mut watch.scanner {
                            s.feed(&chunk);
                        }
                        Some((Ok(chunk), (upstream, watch)))
                    }
                    Ok(None) => {
                        watch.finish();
                        None
                    }
                    Ok(Some(Err(e))) => {
                        let e = classify(&e).to_string();
                        watch.broken = Some(format!("upstream broke mid-reply: {e}"));
                        watch.ended = true;
                        Some((Err(std::io::Error::other(e)), (upstream, watch)))
                    }
                    Err(_) => {
                        let e = format!("upstream sent nothing for {}s", idle.as_secs());
                        watch.broken = Some(e.clone());
                        watch.ended = true;
                        Some((Err(std::io::Error::other(e)), (upstream, watch)))
                    }
                }
            },
        );
        let mut out = Response::new(Body::from_stream(body));
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        out
    }

    /// Upstream's last error response as it was, marked not to be retried.
    #[expect(clippy::too_many_arguments, reason = "one call site, all of it needed")]
    fn verbatim(
        &self,
        shared: &Shared,
        status: u16,
        headers: &HeaderMap,
        body: Bytes,
        failure: &TurnFailure,
        attempts: u32,
        waited: Duration,
        in_flight: InFlight,
    ) -> Response {
        let mut headers = headers.clone();
        strip(&mut headers, &DROP_RESPONSE);
        headers.remove(http::header::CONTENT_LENGTH);
        add_backchat_headers(&mut headers, attempts, waited);
        headers.insert("x-should-retry", HeaderValue::from_static("false"));
        if let Ok(v) = HeaderValue::from_str(&ascii(&failure.message)) {
            headers.insert(HeaderName::from_static(GAVE_UP_HEADER), v);
        }
        let bytes = body.len() as u64;
        let mut out = Response::new(Body::from(body));
        *out.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        *out.headers_mut() = headers;
        self.close(shared, status, attempts, waited, true, bytes, in_flight);
        out
    }

    /// A give-up without an upstream response to pass on (the pacer refused, or the network
    /// failed): the API's error envelope, in the status the SDKs expect for it.
    fn synthesized(
        &self,
        shared: &Shared,
        failure: &TurnFailure,
        waited: Duration,
        in_flight: InFlight,
    ) -> Response {
        let (status, kind) = match (&failure.transport, failure.kind) {
            (Some(TransportError::Timeout(_)), _) => (StatusCode::GATEWAY_TIMEOUT, "api_error"),
            (Some(_), _) => (StatusCode::BAD_GATEWAY, "api_error"),
            (None, _) => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
        };
        let mut out = error_response(
            status,
            kind,
            &format!("backchat proxy: {}", failure.message),
        );
        let headers = out.headers_mut();
        add_backchat_headers(headers, failure.attempts, waited);
        if let Some(at) = failure.resets_at {
            let secs = at
                .saturating_duration_since(Instant::now())
                .as_secs_f64()
                .ceil() as u64;
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let Ok(v) = HeaderValue::from_str(&ascii(&failure.message)) {
            headers.insert(HeaderName::from_static(GAVE_UP_HEADER), v);
        }
        self.close(
            shared,
            status.as_u16(),
            failure.attempts,
            waited,
            true,
            0,
            in_flight,
        );
        out
    }

    /// Count and announce a response sent whole.
    #[expect(clippy::too_many_arguments, reason = "private, two call sites")]
    fn close(
        &self,
        shared: &Shared,
        status: u16,
        attempts: u32,
        waited: Duration,
        gave_up: bool,
        bytes: u64,
        in_flight: InFlight,
    ) {
        shared.metrics.response(status);
        shared.emit(
            self.id,
            ProxyEventKind::Responded {
                status,
                attempts,
                waited,
                gave_up,
            },
        );
        shared.emit(
            self.id,
            ProxyEventKind::Ended {
                bytes,
                usage: None,
                stop_reason: None,
                broken: None,
            },
        );
        drop(in_flight);
    }
}

/// Follows a passed-through body: counts its bytes, reads its usage, and when it ends (or is
/// dropped because the client went away, which also drops the upstream request) settles the
/// reservation and announces the end.
struct Watch {
    shared: Arc<Shared>,
    id: u64,
    ticket: Option<Ticket>,
    scanner: Option<UsageScanner>,
    bytes: u64,
    ended: bool,
    broken: Option<String>,
    _in_flight: InFlight,
}

impl Watch {
    /// The body reached its end (the state is dropped right after, which announces it).
    fn finish(&mut self) {
        self.ended = true;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let (usage, stop_reason, stream_error) = match &mut self.scanner {
            Some(s) => (
                s.usage(),
                s.stop_reason().map(str::to_string),
                s.stream_error().map(str::to_string),
            ),
            None => (None, None, None),
        };
        if let Some(t) = self.ticket.take() {
            t.settle_reported(&usage.clone().unwrap_or_default());
        }
        let broken = self.broken.take().or_else(|| {
            if self.ended {
                stream_error.map(|e| format!("upstream sent an error event mid-stream ({e})"))
            } else {
                Some("the client went away; the upstream request was dropped".to_string())
            }
        });
        self.shared.emit(
            self.id,
            ProxyEventKind::Ended {
                bytes: self.bytes,
                usage,
                stop_reason,
                broken,
            },
        );
    }
}

/// The failures that are the proxy giving up (as opposed to passing on a final error such as
/// a 400, which no retry could fix).
fn is_give_up(kind: FailureKind) -> bool {
    matches!(
        kind,
        FailureKind::RetriesExhausted
            | FailureKind::WaitTooLong
            | FailureKind::DeadlineExceeded
            | FailureKind::RetryBudgetExhausted
            | FailureKind::ExceedsQuota
    )
}

/// The client's API key: `x-api-key`, or `Authorization: Bearer` (OAuth-style clients).
fn client_key(headers: &HeaderMap) -> Option<ApiKey> {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return ApiKey::new(k.trim());
    }
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))?;
    ApiKey::new(token.trim())
}

/// Whether the request carries the proxy token (compared in constant time).
fn token_matches(headers: &HeaderMap, token: &str) -> bool {
    let sent = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(http::header::PROXY_AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        });
    sent.is_some_and(|s| {
        s.len() == token.len()
            && s.bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

/// The client's headers, minus the ones that are not end to end.
fn forwarded_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    strip(&mut out, &DROP_REQUEST);
    out.remove(TOKEN_HEADER);
    out
}

fn strip(headers: &mut HeaderMap, names: &[&str]) {
    for n in names {
        headers.remove(*n);
    }
}

fn add_backchat_headers(headers: &mut HeaderMap, attempts: u32, waited: Duration) {
    headers.insert(ATTEMPTS_HEADER, HeaderValue::from(attempts));
    headers.insert(WAITED_HEADER, HeaderValue::from(waited.as_millis() as u64));
}

/// `text` as a header value: printable ASCII, other characters replaced.
fn ascii(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(400)
        .collect()
}

/// An error in the API's envelope.
fn error_response(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": kind, "message": message},
    });
    let mut out = (status, axum::Json(body)).into_response();
    out.headers_mut()
        .insert("x-should-retry", HeaderValue::from_static("false"));
    out
}

/// An error body, read whole (error bodies are small; the client gets all of it).
async fn read_whole(response: reqwest::Response, idle: Duration) -> Result<Bytes, TransportError> {
    let mut out = bytes::BytesMut::new();
    let mut stream = response.bytes_stream();
    loop {
        match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => return Err(TransportError::Timeout("reading the error body".into())),
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Err(e))) => return Err(classify(&e)),
            Ok(Some(Ok(chunk))) => out.extend_from_slice(&chunk),
        }
    }
}

/// A reqwest error as the engine's transport error (its Display never shows headers).
fn classify(e: &reqwest::Error) -> TransportError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    if e.is_connect() {
        TransportError::Connect(text)
    } else if e.is_timeout() {
        TransportError::Timeout(text)
    } else {
        TransportError::Other(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            Route::of(&Method::POST, "/v1/messages"),
            Some(Route::Messages)
        );
        assert_eq!(
            Route::of(&Method::POST, "/v1/messages/count_tokens"),
            Some(Route::CountTokens)
        );
        assert_eq!(
            Route::of(&Method::GET, "/v1/models/claude-x"),
            Some(Route::Models)
        );
        assert_eq!(Route::of(&Method::GET, "/v1/messages"), None);
        assert_eq!(Route::of(&Method::POST, "/v1/complete"), None);
    }

    #[test]
    fn the_token_and_hop_headers_are_not_forwarded() {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("sk-1"));
        h.insert("anthropic-beta", HeaderValue::from_static("b"));
        h.insert(TOKEN_HEADER, HeaderValue::from_static("secret"));
        h.insert("host", HeaderValue::from_static("127.0.0.1:8788"));
        let f = forwarded_headers(&h);
        assert!(f.get(TOKEN_HEADER).is_none() && f.get("host").is_none());
        assert_eq!(
            f.get("anthropic-beta").map(HeaderValue::as_bytes),
            Some(&b"b"[..])
        );
        assert!(token_matches(&h, "secret"));
        assert!(!token_matches(&h, "secreT"));
    }
}
