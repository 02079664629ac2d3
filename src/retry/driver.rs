//! The turn driver: one request in, a stream of [`TurnEvent`]s out.
//!
//! Before the stream starts it paces (asks the limiter for a slot), sends, and on a retryable
//! failure announces the wait and retries, within `--max-retries`, `--max-wait`, the per-turn
//! deadline and the shared retry budget. Once the stream has started nothing is retried: a
//! break ends the turn `Interrupted` with the partial text kept (PROTOCOL.md §2.5).
//!
//! The stream is lazy and owns all its state: dropping it cancels the turn at once, whatever it
//! was doing (pacing, waiting to retry, streaming), and gives back any unused reservation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use super::budget::RetryBudget;
use super::event::{DelaySource, FailureKind, TurnEvent, TurnFailure, WaitCause};
use super::headers::{self, QuotaSnapshot, RetryHints};
use super::pacer::Pacer;
use super::policy::{self, AttemptError, RetryConfig, Verdict};
use crate::api::{
    ApiError, Delta, EventStream, MessagesRequest, ResponseBody, StreamEvent, StreamFailure,
    Transport, TransportError, TransportResponse, Usage,
};
use crate::clock::{human_duration, local_clock};
use crate::limiter::{Grant, Limiter, Reservation};
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
    /// A driver with the default retry settings, a fresh in-process pacer and retry budget.
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Driver {
            transport,
            limiter: Some(Arc::new(Pacer::new())),
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
        let estimated_input = self
            .limiter
            .as_ref()
            .map(|l| l.estimate(&request).input_tokens as u64)
            .unwrap_or_else(|| request.estimated_input_tokens());
        let mut last_quota: Option<QuotaSnapshot> = None;
        let mut attempt: u32 = 0;

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
            let sent = self.transport.send(&request, attempt).await;
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
                    let quota = headers::parse_quota(&headers, now);
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
                            l.observe(&quota);
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

            let verdict = policy::classify(
                error.as_attempt_error(),
                &hints,
                estimated_input,
                last_quota.as_ref(),
            );
            let cause = match verdict {
                Verdict::Fail { kind, message } => {
                    tx.emit(TurnEvent::Failed(
                        error.failure(kind, message, attempt, None),
                    ));
                    return;
                }
                Verdict::Retry { cause } => cause,
            };
            if attempt >= max_attempts {
                let message = format!(
                    "Gave up after {attempt} attempts (--max-retries {}). Last error: {}",
                    self.config.max_retries,
                    error.summary()
                );
                let resets = reset_of(quota.as_ref(), cause);
                tx.emit(TurnEvent::Failed(error.failure(
                    FailureKind::RetriesExhausted,
                    message,
                    attempt,
                    resets,
                )));
                return;
            }
            if cause.spends_budget() && !self.budget.try_spend() {
                let message = format!(
                    "The API keeps failing ({}); backchat stopped retrying so as not to add load \
                     to an outage. Try again in a little while (Ctrl+R / /retry).",
                    error.summary()
                );
                tx.emit(TurnEvent::Failed(error.failure(
                    FailureKind::RetryBudgetExhausted,
                    message,
                    attempt,
                    None,
                )));
                return;
            }
            let now = Instant::now();
            let (delay, source) = {
                let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
                policy::delay(
                    &hints,
                    quota.as_ref(),
                    cause,
                    attempt,
                    now,
                    &self.config,
                    &mut *rng,
                )
            };
            let until = now + delay;
            if delay > self.config.max_wait {
                let resets = reset_of(quota.as_ref(), cause).or(Some(until));
                let message =
                    wait_too_long_message(delay, source, self.config.max_wait, resets, cause);
                tx.emit(TurnEvent::Failed(error.failure(
                    FailureKind::WaitTooLong,
                    message,
                    attempt,
                    resets,
                )));
                return;
            }
            if until > deadline {
                let message = format!(
                    "The turn's deadline ({}) would pass during the next wait ({:.1}s, {}). Last error: {}",
                    human_duration(self.config.deadline),
                    delay.as_secs_f64(),
                    source.label(),
                    error.summary()
                );
                tx.emit(TurnEvent::Failed(error.failure(
                    FailureKind::DeadlineExceeded,
                    message,
                    attempt,
                    None,
                )));
                return;
            }
            if error.is_rate_limit()
                && source != DelaySource::Backoff
                && let Some(l) = &self.limiter
            {
                l.rate_limited(until, cause_bucket(cause));
            }
            tx.emit(TurnEvent::RetryScheduled {
                attempt: attempt + 1,
                max_attempts,
                delay,
                until,
                cause,
                status: error.status(),
                error_type: error.error_type(),
                source,
                message: error.summary(),
                request_id: error.request_id().map(str::to_string),
            });
            tokio::time::sleep_until(until).await;
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
                        bucket: super::Bucket::Requests,
                        source: DelaySource::Pacer,
                    });
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        _ = ready => {}
                    }
                }
                Reservation::Granted(grant) => {
                    let ticket = Ticket::new(Arc::clone(limiter), grant);
                    let now = Instant::now();
                    // Whole milliseconds, like tokio's timers, so the announced wait is exact.
                    let start = now
                        + policy::whole_millis(
                            ticket.grant.start_at.saturating_duration_since(now),
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
                            let bucket = ticket.grant.bucket.unwrap_or(super::Bucket::Requests);
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
                            bucket: ticket.grant.bucket.unwrap_or(super::Bucket::Requests),
                            source: ticket.grant.source,
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
                        tx.emit(TurnEvent::TextDelta { text });
                    }
                    Delta::ThinkingDelta { thinking } if !thinking.is_empty() => {
                        tx.emit(TurnEvent::ThinkingDelta { text: thinking });
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

/// A failed attempt: an API error or a network error.
enum Attempt {
    Api(ApiError),
    Network(TransportError),
}

impl Attempt {
    fn as_attempt_error(&self) -> AttemptError<'_> {
        match self {
            Attempt::Api(a) => AttemptError::Status(a),
            Attempt::Network(n) => AttemptError::Network(n),
        }
    }

    fn status(&self) -> Option<u16> {
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

    fn is_rate_limit(&self) -> bool {
        matches!(self, Attempt::Api(a) if a.status == Some(429))
    }

    fn summary(&self) -> String {
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

/// A reservation that gives itself back unless the request was admitted.
struct Ticket {
    limiter: Arc<dyn Limiter>,
    grant: Grant,
    committed: bool,
    done: bool,
}

impl Ticket {
    fn new(limiter: Arc<dyn Limiter>, grant: Grant) -> Self {
        Ticket {
            limiter,
            grant,
            committed: false,
            done: false,
        }
    }

    fn commit(mut self) -> Self {
        self.limiter.commit(&self.grant);
        self.committed = true;
        self
    }

    fn settle(mut self, usage: &Usage) {
        self.limiter.settle(&self.grant, usage);
        self.done = true;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.committed && !self.done {
            self.limiter.release(&self.grant);
        }
    }
}

fn cause_bucket(cause: WaitCause) -> Option<super::Bucket> {
    match cause {
        WaitCause::Requests => Some(super::Bucket::Requests),
        WaitCause::InputTokens => Some(super::Bucket::InputTokens),
        WaitCause::OutputTokens => Some(super::Bucket::OutputTokens),
        WaitCause::Tokens => Some(super::Bucket::Tokens),
        _ => None,
    }
}

fn reset_of(quota: Option<&QuotaSnapshot>, cause: WaitCause) -> Option<Instant> {
    let q = quota?;
    cause_bucket(cause)
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
    let when = resets
        .map(local_clock)
        .unwrap_or_else(|| "later".to_string());
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
    use crate::retry::Bucket;
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
                let start = MessageResponse {
                    id: "msg_1".into(),
                    model: "m".into(),
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
        let pacer = Arc::new(Pacer::new());
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
        let level = pacer
            .level(Bucket::InputTokens, Instant::now())
            .expect("known");
        assert!((level - 27_000.0).abs() < 1.0, "{level}");
        let requests = pacer
            .level(Bucket::Requests, Instant::now())
            .expect("known");
        assert!((requests - 49.0).abs() < 0.01, "{requests}");
    }
}
