//! Generating a reply: the timed loop shared by streamed and whole responses.
//!
//! The reply is planned up front (blocks, chunks, stop reason, fault point). Generation then
//! runs on tokio's clock: a time to first token, then each chunk after `tokens / rate`
//! seconds, charged to the key's output bucket as it is produced. A stream sends each chunk
//! as a `content_block_delta` and pings every `ping_interval`; a whole response waits the
//! same time and returns the Message object. Generation stops when the client goes away.

use super::cache::InputUsage;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::MockConfig;
use super::faults::{ErrorReply, RandomStreamFault, StreamFault};
use super::http::{error_response, json_text_response};
use super::limits::KeyId;
use super::replies::{self, chunk_tokens, chunks, truncate_to_tokens};
use super::script::{default_message, status_for_error_type};
use super::server::Shared;
use super::sse;
use super::validate::{MessagesParams, ThinkingMode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BlockKind {
    /// A thinking block; `shown: false` sends no thinking deltas (`display: "omitted"`).
    Thinking {
        shown: bool,
    },
    Text,
}

#[derive(Clone, Debug)]
struct PlannedBlock {
    kind: BlockKind,
    chunks: Vec<String>,
}

/// Everything decided before the first byte of a reply.
pub(crate) struct Plan {
    key: KeyId,
    message_id: String,
    model: String,
    input_tokens: InputUsage,
    blocks: Vec<PlannedBlock>,
    stop_reason: &'static str,
    fault: StreamFault,
    signature: String,
    token_rate: f64,
    first_token_latency: Duration,
    ping_interval: Duration,
}

impl Plan {
    /// Plan the reply to `params`: the thinking block (if asked for) and the text, cut to
    /// `max_tokens`, chunked, and the fault point fixed.
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per knob of the generated reply"
    )]
    pub(crate) fn new(
        config: &MockConfig,
        params: &MessagesParams,
        reply_text: Option<&str>,
        key: KeyId,
        message_id: String,
        fixed_fault: StreamFault,
        random_fault: Option<RandomStreamFault>,
        rng: &mut impl rand::Rng,
    ) -> Plan {
        // Files came with the prompt: the reply starts by naming each and its size as
        // received, so a test can see that the bytes arrived whole.
        let echo = params
            .attachments
            .iter()
            .fold(String::new(), |mut out, (name, size)| {
                out.push_str(&format!("Received {name} ({size} bytes).\n\n"));
                out
            });
        let chunk_seed =
            replies::hash64(format!("{}\u{0}{}", params.last_user_prompt, message_id).as_bytes());
        let mut text = match reply_text {
            Some(t) => t,
            None => replies::choose_reply(config.seed, &params.last_user_prompt).text,
        };
        // Continuing a reply it had started: the rest of it, as a model would write it.
        if let Some(done) = params.continues.as_deref().filter(|d| !d.is_empty())
            && let Some(rest) = text.strip_prefix(done)
            && !rest.is_empty()
        {
            text = rest;
        }
        let with_echo = format!("{echo}{text}");
        let text = if echo.is_empty() { text } else { &with_echo };
        let mut budget = params.max_tokens;
        let mut cut = false;
        let mut blocks = Vec::new();
        if params.thinking != ThinkingMode::Off {
            let full = replies::thinking_text();
            let thinking = truncate_to_tokens(full, budget);
            cut |= thinking.len() < full.len();
            budget -= crate::tokens::count_text(thinking).min(budget);
            blocks.push(PlannedBlock {
                kind: BlockKind::Thinking {
                    shown: params.thinking == ThinkingMode::Shown,
                },
                chunks: chunks(thinking, chunk_seed ^ 0x5eed)
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            });
        }
        if budget > 0 || blocks.is_empty() {
            let sent = truncate_to_tokens(text, budget);
            cut |= sent.len() < text.len();
            blocks.push(PlannedBlock {
                kind: BlockKind::Text,
                chunks: chunks(sent, chunk_seed)
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            });
        }
        let total: u64 = blocks
            .iter()
            .flat_map(|b| b.chunks.iter())
            .map(|c| chunk_tokens(c))
            .sum();
        let fault = match random_fault {
            Some(f) => f.resolve(total, rng),
            None => fixed_fault,
        };
        let signature = {
            let h = replies::hash64(message_id.as_bytes());
            format!("EqQB{:016x}{:016x}mock", h, h.rotate_left(17))
        };
        Plan {
            key,
            message_id,
            model: params.model.clone(),
            input_tokens: InputUsage::from(params.input_tokens),
            blocks,
            stop_reason: if cut { "max_tokens" } else { "end_turn" },
            fault,
            signature,
            token_rate: config.token_rate,
            first_token_latency: config.first_token_latency,
            ping_interval: config.ping_interval,
        }
    }
}

