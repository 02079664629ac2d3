//! A reservation that a frozen Redis runs after backchat stopped waiting for it reserves
//! nothing: the call carries its expiry on Redis's clock, and the script refuses it once that
//! has passed. Real redis-server, frozen with SIGSTOP; real clock, waits are hang guards.

use std::time::Duration;

use crate::support::redis::{RedisServer, eventually};
use backchat::limiter::{
    Demand, GrantSource, Limiter, LimiterHealth, RedisLimiter, RedisLimiterConfig, Reservation,
};
use backchat::quota::{BucketQuota, ModelClass, QuotaSnapshot};
use backchat::secret::ApiKey;
use tokio::time::Instant;

const HANG: Duration = Duration::from_secs(10);

fn demand() -> Demand {
    Demand {
        requests: 1.0,
        input_tokens: 0.0,
        output_tokens: 0.0,
        class: ModelClass::of("claude-sonnet-4-5"),
        cache: None,
    }
}

async fn source(l: &RedisLimiter) -> GrantSource {
    match tokio::time::timeout(HANG, l.reserve(demand(), false))
        .await
        .expect("reserve never hangs")
    {
        Reservation::Granted(g) => g.source,
        Reservation::AwaitFirstHeaders { .. } => panic!("expected a grant"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_run_after_its_caller_gave_up_reserves_nothing() {
    let server = RedisServer::start();
    let k = ApiKey::new("sk-ant-test-frozen").expect("non-empty");
    let l = RedisLimiter::connect(
        RedisLimiterConfig {
            retry_every: Duration::from_millis(200),
            ..RedisLimiterConfig::new(server.url())
        },
        Some(&k),
    )
    .await;
    eventually("connected", HANG, || l.health() == LimiterHealth::Shared).await;
    // 6000 requests/min, full: the TAT moves by 10 ms per reservation.
    let now = Instant::now();
    let mut q = QuotaSnapshot::empty(now);
    q.requests = Some(BucketQuota {
        limit: Some(6000),
        remaining: Some(6000),
        reset: Some(now),
    });
    l.observe(&ModelClass::of("claude-sonnet-4-5"), &q);
    l.flush().await;
    // A few shared reservations: the link learns Redis's clock.
    for _ in 0..3 {
        assert_eq!(source(&l).await, GrantSource::Shared);
    }
    l.flush().await;
    let tat_key = format!("backchat:{{{}:sonnet-4}}:tat:requests", l.fingerprint());
    let mut con = server.conn().await;
    let before: String = redis::cmd("GET")
        .arg(&tat_key)
        .query_async(&mut con)
        .await
        .expect("GET");
    drop(con);

    server.pause();
    // The call is written to the frozen server's socket; we give up after 50 ms.
    assert_eq!(source(&l).await, GrantSource::Local);
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.resume();
    // The frozen server now runs the queued call, long after its expiry.
    let mut con = server.conn().await;
    let _: String = redis::cmd("PING")
        .query_async(&mut con)
        .await
        .expect("PING");
    let after: String = redis::cmd("GET")
        .arg(&tat_key)
        .query_async(&mut con)
        .await
        .expect("GET");
    assert_eq!(after, before, "the late reservation must not move the TAT");
    eventually("shared again", HANG, || l.health() == LimiterHealth::Shared).await;
}
