//! The turn driver: one request in, a stream of [`TurnEvent`]s out.
//!
//! Before the stream starts it paces (asks the limiter for a slot), sends, and on a retryable
//! failure announces the wait and retries, within `--max-retries`, `--max-wait`, the per-turn
//! deadline and the shared retry budget. Once the stream has started nothing is retried: a
//! break ends the turn `Interrupted` with the partial text kept (docs/protocol.md).
//!
//! The stream is lazy and owns all its state: dropping it cancels the turn at once, whatever it
//! was doing (pacing, waiting to retry, streaming), and gives back any unused reservation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::budget::RetryBudget;
use super::event::{DelaySource, FailureKind, TurnEvent, TurnFailure, WaitCause};
use super::headers::{self, RetryHints};
use super::policy::{self, AttemptError, RetryConfig, Verdict};
use crate::api::{
    ApiError, Delta, EventStream, MessagesRequest, ResponseBody, StreamEvent, StreamFailure,
    Transport, TransportError, TransportResponse, Usage,
};
use crate::clock::{human_duration, local_clock};
use crate::limiter::{Limiter, LocalLimiter, Reservation, Ticket};
use crate::quota::{self, Bucket, ModelClass, QuotaSnapshot};
use crate::util::{Emitter, Generated, generate};

/// Runs turns. Cheap to clone; clones share the limiter, the retry budget and the RNG.
#[derive(Clone)]
pub struct Driver {
    transport: Arc<dyn Transport>,
    limiter: Option<Arc<dyn Limiter>>,
    budget: Arc<RetryBudget>,
    config: RetryConfig,
    rng: Arc<Mutex<StdRng>>,
}