impl Plan {
    /// Report `usage` as the reply's input (what the prompt cache read and wrote).
    pub(crate) fn with_input(mut self, usage: InputUsage) -> Plan {
        self.input_tokens = usage;
        self
    }
}

/// Where generated frames go.
enum Sink {
    /// A streamed body.
    Stream(mpsc::Sender<Result<Bytes, std::io::Error>>),
    /// A whole response: frames are not sent; the content is collected.
    Collect,
}

impl Sink {
    /// Send a frame; `false` when the client has gone away.
    async fn send(&mut self, frame: Bytes) -> bool {
        match self {
            Sink::Stream(tx) => tx.send(Ok(frame)).await.is_ok(),
            Sink::Collect => true,
        }
    }
}

/// How generation ended.
enum Ending {
    /// Ran to the end (after `message_stop`).
    Complete,
    /// A fault struck.
    Fault(StreamFault),
    /// The client left or the server is shutting down.
    Abandoned,
}

/// What was generated.
#[derive(Default)]
struct Generated {
    text: String,
    thinking: String,
    thinking_started: bool,
    text_started: bool,
    output_tokens: u64,
}

/// Pings every `interval` while waiting for generation deadlines.
struct Pinger {
    next: Instant,
    interval: Duration,
}

async fn wait_until(
    shared: &Shared,
    sink: &mut Sink,
    pinger: &mut Pinger,
    deadline: Instant,
) -> bool {
    while pinger.next <= deadline {
        if !sleep_precisely(shared, pinger.next).await || !sink.send(sse::ping()).await {
            return false;
        }
        pinger.next += pinger.interval;
    }
    sleep_precisely(shared, deadline).await
}

/// Sleep to `deadline`, skipping waits under a millisecond (the timer's resolution): the
/// deadlines are cumulative, so a skipped sliver is caught up by the next real sleep.
async fn sleep_precisely(shared: &Shared, deadline: Instant) -> bool {
    if deadline > Instant::now() + Duration::from_millis(1) {
        shared.sleep_until(deadline).await
    } else {
        true
    }
}

async fn run(shared: &Shared, plan: &Plan, sink: &mut Sink, out: &mut Generated) -> Ending {
    let start = Instant::now();
    let mut pinger = Pinger {
        next: start + plan.ping_interval,
        interval: plan.ping_interval.max(Duration::from_millis(10)),
    };
    if !sink
        .send(sse::message_start(
            &plan.message_id,
            &plan.model,
            plan.input_tokens,
        ))
        .await
        || !sink.send(sse::ping()).await
    {
        return Ending::Abandoned;
    }
    let mut clock = start + plan.first_token_latency;
    let fault_at = plan.fault.after();
    let mut fault_pending = fault_at.is_some();
    for (index, block) in plan.blocks.iter().enumerate() {
        let opened = match block.kind {
            BlockKind::Thinking { .. } => {
                out.thinking_started = true;
                sse::thinking_block_start(index)
            }
            BlockKind::Text => {
                out.text_started = true;
                sse::text_block_start(index)
            }
        };
        if !sink.send(opened).await {
            return Ending::Abandoned;
        }
        for chunk in &block.chunks {
            if fault_pending && fault_at.is_some_and(|a| out.output_tokens >= a) {
                fault_pending = false;
                match strike(shared, plan, sink).await {
                    Some(ending) => return ending,
                    None => clock = Instant::now().max(clock),
                }
            }
            let n = chunk_tokens(chunk);
            clock += crate::clock::secs_f64(n as f64 / plan.token_rate);
            if !wait_until(shared, sink, &mut pinger, clock).await {
                return Ending::Abandoned;
            }
            {
                let mut st = shared.lock();
                st.limiter.charge_output(plan.key, n, Instant::now());
                st.stats.output_tokens_charged += n;
            }
            out.output_tokens += n;
            let frame = match block.kind {
                BlockKind::Thinking { shown: true } => {
                    out.thinking.push_str(chunk);
                    Some(sse::thinking_delta(index, chunk))
                }
                BlockKind::Thinking { shown: false } => None,
                BlockKind::Text => {
                    out.text.push_str(chunk);
                    Some(sse::text_delta(index, chunk))
                }
            };
            if let Some(frame) = frame
                && !sink.send(frame).await
            {
                return Ending::Abandoned;
            }
        }
        if let BlockKind::Thinking { .. } = block.kind
            && !sink
                .send(sse::signature_delta(index, &plan.signature))
                .await
        {
            return Ending::Abandoned;
        }
        if !sink.send(sse::block_stop(index)).await {
            return Ending::Abandoned;
        }
    }
    if fault_pending && let Some(ending) = strike(shared, plan, sink).await {
        return ending;
    }
    // The real API never reports zero `output_tokens`, even for an empty reply.
    let output = out.output_tokens.max(1);
    if !sink
        .send(sse::message_delta(
            plan.stop_reason,
            plan.input_tokens,
            output,
        ))
        .await
        || !sink.send(sse::message_stop()).await
    {
        return Ending::Abandoned;
    }
    Ending::Complete
}

