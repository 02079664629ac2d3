//! The simulated server (docs/loadtest.md): an in-process [`Transport`] on tokio's clock, so a run
//! on a paused clock is exact and takes no real time.
//!
//! It is the mock's rate limiter, not a copy of it: admission, the 429 message, `retry-after`
//! and the twelve `anthropic-ratelimit-*` headers come from `mock::limits` (which builds its
//! buckets with `quota::TokenBucket`). What the simulation adds is the network and the
//! stream: RTT/2 each way, an admitted request streams for D seconds (charging its output to
//! OTPM as it goes), and 529 windows or a 529 probability.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

use super::metrics::RunRecord;
use super::progress::Progress;
use super::scenario::Scenario;
use super::users::{RunPlan, TimeBase, run_users};
use super::workload::mix;
use crate::api::{
    Delta, MessageDeltaBody, MessageResponse, MessagesRequest, ResponseBody, Role, StreamEvent,
    Transport, TransportError, TransportResponse, Usage, UsageDelta,
};
use crate::mock::MockLimits;
use crate::mock::limits::{Admission, KeyId, Limiter, limit_message, retry_after_secs};

/// OTPM when the scenario does not model it: so large that it never binds.
pub const UNMODELLED_OTPM: u64 = 1_000_000_000_000;

/// Output is charged to OTPM in slices of at most this long while a reply streams.
const OUTPUT_SLICE: Duration = Duration::from_secs(1);

/// The one key every simulated user shares.
const KEY: &str = "loadtest";

/// What the simulated server saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimStats {
    /// Every request that arrived.
    pub requests: u64,
    /// Admitted (streamed).
    pub admitted: u64,
    /// Answered 429.
    pub rate_limited: u64,
    /// Answered 529.
    pub overloaded: u64,
}

struct State {
    limiter: Limiter,
    rng: StdRng,
    stats: SimStats,
    next_id: u64,
}

struct Shared {
    scenario: Scenario,
    limits: MockLimits,
    key: KeyId,
    started: Instant,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The simulated server; clones share it.
#[derive(Clone)]
pub struct SimServer {
    shared: Arc<Shared>,
}

/// The mock's limits for a scenario (OTPM unlimited when not modelled).
pub fn mock_limits(scenario: &Scenario) -> MockLimits {
    MockLimits {
        rpm: scenario.rpm,
        itpm: scenario.itpm,
        otpm: scenario.otpm.unwrap_or(UNMODELLED_OTPM),
        capacity_fraction: scenario.capacity_fraction,
    }
}

enum Outcome {
    Admitted,
    Overloaded,
    Limited { message: String, retry_after: u64 },
    Impossible { message: String },
}

impl SimServer {
    /// A server with full buckets as of now; `seed` drives the 529 probability.
    pub fn new(scenario: &Scenario, seed: u64) -> SimServer {
        let limits = mock_limits(scenario);
        SimServer {
            shared: Arc::new(Shared {
                scenario: scenario.clone(),
                key: KeyId::of(KEY),
                started: Instant::now(),
                state: Mutex::new(State {
                    limiter: Limiter::new(limits.clone(), 1.0),
                    rng: StdRng::seed_from_u64(seed),
                    stats: SimStats::default(),
                    next_id: 1,
                }),
                limits,
            }),
        }
    }

    /// A copy of the counters.
    pub fn stats(&self) -> SimStats {
        self.shared.lock().stats.clone()
    }

    /// Admission at arrival (docs/loadtest.md, *Server*); returns the outcome, the rate-limit headers as
    /// of now and a request id.
    fn arrive(shared: &Shared, input_tokens: u64, model: &str) -> (Outcome, HeaderMap, u64) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(shared.started).as_secs_f64();
        let overload = &shared.scenario.overload;
        let mut st = shared.lock();
        st.stats.requests += 1;
        let id = st.next_id;
        st.next_id += 1;
        let in_window = overload
            .windows
            .iter()
            .any(|[a, b]| elapsed >= *a && elapsed < *b);
        // As on the mock: outages and faults come before the rate limits, and consume nothing.
        let overloaded = in_window
            || (overload.probability > 0.0 && st.rng.random::<f64>() < overload.probability);
        let outcome = if overloaded {
            st.stats.overloaded += 1;
            Outcome::Overloaded
        } else {
            match st.limiter.admit(shared.key, input_tokens, now) {
                Admission::Admitted => {
                    st.stats.admitted += 1;
                    Outcome::Admitted
                }
                Admission::Short { dim, wait } => {
                    st.stats.rate_limited += 1;
                    Outcome::Limited {
                        message: limit_message(dim, &shared.limits, model),
                        retry_after: retry_after_secs(wait),
                    }
                }
                Admission::Impossible { dim } => {
                    st.stats.rate_limited += 1;
                    Outcome::Impossible {
                        message: limit_message(dim, &shared.limits, model),
                    }
                }
            }
        };
        let mut headers = HeaderMap::new();
        for (name, value) in st.limiter.headers(shared.key, now) {
            headers.insert(name, value);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("req_sim_{id:08}")) {
            headers.insert("request-id", v);
        }
        (outcome, headers, id)
    }