impl Driver {
    /// A driver with the default retry settings, a fresh in-process limiter and retry budget.
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Driver {
            transport,
            limiter: Some(Arc::new(LocalLimiter::new())),
            budget: Arc::new(RetryBudget::default()),
            config: RetryConfig::default(),
            rng: Arc::new(Mutex::new(StdRng::from_rng(&mut rand::rng()))),
        }
    }

    /// Use these retry settings.
    pub fn with_config(mut self, config: RetryConfig) -> Self {
        self.config = config;
        self
    }

    /// Pace through this limiter (`None` switches pacing off: `--no-pacing`).
    pub fn with_limiter(mut self, limiter: Option<Arc<dyn Limiter>>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Share this retry budget.
    pub fn with_budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// Seed the jitter, for reproducible tests and load-test runs.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
        self
    }

    /// The retry settings.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// The limiter, if pacing is on.
    pub fn limiter(&self) -> Option<&Arc<dyn Limiter>> {
        self.limiter.as_ref()
    }

    /// Where requests go.
    pub fn describe(&self) -> String {
        self.transport.describe()
    }

    /// Run one turn. The stream ends after its terminal event (`Finished`, `Interrupted` or
    /// `Failed`); dropping it earlier cancels the turn.
    pub fn run(&self, request: MessagesRequest) -> Generated<TurnEvent> {
        let driver = self.clone();
        generate(move |tx| async move { driver.drive(request, tx).await })
    }

    async fn drive(self, request: MessagesRequest, tx: Emitter<TurnEvent>) {
        let started = Instant::now();
        let deadline = started + self.config.deadline;
        let max_attempts = self.config.max_retries.saturating_add(1);
        let class = ModelClass::of(&request.model);
        let estimated_input = self.limiter.as_ref().map_or_else(
            || request.estimated_input_tokens(),
            |l| l.estimate(&request).input_tokens as u64,
        );
        if let Some(limiter) = &self.limiter
            && let Some(failure) = refuse_unsent(limiter.as_ref(), &class, estimated_input)
        {
            tx.emit(TurnEvent::Failed(failure));
            return;
        }
        let mut last_quota: Option<QuotaSnapshot> = None;
        let mut attempt: u32 = 0;
        // Failed attempts whose retry the server scheduled (a 429 with `retry-after`): they
        // do not count against `--max-retries` (see `policy::counts_against_max_retries`).
        let mut scheduled: u32 = 0;

        loop {
            attempt += 1;
            let mut ticket = match self.pace(&request, deadline, attempt, &tx).await {
                Ok(t) => t,
                Err(failure) => {
                    tx.emit(TurnEvent::Failed(failure));
                    return;
                }
            };
            tx.emit(TurnEvent::Sending {
                attempt,
                max_attempts,
            });
            // The deadline bounds the attempt in flight too: a server that never answers
            // must not hold the turn past it (the header timeout may be longer).
            let Ok(sent) =
                tokio::time::timeout_at(deadline, self.transport.send(&request, attempt)).await
            else {
                drop(ticket.take());
                tx.emit(TurnEvent::Failed(TurnFailure {
                    kind: FailureKind::DeadlineExceeded,
                    message: format!(
                        "The turn's deadline ({}) passed while waiting for the server to answer attempt {attempt}.",
                        human_duration(self.config.deadline)
                    ),
                    api: None,
                    transport: None,
                    resets_at: None,
                    attempts: attempt,
                }));
                return;
            };
            let now = Instant::now();

            // Classify the attempt; a 2xx leaves the loop for the stream.
            let (error, hints, quota) = match sent {
                Err(e) => {
                    // Not admitted: the slot goes back.
                    drop(ticket.take());
                    (Attempt::Network(e), RetryHints::default(), None)
                }
                Ok(TransportResponse {
                    status,
                    headers,
                    body,
                }) => {
                    let quota = quota::parse_quota(&headers, now);
                    // Settle the slot before these headers correct the limiter: the server has
                    // counted this request (a 2xx) or not (an error), so the limiter must no
                    // longer count it as in flight when it compares with `remaining`.
                    let admitted =
                        (200..300).contains(&status) && matches!(body, ResponseBody::Events(_));
                    let committed = if admitted {
                        ticket.take().map(Ticket::commit)
                    } else {
                        drop(ticket.take());
                        None
                    };
                    if !quota.is_empty() {
                        if let Some(l) = &self.limiter {
                            l.observe(&class, &quota);
                        }
                        tx.emit(TurnEvent::Quota(quota.clone()));
                        match &mut last_quota {
                            Some(q) => q.merge_newer(&quota),
                            None => last_quota = Some(quota.clone()),
                        }
                    }
                    match body {
                        ResponseBody::Events(events) if admitted => {
                            self.budget.record_success();
                            self.stream(events, &headers, committed, &tx).await;
                            return;
                        }
                        ResponseBody::Events(_) => {
                            // A transport must read error bodies whole; treat a streamed one
                            // as empty rather than trust it.
                            let api = ApiError::from_response(status, headers.clone(), b"");
                            (
                                Attempt::Api(api),
                                headers::parse_retry_hints(&headers, now),
                                Some(quota),
                            )
                        }
                        ResponseBody::Bytes(bytes) => {
                            let api = ApiError::from_response(status, headers.clone(), &bytes);
                            (
                                Attempt::Api(api),
                                headers::parse_retry_hints(&headers, now),
                                Some(quota),
                            )
                        }
                    }
                }
            };
            // The consumer logs the retry or the failure, one line each, from the events.
            tracing::debug!(
                attempt,
                status = error.status(),
                request_id = error.request_id().unwrap_or("-"),
                error = %error.summary(),
                "attempt failed"
            );

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
                (&self.config, &self.budget, &self.rng),
                self.limiter.as_deref().map(|l| (l, &class)),
            );
            let wait = match decision {
                Ok(wait) => wait,
                Err(failure) => {
                    tx.emit(TurnEvent::Failed(*failure));
                    return;
                }
            };
            if !wait.counted {
                scheduled += 1;
            }
            tx.emit(TurnEvent::RetryScheduled {
                attempt: attempt + 1,
                max_attempts,
                delay: wait.delay,
                until: wait.until,
                cause: wait.cause,
                status: error.status(),
                error_type: error.error_type(),
                source: wait.source,
                message: error.summary(),
                request_id: error.request_id().map(str::to_string),
            });
            tokio::time::sleep_until(wait.until).await;
        }
    }

    /// Wait for a slot (announcing the wait first). `Ok(None)` when pacing is off.
    async fn pace(
        &self,
        request: &MessagesRequest,
        deadline: Instant,
        attempt: u32,
        tx: &Emitter<TurnEvent>,
    ) -> Result<Option<Ticket>, TurnFailure> {
        let Some(limiter) = &self.limiter else {
            return Ok(None);
        };
        let demand = limiter.estimate(request);
        let mut may_await_probe = true;
        loop {
            match limiter.reserve(demand, may_await_probe).await {
                Reservation::AwaitFirstHeaders { until, ready } => {
                    may_await_probe = false;
                    let delay = until.saturating_duration_since(Instant::now());
                    tx.emit(TurnEvent::Pacing {
                        delay,
                        until,
                        bucket: Bucket::Requests,
                        source: DelaySource::Pacer,
                    });
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = ready => {}
                    }
                }
                Reservation::Granted(grant) => {
                    let ticket = Ticket::new(Arc::clone(limiter), grant);
                    let now = Instant::now();
                    // Whole milliseconds, like tokio's timers, so the announced wait is exact.
                    let start = now
                        + policy::whole_millis(
                            ticket.grant().start_at.saturating_duration_since(now),
                        );
                    if start > now {
                        let delay = start - now;
                        if start > deadline {
                            return Err(TurnFailure {
                                kind: FailureKind::DeadlineExceeded,
                                message: format!(
                                    "The quota would not allow this request before the turn's deadline ({} from now).",
                                    human_duration(delay)
                                ),
                                api: None,
                                transport: None,
                                resets_at: Some(start),
                                attempts: attempt - 1,
                            });
                        }
                        if delay > self.config.max_wait {
                            let bucket = ticket.grant().bucket.unwrap_or(Bucket::Requests);
                            return Err(TurnFailure {
                                kind: FailureKind::WaitTooLong,
                                message: format!(
                                    "The {} quota would make this request wait {}, longer than --max-wait ({}). \
                                     It frees up at {}; try again then, or raise --max-wait.",
                                    bucket.label(),
                                    human_duration(delay),
                                    human_duration(self.config.max_wait),
                                    local_clock(start)
                                ),
                                api: None,
                                transport: None,
                                resets_at: Some(start),
                                attempts: attempt - 1,
                            });
                        }
                        tx.emit(TurnEvent::Pacing {
                            delay,
                            until: start,
                            bucket: ticket.grant().bucket.unwrap_or(Bucket::Requests),
                            source: ticket.grant().source.into(),
                        });
                        tokio::time::sleep_until(start).await;
                    }
                    return Ok(Some(ticket));
                }
            }
        }
    }

    /// Read the committed stream to its end.
    async fn stream(
        &self,
        mut events: EventStream,
        headers: &http::HeaderMap,
        mut ticket: Option<Ticket>,
        tx: &Emitter<TurnEvent>,
    ) {
        let request_id = crate::api::error::header_str(headers, "request-id");
        let mut usage = Usage::default();
        let mut stop_reason: Option<String> = None;
        let mut got_text = false;
        let mut started = false;
        let failure = loop {
            let Some(next) = events.next().await else {
                break StreamFailure::EndedEarly;
            };
            let event = match next {
                Ok(ev) => ev,
                Err(f) => break f,
            };
            match event {
                StreamEvent::MessageStart(message) => {
                    usage = message.usage.clone();
                    if !started {
                        started = true;
                        tx.emit(TurnEvent::Started {
                            request_id: request_id.clone(),
                            model: message.model,
                        });
                    }
                    tx.emit(TurnEvent::Usage(usage.clone()));
                }
                StreamEvent::ContentBlockDelta { delta, .. } => match delta {
                    Delta::TextDelta { text } if !text.is_empty() => {
                        got_text = true;
                        tx.emit_merged(TurnEvent::TextDelta { text }, merge_deltas);
                    }
                    Delta::ThinkingDelta { thinking } if !thinking.is_empty() => {
                        tx.emit_merged(TurnEvent::ThinkingDelta { text: thinking }, merge_deltas);
                    }
                    // Signatures, tool input and citations are not shown by a chat client.
                    _ => {}
                },
                StreamEvent::MessageDelta { delta, usage: u } => {
                    usage.overwrite_from(&u);
                    if delta.stop_reason.is_some() {
                        stop_reason = delta.stop_reason;
                    }
                    tx.emit(TurnEvent::Usage(usage.clone()));
                }
                StreamEvent::MessageStop => {
                    if let Some(t) = ticket.take() {
                        t.settle(&usage);
                    }
                    tracing::info!(
                        request_id = request_id.as_deref().unwrap_or("-"),
                        output_tokens = usage.output_tokens,
                        "reply finished"
                    );
                    tx.emit(TurnEvent::Finished { stop_reason, usage });
                    return;
                }
                StreamEvent::Error(env) => {
                    break StreamFailure::Server(ApiError::from_stream(env, headers));
                }
                StreamEvent::ContentBlockStart { .. }
                | StreamEvent::ContentBlockStop { .. }
                | StreamEvent::Ping => {}
            }
        };
        if let Some(t) = ticket.take() {
            t.settle(&usage);
        }
        tracing::warn!(
            request_id = request_id.as_deref().unwrap_or("-"),
            error = %failure,
            "stream interrupted"
        );
        tx.emit(TurnEvent::Interrupted {
            error: failure,
            partial_kept: got_text,
        });
    }
}

