//! The closed-loop users (docs/loadtest.md, *Workload*): each sends its next request when the previous reply
//! has ended, under one policy, and records what happened. When the policy gives up, the user
//! resubmits the request, as a person pressing "retry" would, and the give-up is counted.
//!
//! Both engines run this same code: on the simulated server with a paused clock, and over
//! loopback HTTP in real time. [`TimeBase`] turns tokio instants into model seconds.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use super::metrics::{LimiterRecord, RequestRecord, RunRecord};
use super::policies::{
    self, Decision, PeerPolicy, PeerState, PolicyId, ServerHints, backchat_budget,
    backchat_limiter, backchat_retry_config,
};
use super::progress::Progress;
use super::scenario::Scenario;
use super::workload;
use crate::api::{
    MessagesRequest, ResponseBody, StreamEvent, Transport, TransportError, TransportResponse,
};
use crate::limiter::{Limiter, LimiterHealth};
use crate::retry::{Driver, FailureKind, TurnEvent};
use crate::secret::ApiKey;

/// How often a run looks at its shared limiter's health (real time): often enough to date a
/// fail-over to within a model second at the usual time scales, rarely enough to cost nothing.
const HEALTH_EVERY: Duration = Duration::from_millis(20);

/// Model time: seconds since the start of the run, `scale`× real time (1 on the paused clock;
/// the mock's `--time-scale` end to end).
#[derive(Clone, Copy, Debug)]
pub struct TimeBase {
    /// The instant that is model time 0.
    pub origin: Instant,
    /// Model seconds per real second.
    pub scale: f64,
}

impl TimeBase {
    /// Model seconds at `at`.
    pub fn at(&self, at: Instant) -> f64 {
        let real = at.saturating_duration_since(self.origin).as_secs_f64();
        let before = self.origin.saturating_duration_since(at).as_secs_f64();
        (real - before) * self.scale
    }

    /// Model seconds now.
    pub fn now(&self) -> f64 {
        self.at(Instant::now())
    }

    /// A model duration as a real one.
    pub fn real(&self, model_s: f64) -> Duration {
        policies::real_duration(model_s, self.scale)
    }
}

/// One run of one policy: who runs, with which seed, against what.
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// The workload and the server.
    pub scenario: Scenario,
    /// The policy every user follows.
    pub policy: PolicyId,
    /// Drives sizes, jitter and the server's 529 draws.
    pub seed: u64,
    /// The users this process runs (global ids; all of them unless `--processes`).
    pub users: Range<usize>,
    /// The model named in requests.
    pub model: String,
    /// `--shared-limiter` for the backchat policy (passed through to workers).
    pub limiter_url: Option<String>,
    /// `--max-wait` for the backchat policy, in model seconds (`None`: the driver's default).
    pub max_wait_s: Option<f64>,
}

/// What a user's transport saw since the last reset.
#[derive(Debug, Default)]
struct AttemptLog {
    attempts: u32,
    rate_limited: u32,
    overloaded: u32,
    other_failures: u32,
    last_status: u16,
    first_success: Option<Instant>,
}

/// Wraps the shared transport to count every attempt of one user and note its first 2xx,
/// whichever policy sends them.
struct Recording {
    inner: Arc<dyn Transport>,
    log: Arc<Mutex<AttemptLog>>,
}