/// Apply the plan's fault at its point. `None` means "carry on" (a pause that ended).
async fn strike(shared: &Shared, plan: &Plan, sink: &mut Sink) -> Option<Ending> {
    match &plan.fault {
        StreamFault::None => None,
        StreamFault::Pause { delay, .. } => {
            if shared.sleep_until(Instant::now() + *delay).await {
                None
            } else {
                Some(Ending::Abandoned)
            }
        }
        StreamFault::MidStreamError { error_type, .. } => {
            if let Sink::Stream(_) = sink {
                sink.send(sse::error_event(error_type, default_message(error_type)))
                    .await;
            }
            Some(Ending::Fault(plan.fault.clone()))
        }
        StreamFault::Drop { .. } => {
            if let Sink::Stream(tx) = sink {
                // Let the connection task write what was sent before the cut, so the client
                // sees the text and then the broken body, not a refused request.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = tx
                    .send(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "mock: connection dropped mid-stream",
                    )))
                    .await;
            }
            Some(Ending::Fault(plan.fault.clone()))
        }
        StreamFault::EndWithoutStop { .. } => Some(Ending::Fault(plan.fault.clone())),
        StreamFault::Stall { .. } => {
            if let Sink::Stream(tx) = sink {
                // Silent until the client gives up or the server stops.
                tokio::select! {
                    () = tx.closed() => {}
                    () = shared.shutting_down() => {}
                }
            }
            Some(Ending::Fault(plan.fault.clone()))
        }
    }
}

fn finish(shared: &Shared, ending: &Ending) {
    if let Ending::Complete = ending {
        shared.lock().stats.streams_completed += 1;
    }
}

/// A `text/event-stream` response fed by a generation task.
pub(crate) fn stream_response(shared: Arc<Shared>, plan: Plan) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let mut sink = Sink::Stream(tx);
        let mut out = Generated::default();
        let ending = run(&shared, &plan, &mut sink, &mut out).await;
        finish(&shared, &ending);
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut r = Response::new(Body::from_stream(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A whole Message object, after the same generation time as a stream.
pub(crate) async fn whole_response(shared: Arc<Shared>, plan: Plan, request_id: &str) -> Response {
    let mut sink = Sink::Collect;
    let mut out = Generated::default();
    let ending = run(&shared, &plan, &mut sink, &mut out).await;
    finish(&shared, &ending);
    let mut content = Vec::new();
    if out.thinking_started {
        content.push(sse::Block::Thinking {
            thinking: &out.thinking,
            signature: &plan.signature,
        });
    }
    if out.text_started {
        content.push(sse::Block::Text { text: &out.text });
    }
    let stop = matches!(ending, Ending::Complete).then_some(plan.stop_reason);
    let message = sse::message(
        &plan.message_id,
        &plan.model,
        content,
        stop,
        plan.input_tokens,
        out.output_tokens.max(1),
    );
    match ending {
        Ending::Complete => json_text_response(StatusCode::OK, message),
        Ending::Abandoned => error_response(
            &ErrorReply::new(503, "api_error", "The server is shutting down."),
            request_id,
        ),
        Ending::Fault(StreamFault::MidStreamError { error_type, .. }) => error_response(
            &ErrorReply::new(
                status_for_error_type(&error_type),
                &error_type,
                default_message(&error_type),
            ),
            request_id,
        ),
        Ending::Fault(fault) => truncated_json(shared, &message, &fault),
    }
}

/// A 200 whose JSON body breaks off half-way: cut (`Drop`), ended cleanly (`EndWithoutStop`)
/// or left hanging (`Stall`).
fn truncated_json(shared: Arc<Shared>, text: &str, fault: &StreamFault) -> Response {
    let mut cut = text.len() / 2;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let first: Result<Bytes, std::io::Error> = Ok(Bytes::from(text[..cut].to_string()));
    let head = futures::stream::iter(vec![first]);
    let body = match fault {
        StreamFault::Drop { .. } => Body::from_stream(futures::StreamExt::chain(
            head,
            futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "mock: connection dropped mid-body",
                ))
            }),
        )),
        StreamFault::Stall { .. } => Body::from_stream(futures::StreamExt::chain(
            head,
            futures::stream::once(async move {
                shared.shutting_down().await;
                Ok(Bytes::new())
            }),
        )),
        _ => Body::from_stream(head),
    };
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
