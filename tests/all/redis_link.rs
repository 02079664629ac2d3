//! The shared limiter's connection at scale, against a real redis-server: concurrent calls of
//! one process share round trips and keep their order, a slow answer sends one request local
//! without taking the whole process off Redis, and a 429 behind a queue of reservations moves
//! the queue instead of leaving a shortfall for the next request in line. Real clock; waits
//! are hang guards, timings have wide margins.

use std::sync::Arc;
use std::time::Duration;

use crate::support::redis::{RedisServer, eventually};
use backchat::limiter::{
    Demand, Grant, GrantSource, Limiter, LimiterHealth, RedisLimiter, RedisLimiterConfig,
    Reservation,
};
use backchat::quota::{Bucket, BucketQuota, ModelClass, QuotaSnapshot};
use backchat::secret::ApiKey;
use tokio::time::Instant;

const HANG: Duration = Duration::from_secs(10);

/// How far a start time may drift from the arithmetic (Redis's clock mapped onto ours).
const SLACK: f64 = 0.05;

fn class() -> ModelClass {
    ModelClass::of("claude-sonnet-4-5")
}

fn one_request() -> Demand {
    Demand {
        requests: 1.0,
        input_tokens: 0.0,
        output_tokens: 0.0,
        class: class(),
        cache: None,
    }
}

/// `limit` requests per minute, `remaining` of them left.
fn requests(limit: u64, remaining: u64) -> QuotaSnapshot {
    let now = Instant::now();
    let mut q = QuotaSnapshot::empty(now);
    q.requests = Some(BucketQuota {
        limit: Some(limit),
        remaining: Some(remaining),
        reset: Some(now + Duration::from_mins(1)),
    });
    q
}

async fn grant(l: &RedisLimiter) -> Grant {
    match tokio::time::timeout(HANG, l.reserve(one_request(), false))
        .await
        .expect("reserve never hangs")
    {
        Reservation::Granted(g) => g,
        Reservation::AwaitFirstHeaders { .. } => panic!("expected a grant"),
    }
}

fn secs(from: Instant, to: Instant) -> f64 {
    if to >= from {
        (to - from).as_secs_f64()
    } else {
        -(from - to).as_secs_f64()
    }
}

async fn evalsha_calls(server: &RedisServer) -> u64 {
    let mut con = server.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut con)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A limiter on `server` for the key `key`, with a call budget (1 s) that a loaded test