/// A request the stated input limit can never admit, refused before it is sent (and before
/// any pacing wait): pacing it as a full bucket and then meeting the 429 took a minute. The
/// estimate may overstate a little ([`Limiter::input_estimate_error`]); a request within that
/// margin goes, and the server decides.
pub fn refuse_unsent(
    limiter: &dyn Limiter,
    class: &ModelClass,
    estimated_input: u64,
) -> Option<TurnFailure> {
    let limit = limiter
        .stated_limit(class, Bucket::InputTokens)
        .filter(|l| *l > 0)?;
    let margin = 1.0 + limiter.input_estimate_error(class);
    (estimated_input as f64 > limit as f64 * margin).then(|| TurnFailure {
        kind: FailureKind::ExceedsQuota,
        message: policy::exceeds_quota_message(estimated_input, limit),
        api: None,
        transport: None,
        resets_at: None,
        attempts: 0,
    })
}

/// Largest text delta made by folding queued deltas together ([`merge_deltas`]).
const MERGED_DELTA_BYTES: usize = 64 << 10;

/// Fold a text (or thinking) delta into the previous one while the consumer has not taken
/// it yet. A reply arrives as thousands of small deltas, often many in one read; each went
/// through every layer above (events, the session, the terminal) on its own, which was most
/// of headless mode's time on a long reply. The text and its order are unchanged: only
/// deltas that were waiting together are joined, up to [`MERGED_DELTA_BYTES`].
fn merge_deltas(last: &mut TurnEvent, new: TurnEvent) -> Option<TurnEvent> {
    match (last, new) {
        (TurnEvent::TextDelta { text: a }, TurnEvent::TextDelta { text: b })
        | (TurnEvent::ThinkingDelta { text: a }, TurnEvent::ThinkingDelta { text: b })
            if a.len() + b.len() <= MERGED_DELTA_BYTES =>
        {
            a.push_str(&b);
            None
        }
        (_, new) => Some(new),
    }
}

/// A failed attempt: an API error or a network error. Public so that a surface which sends
/// its own requests (the proxy forwards raw bytes, not a [`MessagesRequest`]) decides its
/// retries with the same [`next_wait`].
pub enum Attempt {
    /// The server answered with an error status.
    Api(ApiError),
    /// No answer: connect, timeout, or a broken connection before the status line.
    Network(TransportError),
}

impl Attempt {
    fn as_attempt_error(&self) -> AttemptError<'_> {
        match self {
            Attempt::Api(a) => AttemptError::Status(a),
            Attempt::Network(n) => AttemptError::Network(n),
        }
    }

    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Attempt::Api(a) => a.status,
            Attempt::Network(_) => None,
        }
    }

    fn request_id(&self) -> Option<&str> {
        match self {
            Attempt::Api(a) => a.request_id.as_deref(),
            Attempt::Network(_) => None,
        }
    }

    fn error_type(&self) -> Option<String> {
        match self {
            Attempt::Api(a) => Some(a.error_type.clone()),
            Attempt::Network(_) => None,
        }
    }

    /// A 429.
    pub fn is_rate_limit(&self) -> bool {
        matches!(self, Attempt::Api(a) if a.status == Some(429))
    }

    /// One line for a person or a log.
    pub fn summary(&self) -> String {
        match self {
            Attempt::Api(a) => a.summary(),
            Attempt::Network(n) => n.to_string(),
        }
    }

    fn failure(
        &self,
        kind: FailureKind,
        message: String,
        attempts: u32,
        resets_at: Option<Instant>,
    ) -> TurnFailure {
        let (api, transport) = match self {
            Attempt::Api(a) => (Some(a.clone()), None),
            Attempt::Network(n) => (None, Some(n.clone())),
        };
        TurnFailure {
            kind,
            message,
            api,
            transport,
            resets_at,
            attempts,
        }
    }
}

