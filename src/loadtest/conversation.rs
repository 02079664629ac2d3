//! Conversation scenarios (E and F in `assets/loadtest/`): long multi-turn chats at Tier 1,
//! with and without prompt caching, and under every peer retry policy (docs/loadtest.md,
//! *Conversations and caching*).
//!
//! Unlike the request scenarios A–D, each request here carries the whole history, so what
//! the prompt cache does decides whether a turn fits the input bucket at all. The backchat
//! rows are the real engine end to end: each user is a `retry::Driver` turn after turn, all
//! users share one `LocalLimiter` (one process, one key), and the server is the in-process
//! mock with its prompt cache (`mock::cache`), over loopback HTTP. Time runs on tokio's
//! clock: paused, the 15 simulated minutes of scenario F take seconds.
//!
//! The peer policies, none of which caches, run the same conversations in
//! `conversation_peers.rs`. This file holds what every row shares: the scenario, the
//! conversation's texts ([`Script`]), the turn records and their summary with its bounds
//! ([`summarize`]), the table, and the command's entry point.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::conversation_peers::PeerEngine;
use super::policies::PolicyId;
use crate::api::{
    CacheMode, CacheTtl, HttpTransport, HttpTransportConfig, Message, MessagesRequest, Role,
};
use crate::cost::{Tally, Tokens};
use crate::mock::{MockConfig, MockLimits, MockServer, ScriptStep};
use crate::retry::{Driver, FailureKind, RetryConfig, TurnEvent};
use crate::secret::ApiKey;

/// The conversation scenarios compiled in: (name, TOML text).
pub const BUILT_IN: [(&str, &str); 2] = [
    ("E", include_str!("../../assets/loadtest/E.toml")),
    ("F", include_str!("../../assets/loadtest/F.toml")),
];

/// A conversation scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationScenario {
    /// `E`, `F`, or the file's path (set when loaded).
    #[serde(default)]
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// People, each in their own conversation, all on one key.
    pub users: usize,
    /// Turns per conversation.
    pub turns: usize,
    /// Tokens of the system prompt.
    pub system_tokens: u64,
    /// Tokens of the file pasted in turn 1 (on top of the message).
    pub file_tokens: u64,
    /// Tokens of each message.
    pub user_tokens: u64,
    /// Tokens of each reply.
    pub reply_tokens: u64,
    /// Seconds between a reply's end and the next message.
    pub think_s: f64,
    /// The model asked for (it sets the price and the minimum cacheable prefix).
    pub model: String,
    /// Requests per minute.
    pub rpm: u64,
    /// Input tokens per minute.
    pub itpm: u64,
    /// Output tokens per minute.
    pub otpm: u64,
    /// The mock's output tokens per second.
    pub token_rate: f64,
}

impl ConversationScenario {
    /// A built-in conversation scenario by name, if `name` is one.
    pub fn built_in(name: &str) -> Option<Result<ConversationScenario, String>> {
        let (n, text) = BUILT_IN
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))?;
        Some(
            toml::from_str::<ConversationScenario>(text)
                .map(|mut s| {
                    s.name = (*n).to_string();
                    s
                })
                .map_err(|e| format!("scenario {n}: {e}")),
        )
    }

    /// Time a reply takes to generate at the mock's speed, first-token latency included.
    pub fn generation(&self) -> Duration {
        Duration::from_secs_f64(self.reply_tokens as f64 / self.token_rate) + FIRST_TOKEN
    }

    /// The no-quota bound of one conversation: its think time and its generation.
    pub fn no_quota_bound(&self) -> Duration {
        let turns = u32::try_from(self.turns).unwrap_or(u32::MAX);
        Duration::from_secs_f64(self.think_s) * turns.saturating_sub(1) + self.generation() * turns
    }
}

/// The mock's delay before a reply's first token (part of [`ConversationScenario::generation`]).
const FIRST_TOKEN: Duration = Duration::from_millis(200);

