//! The Redis-backed shared limiter against a real redis-server (one per test, on its own
//! port). These talk to an external process, so they run on the real clock; waits are polled
//! with hang guards, never asserted as timings.

use std::sync::Arc;
use std::time::Duration;

use crate::support::redis::{RedisServer, eventually};
use backchat::api::{Message, MessagesRequest, Role, Usage};
use backchat::limiter::redis::scope::scope_keys;
use backchat::limiter::{
    Demand, Grant, Limiter, LimiterHealth, RedisLimiter, RedisLimiterConfig, Reservation,
};
use backchat::quota::{Bucket, BucketQuota, ModelClass, QuotaSnapshot};
use backchat::retry::DelaySource;
use backchat::secret::ApiKey;
use tokio::time::Instant;

const MODEL: &str = "claude-sonnet-4-5";
const CLASS: &str = "sonnet-4";
const HANG: Duration = Duration::from_secs(10);

/// How far a start time may drift from the arithmetic: it is Redis's clock mapped onto ours
/// through one round trip on a loaded machine.
const SLACK: Duration = Duration::from_millis(40);

fn key(text: &str) -> ApiKey {
    ApiKey::new(text).expect("non-empty")
}

/// Generous call timeouts: these tests are about the arithmetic, not about a slow machine
/// failing over (the fail-open tests use the real 50 ms).
fn config(server: &RedisServer) -> RedisLimiterConfig {
    RedisLimiterConfig {
        call_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        retry_every: Duration::from_millis(200),
        ..RedisLimiterConfig::new(server.url())
    }
}

async fn limiter(server: &RedisServer, k: &ApiKey) -> RedisLimiter {
    let l = RedisLimiter::connect(config(server), Some(k)).await;
    assert_eq!(l.health(), LimiterHealth::Shared);
    l
}

fn demand(requests: f64, input: f64, output: f64) -> Demand {
    Demand {
        requests,
        input_tokens: input,
        output_tokens: output,
        class: class(),
        cache: None,
    }
}

/// The class of [`MODEL`], whose keys are [`CLASS`]'s.
fn class() -> ModelClass {
    ModelClass::of(MODEL)
}

/// (limit, remaining, seconds until full) per dimension.
type Reading = Option<(u64, u64, f64)>;

fn quota(rpm: Reading, itpm: Reading, otpm: Reading) -> QuotaSnapshot {
    let now = Instant::now();
    let bucket = |r: Reading| {
        r.map(|(limit, remaining, reset)| BucketQuota {
            limit: Some(limit),
            remaining: Some(remaining),
            reset: Some(now + Duration::from_secs_f64(reset)),
        })
    };
    let mut q = QuotaSnapshot::empty(now);
    q.requests = bucket(rpm);
    q.input_tokens = bucket(itpm);
    q.output_tokens = bucket(otpm);
    q
}

async fn granted(l: &RedisLimiter, d: Demand) -> Grant {
    match tokio::time::timeout(HANG, l.reserve(d, false))
        .await
        .expect("reserve never hangs")
    {
        Reservation::Granted(g) => g,
        Reservation::AwaitFirstHeaders { .. } => panic!("expected a grant"),
    }
}

fn secs_between(a: Instant, b: Instant) -> f64 {
    if b >= a {
        (b - a).as_secs_f64()
    } else {
        -(a - b).as_secs_f64()
    }
}

/// How late an absolute start may be: the shared bucket's clock starts when Redis ran the
/// observation, a little after the snapshot was taken.
const LATE: Duration = Duration::from_millis(500);

/// `at` is `expected` seconds after `reference` (the snapshot's `read_at`), give or take the
/// mapping of clocks, and no more than [`LATE`] later.
fn assert_after(reference: Instant, at: Instant, expected: f64, what: &str) {
    let actual = secs_between(reference, at);
    assert!(
        actual >= expected - SLACK.as_secs_f64() && actual <= expected + LATE.as_secs_f64(),
        "{what}: {actual:.4} s after the observation, expected {expected:.4} s"
    );
}

fn assert_near(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= SLACK.as_secs_f64(),
        "{what}: {actual:.4} s, expected {expected:.4} s"
    );
}

