//! The peer retry policies in the conversation scenarios: every peer gets a row in E, with
//! numbers that hold together (every turn accounted for, every attempt either admitted or a
//! 429, a rejected turn retried until the peer's own give-up, no cache and so the uncached
//! cost), and the simulated server the peers run on agrees with the real mock over loopback.

use backchat::loadtest::conversation::{ConversationResult, ConversationScenario, table};
use backchat::loadtest::conversation_peers::{PeerEngine, run_peer};
use backchat::loadtest::policies::PolicyId;

fn e() -> ConversationScenario {
    ConversationScenario::built_in("E").unwrap().unwrap()
}

/// The numbers of one peer row that must hold whatever the policy does.
fn check(scn: &ConversationScenario, policy: PolicyId, r: &ConversationResult) {
    let what = format!("{}: {r:?}", policy.name());
    let turns = (scn.users * scn.turns) as u64;
    assert_eq!(r.policy, policy.name(), "{what}");
    assert_eq!(r.cache, "off", "{what}");
    assert_eq!(r.ok + r.rejected + r.failed, turns, "{what}");
    // No 529s here: every attempt was admitted (one per turn with a reply) or a 429.
    assert_eq!(r.attempts, r.ok + r.rate_limited, "{what}");
    // A turn given up on was tried until the policy's own limit, on 429s alone.
    let max = u64::from(policy.peer().unwrap().max_attempts());
    assert!(
        r.rate_limited >= (r.rejected + r.failed) * max,
        "{what}: {max} attempts per failed turn"
    );
    // A peer sends no cache_control: nothing read or written, the cost is the uncached cost.
    let t = r.tally.tokens;
    assert_eq!(
        (t.cache_read, t.cache_write_5m, t.cache_write_1h),
        (0, 0, 0),
        "{what}"
    );
    assert_eq!(r.cache_share, 0.0, "{what}");
    assert!((r.tally.usd - r.tally.uncached_usd).abs() < 1e-12, "{what}");
    assert_eq!(t.output, r.ok * scn.reply_tokens, "{what}");
    // The user thinks between every two turns; only the turns with a reply generate one.
    let floor = (scn.turns - 1) as f64 * scn.think_s + r.ok as f64 * scn.generation().as_secs_f64();
    assert!(r.makespan_s >= floor - 1e-6, "{what}: at least {floor} s");
}

#[tokio::test(start_paused = true)]
async fn every_peer_gets_a_row_in_scenario_e() {
    let scn = e();
    let mut rows = Vec::new();
    for policy in PolicyId::ALL {
        if policy.peer().is_none() {
            continue;
        }
        let r = run_peer(&scn, policy, 0, PeerEngine::Sim).await.unwrap();
        check(&scn, policy, &r);
        // Without caching the history outgrows the 30k input bucket: no peer finishes E.
        assert!(r.ok < 40 && r.ok > 0, "{}: {r:?}", policy.name());
        rows.push(r);
    }
    assert_eq!(rows.len(), 9);
    // The SDK retries a request that can never fit twice, then gives up: 3 429s a turn.
    let sdk = rows.iter().find(|r| r.policy == "anthropic-sdk").unwrap();
    assert!(sdk.rejected > 0, "{sdk:?}");
    // An "unlimited" policy sends a hopeless request 1,000 times.
    let full = rows.iter().find(|r| r.policy == "full-jitter").unwrap();
    assert!(
        full.rate_limited >= 1000 * full.rejected && full.rejected > 0,
        "{full:?}"
    );

    let text = table(&scn, &rows);
    for r in &rows {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{} ", r.policy))),
            "{} in\n{text}",
            r.policy
        );
    }
}

/// E, shortened and on a smaller bucket, so it hits both kinds of 429 in a few turns.
fn small() -> ConversationScenario {
    ConversationScenario {
        name: "small".into(),
        turns: 12,
        reply_tokens: 300,
        itpm: 20_000,
        ..e()
    }
}

#[tokio::test(start_paused = true)]
async fn the_simulated_server_agrees_with_the_mock() {
    let scn = small();
    for policy in [PolicyId::AnthropicSdk, PolicyId::TenacitySeed] {
        let sim = run_peer(&scn, policy, 3, PeerEngine::Sim).await.unwrap();
        let mock = run_peer(&scn, policy, 3, PeerEngine::Mock).await.unwrap();
        check(&scn, policy, &sim);
        check(&scn, policy, &mock);
        let what = format!("{}:\nsim  {sim:?}\nmock {mock:?}", policy.name());
        // Some turns got their reply, some could not (the SDK meets the wall; tenacity gives
        // up on waits longer than its backoff before that).
        assert!(sim.ok > 1 && sim.rejected + sim.failed > 0, "{what}");
        if policy == PolicyId::AnthropicSdk {
            assert!(sim.rejected > 0, "{what}");
        }
        assert_eq!(
            (sim.ok, sim.rejected, sim.failed),
            (mock.ok, mock.rejected, mock.failed),
            "{what}"
        );
        assert_eq!(sim.tally.tokens, mock.tally.tokens, "{what}");
        assert!(sim.rate_limited.abs_diff(mock.rate_limited) <= 2, "{what}");
        assert!(
            (sim.makespan_s - mock.makespan_s).abs() <= 0.02 * mock.makespan_s,
            "{what}"
        );
    }
}