impl Transport for Recording {
    fn send(
        &self,
        request: &MessagesRequest,
        attempt: u32,
    ) -> BoxFuture<'static, Result<TransportResponse, TransportError>> {
        let sent = self.inner.send(request, attempt);
        let log = Arc::clone(&self.log);
        Box::pin(async move {
            let result = sent.await;
            let mut l = log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            l.attempts += 1;
            let status = result.as_ref().map_or(0, |r| r.status);
            l.last_status = status;
            match status {
                200..=299 => {
                    if l.first_success.is_none() {
                        l.first_success = Some(Instant::now());
                    }
                }
                429 => l.rate_limited += 1,
                529 => l.overloaded += 1,
                _ => l.other_failures += 1,
            }
            result
        })
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// How one submission of a request ended.
pub(crate) enum Outcome {
    Done,
    GaveUp {
        rate_limit: bool,
        /// When the failure said the quota frees up (a refused pacing wait): resubmitting
        /// earlier would only be refused again, at once.
        retry_at: Option<Instant>,
    },
}

/// Run every user of the plan to the end and collect the records. `key` is the API key
/// `transport` sends: a shared limiter namespaces its state by it.
pub async fn run_users(
    plan: &RunPlan,
    transport: Arc<dyn Transport>,
    key: Option<&ApiKey>,
    time: TimeBase,
    progress: Option<&Progress>,
) -> Result<RunRecord, String> {
    // One limiter and one retry budget per process, shared by its users (P7a; through Redis
    // with a shared limiter, P7b). Peers ignore them.
    let url = match plan.policy {
        PolicyId::Backchat => plan.limiter_url.as_deref(),
        _ => None,
    };
    let retry = backchat_retry_config(time.scale, plan.max_wait_s);
    let limiter = backchat_limiter(url, time.scale, key, &retry).await?;
    let mut watch = url.map(|_| HealthWatch::new(limiter.as_ref(), time));
    let budget = backchat_budget();
    let users = plan.users.clone().map(|user| {
        let log = Arc::new(Mutex::new(AttemptLog::default()));
        let recording: Arc<dyn Transport> = Arc::new(Recording {
            inner: Arc::clone(&transport),
            log: Arc::clone(&log),
        });
        let sender = match plan.policy.peer() {
            Some(policy) => Sender::Peer {
                policy,
                transport: recording,
                rng: Box::new(StdRng::seed_from_u64(workload::mix(
                    plan.seed,
                    user as u64,
                    0x9ee7,
                ))),
            },
            None => Sender::Backchat(
                Driver::new(recording)
                    .with_config(retry.clone())
                    .with_limiter(Some(Arc::clone(&limiter)))
                    .with_budget(Arc::clone(&budget))
                    .with_seed(workload::mix(plan.seed, user as u64, 0xbac)),
            ),
        };
        run_user(plan, user, sender, log, time, progress)
    });
    let all = futures::future::join_all(users);
    let done = match watch.as_mut() {
        None => all.await,
        Some(watch) => {
            // Look at the limiter's health while the users run, to see a fail-over when it
            // happens (a killed Redis) and not only how things stood at the end.
            tokio::pin!(all);
            loop {
                tokio::select! {
                    done = &mut all => break done,
                    () = tokio::time::sleep(HEALTH_EVERY) => watch.look(limiter.as_ref(), time),
                }
            }
        }
    };
    let mut record = RunRecord::default();
    for r in done {
        record.merge(r);
    }
    if let Some(mut watch) = watch {
        watch.look(limiter.as_ref(), time);
        watch.record.shared_at_end = limiter.health() == LimiterHealth::Shared;
        record.limiters.push(watch.record);
    }
    Ok(record)
}

/// What one process's shared limiter went through.
struct HealthWatch {
    record: LimiterRecord,
}

impl HealthWatch {
    fn new(limiter: &dyn Limiter, time: TimeBase) -> Self {
        let mut watch = HealthWatch {
            record: LimiterRecord {
                shared_at_start: limiter.health() == LimiterHealth::Shared,
                ..LimiterRecord::default()
            },
        };
        watch.look(limiter, time);
        watch
    }

