//! The peer retry policies in the conversation scenarios E and F (docs/loadtest.md,
//! *Conversations and caching*, *The peers in a conversation*).
//!
//! A peer is what people run without backchat: it sends the whole history uncached on every
//! turn, does not pace, and retries by its own rule. Each attempt goes through the very loop
//! the request scenarios A–D use (`users::peer_submission`, over the policies of
//! `policies.rs`); what this file adds is the conversation around it: one user's turns one
//! after another, the history, and how a turn ended.
//!
//! - A turn the peer gave up on is not added to the history: the user's script moves on to
//!   its next message, as a person would after an error, and the next request carries only
//!   the turns that got a reply. This is also what backchat's chat does with a failed turn,
//!   so every row sends the same conversation.
//! - A turn is *rejected* when the last answer the peer saw was the server's 429 for a
//!   request that can never fit the input bucket: the mock sends it without `retry-after`
//!   (docs/mock.md, *Rate limits*). None of the peers knows that, so each retries it until
//!   its own give-up (3 attempts for the SDK, 1,000 for the "unlimited" ones). A turn given
//!   up on any other way (a retry budget spent on 429s for a request that would have fitted)
//!   is *failed*.
//!
//! Where the requests go ([`PeerEngine`]): by default the simulated server of `sim.rs`, whose
//! admission, 429s and headers are the mock's own rate limiter. A peer sends no
//! `cache_control`, so the mock's prompt cache would play no part, and the simulated server
//! spares the HTTP round trip of every one of the thousands of hopeless retries an
//! "unlimited" policy makes. [`PeerEngine::Mock`] runs a peer against the real mock over
//! loopback instead (as the backchat rows run); the tests check that the two agree.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use super::conversation::{
    ConversationResult, ConversationScenario, Script, Served, Ticker, TurnRecord, debug,
    debug_line, start_mock, summarize, text,
};
use super::metrics::RunRecord;
use super::policies::{PeerPolicy, PolicyId};
use super::scenario::Scenario;
use super::sim::SimServer;
use super::users::{Outcome, TimeBase, peer_submission};
use super::workload::mix;
use crate::api::{
    CacheMode, Message, MessagesRequest, ResponseBody, Role, StreamEvent, Transport,
    TransportError, TransportResponse, Usage,
};
use crate::cost::Tokens;

/// Where a peer's requests go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerEngine {
    /// The simulated server (`loadtest::sim`): the mock's rate limiter, no HTTP. The default.
    Sim,
    /// The in-process mock over loopback HTTP, as the backchat rows run.
    Mock,
}

/// The simulated server's scenario for a conversation scenario: its limits, and every reply
/// taking as long as the mock takes to generate it. No network delay, as over loopback.
pub fn sim_scenario(scn: &ConversationScenario) -> Scenario {
    Scenario {
        name: scn.name.clone(),
        description: scn.description.clone(),
        users: scn.users,
        requests: scn.turns,
        output_tokens: u32::try_from(scn.reply_tokens).unwrap_or(u32::MAX),
        rpm: scn.rpm,
        itpm: scn.itpm,
        otpm: Some(scn.otpm),
        capacity_fraction: 1.0,
        stream_s: scn.generation().as_secs_f64(),
        rtt_s: 0.0,
        resubmit_delay_s: 0.0,
        ..Scenario::default()
    }
}

