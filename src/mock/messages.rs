//! The `POST /v1/messages` handler, once the request has passed auth. Its checks, in order:
//! scripted step → validation (400, cache markers included) → scheduled outage → random faults
//! → rate limits (429, charged what the prompt cache does not cover) → slow first byte → the
//! reply, streamed as SSE or whole as JSON.
//!
//! The rate limits come after validation and faults, as on the real API: a request refused
//! for any earlier reason takes nothing from the key's buckets.

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use tokio::time::Instant;

use super::faults::{self, ErrorReply, RandomStreamFault, StreamFault};
use super::generate::{self, Plan};
use super::http::{error_response, invalid};
use super::limits::{Admission, KeyId, limit_message, retry_after_millis, retry_after_secs};
use super::routes::Seen;
use super::script::ScriptStep;
use super::server::Shared;
use super::validate;
use crate::clock;

/// `POST /v1/messages` after auth.
pub(super) async fn messages(
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
    // The prompt cache: what this request would read and write (docs/mock.md, *Prompt
    // caching*). Decided now, applied only if the request is admitted.
    let cache_plan = {
        let body = match validate::parse_json(body) {
            Ok(b) => b,
            Err(msg) => return invalid(&msg, request_id),
        };
        let mut st = shared.lock();
        if shared.config.cache_evict > 0.0 {
            let p = shared.config.cache_evict;
            if rand::RngExt::random_bool(&mut st.rng, p.clamp(0.0, 1.0)) {
                st.cache.evict(Some(key));
            }
        }
        match st
            .cache
            .plan(key, &params.model, &body, params.input_tokens, now)
        {
            Ok(p) => p,
            Err(msg) => return invalid(&msg, request_id),
        }
    };

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

    let admission = shared.lock().limiter.admit(key, cache_plan.charged(), now);
    match admission {
        Admission::Admitted => {
            let mut st = shared.lock();
            st.stats.input_tokens_charged += cache_plan.charged();
            st.stats.cache_read_tokens += cache_plan.usage.read;
            st.stats.cache_write_tokens += cache_plan.usage.write();
            st.cache.commit(&cache_plan, now);
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
        .with_input(cache_plan.usage)
    };
    if let Some(delay) = slow
        && !shared.sleep_until(Instant::now() + delay).await
    {
        return error_response(
            &ErrorReply::new(503, "api_error", "The server is shutting down."),
            request_id,
        );
    }
    {
        // The reply has begun: what it wrote becomes readable.
        let mut st = shared.lock();
        st.stats.streams_started += 1;
        st.cache.started(&cache_plan);
    }
    if params.stream {
        generate::stream_response(Arc::clone(shared), plan)
    } else {
        generate::whole_response(Arc::clone(shared), plan, request_id).await
    }
}