    /// Charge a reply's output tokens to OTPM in slices while it streams (server side).
    fn charge_output(shared: Arc<Shared>, start: Instant) {
        let total = u64::from(shared.scenario.output_tokens);
        let stream = crate::clock::secs_f64(shared.scenario.stream_s);
        let slices = (stream.as_secs_f64() / OUTPUT_SLICE.as_secs_f64())
            .ceil()
            .max(1.0) as u64;
        tokio::spawn(async move {
            let mut charged = 0;
            for i in 1..=slices {
                let at = start + stream.mul_f64(i as f64 / slices as f64);
                tokio::time::sleep_until(at).await;
                let due = total * i / slices;
                let n = due - charged;
                charged = due;
                let mut st = shared.lock();
                st.limiter.charge_output(shared.key, n, Instant::now());
            }
        });
    }
}

fn error_body(error_type: &str, message: &str, id: u64) -> Bytes {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": format!("req_sim_{id:08}"),
    });
    Bytes::from(body.to_string())
}

impl Transport for SimServer {
    fn send(
        &self,
        request: &MessagesRequest,
        _attempt: u32,
    ) -> BoxFuture<'static, Result<TransportResponse, TransportError>> {
        let shared = Arc::clone(&self.shared);
        let input_tokens = request.estimated_input_tokens();
        let model = request.model.clone();
        Box::pin(async move {
            let half = crate::clock::secs_f64(shared.scenario.rtt_s / 2.0);
            tokio::time::sleep(half).await;
            let (outcome, mut headers, id) = SimServer::arrive(&shared, input_tokens, &model);
            let arrived = Instant::now();
            let (status, body) = match outcome {
                Outcome::Overloaded => (
                    529,
                    ResponseBody::Bytes(error_body("overloaded_error", "Overloaded", id)),
                ),
                Outcome::Limited {
                    message,
                    retry_after,
                } => {
                    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                        headers.insert("retry-after", v);
                    }
                    headers.insert("x-should-retry", HeaderValue::from_static("true"));
                    (
                        429,
                        ResponseBody::Bytes(error_body("rate_limit_error", &message, id)),
                    )
                }
                Outcome::Impossible { message } => (
                    429,
                    ResponseBody::Bytes(error_body("rate_limit_error", &message, id)),
                ),
                Outcome::Admitted => {
                    if shared.scenario.otpm.is_some() {
                        SimServer::charge_output(Arc::clone(&shared), arrived);
                    }
                    (
                        200,
                        ResponseBody::Events(reply_events(
                            &shared.scenario,
                            &model,
                            input_tokens,
                            id,
                            arrived,
                            half,
                        )),
                    )
                }
            };
            tokio::time::sleep(half).await;
            Ok(TransportResponse {
                status,
                headers,
                body,
            })
        })
    }

    fn describe(&self) -> String {
        "simulated server".into()
    }
}

/// The reply as the client sees it: `message_start` with the headers (RTT/2 after admission),
/// the text, the usage and `message_stop` D seconds later (plus RTT/2).
fn reply_events(
    scenario: &Scenario,
    model: &str,
    input: u64,
    id: u64,
    admitted: Instant,
    half_rtt: Duration,
) -> crate::api::EventStream {
    let output = u64::from(scenario.output_tokens);
    let end = admitted + crate::clock::secs_f64(scenario.stream_s) + half_rtt;
    let start = MessageResponse {
        id: format!("msg_sim_{id:08}"),
        model: model.to_string(),
        role: Role::Assistant,
        content: Vec::new(),
        stop_reason: None,
        stop_sequence: None,
        usage: Usage {
            input_tokens: input,
            output_tokens: 1,
            ..Usage::default()
        },
    };
    let head = futures::stream::iter(vec![Ok(StreamEvent::MessageStart(start))]);
    let tail = futures::stream::once(async move {
        tokio::time::sleep_until(end).await;
        futures::stream::iter(vec![
            Ok(StreamEvent::ContentBlockDelta {
                index: 0,
                delta: Delta::TextDelta {
                    text: "simulated reply".into(),
                },
            }),
            Ok(StreamEvent::MessageDelta {
                delta: MessageDeltaBody {
                    stop_reason: Some("end_turn".into()),
                    stop_sequence: None,
                },
                usage: UsageDelta {
                    input_tokens: Some(input),
                    output_tokens: Some(output),
                    ..UsageDelta::default()
                },
            }),
            Ok(StreamEvent::MessageStop),
        ])
    })
    .flatten();
    head.chain(tail).boxed()
}

/// Run a plan on the simulated server, on a paused clock of its own: exact, and as fast as
/// the CPU allows. From inside an async runtime it runs on a thread of its own (a runtime
/// cannot be started inside another).
pub fn simulate(
    plan: &RunPlan,
    progress: Option<&Progress>,
) -> Result<(RunRecord, SimStats), String> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return std::thread::scope(|scope| {
            scope
                .spawn(|| simulate_here(plan, progress))
                .join()
                .unwrap_or_else(|_| Err("the simulation panicked".into()))
        });
    }
    simulate_here(plan, progress)
}

fn simulate_here(
    plan: &RunPlan,
    progress: Option<&Progress>,
) -> Result<(RunRecord, SimStats), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| format!("cannot start the simulation's runtime: {e}"))?;
    runtime.block_on(async {
        let server = SimServer::new(&plan.scenario, mix(plan.seed, 0, 0x529));
        let time = TimeBase {
            origin: Instant::now(),
            scale: 1.0,
        };
        let record = run_users(plan, Arc::new(server.clone()), None, time, progress).await?;
        Ok((record, server.stats()))
    })
}