/// What one row (one policy, one cache mode) measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConversationResult {
    /// `backchat`, or the peer policy's name (`anthropic-sdk`, …).
    pub policy: String,
    /// `auto`, `breakpoints` or `off` (always `off` for a peer: none of them caches).
    pub cache: String,
    /// Turns that got their reply.
    pub ok: u64,
    /// Turns refused as impossible: for backchat, `ExceedsQuota`; for a peer, turns whose
    /// last answer was the server's 429 for a request that can never fit (no `retry-after`),
    /// which the peer retried until its own give-up.
    pub rejected: u64,
    /// Turns that failed another way (a peer giving up on a request that could have fitted).
    pub failed: u64,
    /// 429s the server sent.
    pub rate_limited: u64,
    /// Requests the server received (every attempt of every turn).
    pub attempts: u64,
    /// Seconds from the start to the last turn's end (its reply, or its failure).
    pub makespan_s: f64,
    /// The no-quota bound: think time + generation of one conversation.
    pub bound_s: f64,
    /// The lower bound with the quota, counting only the tokens the server charged
    /// (uncached input + cache writes for input, output for output).
    pub lb_s: f64,
    /// Share of input tokens read from the cache, all turns.
    pub cache_share: f64,
    /// The same from turn 3 on.
    pub cache_share_from_turn_3: f64,
    /// All tokens and their cost.
    pub tally: Tally,
}

impl ConversationResult {
    /// 429s per turn that got its reply.
    pub fn rate_limited_per_ok(&self) -> f64 {
        if self.ok == 0 {
            0.0
        } else {
            self.rate_limited as f64 / self.ok as f64
        }
    }
}

/// `n` tokens of text that no other user or turn shares (four bytes a token, as
/// `tokens::count_text` counts them).
pub(crate) fn text(tag: &str, n: u64) -> String {
    let unit = format!("{tag} lorem ipsum ");
    let len = usize::try_from(n.saturating_sub(1) * 4).unwrap_or(usize::MAX);
    let mut s = unit.repeat(len / unit.len() + 1);
    s.truncate(len);
    s.push('.');
    s
}

/// The texts of one user's conversation. Every row sends the same ones, so rows differ only
/// in how they send (and in which turns got a reply, and so are context).
pub(crate) struct Script {
    scn: Arc<ConversationScenario>,
    id: usize,
    system: String,
}

impl Script {
    /// User `id`'s conversation in `scn`.
    pub(crate) fn new(scn: Arc<ConversationScenario>, id: usize) -> Script {
        let system = text(&format!("system{id}"), scn.system_tokens);
        Script { scn, id, system }
    }

    /// The message of turn `index` (the file pasted above it in turn 0).
    pub(crate) fn prompt(&self, index: usize) -> String {
        let id = self.id;
        let prompt = text(&format!("u{id} t{index}"), self.scn.user_tokens);
        if index == 0 {
            format!(
                "{}\n\n{prompt}",
                text(&format!("file{id}"), self.scn.file_tokens)
            )
        } else {
            prompt
        }
    }

    /// The request for `history` (which ends with the new message), cached as `mode` says.
    pub(crate) fn request(&self, history: &[Message], mode: CacheMode) -> MessagesRequest {
        let mut req = MessagesRequest::new(self.scn.model.clone(), 1024, history.to_vec());
        req.system = Some(self.system.clone().into());
        req.apply_cache(mode, CacheTtl::FiveMinutes);
        req
    }
}

/// How one turn ended.
pub(crate) struct TurnRecord {
    /// Its index in the conversation, from 0.
    pub(crate) index: usize,
    /// It got its reply.
    pub(crate) ok: bool,
    /// It was refused as impossible.
    pub(crate) rejected: bool,
    /// The usage of its reply (zero without one).
    pub(crate) tokens: Tokens,
}

/// Whether `BACKCHAT_CONV_DEBUG` asks for each turn on stderr.
pub(crate) fn debug() -> bool {
    std::env::var_os("BACKCHAT_CONV_DEBUG").is_some()
}

/// With `BACKCHAT_CONV_DEBUG`: one line on stderr about user `id`'s turn `index`, stamped
/// with the seconds since `start`.
pub(crate) fn debug_line(start: Instant, id: usize, index: usize, what: &str) {
    if debug() {
        let t = Instant::now()
            .saturating_duration_since(start)
            .as_secs_f64();
        eprintln!("[{t:9.1} s] user {id} turn {index}: {what}");
    }
}