    fn look(&mut self, limiter: &dyn Limiter, time: TimeBase) {
        if self.record.degraded_at_s.is_none()
            && let LimiterHealth::Degraded(reason) = limiter.health()
        {
            self.record.degraded_at_s = Some(time.now());
            self.record.degraded_reason = Some(reason);
        }
    }
}

/// How a user sends: through a peer policy's loop, or through backchat's driver.
enum Sender {
    Peer {
        policy: PeerPolicy,
        transport: Arc<dyn Transport>,
        rng: Box<StdRng>,
    },
    Backchat(Driver),
}

async fn run_user(
    plan: &RunPlan,
    user: usize,
    mut sender: Sender,
    log: Arc<Mutex<AttemptLog>>,
    time: TimeBase,
    progress: Option<&Progress>,
) -> RunRecord {
    let scenario = &plan.scenario;
    let mut record = RunRecord::default();
    for size in workload::sizes(scenario, plan.seed, user) {
        let request = workload::request(&plan.model, size, scenario.output_tokens);
        let submitted = Instant::now();
        *log.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = AttemptLog::default();
        let mut give_ups = 0;
        let mut rate_limit_give_ups = 0;
        loop {
            let outcome = match &mut sender {
                Sender::Peer {
                    policy,
                    transport,
                    rng,
                } => {
                    peer_submission(
                        *policy,
                        transport.as_ref(),
                        &request,
                        rng,
                        time,
                        &mut record,
                    )
                    .await
                }
                Sender::Backchat(driver) => {
                    backchat_submission(driver, &request, time, &mut record).await
                }
            };
            match outcome {
                Outcome::Done => break,
                Outcome::GaveUp {
                    rate_limit,
                    retry_at,
                } => {
                    give_ups += 1;
                    rate_limit_give_ups += u32::from(rate_limit);
                    // As a person would: after the resubmit delay, and not before the time
                    // the refusal named (a user told "it frees up at 10:42" does not press
                    // retry again at once; a simulated one that did looped without end).
                    let after_delay = Instant::now() + time.real(scenario.resubmit_delay_s);
                    tokio::time::sleep_until(
                        retry_at.map_or(after_delay, |at| at.max(after_delay)),
                    )
                    .await;
                }
            }
        }
        let done = Instant::now();
        let l = std::mem::take(
            &mut *log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        record.requests.push(RequestRecord {
            user,
            input_tokens: size,
            submitted_s: time.at(submitted),
            first_byte_s: time.at(l.first_success.unwrap_or(done)),
            done_s: time.at(done),
            attempts: l.attempts,
            rate_limited: l.rate_limited,
            overloaded: l.overloaded,
            other_failures: l.other_failures,
            give_ups,
            rate_limit_give_ups,
        });
        if let Some(p) = progress {
            p.advance(1);
        }
    }
    record.user_finish_s.push(time.now());
    record
}

/// One submission under a peer policy: attempts until the reply ends or the policy gives up.
pub(crate) async fn peer_submission(
    policy: PeerPolicy,
    transport: &dyn Transport,
    request: &MessagesRequest,
    rng: &mut StdRng,
    time: TimeBase,
    record: &mut RunRecord,
) -> Outcome {
    let mut state = PeerState::default();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (status, hints) = match transport.send(request, attempt).await {
            Ok(TransportResponse {
                status,
                body: ResponseBody::Events(events),
                ..
            }) if (200..300).contains(&status) => {
                return if read_to_end(events).await {
                    Outcome::Done
                } else {
                    // The stream broke after it started: no peer retries that by itself.
                    Outcome::GaveUp {
                        rate_limit: false,
                        retry_at: None,
                    }
                };
            }
            Ok(r) => (r.status, hints(&r.headers, time.scale)),
            Err(_) => (0, ServerHints::default()),
        };
        match policy.decide(&mut state, attempt, status, &hints, rng) {
            Decision::GiveUp => {
                return Outcome::GaveUp {
                    rate_limit: status == 429,
                    retry_at: None,
                };
            }
            Decision::Retry { delay_s } => {
                let announced = time.now();
                if delay_s > 0.0 {
                    tokio::time::sleep(time.real(delay_s)).await;
                    // A peer's countdown is its own sleep; it ends when the next try goes out.
                    let error = ((time.now() - announced) - delay_s).abs();
                    record.countdown_errors_s.push(error);
                    record.send_vs_countdown_s.push(error);
                }
            }
        }
    }
}

/// `retry-after-ms`, `retry-after` and `x-should-retry`, in model seconds.
fn hints(headers: &http::HeaderMap, scale: f64) -> ServerHints {
    let h = crate::retry::headers::parse_retry_hints(headers, Instant::now());
    ServerHints {
        retry_after_ms: h.retry_after_ms.map(|d| d.as_secs_f64() * scale),
        retry_after: h.retry_after.map(|d| d.as_secs_f64() * scale),
        should_retry: h.should_retry,
    }
}

/// Read a reply to its end; `false` if it broke first.
async fn read_to_end(mut events: crate::api::EventStream) -> bool {
    while let Some(ev) = events.next().await {
        match ev {
            Ok(StreamEvent::MessageStop) => return true,
            Ok(StreamEvent::Error(_)) | Err(_) => return false,
            Ok(_) => {}
        }
    }
    false
}

/// One submission under backchat's engine: one turn of the real driver.
async fn backchat_submission(
    driver: &Driver,
    request: &MessagesRequest,
    time: TimeBase,
    record: &mut RunRecord,
) -> Outcome {
    let mut turn = driver.run(request.clone());
    // The countdown on screen, and every wait announced since the last attempt went out.
    let mut shown: Option<Instant> = None;
    let mut announced: Vec<Instant> = Vec::new();
    while let Some(event) = turn.next().await {
        match event {
            TurnEvent::Pacing { until, .. } | TurnEvent::RetryScheduled { until, .. } => {
                // A new countdown replaces the one on screen: that one ends now.
                if let Some(prev) = shown.replace(until) {
                    record
                        .countdown_errors_s
                        .push((time.now() - time.at(prev)).abs());
                }
                announced.push(until);
            }
            TurnEvent::Sending { .. } => {
                let now = time.now();
                if let Some(prev) = shown.take() {
                    record.countdown_errors_s.push((now - time.at(prev)).abs());
                }
                for until in announced.drain(..) {
                    record
                        .send_vs_countdown_s
                        .push((now - time.at(until)).abs());
                }
            }
            TurnEvent::Finished { .. } => return Outcome::Done,
            TurnEvent::Interrupted { .. } => {
                return Outcome::GaveUp {
                    rate_limit: false,
                    retry_at: None,
                };
            }
            TurnEvent::Failed(f) => {
                let status = f.api.as_ref().and_then(|a| a.status);
                // A 429, or the pacer refusing a wait that long: both are the rate limit.
                let rate_limit = status == Some(429)
                    || (f.api.is_none()
                        && matches!(
                            f.kind,
                            FailureKind::WaitTooLong | FailureKind::DeadlineExceeded
                        ));
                let retry_at = (f.api.is_none() && f.kind == FailureKind::WaitTooLong)
                    .then_some(f.resets_at)
                    .flatten();
                return Outcome::GaveUp {
                    rate_limit,
                    retry_at,
                };
            }
            _ => {}
        }
    }
    Outcome::GaveUp {
        rate_limit: false,
        retry_at: None,
    }
}