/// Run the peer `policy` through `scn` once: every user's conversation under that policy,
/// on one key. `seed` drives the policy's jitter. Call on a paused clock.
pub async fn run_peer(
    scn: &ConversationScenario,
    policy: PolicyId,
    seed: u64,
    engine: PeerEngine,
) -> Result<ConversationResult, String> {
    let peer = policy
        .peer()
        .ok_or_else(|| format!("`{}` is not a peer policy", policy.name()))?;
    let shared = Arc::new(scn.clone());
    let (start, users, served) = match engine {
        PeerEngine::Sim => {
            let server = SimServer::new(&sim_scenario(scn), mix(seed, 0, 0x529));
            let (start, users) =
                conversations(Arc::new(server.clone()), peer, &shared, seed).await?;
            let stats = server.stats();
            let served = Served {
                rate_limited: stats.rate_limited,
                attempts: stats.requests,
            };
            (start, users, served)
        }
        PeerEngine::Mock => {
            let (server, transport) = start_mock(scn).await?;
            let ticker = Ticker::start();
            let done = conversations(Arc::new(transport), peer, &shared, seed).await;
            drop(ticker);
            let stats = server.control().stats();
            server.shutdown().await;
            let (start, users) = done?;
            let served = Served {
                rate_limited: stats.count(429),
                attempts: stats.messages_requests,
            };
            (start, users, served)
        }
    };
    Ok(summarize(scn, policy.name(), "off", start, users, served))
}

type UserRun = (Vec<TurnRecord>, Instant);

/// Every user's conversation at once, against `transport`; returns the start instant and
/// each user's turn records and end.
async fn conversations(
    transport: Arc<dyn Transport>,
    peer: PeerPolicy,
    scn: &Arc<ConversationScenario>,
    seed: u64,
) -> Result<(Instant, Vec<UserRun>), String> {
    let start = Instant::now();
    let time = TimeBase {
        origin: start,
        scale: 1.0,
    };
    let tasks: Vec<_> = (0..scn.users)
        .map(|id| {
            tokio::spawn(user(
                Arc::clone(&transport),
                peer,
                Arc::clone(scn),
                id,
                seed,
                time,
            ))
        })
        .collect();
    let mut users = Vec::new();
    for t in tasks {
        users.push(t.await.map_err(|e| e.to_string())?);
    }
    Ok((start, users))
}

/// One user's conversation under a peer policy.
async fn user(
    transport: Arc<dyn Transport>,
    peer: PeerPolicy,
    scn: Arc<ConversationScenario>,
    id: usize,
    seed: u64,
    time: TimeBase,
) -> UserRun {
    let tap = Tap::new(transport);
    let mut rng = StdRng::seed_from_u64(mix(seed, id as u64, 0x9ee7));
    let script = Script::new(Arc::clone(&scn), id);
    // The reply the scenario scripts (the mock sends exactly this text; the simulated server
    // streams a placeholder), so the history grows as in the backchat rows.
    let reply = text("reply", scn.reply_tokens);
    let mut history: Vec<Message> = Vec::new();
    let mut records = Vec::new();
    // The countdown errors `peer_submission` notes; the conversation report does not use them.
    let mut scratch = RunRecord::default();
    for index in 0..scn.turns {
        if index > 0 {
            tokio::time::sleep(Duration::from_secs_f64(scn.think_s)).await;
        }
        history.push(Message::text(Role::User, script.prompt(index)));
        // A peer sends the whole history, uncached.
        let request: MessagesRequest = script.request(&history, CacheMode::Off);
        tap.reset();
        let outcome = peer_submission(peer, &tap, &request, &mut rng, time, &mut scratch).await;
        scratch = RunRecord::default();
        let seen = tap.take();
        let ok = matches!(outcome, Outcome::Done);
        let record = TurnRecord {
            index,
            ok,
            rejected: !ok && seen.impossible,
            tokens: if ok {
                Tokens::from(&seen.usage)
            } else {
                Tokens::default()
            },
        };
        if debug() {
            let how = if record.ok {
                format!("ok {:?}", seen.usage)
            } else if record.rejected {
                "gave up on a request that can never fit".into()
            } else {
                "gave up".into()
            };
            debug_line(time.origin, id, index, &how);
        }
        if ok {
            history.push(Message::text(Role::Assistant, reply.clone()));
        } else {
            // The script does not add a turn without a reply to the history.
            history.pop();
        }
        records.push(record);
    }
    (records, Instant::now())
}