async fn user(
    driver: Driver,
    scn: Arc<ConversationScenario>,
    id: usize,
    mode: CacheMode,
    start: Instant,
) -> (Vec<TurnRecord>, Instant) {
    let script = Script::new(Arc::clone(&scn), id);
    let mut history: Vec<Message> = Vec::new();
    let mut records = Vec::new();
    for index in 0..scn.turns {
        if index > 0 {
            tokio::time::sleep(Duration::from_secs_f64(scn.think_s)).await;
        }
        history.push(Message::text(Role::User, script.prompt(index)));
        let req = script.request(&history, mode);
        let mut reply = String::new();
        let mut record = TurnRecord {
            index,
            ok: false,
            rejected: false,
            tokens: Tokens::default(),
        };
        let mut turn = std::pin::pin!(driver.run(req));
        while let Some(ev) = turn.next().await {
            match ev {
                TurnEvent::TextDelta { text } => reply.push_str(&text),
                TurnEvent::Finished { usage, .. } => {
                    debug_line(start, id, index, &format!("ok {usage:?}"));
                    record.ok = true;
                    record.tokens = Tokens::from(&usage);
                }
                TurnEvent::Failed(f) => {
                    debug_line(start, id, index, &format!("{:?} {}", f.kind, f.message));
                    record.rejected = f.kind == FailureKind::ExceedsQuota;
                }
                TurnEvent::RetryScheduled { message, .. } => {
                    debug_line(start, id, index, &format!("retry: {message}"));
                }
                TurnEvent::Pacing { until, .. } => {
                    let wait = until.saturating_duration_since(Instant::now());
                    debug_line(
                        start,
                        id,
                        index,
                        &format!("pacing {:.1} s", wait.as_secs_f64()),
                    );
                }
                _ => {}
            }
        }
        if record.ok {
            history.push(Message::text(Role::Assistant, reply));
        } else {
            // A turn without a reply is not context for the next one.
            history.pop();
        }
        records.push(record);
    }
    (records, Instant::now())
}

/// The in-process mock with the scenario's limits and prompt cache, every reply the
/// scenario's, and an HTTP transport to it fit for a paused clock.
pub(crate) async fn start_mock(
    scn: &ConversationScenario,
) -> Result<(MockServer, HttpTransport), String> {
    let reply = text("reply", scn.reply_tokens);
    let server = MockServer::start(MockConfig {
        limits: MockLimits {
            rpm: scn.rpm,
            itpm: scn.itpm,
            otpm: scn.otpm,
            capacity_fraction: 1.0,
        },
        token_rate: scn.token_rate,
        first_token_latency: FIRST_TOKEN,
        seed: Some(7),
        // One reply per request, 429s included (a step is consumed before the limits).
        script: (0..scn.users * scn.turns * 20)
            .map(|_| ScriptStep::Reply {
                text: reply.clone(),
            })
            .collect(),
        ..MockConfig::default()
    })
    .await
    .map_err(|e| format!("the mock did not start: {e}"))?;
    let mut cfg = HttpTransportConfig::new(server.base_url(), ApiKey::new("sk-ant-loadtest-conv"));
    // No pool-expiry timer: on a paused clock it would make time jump while a socket is busy.
    cfg.pool_idle_timeout = None;
    // Nor a response timer: while a loopback socket is busy the paused clock jumps to the
    // next timer, and a 600 s one would fire for nothing.
    cfg.header_timeout = Duration::from_hours(24);
    cfg.idle_timeout = Duration::from_hours(24);
    let transport = HttpTransport::new(cfg).map_err(|e| e.to_string())?;
    Ok((server, transport))
}

/// Keeps tokio's paused clock from jumping past a loopback socket while it runs.
///
/// On a paused clock, a runtime with nothing ready jumps to its next timer, even while a
/// loopback socket is still delivering a large body. A 1 ms ticker bounds each jump to a
/// millisecond of simulated time, so no timer fires early by more than that.
pub(crate) struct Ticker(tokio::task::JoinHandle<()>);

