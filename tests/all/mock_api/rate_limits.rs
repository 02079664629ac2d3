//! Rate limits: the header formats, continuous refill, per-key buckets, `retry-after` that
//! is exactly long enough, output tokens charged as generated, and retuning at run time.

use std::time::{Duration, SystemTime};

use backchat::mock::{MockConfig, MockLimits};
use tokio::time::Instant;

use super::harness::{Harness, assert_envelope, instant, simple};

#[tokio::test(start_paused = true)]
async fn rate_limit_headers_have_the_api_formats() {
    let h = Harness::start(instant()).await;
    let r = h.post(&simple("hello there", 50, true)).await;
    assert_eq!(r.status, 200);
    let now = wall_secs(&backchat::clock::rfc3339_seconds(
        backchat::clock::wall_now(),
    ));
    for bucket in ["requests", "tokens", "input-tokens", "output-tokens"] {
        let get = |s: &str| {
            r.header(&format!("anthropic-ratelimit-{bucket}-{s}"))
                .unwrap_or_else(|| panic!("{bucket}-{s} missing"))
                .to_string()
        };
        let limit: u64 = get("limit").parse().expect("integer limit");
        let remaining: u64 = get("remaining").parse().expect("integer remaining");
        assert!(remaining <= limit);
        if bucket != "requests" {
            assert_eq!(
                remaining % 1000,
                0,
                "{bucket} remaining is rounded to 1,000"
            );
        }
        let reset = get("reset");
        assert!(
            reset.len() == 20 && reset.ends_with('Z') && !reset.contains('.'),
            "{reset}"
        );
        let at = wall_secs(&reset);
        assert!(at >= now && at <= now + 61, "{reset}");
    }
    assert_eq!(r.header("anthropic-ratelimit-requests-limit"), Some("50"));
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining"),
        Some("49")
    );
    assert_eq!(
        r.header("anthropic-ratelimit-input-tokens-limit"),
        Some("30000")
    );
    assert_eq!(
        r.header("anthropic-ratelimit-output-tokens-limit"),
        Some("8000")
    );
    assert_eq!(r.header("anthropic-ratelimit-tokens-limit"), Some("38000"));
    assert_eq!(
        r.header("anthropic-ratelimit-tokens-remaining"),
        Some("38000")
    );
    assert_eq!(
        r.header("anthropic-organization-id"),
        Some(backchat::mock::ORG_ID)
    );
}

#[tokio::test(start_paused = true)]
async fn a_burst_past_rpm_waits_exactly_retry_after() {
    let h = Harness::start(instant()).await;
    let b = simple("burst", 1, false);
    let t0 = Instant::now();
    for i in 0..50 {
        assert_eq!(h.post(&b).await.status, 200, "request {i}");
    }
    assert_eq!(Instant::now(), t0, "no time passed during the burst");
    let refused = h.post(&b).await;
    let m = assert_envelope(&refused, 429, "rate_limit_error");
    assert!(
        m.starts_with("This request would exceed your organization's rate limit of 50 requests per minute (org: "),
        "{m}"
    );
    assert!(m.contains("model: claude-sonnet-4-6"), "{m}");
    // One request refills in 1.2 s: retry-after is the whole seconds until it fits.
    assert_eq!(refused.header("retry-after"), Some("2"));
    assert_eq!(refused.header("x-should-retry"), Some("true"));
    assert_eq!(
        refused.header("anthropic-ratelimit-requests-remaining"),
        Some("0")
    );
    let before = h.server.control().stats();

    tokio::time::advance(Duration::from_secs(1)).await;
    let early = h.post(&b).await;
    assert_eq!(early.status, 429, "1 s early is still too early");
    assert_eq!(early.header("retry-after"), Some("1"));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        h.post(&b).await.status,
        200,
        "fits once retry-after has passed"
    );

    // 429s consumed nothing.
    let after = h.server.control().stats();
    assert_eq!(before.count(429), 1);
    assert_eq!(after.count(429), 2);
    assert_eq!(after.count(200), 51);
    assert_eq!(
        after.input_tokens_charged - before.input_tokens_charged,
        after.requests.back().map_or(0, |r| r.input_tokens)
    );
}

#[tokio::test(start_paused = true)]
async fn input_tokens_refill_continuously() {
    let h = Harness::start(instant()).await;
    // 3 + 4 + 28,993 = 29,000 input tokens.
    let drain = simple(&"a".repeat(28_993 * 4), 1, false);
    let r = h.post(&drain).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("anthropic-ratelimit-input-tokens-remaining"),
        Some("1000")
    );
    let reset = wall_secs(
        r.header("anthropic-ratelimit-input-tokens-reset")
            .expect("reset"),
    );
    let now = backchat::clock::wall_now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("now")
        .as_secs_f64();
    // 29,000 missing at 500/s: full again in 58 s, rounded up to the whole second.
    assert!(
        (reset as f64 - now - 58.0).abs() <= 1.0,
        "reset {reset}, now {now}"
    );

    // 3 + 4 + 1,993 = 2,000 tokens: 1,000 short, 2 s at 500/s.
    let next = simple(&"b".repeat(1_993 * 4), 1, false);
    let refused = h.post(&next).await;
    let m = assert_envelope(&refused, 429, "rate_limit_error");
    assert!(
        m.contains("rate limit of 30,000 input tokens per minute"),
        "{m}"
    );
    assert_eq!(refused.header("retry-after"), Some("2"));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(h.post(&next).await.status, 429);
    tokio::time::advance(Duration::from_secs(1)).await;
    let ok = h.post(&next).await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("anthropic-ratelimit-input-tokens-remaining"),
        Some("0")
    );

    // Half a minute later, half the capacity is back (models calls read the headers for free).
    tokio::time::advance(Duration::from_secs(30)).await;
    let look = h.get("/v1/models").await;
    assert_eq!(
        look.header("anthropic-ratelimit-input-tokens-remaining"),
        Some("15000")
    );
    let reqs: u64 = look
        .header("anthropic-ratelimit-requests-remaining")
        .and_then(|v| v.parse().ok())
        .expect("requests remaining");
    assert_eq!(reqs, 50, "a few requests refill well within 30 s");
}

