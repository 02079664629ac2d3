//! Routing: which method and path go where, the order of checks every request passes, the
//! admin endpoints and the headers added after auth.
//!
//! Order, as the real API (and the Cloudflare in front of it) applies it: body size (413) →
//! route (404/405) → key (401) → `anthropic-version` (400) → the endpoint; `POST /v1/messages`
//! goes on with the checks listed in `messages.rs`. Every response carries `request-id`;
//! every response after auth carries the `anthropic-ratelimit-*` headers of the caller's key.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::faults::ErrorReply;
use super::http::{
    BodyError, api_key, error_response, invalid, json_response, query_param, read_body,
};
use super::limits::KeyId;
use super::messages::messages;
use super::script::ScriptStep;
use super::server::{ORG_ID, Shared};
use super::stats::RequestRecord;
use super::{models, validate};

/// Where a request goes.
#[derive(Clone, Debug, PartialEq)]
enum Route {
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// `GET /v1/models`.
    ListModels,
    /// `GET /v1/models/{id}`.
    GetModel(String),
    /// `POST /_mock/script`, only with the admin endpoint on.
    AdminScript,
    /// `GET /_mock/stats`, only with the admin endpoint on.
    AdminStats,
    /// A known path with another method: 405 with this `allow` value.
    WrongMethod(&'static str),
    /// Anything else: 404.
    NotFound,
}

/// The route of `method` and `path`; the `/_mock/*` paths exist only when `admin` is set.
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
pub(super) async fn dispatch(State(shared): State<Arc<Shared>>, req: Request) -> Response {
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
        let keep = shared.config.keep_request_records;
        Some(keep.then(|| {
            st.stats.record(RequestRecord {
                at: arrived,
                status: 0,
                input_tokens: 0,
                stream: false,
            })
        }))
    } else {
        shared.lock().stats.other_requests += 1;
        None
    };
    let mut seen = Seen::default();
    let mut response = handle(&shared, &request_id, route, parts, body, &mut seen).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("request-id", v);
    }
    if let Some(seq) = record {
        let status = response.status().as_u16();
        let mut st = shared.lock();
        if let Some(r) = seq.and_then(|seq| st.stats.record_mut(seq)) {
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
pub(super) struct Seen {
    /// The request's input tokens, once validated.
    pub(super) input_tokens: u64,
    /// Whether it asked for a stream.
    pub(super) stream: bool,
}

/// The checks in the order of the module doc, then the endpoint; after auth, the key's
/// rate-limit headers and the organization id are added to whatever the endpoint answered.
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
            .is_none_or(http::HeaderValue::is_empty)
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
}