impl Ticker {
    /// Start ticking (on the current runtime).
    pub(crate) fn start() -> Ticker {
        Ticker(tokio::spawn(async {
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Run backchat's engine through `scn` once with `mode`. Call on a paused clock for exact,
/// fast runs.
pub async fn run(
    scn: &ConversationScenario,
    mode: CacheMode,
) -> Result<ConversationResult, String> {
    let (server, transport) = start_mock(scn).await?;
    let driver = Driver::new(Arc::new(transport))
        .with_seed(42)
        .with_config(RetryConfig {
            // A long conversation may wait a minute for the input bucket; that is pacing,
            // not a reason to give up.
            max_wait: Duration::from_mins(10),
            deadline: Duration::from_hours(1),
            ..RetryConfig::default()
        });
    let scn = Arc::new(scn.clone());
    let ticker = Ticker::start();
    let start = Instant::now();
    let tasks: Vec<_> = (0..scn.users)
        .map(|id| tokio::spawn(user(driver.clone(), Arc::clone(&scn), id, mode, start)))
        .collect();
    let mut users = Vec::new();
    for t in tasks {
        users.push(t.await.map_err(|e| e.to_string())?);
    }
    drop(ticker);
    let stats = server.control().stats();
    server.shutdown().await;
    let served = Served {
        rate_limited: stats.count(429),
        attempts: stats.messages_requests,
    };
    Ok(summarize(
        &scn,
        "backchat",
        mode.as_str(),
        start,
        users,
        served,
    ))
}

/// What the server counted over a run.
pub(crate) struct Served {
    /// 429s it sent.
    pub(crate) rate_limited: u64,
    /// Requests it received.
    pub(crate) attempts: u64,
}

/// One row from every user's turn records and end instant: the counts, the makespan, the
/// cache shares, the cost and the two bounds.
pub(crate) fn summarize(
    scn: &ConversationScenario,
    policy: &str,
    cache: &str,
    start: Instant,
    users: Vec<(Vec<TurnRecord>, Instant)>,
    served: Served,
) -> ConversationResult {
    let mut result = ConversationResult {
        policy: policy.into(),
        cache: cache.into(),
        bound_s: scn.no_quota_bound().as_secs_f64(),
        rate_limited: served.rate_limited,
        attempts: served.attempts,
        ..ConversationResult::default()
    };
    let mut end = start;
    let (mut read3, mut total3) = (0u64, 0u64);
    // Input the server charged (uncached + writes), per turn index, summed over users.
    let mut charged_by_turn = vec![0u64; scn.turns];
    for (records, finished) in users {
        end = end.max(finished);
        for r in records {
            if r.ok {
                result.ok += 1;
                if let Some(c) = charged_by_turn.get_mut(r.index) {
                    *c += r.tokens.input + r.tokens.cache_write_5m + r.tokens.cache_write_1h;
                }
                result.tally.add(&scn.model, &r.tokens);
                if r.index >= 2 {
                    read3 += r.tokens.cache_read;
                    total3 += r.tokens.total_input();
                }
            } else if r.rejected {
                result.rejected += 1;
            } else {
                result.failed += 1;
            }
        }
    }
    result.makespan_s = (end - start).as_secs_f64();
    result.cache_share = result.tally.tokens.hit_rate();
    result.cache_share_from_turn_3 = if total3 == 0 {
        0.0
    } else {
        read3 as f64 / total3 as f64
    };
    // The quota's bound, charging only what the server charged: input beyond the full
    // bucket refills at itpm/60, output likewise, and the last reply still has to stream.
    let t = result.tally.tokens;
    let charged_in = (t.input + t.cache_write_5m + t.cache_write_1h) as f64;
    let itpm_bound = (charged_in - scn.itpm as f64).max(0.0) / (scn.itpm as f64 / 60.0);
    let otpm_bound = (t.output as f64 - scn.otpm as f64).max(0.0) / (scn.otpm as f64 / 60.0);
    let gen_s = scn.generation().as_secs_f64();
    // Per turn index j: the last user to send its turn j does so only once every user's
    // turns 1..j have been admitted, so no earlier than (their charged input − C)/r; it then
    // still has that reply and the remaining turns (think + reply each) ahead of it.
    let think_gen = scn.think_s + gen_s;
    let mut cum = 0u64;
    let mut per_turn_bound = 0.0f64;
    for (j, c) in charged_by_turn.iter().enumerate() {
        cum += c;
        let admitted = (cum as f64 - scn.itpm as f64).max(0.0) / (scn.itpm as f64 / 60.0);
        let rest = (scn.turns - 1 - j) as f64 * think_gen;
        per_turn_bound = per_turn_bound.max(admitted + gen_s + rest);
    }
    result.lb_s = result
        .bound_s
        .max(itpm_bound + gen_s)
        .max(otpm_bound + gen_s)
        // The per-turn bound assumes every later turn gets its reply: only then is it a bound.
        .max(if result.rejected + result.failed == 0 {
            per_turn_bound
        } else {
            0.0
        });
    result
}

/// The report of one scenario: one row per policy and cache mode.
pub fn table(scn: &ConversationScenario, rows: &[ConversationResult]) -> String {
    let baseline = rows
        .iter()
        .find(|r| r.policy == "backchat" && r.cache == "off");
    let mut out = format!(
        "scenario {} — {} ({} user(s) × {} turns, {} RPM, {} ITPM, {} OTPM)\n",
        scn.name, scn.description, scn.users, scn.turns, scn.rpm, scn.itpm, scn.otpm
    );
    out.push_str("policy                cache  ok   rejected  failed  429     429/ok   makespan  ×bound   LB      ×LB     read%  read%≥t3  cost    ×uncached  ×off-run\n");
    for r in rows {
        let vs_off = baseline
            .filter(|b| b.tally.usd > 0.0)
            .map_or("-".to_string(), |b| {
                format!("{:.2}", r.tally.usd / b.tally.usd)
            });
        let vs_uncached = if r.tally.uncached_usd > 0.0 {
            format!("{:.2}", r.tally.usd / r.tally.uncached_usd)
        } else {
            "-".into()
        };
        out.push_str(&format!(
            "{:<21} {:<6} {:<4} {:<9} {:<7} {:<7} {:<8.3} {:<9.1} {:<8.3} {:<7.1} {:<7.3} {:<6.1} {:<9.1} {:<7} {:<10} {}\n",
            r.policy,
            r.cache,
            r.ok,
            r.rejected,
            r.failed,
            r.rate_limited,
            r.rate_limited_per_ok(),
            r.makespan_s,
            r.makespan_s / r.bound_s,
            r.lb_s,
            r.makespan_s / r.lb_s,
            r.cache_share * 100.0,
            r.cache_share_from_turn_3 * 100.0,
            crate::cost::usd_text(r.tally.usd),
            vs_uncached,
            vs_off,
        ));
    }
    out.push_str(&format!(
        "bound = {:.1} s without a quota (think + generation); peers do not cache and send the whole history; \
         a peer's rejected turns were retried until its own give-up\n",
        scn.no_quota_bound().as_secs_f64()
    ));
    out
}

/// Every row of a conversation scenario: backchat with caching and without (end to end
/// against the mock), then every peer policy (on the simulated server). Call on a paused
/// clock.
pub async fn run_all(scn: &ConversationScenario) -> Result<Vec<ConversationResult>, String> {
    let mut rows = Vec::new();
    for mode in [CacheMode::Auto, CacheMode::Off] {
        rows.push(run(scn, mode).await?);
    }
    for policy in PolicyId::ALL {
        if policy.peer().is_some() {
            rows.push(super::conversation_peers::run_peer(scn, policy, 0, PeerEngine::Sim).await?);
        }
    }
    Ok(rows)
}

/// `backchat loadtest --scenario E|F`: every row on a paused clock, the table (or JSON) on
/// stdout.
pub fn run_cli(scn: &ConversationScenario, json: bool) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| e.to_string())?;
    let rows = rt.block_on(run_all(scn))?;
    if json {
        serde_json::to_string_pretty(&serde_json::json!({"scenario": scn, "rows": rows}))
            .map_err(|e| e.to_string())
    } else {
        Ok(table(scn, &rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_scenarios_parse_and_text_has_its_size() {
        let e = ConversationScenario::built_in("E")
            .expect("E")
            .expect("parses");
        assert_eq!((e.users, e.turns, e.itpm), (1, 40, 30_000));
        let f = ConversationScenario::built_in("f")
            .expect("F")
            .expect("parses");
        assert_eq!(f.users, 4);
        assert!(ConversationScenario::built_in("A").is_none());
        assert_eq!(crate::tokens::count_text(&text("x", 500)), 500);
        // 39 thinks of 10 s and 40 replies of 700 tokens at 60/s (+0.2 s first token).
        assert!(
            (e.no_quota_bound().as_secs_f64() - (390.0 + 40.0 * (700.0 / 60.0 + 0.2))).abs() < 1e-6
        );
    }
}