/// machine does not run out of.
async fn connect(server: &RedisServer, key: &str) -> RedisLimiter {
    let k = ApiKey::new(key).expect("non-empty");
    RedisLimiter::connect(
        RedisLimiterConfig {
            call_timeout: Duration::from_secs(1),
            ..RedisLimiterConfig::new(server.url())
        },
        Some(&k),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_turns_share_round_trips_and_keep_fifo_slots() {
    let server = RedisServer::start();
    let l = Arc::new(connect(&server, "sk-ant-test-pipeline").await);
    assert_eq!(l.health(), LimiterHealth::Shared);
    // 600 requests per minute, none left: one slot every 100 ms.
    l.observe(&class(), &requests(600, 0));
    l.flush().await;
    let before = evalsha_calls(&server).await;
    // Sixteen turns reserve at once: their calls go out together (in as few pipelines as the
    // round trips allow), in order.
    let turns = (0..16).map(|_| {
        let l = Arc::clone(&l);
        tokio::spawn(async move { grant(&l).await })
    });
    let mut grants: Vec<Grant> = futures::future::join_all(turns)
        .await
        .into_iter()
        .map(|g| g.expect("a turn"))
        .collect();
    l.flush().await;
    assert_eq!(
        evalsha_calls(&server).await - before,
        16,
        "one script call per reservation, however they were batched"
    );
    assert_eq!(l.health(), LimiterHealth::Shared);
    grants.sort_by_key(|g| g.start_at);
    for pair in grants.windows(2) {
        let gap = secs(pair[0].start_at, pair[1].start_at);
        assert!(
            (gap - 0.1).abs() <= SLACK,
            "every turn has its own slot, 100 ms apart: {gap:.4} s"
        );
    }
    // A release queued before a reservation is applied before it: the freed slot (the last
    // one) is the next reservation's.
    let last = grants.last().expect("sixteen");
    l.release(last);
    let again = grant(&l).await;
    assert!(
        secs(last.start_at, again.start_at).abs() <= SLACK,
        "the released slot is reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_behind_a_queue_moves_the_queue() {
    let server = RedisServer::start();
    let l = connect(&server, "sk-ant-test-deep-queue").await;
    // 60 requests per minute, none left: slots 1 s apart, three of them queued.
    l.observe(&class(), &requests(60, 0));
    l.flush().await;
    let first = grant(&l).await;
    let _second = grant(&l).await;
    let third = grant(&l).await;
    // The first request goes at its slot and meets a 429: the server had less than the model
    // said, and it fits only 400 ms later. Its units come back (it was not admitted), and the
    // process tells the limiter of the 429, as the driver does.
    l.release(&first);
    l.rate_limited(
        &class(),
        Instant::now() + Duration::from_millis(400),
        Some(Bucket::Requests),
    );
    // Without the correction the next reservation would get the third one's slot (the
    // released units make room at the end of the queue) and meet the same shortfall.
    let next = grant(&l).await;
    let after_third = secs(third.start_at, next.start_at);
    assert!(
        (after_third - 0.4).abs() <= SLACK,
        "the queue moved on by the server's shortfall: {after_third:.4} s after the third slot"
    );
    // Another process refused at the same moment reports the same shortfall: the queue does
    // not move again (only a block reaching further would move it further).
    l.rate_limited(
        &class(),
        Instant::now() + Duration::from_millis(300),
        Some(Bucket::Requests),
    );
    let after = grant(&l).await;
    let gap = secs(next.start_at, after.start_at);
    assert!(
        (gap - 1.0).abs() <= SLACK,
        "the next slot, one second on: {gap:.4} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_sends_one_request_local_and_keeps_the_link() {
    let server = RedisServer::start();
    let k = ApiKey::new("sk-ant-test-slow").expect("non-empty");
    let l = RedisLimiter::connect(
        RedisLimiterConfig {
            down_after: Duration::from_secs(3),
            retry_every: Duration::from_millis(200),
            ..RedisLimiterConfig::new(server.url())
        },
        Some(&k),
    )
    .await;
    assert_eq!(l.health(), LimiterHealth::Shared);
    l.observe(&class(), &requests(6000, 6000));
    l.flush().await;
    assert_eq!(grant(&l).await.source, GrantSource::Shared);
    // Redis stalls for 300 ms (a busy machine): the request waiting for it is paced locally
    // after the 50 ms call budget, but the link stays up, and the next request is shared.
    server.pause();
    assert_eq!(grant(&l).await.source, GrantSource::Local);
    assert_eq!(
        l.health(),
        LimiterHealth::Shared,
        "one slow call is no outage"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    server.resume();
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert_eq!(l.health(), LimiterHealth::Shared, "never degraded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(grant(&l).await.source, GrantSource::Shared);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_silent_past_down_after_takes_the_process_local_until_it_answers() {
    let server = RedisServer::start();
    let k = ApiKey::new("sk-ant-test-silent").expect("non-empty");
    let l = RedisLimiter::connect(
        RedisLimiterConfig {
            call_timeout: Duration::from_millis(200),
            down_after: Duration::from_millis(600),
            retry_every: Duration::from_millis(200),
            ..RedisLimiterConfig::new(server.url())
        },
        Some(&k),
    )
    .await;
    assert_eq!(l.health(), LimiterHealth::Shared);
    server.pause();
    let paused = Instant::now();
    assert_eq!(grant(&l).await.source, GrantSource::Local);
    eventually("degraded", HANG, || {
        matches!(l.health(), LimiterHealth::Degraded(_))
    })
    .await;
    assert!(
        paused.elapsed() >= Duration::from_millis(550),
        "not before down_after"
    );
    // While down, nothing waits for Redis.
    let asked = Instant::now();
    assert_eq!(grant(&l).await.source, GrantSource::Local);
    assert!(
        asked.elapsed() < Duration::from_millis(150),
        "answered at once, not after the call budget"
    );
    server.resume();
    eventually("shared again", HANG, || l.health() == LimiterHealth::Shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_estimate_costs_no_true_up() {
    let server = RedisServer::start();
    let l = connect(&server, "sk-ant-test-true-up").await;
    l.observe(&class(), &requests(6000, 6000));
    l.flush().await;
    let demand = Demand {
        input_tokens: 3000.0,
        output_tokens: 100.0,
        ..one_request()
    };
    let mut calls = Vec::new();
    for used in [3000, 2500] {
        let before = evalsha_calls(&server).await;
        let Reservation::Granted(g) = l.reserve(demand, false).await else {
            panic!("expected a grant")
        };
        l.commit(&g);
        l.settle(
            &g,
            &backchat::api::Usage {
                input_tokens: used,
                output_tokens: 100,
                ..backchat::api::Usage::default()
            },
        );
        l.flush().await;
        calls.push(evalsha_calls(&server).await - before);
    }
    assert_eq!(
        calls,
        [1, 2],
        "the reservation alone when the estimate was exact; a true-up when it was not"
    );
}