/// What one user's transport saw of the current turn.
#[derive(Clone, Debug, Default)]
struct Seen {
    /// The last answer was the 429 for a request that can never fit (no `retry-after`).
    impossible: bool,
    /// The reply's usage, merged as it streamed.
    usage: Usage,
}

/// Wraps a user's transport to note, for the conversation, how the last attempt was
/// answered and the usage of the reply, whichever peer sends it.
struct Tap {
    inner: Arc<dyn Transport>,
    seen: Arc<Mutex<Seen>>,
}

impl Tap {
    fn new(inner: Arc<dyn Transport>) -> Tap {
        Tap {
            inner,
            seen: Arc::new(Mutex::new(Seen::default())),
        }
    }

    fn lock(seen: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
        seen.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn reset(&self) {
        *Tap::lock(&self.seen) = Seen::default();
    }

    fn take(&self) -> Seen {
        std::mem::take(&mut *Tap::lock(&self.seen))
    }
}

/// The server's answer to a request that can never fit: a 429 with no hint of when to come
/// back (a short bucket's 429 always carries `retry-after`).
fn never_fits(response: &TransportResponse) -> bool {
    response.status == 429
        && !response.headers.contains_key("retry-after")
        && !response.headers.contains_key("retry-after-ms")
}

impl Transport for Tap {
    fn send(
        &self,
        request: &MessagesRequest,
        attempt: u32,
    ) -> BoxFuture<'static, Result<TransportResponse, TransportError>> {
        let sent = self.inner.send(request, attempt);
        let seen = Arc::clone(&self.seen);
        Box::pin(async move {
            let result = sent.await;
            let mut response = match result {
                Ok(r) => r,
                Err(e) => {
                    Tap::lock(&seen).impossible = false;
                    return Err(e);
                }
            };
            Tap::lock(&seen).impossible = never_fits(&response);
            if let ResponseBody::Events(events) = response.body {
                response.body = ResponseBody::Events(
                    events
                        .inspect(move |ev| match ev {
                            Ok(StreamEvent::MessageStart(m)) => {
                                Tap::lock(&seen).usage = m.usage.clone();
                            }
                            Ok(StreamEvent::MessageDelta { usage, .. }) => {
                                Tap::lock(&seen).usage.overwrite_from(usage);
                            }
                            _ => {}
                        })
                        .boxed(),
                );
            }
            Ok(response)
        })
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_server_has_the_conversation_limits_and_timing() {
        let e = ConversationScenario::built_in("E")
            .expect("E")
            .expect("parses");
        let s = sim_scenario(&e);
        assert_eq!((s.rpm, s.itpm, s.otpm), (50, 30_000, Some(8_000)));
        assert_eq!(s.output_tokens, 700);
        assert!((s.stream_s - (700.0 / 60.0 + 0.2)).abs() < 1e-9);
        assert_eq!(s.rtt_s, 0.0);
        assert!(s.overload.is_none());
    }

    #[test]
    fn only_a_429_without_retry_after_never_fits() {
        let r = |status, header: Option<&'static str>| {
            let mut headers = http::HeaderMap::new();
            if let Some(h) = header {
                headers.insert(h, http::HeaderValue::from_static("3"));
            }
            TransportResponse {
                status,
                headers,
                body: ResponseBody::Bytes(bytes::Bytes::new()),
            }
        };
        assert!(never_fits(&r(429, None)));
        assert!(!never_fits(&r(429, Some("retry-after"))));
        assert!(!never_fits(&r(429, Some("retry-after-ms"))));
        assert!(!never_fits(&r(529, None)));
        assert!(!never_fits(&r(200, None)));
    }

    #[tokio::test(start_paused = true)]
    async fn backchat_is_not_a_peer() {
        let e = ConversationScenario::built_in("E")
            .expect("E")
            .expect("parses");
        assert!(
            run_peer(&e, PolicyId::Backchat, 0, PeerEngine::Sim)
                .await
                .is_err()
        );
    }
}