async fn get_f64(con: &mut redis::aio::MultiplexedConnection, k: &str) -> Option<f64> {
    let v: Option<String> = redis::cmd("GET")
        .arg(k)
        .query_async(con)
        .await
        .expect("GET");
    v.map(|s| s.parse().expect("a number"))
}

/// Redis's clock, in ms.
async fn redis_now(con: &mut redis::aio::MultiplexedConnection) -> f64 {
    let (s, us): (u64, u64) = redis::cmd("TIME").query_async(con).await.expect("TIME");
    s as f64 * 1000.0 + us as f64 / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_satisfies_every_dimension_or_reserves_nothing() {
    let server = RedisServer::start();
    let k = key("sk-ant-test-atomic");
    let l = RedisLimiter::connect(
        RedisLimiterConfig {
            max_ahead: Duration::from_secs(10),
            ..config(&server)
        },
        Some(&k),
    )
    .await;
    // Requests: 600/min, full. Input tokens: 6,000/min (100/s), empty.
    let q = quota(Some((600, 600, 0.0)), Some((6_000, 0, 60.0)), None);
    l.observe(&class(), &q);
    l.flush().await;
    let keys = scope_keys(l.fingerprint(), CLASS);
    let mut con = server.conn().await;

    let r0 = redis_now(&mut con).await;
    let a = granted(&l, demand(1.0, 500.0, 0.0)).await;
    let r1 = redis_now(&mut con).await;
    assert_eq!(a.source, DelaySource::SharedLimiter);
    assert_eq!(a.bucket, Some(Bucket::InputTokens), "input tokens bind");
    assert_after(q.read_at, a.start_at, 5.0, "500 tokens at 100/s");
    // The requests dimension was charged too, although it did not bind: its TAT is one
    // emission interval (100 ms) past the moment of the reservation.
    let tat_requests = get_f64(&mut con, &keys[0]).await.expect("requests TAT");
    assert!(
        (r0 + 100.0 - 0.01..=r1 + 100.0 + 0.01).contains(&tat_requests),
        "requests TAT {tat_requests} outside [{r0} + 100, {r1} + 100]"
    );

    // 1,000 more tokens would start 15 s out, beyond max_ahead (10 s): nothing is reserved,
    // in any dimension.
    let tats_before = (
        get_f64(&mut con, &keys[0]).await,
        get_f64(&mut con, &keys[1]).await,
    );
    let far = granted(&l, demand(1.0, 1_000.0, 0.0)).await;
    assert_eq!(far.bucket, Some(Bucket::InputTokens));
    assert_after(q.read_at, far.start_at, 15.0, "reported start");
    let tats_after = (
        get_f64(&mut con, &keys[0]).await,
        get_f64(&mut con, &keys[1]).await,
    );
    assert_eq!(
        tats_before, tats_after,
        "a refused reservation takes nothing"
    );
    // Releasing it gives nothing back either.
    l.release(&far);
    l.flush().await;
    assert_eq!(
        tats_after,
        (
            get_f64(&mut con, &keys[0]).await,
            get_f64(&mut con, &keys[1]).await
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_own_requests_in_flight_are_not_taken_for_someone_elses() {
    let server = RedisServer::start();
    let k = key("sk-ant-test-in-flight");
    let l = limiter(&server, &k).await;
    // Input tokens: 6,000/min (100/s, 10 ms a token), full.
    l.observe(
        &class(),
        &quota(Some((600, 600, 0.0)), Some((6_000, 6_000, 0.0)), None),
    );
    l.flush().await;
    let keys = scope_keys(l.fingerprint(), CLASS);
    let mut con = server.conn().await;
    let level = |tat: f64, now: f64| 6_000.0 - (tat - now).max(0.0) / 10.0;
    // Two turns go out together; the server admits both before it writes the headers of the
    // first one, which are the first to arrive.
    let a = granted(&l, demand(1.0, 1_000.0, 0.0)).await;
    let b = granted(&l, demand(1.0, 1_000.0, 0.0)).await;
    l.commit(&a);
    l.observe(
        &class(),
        &quota(Some((600, 598, 0.2)), Some((6_000, 4_000, 20.0)), None),
    );
    l.flush().await;
    let tat = get_f64(&mut con, &keys[1]).await.expect("input TAT");
    let now = redis_now(&mut con).await;
    // b is ours and on its way, not a stranger's: the shared level stays 6,000 − 2,000 (plus
    // what refilled meanwhile), instead of dropping by b's 1,000 once more.
    let after_ours = level(tat, now);
    assert!(
        (3_990.0..4_500.0).contains(&after_ours),
        "level {after_ours}, expected about 4,000"
    );
    // A stranger's use beyond that is still believed (and b assumed not counted: it leans
    // low).
    l.observe(
        &class(),
        &quota(Some((600, 597, 0.3)), Some((6_000, 2_000, 40.0)), None),
    );
    l.flush().await;
    let tat = get_f64(&mut con, &keys[1]).await.expect("input TAT");
    let now = redis_now(&mut con).await;
    let after_stranger = level(tat, now);
    assert!(
        (990.0..1_500.0).contains(&after_stranger),
        "level {after_stranger}, expected about 2,000 − 1,000"
    );
    l.commit(&b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_from_two_processes_never_over_commit() {
    let server = RedisServer::start();
    let k = key("sk-ant-test-concurrent");
    let p1 = Arc::new(limiter(&server, &k).await);
    let p2 = Arc::new(limiter(&server, &k).await);
    // Both empty: requests 600/min (one per 100 ms), input tokens 60,000/min (one per ms).
    let t0 = Instant::now();
    p1.observe(
        &class(),
        &quota(Some((600, 0, 60.0)), Some((60_000, 0, 60.0)), None),
    );
    p1.flush().await;
    let keys = scope_keys(p1.fingerprint(), CLASS);
    let mut con = server.conn().await;
    let tat0 = [
        get_f64(&mut con, &keys[0]).await.expect("requests TAT"),
        get_f64(&mut con, &keys[1]).await.expect("input TAT"),
    ];

    let mut tasks = Vec::new();
    for i in 0..24u32 {
        let l = if i % 2 == 0 {
            Arc::clone(&p1)
        } else {
            Arc::clone(&p2)
        };
        let input = 40.0 * f64::from(i % 5 + 1);
        tasks.push(tokio::spawn(async move {
            granted(&l, demand(1.0, input, 0.0)).await
        }));
    }
    let mut grants = Vec::new();
    for t in tasks {
        grants.push(t.await.expect("task"));
    }
    assert!(
        grants
            .iter()
            .all(|g| g.source == DelaySource::SharedLimiter),
        "all shared"
    );

    // No update was lost: each TAT moved by exactly the sum of its demands.
    let total_requests: f64 = grants.iter().map(|g| g.demand.requests).sum();
    let total_input: f64 = grants.iter().map(|g| g.demand.input_tokens).sum();
    let tat1 = [
        get_f64(&mut con, &keys[0]).await.expect("requests TAT"),
        get_f64(&mut con, &keys[1]).await.expect("input TAT"),
    ];
    assert!((tat1[0] - tat0[0] - total_requests * 100.0).abs() < 0.01);
    assert!((tat1[1] - tat0[1] - total_input * 1.0).abs() < 0.01);

    // Never over-committed: by each start time, the units started so far fit in what the
    // (empty at t0) bucket has refilled.
    grants.sort_by_key(|g| g.start_at);
    let (mut requests, mut input) = (0.0, 0.0);
    for g in &grants {
        requests += g.demand.requests;
        input += g.demand.input_tokens;
        let elapsed = secs_between(t0, g.start_at) + SLACK.as_secs_f64();
        assert!(
            requests <= elapsed * 10.0,
            "{requests} requests by {elapsed:.3}s"
        );
        assert!(
            input <= elapsed * 1_000.0,
            "{input} tokens by {elapsed:.3}s"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_get_fifo_slots_at_the_refill_rate() {
    let server = RedisServer::start();
    let l = limiter(&server, &key("sk-ant-test-fifo")).await;
    // 60 requests/min, bucket empty: one slot per second.
    let q = quota(Some((60, 0, 60.0)), None, None);
    l.observe(&class(), &q);
    l.flush().await;
    let mut starts = Vec::new();
    for _ in 0..4 {
        let g = granted(&l, demand(1.0, 0.0, 0.0)).await;
        assert_eq!(g.bucket, Some(Bucket::Requests));
        assert_eq!(g.source, DelaySource::SharedLimiter);
        starts.push(g.start_at);
    }
    assert_after(q.read_at, starts[0], 1.0, "first slot");
    for pair in starts.windows(2) {
        assert!(pair[1] > pair[0], "strictly increasing");
        assert_near(secs_between(pair[0], pair[1]), 1.0, "spacing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_headers_remaining_is_believed() {
    let server = RedisServer::start();
    let l = limiter(&server, &key("sk-ant-test-first-sighting")).await;
    // 120 RPM (2/s) in a small bucket: 1 request left, full again in 1.2 s (as a whole-second
    // stamp makes it look), so the capacity is learned as 1.4. The server floors its request
    // count: the model must start from its 1, not from a full 1.4 bucket that the tolerance
    // for that flooring would leave standing.
    let q = quota(Some((120, 1, 1.2)), None, None);
    l.observe(&class(), &q);
    l.flush().await;
    let first = granted(&l, demand(1.0, 0.0, 0.0)).await;
    let second = granted(&l, demand(1.0, 0.0, 0.0)).await;
    assert_after(q.read_at, first.start_at, 0.0, "the one request left");
    assert_after(
        q.read_at,
        second.start_at,
        0.5,
        "the next one refills in 0.5 s",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_scaled_limiter_refills_on_the_servers_short_minute() {
    // Against a mock ten times faster than real time (`backchat loadtest --time-scale 10`):
    // its minute is 6 s, so 60 requests per minute is one every 100 ms, and the bucket
    // empties and refills on that clock.
    let server = RedisServer::start();
    let k = key("sk-ant-test-scaled");
    let l = RedisLimiter::connect(config(&server).time_scaled(10.0), Some(&k)).await;
    assert_eq!(l.health(), LimiterHealth::Shared);
    let q = quota(Some((60, 0, 6.0)), None, None);
    l.observe(&class(), &q);
    l.flush().await;
    let mut starts = Vec::new();
    for _ in 0..4 {
        let g = granted(&l, demand(1.0, 0.0, 0.0)).await;
        assert_eq!(g.bucket, Some(Bucket::Requests));
        starts.push(g.start_at);
    }
    assert_after(q.read_at, starts[0], 0.1, "first slot");
    for pair in starts.windows(2) {
        assert_near(secs_between(pair[0], pair[1]), 0.1, "spacing");
    }
    // The keys expire twice the (short) refill time after the last reservation ahead (an
    // empty bucket and four slots: 6.4 s + 12 s), not minutes later.
    let keys = scope_keys(l.fingerprint(), CLASS);
    let mut con = server.conn().await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[3])
        .query_async(&mut con)
        .await
        .expect("PTTL");
    assert!((1..=20_000).contains(&ttl), "{ttl} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_slot_goes_to_the_next_reservation() {
    let server = RedisServer::start();
    let l = limiter(&server, &key("sk-ant-test-release")).await;
    l.observe(&class(), &quota(Some((60, 0, 60.0)), None, None));
    l.flush().await;
    let a = granted(&l, demand(1.0, 0.0, 0.0)).await;
    l.release(&a);
    let b = granted(&l, demand(1.0, 0.0, 0.0)).await;
    assert_near(
        secs_between(a.start_at, b.start_at),
        0.0,
        "the freed slot is reused",
    );
    // Without the release it would have been the slot after.
    let c = granted(&l, demand(1.0, 0.0, 0.0)).await;
    assert_near(secs_between(b.start_at, c.start_at), 1.0, "the next slot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_usage_trues_up_the_reservation() {
    let server = RedisServer::start();
    let l = limiter(&server, &key("sk-ant-test-settle")).await;
    // Input tokens: 6,000/min (100/s), empty.
    l.observe(
        &class(),
        &quota(Some((600, 600, 0.0)), Some((6_000, 0, 60.0)), None),
    );
    l.flush().await;
    let a = granted(&l, demand(1.0, 1_000.0, 0.0)).await;
    l.commit(&a);
    // It really used 400: the 600 over-reserved (6 s of refill) come back.
    l.settle(
        &a,
        &Usage {
            input_tokens: 400,
            ..Usage::default()
        },
    );
    let b = granted(&l, demand(1.0, 100.0, 0.0)).await;
    assert_near(
        secs_between(a.start_at, b.start_at),
        -5.0,
        "10 s − 6 s + 1 s",
    );
    l.commit(&b);
    // It used 600, not 100: the 500 under-reserved are charged (5 s).
    l.settle(
        &b,
        &Usage {
            input_tokens: 600,
            ..Usage::default()
        },
    );
    let c = granted(&l, demand(1.0, 100.0, 0.0)).await;
    assert_near(
        secs_between(b.start_at, c.start_at),
        6.0,
        "5 s charged + 1 s",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_in_one_process_pauses_the_others() {
    let server = RedisServer::start();
    let k = key("sk-ant-test-blocked");
    let p1 = limiter(&server, &k).await;
    let p2 = limiter(&server, &k).await;
    let other_key = limiter(&server, &key("sk-ant-test-someone-else")).await;
    // Nothing learned yet; process 1 meets a 429 with retry-after 2 s.
    let until = Instant::now() + Duration::from_secs(2);
    p1.rate_limited(&class(), until, Some(Bucket::InputTokens));
    p1.flush().await;
    let g = granted(&p2, demand(1.0, 10.0, 10.0)).await;
    assert_eq!(g.source, DelaySource::SharedLimiter);
    assert_eq!(g.bucket, Some(Bucket::InputTokens));
    assert_after(until, g.start_at, 0.0, "process 2 waits for the block");
    // Another key's quota is not blocked.
    let before = Instant::now();
    let free = granted(&other_key, demand(1.0, 10.0, 10.0)).await;
    assert!(
        free.start_at <= before + SLACK,
        "another key is not blocked"
    );
    assert_eq!(free.bucket, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_any_limit_is_known_one_process_probes_and_the_others_wait() {
    let server = RedisServer::start();
    let k = key("sk-ant-test-probe");
    let p1 = limiter(&server, &k).await;
    let p2 = limiter(&server, &k).await;
    let first = match p1.reserve(demand(1.0, 10.0, 10.0), true).await {
        Reservation::Granted(g) => g,
        Reservation::AwaitFirstHeaders { .. } => panic!("the first request goes at once"),
    };
    assert!(first.start_at <= Instant::now());
    match p2.reserve(demand(1.0, 10.0, 10.0), true).await {
        Reservation::AwaitFirstHeaders { until, ready } => {
            assert!(until > Instant::now(), "a bounded wait");
            // Process 1's headers arrive; process 2 learns it through Redis.
            p1.commit(&first);
            p1.observe(
                &class(),
                &quota(Some((50, 49, 1.0)), Some((30_000, 30_000, 0.0)), None),
            );
            tokio::time::timeout(HANG, ready)
                .await
                .expect("woken once the limits are known");
        }
        Reservation::Granted(_) => panic!("a second process should wait for the probe"),
    }
    let g = granted(&p2, demand(1.0, 10.0, 10.0)).await;
    assert_eq!(g.source, DelaySource::SharedLimiter);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_carry_ttls_and_idle_state_expires() {
    let server = RedisServer::start();
    let l = limiter(&server, &key("sk-ant-test-ttl")).await;
    // 600 requests/min enforced as a 1-request bucket (empty, full again in 0.1 s): the
    // full-refill time is 100 ms, so the TTL is the 1 s floor.
    l.observe(&class(), &quota(Some((600, 0, 0.1)), None, None));
    let _g = granted(&l, demand(1.0, 0.0, 0.0)).await;
    l.rate_limited(
        &class(),
        Instant::now() + Duration::from_millis(200),
        Some(Bucket::Requests),
    );
    l.flush().await;
    let mut con = server.conn().await;
    let pattern = format!("backchat:{{{}:*", l.fingerprint());
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut con)
        .await
        .expect("KEYS");
    assert!(keys.len() >= 3, "{keys:?}");
    for k in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(k)
            .query_async(&mut con)
            .await
            .expect("PTTL");
        assert!(ttl > 0 && ttl <= 1_300, "{k} has PTTL {ttl}");
    }
    // Idle: everything is gone soon, by itself.
    let deadline = Instant::now() + HANG;
    loop {
        let left: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut con)
            .await
            .expect("KEYS");
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "keys never expired: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_fails_open_and_recovery_is_automatic() {
    let mut server = RedisServer::start();
    let l = RedisLimiter::connect(
        RedisLimiterConfig {
            // A stopped server is detected by the refused connection, not by the timeout;
            // a little patience keeps a loaded machine from failing over early.
            call_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            retry_every: Duration::from_millis(200),
            ..RedisLimiterConfig::new(server.url())
        },
        Some(&key("sk-ant-test-failopen")),
    )
    .await;
    assert_eq!(l.health(), LimiterHealth::Shared);
    let q = quota(Some((60, 0, 60.0)), None, None);
    l.observe(&class(), &q);
    l.flush().await;
    let shared = granted(&l, demand(1.0, 0.0, 0.0)).await;
    assert_eq!(shared.source, DelaySource::SharedLimiter);

    server.stop();
    let local = granted(&l, demand(1.0, 0.0, 0.0)).await;
    assert_eq!(
        local.source,
        DelaySource::Pacer,
        "the local pacer took over"
    );
    // It shadowed the shared reservation, so it queues behind it: the second slot, exactly
    // (the local pacer's clock starts at the snapshot).
    assert_near(secs_between(q.read_at, local.start_at), 2.0, "local slot");
    eventually("health is degraded", HANG, || {
        matches!(l.health(), LimiterHealth::Degraded(_))
    })
    .await;
    let LimiterHealth::Degraded(message) = l.health() else {
        unreachable!()
    };
    assert!(
        message.starts_with("shared limiter unreachable: ")
            && message.ends_with("; pacing locally"),
        "{message}"
    );

    server.restart();
    eventually("health is shared again", HANG, || {
        l.health() == LimiterHealth::Shared
    })
    .await;
    // The restarted Redis is empty; the limiter re-seeds it from what it knows, so the queue
    // carries over instead of starting from a full bucket: after the slots at 1 s and 2 s.
    let deadline = Instant::now() + HANG;
    loop {
        let g = granted(&l, demand(1.0, 0.0, 0.0)).await;
        if g.source == DelaySource::SharedLimiter {
            assert!(
                secs_between(q.read_at, g.start_at) > 2.5,
                "the shared queue was re-seeded: {:.3} s",
                secs_between(q.read_at, g.start_at)
            );
            break;
        }
        assert!(Instant::now() < deadline, "never shared again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_times_out_to_the_local_pacer() {
    let server = RedisServer::start();
    let l = RedisLimiter::connect(
        RedisLimiterConfig {
            retry_every: Duration::from_millis(200),
            ..RedisLimiterConfig::new(server.url())
        },
        Some(&key("sk-ant-test-stalled")),
    )
    .await;
    eventually("connected", HANG, || l.health() == LimiterHealth::Shared).await;
    server.pause();
    let g = granted(&l, demand(1.0, 10.0, 10.0)).await;
    assert_eq!(g.source, DelaySource::Pacer);
    eventually("health is degraded", HANG, || {
        matches!(l.health(), LimiterHealth::Degraded(_))
    })
    .await;
    server.resume();
    eventually("health is shared again", HANG, || {
        l.health() == LimiterHealth::Shared
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_never_sees_the_api_key() {
    const SECRET: &str = "sk-ant-api03-NOT-A-REAL-KEY-0123456789abcdef";
    let server = RedisServer::start();
    let k = key(SECRET);
    let l = limiter(&server, &k).await;
    let request = MessagesRequest::new(MODEL, 1024, vec![Message::text(Role::User, "hello")]);
    let d = l.estimate(&request);
    let g = granted(&l, d).await;
    l.observe(
        &class(),
        &quota(
            Some((50, 40, 12.0)),
            Some((30_000, 20_000, 20.0)),
            Some((8_000, 8_000, 0.0)),
        ),
    );
    l.commit(&g);
    l.settle(
        &g,
        &Usage {
            input_tokens: 12,
            output_tokens: 30,
            ..Usage::default()
        },
    );
    let g2 = granted(&l, d).await;
    l.release(&g2);
    l.rate_limited(
        &class(),
        Instant::now() + Duration::from_secs(1),
        Some(Bucket::Requests),
    );
    l.flush().await;

    let mut con = server.conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut con)
        .await
        .expect("KEYS");
    assert!(!keys.is_empty());
    let mut dump = String::new();
    for name in &keys {
        assert!(
            name.starts_with(&format!("backchat:{{{}:{CLASS}}}:", k.fingerprint())),
            "{name}"
        );
        let kind: String = redis::cmd("TYPE")
            .arg(name)
            .query_async(&mut con)
            .await
            .expect("TYPE");
        let value = match kind.as_str() {
            "string" => redis::cmd("GET")
                .arg(name)
                .query_async::<String>(&mut con)
                .await
                .expect("GET"),
            "hash" => format!(
                "{:?}",
                redis::cmd("HGETALL")
                    .arg(name)
                    .query_async::<Vec<String>>(&mut con)
                    .await
                    .expect("HGETALL")
            ),
            other => panic!("unexpected type {other} for {name}"),
        };
        dump.push_str(&format!("{name} = {value}\n"));
    }
    assert!(!dump.contains(SECRET), "{dump}");
    assert!(!dump.contains("NOT-A-REAL-KEY"), "{dump}");
    assert!(!dump.contains("sk-ant"), "{dump}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_capacity_is_refined_across_processes() {
    let server = RedisServer::start();
    let k = key("sk-ant-test-learned");
    let p1 = limiter(&server, &k).await;
    let p2 = limiter(&server, &k).await;
    let keys = scope_keys(p1.fingerprint(), CLASS);
    let mut con = server.conn().await;
    let capacity = |con: &mut redis::aio::MultiplexedConnection| {
        let mut con = con.clone();
        let key = keys[4].clone();
        async move {
            let c: Option<String> = redis::cmd("HGET")
                .arg(&key)
                .arg("capacity")
                .query_async(&mut con)
                .await
                .expect("HGET");
            c.map(|c| c.parse::<f64>().expect("a number"))
        }
    };
    let full = Some((600, 600, 0.0));
    // 30,000 ITPM enforced as a 5,000-token bucket: 2,000 left, full in 7 s puts it in
    // [4,500, 6,000]; process 1 learns 4,500 and stores it.
    p1.observe(&class(), &quota(full, Some((30_000, 2_000, 7.0)), None));
    p1.flush().await;
    assert_eq!(capacity(&mut con).await, Some(4_500.0));
    // Process 2 reads the shared value back with its next reservation, so a coarser reading
    // of its own ([4,000, 5,500]) does not lower it…
    let g = granted(&p2, demand(1.0, 10.0, 0.0)).await;
    p2.release(&g);
    p2.observe(&class(), &quota(full, Some((30_000, 2_000, 6.0)), None));
    p2.flush().await;
    assert_eq!(capacity(&mut con).await, Some(4_500.0));
    // …while one whose top is below it means the bucket shrank.
    p2.observe(&class(), &quota(full, Some((30_000, 0, 4.0)), None));
    p2.flush().await;
    assert_eq!(capacity(&mut con).await, Some(1_000.0));
}

#[tokio::test]
async fn a_limit_one_process_saw_is_known_to_the_others() {
    let server = RedisServer::start();
    let k = key("sk-ant-test-stated-limit");
    let p1 = limiter(&server, &k).await;
    let p2 = limiter(&server, &k).await;
    assert_eq!(p2.stated_limit(&class(), Bucket::InputTokens), None);
    p1.observe(
        &class(),
        &quota(Some((600, 600, 0.1)), Some((60_000, 60_000, 0.1)), None),
    );
    p1.flush().await;
    assert_eq!(p1.stated_limit(&class(), Bucket::InputTokens), Some(60_000));
    // p2 has seen no headers; its first reservation reads the shared state back, so a
    // request that can never fit is refused there too, before it is sent.
    let _ = granted(&p2, demand(1.0, 10.0, 10.0)).await;
    assert_eq!(p2.stated_limit(&class(), Bucket::InputTokens), Some(60_000));
    assert_eq!(p2.stated_limit(&class(), Bucket::Requests), Some(600));
}