/// What happened to an attempt that failed before its stream started: what [`next_wait`]
/// decides on.
pub struct FailedAttempt<'a> {
    /// Its number (1 for the first try).
    pub attempt: u32,
    /// How many of the turn's earlier failures were waits the server scheduled, which do not
    /// count against `--max-retries`.
    pub scheduled: u32,
    /// The error.
    pub error: &'a Attempt,
    /// The retry hints of its response (none for a network error).
    pub hints: &'a RetryHints,
    /// The rate-limit headers of its response, if it had one.
    pub quota: Option<&'a QuotaSnapshot>,
    /// Everything the turn's responses have said about the quota so far.
    pub last_quota: Option<&'a QuotaSnapshot>,
    /// The request's input-token estimate.
    pub estimated_input: u64,
}

/// The wait before the next attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Wait {
    /// How long.
    pub delay: Duration,
    /// Until when (`now + delay`).
    pub until: Instant,
    /// Where the length came from.
    pub source: DelaySource,
    /// Why.
    pub cause: WaitCause,
    /// Whether this failure counts against `--max-retries` (a rate-limit wait the server
    /// scheduled does not).
    pub counted: bool,
}

/// [`next_wait`] as both the driver and the proxy run it: now, with the shared RNG, and, when
/// the wait is a rate-limit wait the server scheduled, the limiter told to hold every request
/// of the class until it ends (so that one 429 pauses all turns, not just this one).
pub fn decide_retry(
    failed: &FailedAttempt<'_>,
    deadline: Instant,
    (config, budget, rng): (&RetryConfig, &RetryBudget, &Mutex<StdRng>),
    limiter: Option<(&dyn Limiter, &ModelClass)>,
) -> Result<Wait, Box<TurnFailure>> {
    let wait = {
        let mut rng = rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        next_wait(failed, Instant::now(), deadline, config, budget, &mut *rng)?
    };
    if failed.error.is_rate_limit()
        && wait.source != DelaySource::Backoff
        && let Some((l, class)) = limiter
    {
        l.rate_limited(class, wait.until, wait.cause.bucket());
    }
    Ok(wait)
}

/// The one decision after a failed attempt: the wait before the next one, or the failure that
/// ends the turn. In order: the policy's verdict (an error not worth retrying), `--max-retries`,
/// the retry budget (spent here for the causes that spend it), the delay (the server's word,
/// or jittered backoff drawn from `rng`), `--max-wait`, and the turn's deadline. Pure apart
/// from the RNG and the retry budget it is handed; `now` is when the decision is made.
pub fn next_wait(
    failed: &FailedAttempt<'_>,
    now: Instant,
    deadline: Instant,
    config: &RetryConfig,
    budget: &RetryBudget,
    rng: &mut impl Rng,
) -> Result<Wait, Box<TurnFailure>> {
    let &FailedAttempt {
        attempt,
        scheduled,
        error,
        hints,
        quota,
        last_quota,
        estimated_input,
    } = failed;
    let max_attempts = config.max_retries.saturating_add(1);
    let cause = match policy::classify(error.as_attempt_error(), hints, estimated_input, last_quota)
    {
        Verdict::Fail { kind, message } => {
            return Err(Box::new(error.failure(kind, message, attempt, None)));
        }
        Verdict::Retry { cause } => cause,
    };
    // A wait the server scheduled is bounded by --max-wait and the deadline below, not by the
    // attempt count; every other failure counts, after the scheduled ones are taken out.
    let counted = policy::counts_against_max_retries(cause, hints);
    if counted && attempt.saturating_sub(scheduled) >= max_attempts {
        let message = format!(
            "Gave up after {attempt} attempts (--max-retries {}). Last error: {}",
            config.max_retries,
            error.summary()
        );
        let resets = reset_of(quota, cause);
        return Err(Box::new(error.failure(
            FailureKind::RetriesExhausted,
            message,
            attempt,
            resets,
        )));
    }
    if cause.spends_budget() && !budget.try_spend() {
        let message = format!(
            "The API keeps failing ({}); backchat stopped retrying so as not to add load \
             to an outage. Try again in a little while (Ctrl+R / /retry).",
            error.summary()
        );
        return Err(Box::new(error.failure(
            FailureKind::RetryBudgetExhausted,
            message,
            attempt,
            None,
        )));
    }
    let (delay, source) = policy::delay(hints, quota, cause, attempt, now, config, rng);
    let until = now + delay;
    if delay > config.max_wait {
        let resets = reset_of(quota, cause).or(Some(until));
        let message = wait_too_long_message(delay, source, config.max_wait, resets, cause);
        return Err(Box::new(error.failure(
            FailureKind::WaitTooLong,
            message,
            attempt,
            resets,
        )));
    }
    if until > deadline {
        let message = format!(
            "The turn's deadline ({}) would pass during the next wait ({:.1}s, {}). Last error: {}",
            human_duration(config.deadline),
            delay.as_secs_f64(),
            source.label(),
            error.summary()
        );
        return Err(Box::new(error.failure(
            FailureKind::DeadlineExceeded,
            message,
            attempt,
            None,
        )));
    }
    Ok(Wait {
        delay,
        until,
        source,
        cause,
        counted,
    })
}

