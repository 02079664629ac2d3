//! How long the shared limiter keeps a request waiting before it is sent when there is quota
//! to spare: the latency of `reserve` through Redis, beside the in-process pacer's.
//!
//! ```sh
//! cargo run --release --example limiter_latency -- redis://127.0.0.1:6379/0 [N] [TASKS]
//! ```
//!
//! Each of TASKS concurrent tasks (default 4: four turns at once in one process; 1: one turn at
//! a time) runs N/TASKS (default N = 4000) cycles of what the driver does around one request
//! on a quota far from its limit: reserve, then report the headers, commit and settle (which
//! are queued, not awaited, as in the driver), back to back. Prints the p50, p99 and max of
//! `reserve` for both limiters and the difference, which is what the shared limiter adds, and
//! the script calls per request from Redis's `INFO commandstats` (every call is one
//! `EVALSHA`; calls queued together share one network round trip, as a pipeline).
//! docs/shared-limiter.md, "At scale".

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measuring tool may stop by panicking"
)]

use std::sync::Arc;
use std::time::Duration;

use backchat::api::Usage;
use backchat::limiter::{
    Demand, GrantSource, Limiter, LimiterHealth, LocalLimiter, RedisLimiter, RedisLimiterConfig,
    Reservation,
};
use backchat::quota::{BucketQuota, ModelClass, QuotaSnapshot};
use backchat::secret::ApiKey;
use tokio::time::Instant;

fn quota() -> QuotaSnapshot {
    let now = Instant::now();
    let full = |limit| {
        Some(BucketQuota {
            limit: Some(limit),
            remaining: Some(limit),
            reset: Some(now),
        })
    };
    let mut q = QuotaSnapshot::empty(now);
    q.requests = full(1_000_000);
    q.input_tokens = full(1_000_000_000);
    q.output_tokens = full(1_000_000_000);
    q
}

/// Every `reserve`'s duration, sorted, and how many were decided by a local pacer.
async fn measure(limiter: Arc<dyn Limiter>, cycles: usize, tasks: usize) -> (Vec<Duration>, usize) {
    let class = ModelClass::of("claude-sonnet-4-5");
    limiter.observe(&class, &quota());
    limiter.flush().await;
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let limiter = Arc::clone(&limiter);
        handles.push(tokio::spawn(async move {
            let mut took = Vec::with_capacity(cycles);
            let mut local = 0;
            for _ in 0..cycles {
                let demand = Demand {
                    requests: 1.0,
                    input_tokens: 3000.0,
                    output_tokens: 500.0,
                    class,
                    cache: None,
                };
                let asked = Instant::now();
                let grant = match limiter.reserve(demand, false).await {
                    Reservation::Granted(g) => g,
                    Reservation::AwaitFirstHeaders { .. } => panic!("limits are known"),
                };
                took.push(asked.elapsed());
                local += usize::from(grant.source == GrantSource::Local);
                limiter.observe(&class, &quota());
                limiter.commit(&grant);
                limiter.settle(
                    &grant,
                    &Usage {
                        input_tokens: 3000,
                        output_tokens: 400,
                        ..Usage::default()
                    },
                );
            }
            (took, local)
        }));
    }
    let mut all = Vec::new();
    let mut local = 0;
    for h in handles {
        let (took, paced_locally) = h.await.expect("a task");
        all.extend(took);
        local += paced_locally;
    }
    all.sort();
    (all, local)
}

/// `EVALSHA` calls so far, from `INFO commandstats`.
async fn evalsha_calls(client: &redis::Client) -> u64 {
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect for INFO");
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut con)
        .await
        .expect("INFO commandstats");
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: limiter_latency REDIS_URL [N] [TASKS]");
    let n: usize = args.next().map_or(4000, |s| s.parse().expect("N"));
    let tasks: usize = args.next().map_or(4, |s| s.parse().expect("TASKS"));
    let tasks = tasks.max(1);
    let key = ApiKey::new(format!("sk-latency-{}", std::process::id()));
    let client = redis::Client::open(url.as_str()).expect("a Redis URL");
    let shared = RedisLimiter::connect(RedisLimiterConfig::new(url), key.as_ref()).await;
    assert_eq!(shared.health(), LimiterHealth::Shared, "Redis must answer");
    let shared = Arc::new(shared);
    let calls_before = evalsha_calls(&client).await;
    let cycles = n / tasks;
    let (took, went_local) = measure(Arc::clone(&shared) as Arc<dyn Limiter>, cycles, tasks).await;
    shared.flush().await;
    assert_eq!(
        shared.health(),
        LimiterHealth::Shared,
        "Redis answered throughout"
    );
    let calls = evalsha_calls(&client).await - calls_before;
    let shared = took;
    let (local, _) = measure(Arc::new(LocalLimiter::new()), cycles, tasks).await;
    for (name, d) in [("redis", &shared), ("local", &local)] {
        println!(
            "{name}: reserve p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} reservations)",
            pct(d, 0.5),
            pct(d, 0.99),
            pct(d, 1.0),
            d.len()
        );
    }
    println!(
        "added by the shared limiter: p50 {:.3} ms, p99 {:.3} ms ({tasks} concurrent)",
        pct(&shared, 0.5) - pct(&local, 0.5),
        pct(&shared, 0.99) - pct(&local, 0.99)
    );
    println!(
        "script calls: {calls} for {} requests, {:.2} per request (INFO commandstats, EVALSHA)",
        shared.len(),
        calls as f64 / shared.len().max(1) as f64
    );
    println!("paced locally (no answer within the 50 ms call budget): {went_local}");
}
