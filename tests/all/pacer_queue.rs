//! The pacer (`LocalLimiter`) with a deep queue, as a proxy serving many clients has it: the
//! input scale it learns from reported usage must settle, not oscillate, when many
//! settlements happen between a request's reservation and its own settlement. Paused clock.

use std::time::Duration;

use backchat::api::{Message, MessagesRequest, Role, Usage};
use backchat::limiter::{Grant, Limiter, LocalLimiter, LocalLimiterConfig, Reservation};
use backchat::quota::{BucketQuota, ModelClass, QuotaSnapshot};
use tokio::time::Instant;

const MODEL: &str = "claude-sonnet-4-6";

/// Scenario A's input bucket: 30,000 ITPM, 50 RPM, on a ten-times-faster minute.
fn quota(now: Instant) -> QuotaSnapshot {
    let mut q = QuotaSnapshot::empty(now);
    q.requests = Some(BucketQuota {
        limit: Some(50),
        remaining: Some(50),
        reset: Some(now),
    });
    q.input_tokens = Some(BucketQuota {
        limit: Some(30_000),
        remaining: Some(30_000),
        reset: Some(now),
    });
    q
}

fn request() -> MessagesRequest {
    MessagesRequest::new(
        MODEL,
        100,
        vec![Message::text(Role::User, "lorem ipsum ".repeat(1500))],
    )
}

async fn grant(p: &LocalLimiter, r: &MessagesRequest) -> Grant {
    match p.reserve(p.estimate(r), false).await {
        Reservation::Granted(g) => g,
        Reservation::AwaitFirstHeaders { .. } => panic!("the quota is known"),
    }
}

/// Sixteen clients, one request each in the queue at all times: every settlement is of a
/// request reserved fifteen settlements ago. The server charges 0.2 % less than estimated
/// (a proxy's estimate of a client's body is close, never exact). The scale must move to
/// 0.998 and stay there; measured from the scale of the moment instead of the scale the
/// request was reserved with, the correction was fed back fifteen times over, and it swung
/// ever wider (to four times the real size in a load-test run, starving the queue).
#[tokio::test(start_paused = true)]
async fn the_input_scale_settles_under_a_deep_queue() {
    let p = LocalLimiter::with_config(LocalLimiterConfig::time_scaled(10.0));
    let class = ModelClass::of(MODEL);
    let r = request();
    let raw = r.estimated_input_tokens() as f64;
    let charged = (raw * 0.998).round() as u64;
    p.observe(&class, &quota(Instant::now()));

    let mut queue = std::collections::VecDeque::new();
    for _ in 0..16 {
        let g = grant(&p, &r).await;
        p.commit(&g);
        queue.push_back(g);
    }
    let mut scales = Vec::new();
    for _ in 0..400 {
        tokio::time::advance(Duration::from_millis(600)).await;
        let done = queue.pop_front().expect("a queue");
        p.settle(
            &done,
            &Usage {
                input_tokens: charged,
                output_tokens: 100,
                ..Usage::default()
            },
        );
        let g = grant(&p, &r).await;
        p.commit(&g);
        scales.push(g.demand.input_tokens / raw);
        queue.push_back(g);
    }
    let (lo, hi) = scales
        .iter()
        .fold((f64::INFINITY, 0f64), |(l, h), s| (l.min(*s), h.max(*s)));
    assert!(
        lo > 0.99 && hi < 1.01,
        "the scale swung from {lo:.4} to {hi:.4}"
    );
    let last = scales.last().copied().unwrap_or_default();
    assert!(
        (last - 0.998).abs() < 0.001,
        "settled at {last:.4}, not at the charged 0.998"
    );
}

/// Sixteen requests go out before any headers (the first one was slower than the probe
/// wait). The server admits ten, which empty its 30,000-token bucket, and refuses six; the
/// first headers read already count all ten. The pacer must not hold the ten back a second
/// time: once the answers are in, the next request waits for its own tokens' refill (9 s),
/// not for the ten again (a minute and a half: a load-test run showed it as a 43-second
/// gap).
#[tokio::test(start_paused = true)]
async fn a_burst_before_any_headers_is_not_counted_twice() {
    let p = LocalLimiter::new();
    let class = ModelClass::of(MODEL);
    let r = request();
    let mut burst = Vec::new();
    for _ in 0..16 {
        burst.push(grant(&p, &r).await);
    }
    let start = Instant::now();
    let empty = |now: Instant| {
        let mut q = quota(now);
        if let Some(b) = q.input_tokens.as_mut() {
            b.remaining = Some(0);
            b.reset = Some(now + Duration::from_mins(1));
        }
        if let Some(b) = q.requests.as_mut() {
            b.remaining = Some(34);
            b.reset = Some(now + Duration::from_secs(20));
        }
        q
    };
    let (admitted, refused) = burst.split_at(10);
    for g in admitted {
        p.commit(g);
        p.observe(&class, &empty(Instant::now()));
    }
    for g in refused {
        p.release(g);
        p.observe(&class, &empty(Instant::now()));
    }
    let next = grant(&p, &r).await;
    let wait = next.start_at - start;
    // The refill of its own demand, plus the 500 tokens the rounding of `remaining` allows.
    let refill = Duration::from_secs_f64((next.demand.input_tokens + 500.0) / 500.0);
    assert!(
        wait <= refill + Duration::from_millis(100),
        "waits {wait:?} for {} tokens at 500/s",
        next.demand.input_tokens
    );
}