fn reset_of(quota: Option<&QuotaSnapshot>, cause: WaitCause) -> Option<Instant> {
    let q = quota?;
    cause
        .bucket()
        .and_then(|b| q.bucket(b))
        .and_then(|b| b.reset)
        .or_else(|| q.binding().and_then(|(_, b)| b.reset))
}

fn wait_too_long_message(
    delay: Duration,
    source: DelaySource,
    max_wait: Duration,
    resets: Option<Instant>,
    cause: WaitCause,
) -> String {
    let when = resets.map_or_else(|| "later".to_string(), local_clock);
    format!(
        "The server asks to wait {} ({}, {}), longer than --max-wait ({}). The quota frees up at \
         {when}; try again then, or raise --max-wait.",
        human_duration(delay),
        source.label(),
        cause.label(),
        human_duration(max_wait)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::api::{Message, MessageResponse, Role, UsageDelta};
    use crate::quota::BucketQuota;
    use crate::retry::BudgetConfig;
    use futures::future::BoxFuture;
    use http::{HeaderMap, HeaderValue};

    /// A server that admits every request and reports the quota it was given.
    struct Admits {
        headers: HeaderMap,
        input_tokens: u64,
    }

    impl Transport for Admits {
        fn send(
            &self,
            _request: &MessagesRequest,
            _attempt: u32,
        ) -> BoxFuture<'static, Result<TransportResponse, TransportError>> {
            let headers = self.headers.clone();
            let input = self.input_tokens;
            Box::pin(async move {
                let start = message_start(Usage {
                    input_tokens: input,
                    output_tokens: 1,
                    ..Usage::default()
                });
                let events = vec![
                    Ok(StreamEvent::MessageStart(start)),
                    Ok(StreamEvent::MessageDelta {
                        delta: crate::api::MessageDeltaBody::default(),
                        usage: UsageDelta {
                            output_tokens: Some(10),
                            ..UsageDelta::default()
                        },
                    }),
                    Ok(StreamEvent::MessageStop),
                ];
                Ok(TransportResponse {
                    status: 200,
                    headers,
                    body: ResponseBody::Events(futures::stream::iter(events).boxed()),
                })
            })
        }

        fn describe(&self) -> String {
            "admits".into()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_admitted_request_is_not_counted_twice_by_the_pacer() {
        let now = Instant::now();
        let stamp = |secs: u64| {
            let wall = crate::clock::wall_at(now + Duration::from_secs(secs));
            HeaderValue::from_str(&crate::clock::rfc3339_seconds(wall)).expect("stamp")
        };
        // The server's view right after admitting our 3,000-token request.
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("anthropic-ratelimit-input-tokens-limit", "30000"),
            ("anthropic-ratelimit-input-tokens-remaining", "27000"),
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "49"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        headers.insert("anthropic-ratelimit-input-tokens-reset", stamp(6));
        headers.insert("anthropic-ratelimit-requests-reset", stamp(2));
        let pacer = Arc::new(LocalLimiter::new());
        let limiter: Arc<dyn Limiter> = pacer.clone();
        let driver = Driver::new(Arc::new(Admits {
            headers,
            input_tokens: 3000,
        }))
        .with_limiter(Some(limiter));
        let text: String = "abcd".repeat(3000 - 7);
        let request = MessagesRequest::new("m", 100, vec![Message::text(Role::User, text)]);
        assert_eq!(request.estimated_input_tokens(), 3000);
        let events: Vec<TurnEvent> = driver.run(request).collect().await;
        assert!(
            matches!(events.last(), Some(TurnEvent::Finished { .. })),
            "{events:?}"
        );
        // The server's 27,000 already include this request: the model must not take its
        // 3,000 again (it used to end at 24,000 and hold them back for good).
        let class = ModelClass::of("m");
        let level = pacer
            .level(&class, Bucket::InputTokens, Instant::now())
            .expect("known");
        assert!((level - 27_000.0).abs() < 1.0, "{level}");
        let requests = pacer
            .level(&class, Bucket::Requests, Instant::now())
            .expect("known");
        assert!((requests - 49.0).abs() < 0.01, "{requests}");
    }

    /// A server whose reply is the given stream events, all ready at once.
    struct Replies(std::sync::Mutex<Option<Vec<StreamEvent>>>);

    impl Transport for Replies {
        fn send(
            &self,
            _request: &MessagesRequest,
            _attempt: u32,
        ) -> BoxFuture<'static, Result<TransportResponse, TransportError>> {
            let events = self.0.lock().expect("lock").take().unwrap_or_default();
            Box::pin(async move {
                Ok(TransportResponse {
                    status: 200,
                    headers: HeaderMap::new(),
                    body: ResponseBody::Events(
                        futures::stream::iter(events.into_iter().map(Ok)).boxed(),
                    ),
                })
            })
        }

        fn describe(&self) -> String {
            "replies".into()
        }
    }

    /// The `message_start` of model `m`'s reply, with `usage`.
    fn message_start(usage: Usage) -> MessageResponse {
        MessageResponse {
            id: "msg_1".into(),
            model: "m".into(),
            role: Role::Assistant,
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage,
        }
    }

    fn start_event() -> StreamEvent {
        StreamEvent::MessageStart(message_start(Usage::default()))
    }

    fn delta(delta: crate::api::Delta) -> StreamEvent {
        StreamEvent::ContentBlockDelta { index: 0, delta }
    }

    #[tokio::test]
    async fn deltas_waiting_together_reach_the_consumer_joined_in_order() {
        let mut events = vec![start_event()];
        let mut want_text = String::new();
        for i in 0..3000 {
            let text = format!("word{i} ");
            want_text.push_str(&text);
            events.push(delta(crate::api::Delta::TextDelta { text }));
            if i == 1500 {
                events.push(delta(crate::api::Delta::ThinkingDelta {
                    thinking: "hmm".into(),
                }));
            }
        }
        // Long enough that joining must stop at the bound.
        let long = "x".repeat(MERGED_DELTA_BYTES - 10);
        want_text.push_str(&long);
        events.push(delta(crate::api::Delta::TextDelta { text: long }));
        events.push(StreamEvent::MessageStop);
        let driver = Driver::new(Arc::new(Replies(std::sync::Mutex::new(Some(events)))));
        let request = MessagesRequest::new("m", 100, vec![Message::text(Role::User, "hi")]);
        let got: Vec<TurnEvent> = driver.run(request).collect().await;

        let mut text = String::new();
        let mut pieces = Vec::new();
        let mut thinking_after = None;
        for event in &got {
            match event {
                TurnEvent::TextDelta { text: t } => {
                    text.push_str(t);
                    pieces.push(t.len());
                }
                TurnEvent::ThinkingDelta { text: t } => {
                    assert_eq!(t, "hmm");
                    thinking_after = Some(text.len());
                }
                _ => {}
            }
        }
        assert_eq!(text, want_text, "the text is unchanged and in order");
        // The thinking delta stays between the text before and after it.
        let before: usize = (0..=1500).map(|i| format!("word{i} ").len()).sum();
        assert_eq!(thinking_after, Some(before));
        // 3,001 text deltas arrived together: a few joined ones reach the consumer, none
        // larger than the bound.
        assert!(pieces.len() <= 4, "{pieces:?}");
        assert!(
            pieces.iter().all(|&n| n <= MERGED_DELTA_BYTES),
            "{pieces:?}"
        );
        assert!(matches!(got.last(), Some(TurnEvent::Finished { .. })));
    }

    #[test]
    fn only_deltas_of_one_kind_join() {
        let mut last = TurnEvent::TextDelta { text: "a".into() };
        let back = merge_deltas(&mut last, TurnEvent::ThinkingDelta { text: "b".into() });
        assert!(matches!(back, Some(TurnEvent::ThinkingDelta { .. })));
        assert!(merge_deltas(&mut last, TurnEvent::TextDelta { text: "c".into() }).is_none());
        assert!(matches!(&last, TurnEvent::TextDelta { text } if text == "ac"));
        let mut other = TurnEvent::Sending {
            attempt: 1,
            max_attempts: 1,
        };
        let back = merge_deltas(&mut other, TurnEvent::TextDelta { text: "d".into() });
        assert!(matches!(back, Some(TurnEvent::TextDelta { .. })));
    }

    /// A limiter that has seen an input limit of 30,000 tokens per minute.
    fn limiter_knowing_30k() -> Arc<LocalLimiter> {
        let pacer = Arc::new(LocalLimiter::new());
        let mut headers = HeaderMap::new();
        headers.insert(
            "anthropic-ratelimit-input-tokens-limit",
            HeaderValue::from_static("30000"),
        );
        headers.insert(
            "anthropic-ratelimit-input-tokens-remaining",
            HeaderValue::from_static("30000"),
        );
        pacer.observe(
            &ModelClass::of("m"),
            &quota::parse_quota(&headers, Instant::now()),
        );
        pacer
    }

    /// A server that counts the attempts sent to it, and refuses each.
    struct Counts(Arc<std::sync::atomic::AtomicU32>);
    impl Transport for Counts {
        fn send(
            &self,
            _request: &MessagesRequest,
            _attempt: u32,
        ) -> BoxFuture<'static, Result<TransportResponse, TransportError>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { Err(TransportError::Connect("refused".into())) })
        }
        fn describe(&self) -> String {
            "counts".into()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_the_stated_limit_can_never_admit_is_refused_unsent() {
        let pacer = limiter_knowing_30k();
        assert_eq!(
            pacer.stated_limit(&ModelClass::of("m"), Bucket::InputTokens),
            Some(30_000)
        );
        let sent = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let limiter: Arc<dyn Limiter> = pacer;
        let driver = Driver::new(Arc::new(Counts(Arc::clone(&sent)))).with_limiter(Some(limiter));
        // About 40,000 tokens: a third above the limit, beyond any error of the estimate.
        let request = MessagesRequest::new(
            "m",
            100,
            vec![Message::text(Role::User, "abcd".repeat(40_000))],
        );
        let t0 = Instant::now();
        let events: Vec<TurnEvent> = driver.run(request).collect().await;
        assert_eq!(
            sent.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "never sent"
        );
        assert_eq!(Instant::now(), t0, "no pacing wait first");
        match events.as_slice() {
            [TurnEvent::Failed(f)] => {
                assert_eq!(f.kind, FailureKind::ExceedsQuota);
                assert!(
                    f.message.contains("more than your limit of 30,000"),
                    "{}",
                    f.message
                );
                assert_eq!(f.attempts, 0);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_just_above_the_stated_limit_is_still_tried() {
        // An estimate not yet checked against usage may be high: 5% above the limit goes to
        // the server, which decides.
        let pacer = limiter_knowing_30k();
        let limiter: Arc<dyn Limiter> = pacer;
        let driver = Driver::new(Arc::new(Admits {
            headers: HeaderMap::new(),
            input_tokens: 29_000,
        }))
        .with_limiter(Some(limiter));
        let request = MessagesRequest::new(
            "m",
            100,
            vec![Message::text(Role::User, "abcd".repeat(31_500))],
        );
        let events: Vec<TurnEvent> = driver.run(request).collect().await;
        assert!(
            events
                .iter()
                .any(|e| matches!(e, TurnEvent::Sending { .. })),
            "{events:?}"
        );
        assert!(
            matches!(events.last(), Some(TurnEvent::Finished { .. })),
            "{events:?}"
        );
    }

    fn api_error(status: u16, kind: &str) -> Attempt {
        Attempt::Api(ApiError {
            status: Some(status),
            error_type: kind.into(),
            message: "slow down".into(),
            request_id: Some("req_1".into()),
            details: None,
            headers: HeaderMap::new(),
        })
    }

    /// The defaults, without the random spread on server delays (so waits are exact).
    fn config() -> RetryConfig {
        RetryConfig {
            server_delay_spread: Duration::ZERO,
            ..RetryConfig::default()
        }
    }

    fn retry_after(secs: u64) -> RetryHints {
        RetryHints {
            retry_after: Some(Duration::from_secs(secs)),
            ..RetryHints::default()
        }
    }

    /// Decide on `error` at attempt `attempt` with `hints` and no quota headers, a fresh
    /// default budget and a turn deadline `deadline_in` from now.
    fn decide(
        error: &Attempt,
        attempt: u32,
        hints: &RetryHints,
        deadline_in: Duration,
        budget: &RetryBudget,
    ) -> Result<Wait, Box<TurnFailure>> {
        let now = Instant::now();
        let failed = FailedAttempt {
            attempt,
            scheduled: 0,
            error,
            hints,
            quota: None,
            last_quota: None,
            estimated_input: 100,
        };
        let mut rng = StdRng::seed_from_u64(7);
        next_wait(&failed, now, now + deadline_in, &config(), budget, &mut rng)
    }

    const LONG: Duration = Duration::from_mins(15);

    #[tokio::test(start_paused = true)]
    async fn a_retryable_error_waits_as_the_server_says() {
        let now = Instant::now();
        let error = api_error(429, "rate_limit_error");
        let wait = decide(&error, 1, &retry_after(2), LONG, &RetryBudget::default());
        assert_eq!(
            wait,
            Ok(Wait {
                delay: Duration::from_secs(2),
                until: now + Duration::from_secs(2),
                source: DelaySource::RetryAfter,
                cause: WaitCause::RateLimit,
                counted: false,
            })
        );
        // Without a hint a 529 backs off with full jitter, within the first bound (1 s).
        let overloaded = api_error(529, "overloaded_error");
        let wait = decide(
            &overloaded,
            1,
            &RetryHints::default(),
            LONG,
            &RetryBudget::default(),
        )
        .expect("a wait");
        assert_eq!(
            (wait.source, wait.cause),
            (DelaySource::Backoff, WaitCause::Overloaded)
        );
        assert!(wait.delay < Duration::from_secs(1), "{wait:?}");
        assert_eq!(wait.until, now + wait.delay);
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_not_worth_retrying_fails_at_once() {
        let error = api_error(400, "invalid_request_error");
        let failure = decide(
            &error,
            1,
            &RetryHints::default(),
            LONG,
            &RetryBudget::default(),
        )
        .expect_err("a 400 is final");
        assert_eq!(failure.kind, FailureKind::InvalidRequest);
        assert_eq!(failure.attempts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_attempt_gives_up() {
        // A 429 without the server's schedule counts as a retry like any error.
        let error = api_error(429, "rate_limit_error");
        let failure = decide(
            &error,
            9,
            &RetryHints::default(),
            LONG,
            &RetryBudget::default(),
        )
        .expect_err("nine attempts are all there are");
        assert_eq!(failure.kind, FailureKind::RetriesExhausted);
        assert_eq!(
            failure.message,
            "Gave up after 9 attempts (--max-retries 8). Last error: 429 rate_limit_error: \
             slow down (request req_1)"
        );
        assert_eq!((failure.attempts, failure.resets_at), (9, None));
        assert!(failure.api.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_the_server_scheduled_does_not_count_against_max_retries() {
        let rate_limited = api_error(429, "rate_limit_error");
        // Attempt 9 of 9, but the server booked the retry: it is waited for.
        let wait = decide(
            &rate_limited,
            9,
            &retry_after(2),
            LONG,
            &RetryBudget::default(),
        )
        .expect("a scheduled wait");
        assert!(!wait.counted);
        // ... bounded by --max-wait and the deadline instead.
        let failure = decide(
            &rate_limited,
            40,
            &retry_after(300),
            LONG,
            &RetryBudget::default(),
        )
        .expect_err("longer than --max-wait");
        assert_eq!(failure.kind, FailureKind::WaitTooLong);
        let failure = decide(
            &rate_limited,
            40,
            &retry_after(2),
            Duration::from_secs(1),
            &RetryBudget::default(),
        )
        .expect_err("past the deadline");
        assert_eq!(failure.kind, FailureKind::DeadlineExceeded);
        // Other failures still count, less the scheduled ones.
        let overloaded = api_error(529, "overloaded_error");
        let now = Instant::now();
        let mut rng = StdRng::seed_from_u64(7);
        let mut failed = FailedAttempt {
            attempt: 12,
            scheduled: 6,
            error: &overloaded,
            hints: &RetryHints::default(),
            quota: None,
            last_quota: None,
            estimated_input: 100,
        };
        let budget = RetryBudget::default();
        let wait = next_wait(&failed, now, now + LONG, &config(), &budget, &mut rng)
            .expect("six counted attempts of nine");
        assert!(wait.counted);
        failed.scheduled = 3;
        let failure = next_wait(&failed, now, now + LONG, &config(), &budget, &mut rng)
            .expect_err("nine counted attempts");
        assert_eq!(failure.kind, FailureKind::RetriesExhausted);
    }

    /// A server that refuses the first `refusals` requests with a 429 and `retry-after: 1`,
    /// then admits.
    struct RefusesThenAdmits {
        refusals: u32,
        admits: Admits,
    }

    impl Transport for RefusesThenAdmits {
        fn send(
            &self,
            request: &MessagesRequest,
            attempt: u32,
        ) -> BoxFuture<'static, Result<TransportResponse, TransportError>> {
            if attempt > self.refusals {
                return self.admits.send(request, attempt);
            }
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", HeaderValue::from_static("1"));
            let body = bytes::Bytes::from_static(
                br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
            );
            Box::pin(async move {
                Ok(TransportResponse {
                    status: 429,
                    headers,
                    body: ResponseBody::Bytes(body),
                })
            })
        }

        fn describe(&self) -> String {
            "refuses, then admits".into()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_outlasts_max_retries_on_waits_the_server_scheduled() {
        // Twelve 429s with retry-after (other processes on the key, no shared limiter), and
        // --max-retries 2: the turn waits them out and finishes.
        let driver = Driver::new(Arc::new(RefusesThenAdmits {
            refusals: 12,
            admits: Admits {
                headers: HeaderMap::new(),
                input_tokens: 10,
            },
        }))
        .with_config(RetryConfig {
            max_retries: 2,
            ..config()
        });
        let request = MessagesRequest::new("m", 100, vec![Message::text(Role::User, "hi")]);
        let started = Instant::now();
        let events: Vec<TurnEvent> = driver.run(request).collect().await;
        assert!(
            matches!(events.last(), Some(TurnEvent::Finished { .. })),
            "{events:?}"
        );
        let retries = events
            .iter()
            .filter(|e| matches!(e, TurnEvent::RetryScheduled { .. }))
            .count();
        assert_eq!(retries, 12);
        assert_eq!(started.elapsed(), Duration::from_secs(12));
    }

    #[tokio::test(start_paused = true)]
    async fn an_exhausted_retry_budget_gives_up() {
        // Two tokens: the first spend leaves one, not more than half.
        let budget = RetryBudget::new(BudgetConfig {
            max_tokens: 2.0,
            token_ratio: 0.1,
        });
        let error = Attempt::Network(TransportError::Connect("api.example".into()));
        let failure = decide(&error, 1, &RetryHints::default(), LONG, &budget)
            .expect_err("the budget refuses");
        assert_eq!(failure.kind, FailureKind::RetryBudgetExhausted);
        assert_eq!(
            failure.message,
            "The API keeps failing (could not connect to api.example); backchat stopped \
             retrying so as not to add load to an outage. Try again in a little while \
             (Ctrl+R / /retry)."
        );
        assert!(failure.transport.is_some());
        // A rate limit does not spend the budget: it is a schedule, not a failure.
        let limited = api_error(429, "rate_limit_error");
        assert!(decide(&limited, 1, &retry_after(2), LONG, &budget).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_longer_than_max_wait_gives_up() {
        let now = Instant::now();
        let error = api_error(429, "rate_limit_error");
        let failure = decide(&error, 1, &retry_after(200), LONG, &RetryBudget::default())
            .expect_err("200 s > --max-wait 120 s");
        assert_eq!(failure.kind, FailureKind::WaitTooLong);
        assert_eq!(failure.resets_at, Some(now + Duration::from_secs(200)));
        let expected = "The server asks to wait 3m20s (retry-after, rate limit), longer than \
                        --max-wait (2m00s).";
        assert!(failure.message.starts_with(expected), "{}", failure.message);
        // With the binding bucket's reset known, that is when it frees up.
        let mut q = QuotaSnapshot::empty(now);
        q.input_tokens = Some(BucketQuota {
            limit: Some(30_000),
            remaining: Some(0),
            reset: Some(now + Duration::from_secs(150)),
        });
        let failed = FailedAttempt {
            attempt: 1,
            scheduled: 0,
            error: &error,
            hints: &retry_after(200),
            quota: Some(&q),
            last_quota: Some(&q),
            estimated_input: 100,
        };
        let mut rng = StdRng::seed_from_u64(7);
        let failure = next_wait(
            &failed,
            now,
            now + LONG,
            &config(),
            &RetryBudget::default(),
            &mut rng,
        )
        .expect_err("too long");
        assert_eq!(failure.resets_at, Some(now + Duration::from_secs(150)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_deadline_gives_up() {
        let error = api_error(529, "overloaded_error");
        let failure = decide(
            &error,
            1,
            &retry_after(10),
            Duration::from_secs(5),
            &RetryBudget::default(),
        )
        .expect_err("the deadline is 5 s away");
        assert_eq!(failure.kind, FailureKind::DeadlineExceeded);
        assert_eq!(
            failure.message,
            "The turn's deadline (15m00s) would pass during the next wait (10.0s, retry-after). \
             Last error: 529 overloaded_error: slow down (request req_1)"
        );
        assert_eq!(failure.resets_at, None);
    }
}