#[tokio::test(start_paused = true)]
async fn requests_refill_half_in_half_a_minute() {
    let h = Harness::start(instant()).await;
    for _ in 0..50 {
        assert_eq!(h.post(&simple("x", 1, false)).await.status, 200);
    }
    let look = h.get("/v1/models").await;
    assert_eq!(
        look.header("anthropic-ratelimit-requests-remaining"),
        Some("0")
    );
    tokio::time::advance(Duration::from_secs(30)).await;
    let look = h.get("/v1/models").await;
    let reqs: u64 = look
        .header("anthropic-ratelimit-requests-remaining")
        .and_then(|v| v.parse().ok())
        .expect("requests remaining");
    assert!((24..=25).contains(&reqs), "{reqs}");
}

#[tokio::test(start_paused = true)]
async fn buckets_are_per_key() {
    let h = Harness::start(instant()).await;
    let b = simple("mine", 1, false);
    for _ in 0..50 {
        assert_eq!(
            h.post_as("/v1/messages", &b, Some("key-a")).await.status,
            200
        );
    }
    assert_eq!(
        h.post_as("/v1/messages", &b, Some("key-a")).await.status,
        429
    );
    let other = h.post_as("/v1/messages", &b, Some("key-b")).await;
    assert_eq!(other.status, 200);
    assert_eq!(
        other.header("anthropic-ratelimit-requests-remaining"),
        Some("49")
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_bigger_than_the_bucket_never_fits() {
    let h = Harness::start(instant()).await;
    let huge = simple(&"z".repeat(31_000 * 4), 1, false);
    let r = h.post(&huge).await;
    let m = assert_envelope(&r, 429, "rate_limit_error");
    assert!(
        m.contains("rate limit of 30,000 input tokens per minute"),
        "{m}"
    );
    assert_eq!(r.header("retry-after"), None, "no wait makes it fit");
    assert_eq!(
        r.header("anthropic-ratelimit-input-tokens-remaining"),
        Some("30000")
    );
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining"),
        Some("50")
    );
    assert_eq!(h.server.control().stats().input_tokens_charged, 0);
}

#[tokio::test(start_paused = true)]
async fn output_tokens_are_charged_as_generated() {
    let h = Harness::start(MockConfig {
        limits: MockLimits {
            otpm: 300,
            ..MockLimits::default()
        },
        ..instant()
    })
    .await;
    let r = h.post(&simple("long answer", 2000, false)).await;
    assert_eq!(r.status, 200);
    let out = r.json()["usage"]["output_tokens"].as_u64().expect("usage");
    assert!(out > 300, "the reply is longer than the bucket: {out}");
    assert_eq!(
        r.header("anthropic-ratelimit-output-tokens-remaining"),
        Some("0")
    );
    let refused = h.post(&simple("again", 5, false)).await;
    let m = assert_envelope(&refused, 429, "rate_limit_error");
    assert!(m.contains("300 output tokens per minute"), "{m}");
    // The bucket went to 300 − out; one token must come back at 5 per second.
    let wait = (out - 300 + 1) as f64 / 5.0;
    let ra: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert_eq!(ra, wait.ceil() as u64);
}

#[tokio::test(start_paused = true)]
async fn retry_after_ms_and_time_scale() {
    let h = Harness::start(MockConfig {
        emit_retry_after_ms: true,
        ..instant()
    })
    .await;
    for _ in 0..50 {
        h.post(&simple("x", 1, false)).await;
    }
    let r = h.post(&simple("x", 1, false)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after-ms"), Some("1200"));

    let fast = Harness::start(MockConfig {
        emit_retry_after_ms: true,
        time_scale: 60.0,
        ..instant()
    })
    .await;
    for _ in 0..50 {
        fast.post(&simple("x", 1, false)).await;
    }
    let r = fast.post(&simple("x", 1, false)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("retry-after-ms"), Some("20"));
    assert_eq!(r.header("anthropic-ratelimit-requests-limit"), Some("50"));
    tokio::time::advance(Duration::from_millis(20)).await;
    assert_eq!(fast.post(&simple("x", 1, false)).await.status, 200);
}

#[tokio::test(start_paused = true)]
async fn limits_can_change_while_running() {
    let h = Harness::start(instant()).await;
    h.server.control().set_limits(MockLimits {
        rpm: 1,
        ..MockLimits::default()
    });
    assert_eq!(h.post(&simple("x", 1, false)).await.status, 200);
    let r = h.post(&simple("x", 1, false)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(h.server.control().limits().rpm, 1);
}

/// Seconds since 1970 of an RFC 3339 stamp.
fn wall_secs(stamp: &str) -> u64 {
    humantime::parse_rfc3339(stamp)
        .expect("RFC 3339")
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}
