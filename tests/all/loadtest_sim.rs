//! `backchat loadtest` on the simulated engine: the lower bound, the peer policies against
//! their definitions, small runs with known results, and the JSON report's schema.
//! Everything here runs on paused clocks, so the whole file takes about a second.

use backchat::loadtest::metrics::lower_bound;
use backchat::loadtest::policies::{Decision, PeerPolicy, PeerState, PolicyId, ServerHints};
use backchat::loadtest::scenario::{Scenario, SizeDist};
use backchat::loadtest::{Setup, parse_args, simulate_one};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;

fn fixed_lb(s: &Scenario) -> f64 {
    let SizeDist::Fixed { tokens } = s.size else {
        panic!("fixed sizes")
    };
    let m = s.total_requests() as f64;
    lower_bound(s, m * tokens as f64, m * f64::from(s.output_tokens))
}

#[test]
fn lower_bound_of_the_built_in_scenarios() {
    // docs/loadtest.md, *Scenarios*: A = 190.1 s, B = 182.1 s, C = 240.1 s (D: 122.05 s).
    for (name, lb) in [("A", 190.05), ("B", 182.05), ("C", 240.05), ("D", 122.05)] {
        let s = Scenario::load(name).expect("built in");
        assert!((fixed_lb(&s) - lb).abs() < 1e-9, "{name}: {}", fixed_lb(&s));
    }
}

#[test]
fn lower_bound_by_hand() {
    // Serial time dominates: 5 × (2 + 0.05).
    let serial = Scenario {
        users: 1,
        requests: 5,
        size: SizeDist::Fixed { tokens: 100 },
        stream_s: 2.0,
        ..Scenario::default()
    };
    assert!((fixed_lb(&serial) - 10.25).abs() < 1e-9);
    // Requests bind: 120 requests at 50 RPM with a 50-request bucket: (120 − 50)·1.2 + 1 + 0.05.
    let rpm = Scenario {
        users: 12,
        requests: 10,
        size: SizeDist::Fixed { tokens: 100 },
        stream_s: 1.0,
        ..Scenario::default()
    };
    assert!((fixed_lb(&rpm) - 85.05).abs() < 1e-9);
    // Output binds when OTPM is modelled: (10·1000 − 6000)/100 + 0.05.
    let otpm = Scenario {
        users: 1,
        requests: 10,
        size: SizeDist::Fixed { tokens: 100 },
        output_tokens: 1000,
        otpm: Some(6000),
        stream_s: 1.0,
        ..Scenario::default()
    };
    assert!((fixed_lb(&otpm) - 40.05).abs() < 1e-9);
    // 1/60 buckets: C_T = 500 tokens, C_R = 10 requests, so (10·400 − 500)/500 + 1 + 0.05.
    let tiny = Scenario {
        users: 10,
        requests: 1,
        size: SizeDist::Fixed { tokens: 400 },
        rpm: 600,
        capacity_fraction: 1.0 / 60.0,
        stream_s: 1.0,
        ..Scenario::default()
    };
    assert!((fixed_lb(&tiny) - ((4000.0 - 500.0) / 500.0 + 1.05)).abs() < 1e-9);
}

fn hints(retry_after: Option<f64>) -> ServerHints {
    ServerHints {
        retry_after,
        ..ServerHints::default()
    }
}

/// The delays a policy asks for after failed attempts 1, 2, … with `status`, until it gives
/// up (or 12 attempts).
fn delays(policy: PeerPolicy, status: u16, h: ServerHints, seed: u64) -> (Vec<f64>, bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut state = PeerState::default();
    let mut out = Vec::new();
    for attempt in 1..=12 {
        match policy.decide(&mut state, attempt, status, &h, &mut rng) {
            Decision::Retry { delay_s } => out.push(delay_s),
            Decision::GiveUp => return (out, true),
        }
    }
    (out, false)
}

/// The same uniform draws the policy makes, from the same seed.
fn draws(seed: u64, n: usize) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random::<f64>()).collect()
}

#[test]
fn naive_retries_429_and_529_at_once_up_to_1000_attempts() {
    let p = PolicyId::Naive.peer().expect("peer");
    let (d, gave_up) = delays(p, 429, hints(Some(30.0)), 1);
    assert!(!gave_up && d.iter().all(|x| *x == 0.0));
    assert!(!delays(p, 529, ServerHints::default(), 1).1);
    assert!(delays(p, 500, ServerHints::default(), 1).1);
    let mut s = PeerState::default();
    let mut rng = StdRng::seed_from_u64(0);
    assert_eq!(
        p.decide(&mut s, 999, 429, &hints(None), &mut rng),
        Decision::Retry { delay_s: 0.0 }
    );
    assert_eq!(
        p.decide(&mut s, 1000, 429, &hints(None), &mut rng),
        Decision::GiveUp
    );
}

#[test]
fn tenacity_seed_waits_2_to_the_k_plus_jitter_and_raises_after_5() {
    let p = PolicyId::TenacitySeed.peer().expect("peer");
    let (d, gave_up) = delays(p, 429, hints(Some(50.0)), 7);
    let u = draws(7, 4);
    let expected: Vec<f64> = (0..4).map(|k| 2f64.powi(k) + u[k as usize]).collect();
    assert_eq!(d, expected, "ignores retry-after");
    assert!(gave_up, "raises after attempt 5");
    for seed in 0..200 {
        let (d, _) = delays(p, 429, hints(None), seed);
        for (k, x) in d.iter().enumerate() {
            let lo = 2f64.powi(k as i32);
            assert!((lo..lo + 1.0).contains(x), "{d:?}");
        }
        assert!((15.0..19.0).contains(&d.iter().sum::<f64>()));
    }
    assert_eq!(
        delays(p, 529, hints(None), 1),
        (vec![], true),
        "529 fails at once"
    );
}

#[test]
fn node_seed_counts_from_zero_with_five_retries() {
    let p = PolicyId::NodeSeed.peer().expect("peer");
    let (d, gave_up) = delays(p, 429, hints(Some(3.0)), 3);
    let u = draws(3, 5);
    let expected: Vec<f64> = (0..5).map(|a| 2f64.powi(a) + u[a as usize]).collect();
    assert_eq!(d, expected);
    assert!(gave_up);
    assert!(!delays(p, 529, hints(None), 3).0.is_empty(), "retries 5xx");
    assert_eq!(delays(p, 400, hints(None), 3), (vec![], true));
}

#[test]
fn anthropic_sdk_honours_headers_up_to_60_s_and_retries_twice() {
    let p = PolicyId::AnthropicSdk.peer().expect("peer");
    // A header delay in (0, 60] is used as is, twice, then the SDK raises.
    assert_eq!(
        delays(p, 429, hints(Some(16.0)), 1),
        (vec![16.0, 16.0], true)
    );
    let ms = ServerHints {
        retry_after_ms: Some(1.5),
        retry_after: Some(9.0),
        should_retry: None,
    };
    assert_eq!(
        delays(p, 429, ms, 1).0,
        vec![1.5, 1.5],
        "retry-after-ms first"
    );
    // Beyond 60 s (or none): min(0.5·2^n, 8)·(1 − 0.25U), n = 0, 1.
    let (d, _) = delays(p, 429, hints(Some(61.0)), 5);
    let u = draws(5, 2);
    assert_eq!(
        d,
        vec![0.5 * (1.0 - 0.25 * u[0]), 1.0 * (1.0 - 0.25 * u[1])]
    );
    for status in [408, 409, 429, 500, 529] {
        assert_eq!(delays(p, status, hints(None), 1).0.len(), 2, "{status}");
    }
    assert_eq!(delays(p, 400, hints(None), 1), (vec![], true));
    let no = ServerHints {
        should_retry: Some(false),
        ..ServerHints::default()
    };
    assert_eq!(delays(p, 429, no, 1), (vec![], true), "x-should-retry wins");
}

#[test]
fn full_jitter_draws_below_the_capped_exponential() {
    let three = PolicyId::FullJitter3.peer().expect("peer");
    let (d, gave_up) = delays(three, 429, hints(Some(30.0)), 11);
    let u = draws(11, 2);
    assert_eq!(d, vec![u[0], 2.0 * u[1]]);
    assert!(gave_up, "3 attempts");
    let unlimited = PolicyId::FullJitter.peer().expect("peer");
    let (d, gave_up) = delays(unlimited, 529, hints(None), 11);
    assert!(!gave_up);
    let u = draws(11, 12);
    let expected: Vec<f64> = (0..12)
        .map(|k| u[k] * 2f64.powi(k as i32).min(20.0))
        .collect();
    assert_eq!(d, expected);
}

#[test]
fn decorrelated_jitter_grows_from_the_previous_sleep() {
    let p = PolicyId::Decorrelated.peer().expect("peer");
    let (d, gave_up) = delays(p, 429, hints(None), 21);
    assert!(!gave_up);
    let u = draws(21, 12);
    let mut prev = 1.0;
    for (k, x) in d.iter().enumerate() {
        let expected = (1.0 + u[k] * (3.0 * prev - 1.0)).min(20.0);
        assert!((x - expected).abs() < 1e-12, "{k}: {x} vs {expected}");
        assert!((1.0..=20.0).contains(x));
        prev = expected;
    }
    let three = PolicyId::Decorrelated3.peer().expect("peer");
    assert_eq!(delays(three, 429, hints(None), 21).0.len(), 2);
}

#[test]
fn retry_after_jitter_adds_up_to_a_second_to_the_header() {
    let p = PolicyId::RetryAfterJitter.peer().expect("peer");
    let (d, gave_up) = delays(p, 429, hints(Some(16.0)), 4);
    assert!(!gave_up);
    let u = draws(4, 12);
    assert_eq!(d, u.iter().map(|x| 16.0 + x).collect::<Vec<_>>());
    // No retry-after (a 529): full jitter.
    let (d, _) = delays(p, 529, hints(None), 4);
    assert_eq!(d[1], 2.0 * u[1]);
}

fn quiet(users: usize, requests: usize, tokens: u64) -> Scenario {
    Scenario {
        users,
        requests,
        size: SizeDist::Fixed { tokens },
        stream_s: 2.0,
        rtt_s: 0.1,
        ..Scenario::default()
    }
}

#[test]
fn one_user_without_contention_takes_n_times_d_plus_rtt() {
    let s = quiet(1, 5, 100);
    for policy in PolicyId::ALL {
        let (m, _, stats) = simulate_one(&s, policy, 0).expect("runs");
        assert!(
            (m.makespan_s - 10.5).abs() < 1e-6,
            "{}: {}",
            policy.name(),
            m.makespan_s
        );
        assert_eq!(m.rate_limited, 0.0, "{}", policy.name());
        assert_eq!(m.attempts_per_success, 1.0);
        assert_eq!(stats.requests, 5);
        assert!((m.latency_p99_s - 2.1).abs() < 1e-6);
        assert!((m.first_byte_p99_s - 0.1).abs() < 1e-6);
    }
}

#[test]
fn naive_against_a_one_request_bucket_gets_exactly_ten_429s() {
    // 60 RPM enforced as one request per second. Both users' first requests arrive at
    // 0.05 s; one is admitted, the other is retried every RTT (0.1 s): refused at 0.05, 0.15,
    // …, 0.95 (ten 429s) and admitted at 1.05, when the bucket holds one request again.
    let s = Scenario {
        users: 2,
        requests: 1,
        size: SizeDist::Fixed { tokens: 100 },
        rpm: 60,
        itpm: 1_000_000,
        capacity_fraction: 1.0 / 60.0,
        stream_s: 1.0,
        rtt_s: 0.1,
        ..Scenario::default()
    };
    let (m, _, stats) = simulate_one(&s, PolicyId::Naive, 0).expect("runs");
    assert_eq!(stats.rate_limited, 10);
    assert_eq!(stats.admitted, 2);
    assert_eq!(m.rate_limited, 10.0);
    assert!((m.makespan_s - 2.1).abs() < 1e-6, "{}", m.makespan_s);
    // backchat's second turn waits for the first one's headers (0.1 s), which say the bucket
    // is empty; its pacer then waits the full second, not knowing that the headers are RTT/2
    // old: sent at 1.1, admitted at 1.15, done at 2.2, with no 429 at all.
    let (b, _, stats) = simulate_one(&s, PolicyId::Backchat, 0).expect("runs");
    assert_eq!(stats.rate_limited, 0);
    assert!((b.makespan_s - 2.2).abs() < 1e-6, "{}", b.makespan_s);
}

#[test]
fn backchat_meets_its_goals_on_scenario_a() {
    let s = Scenario::load("A").expect("built in");
    let (m, _, _) = simulate_one(&s, PolicyId::Backchat, 0).expect("runs");
    assert!(m.ratio <= 1.02, "{m:?}");
    assert!(m.rate_limited_per_success <= 0.05, "{m:?}");
    assert_eq!(m.give_ups, 0.0);
    assert!(m.jain >= 0.98);
    assert!(m.countdown_error_max_s <= 1.0);
}

#[test]
fn runs_are_reproducible() {
    let s = Scenario::load("B").expect("built in");
    let (a, _, _) = simulate_one(&s, PolicyId::AnthropicSdk, 3).expect("runs");
    let (b, _, _) = simulate_one(&s, PolicyId::AnthropicSdk, 3).expect("runs");
    assert_eq!(a, b);
}

#[test]
fn flags_override_the_scenario() {
    let args = parse_args([
        "--scenario",
        "C",
        "-k",
        "3",
        "--size-lognormal",
        "7,0.5",
        "--capacity-fraction",
        "1/60",
        "--overload-window",
        "5,9",
    ])
    .expect("parses");
    let s = args.scenario().expect("valid");
    assert_eq!(s.users, 3);
    assert_eq!(s.requests, 10, "kept from C");
    assert_eq!(
        s.size,
        SizeDist::Lognormal {
            mu: 7.0,
            sigma: 0.5
        }
    );
    assert!((s.capacity_fraction - 1.0 / 60.0).abs() < 1e-12);
    assert_eq!(s.overload.windows, vec![[5.0, 9.0]]);
    assert!(
        parse_args(["--scenario", "nope"])
            .expect("parses")
            .scenario()
            .is_err()
    );
    let bad = parse_args(["--input-tokens", "40000"]).expect("parses");
    assert!(bad.scenario().is_err(), "bigger than the bucket");
    let real = parse_args(["--policy", "naive"]).expect("parses");
    let mut real = real;
    real.base_url = Some("https://api.anthropic.com".into());
    let e = Setup::from_args(&real, None).expect_err("needs the confirmation");
    assert!(e.contains("--i-understand-this-spends-real-quota"), "{e}");
}

#[test]
fn the_shared_limiter_flags_are_checked_before_the_run() {
    let with = |flags: &[&str], url: Option<&str>| {
        let mut args = parse_args(flags).expect("parses");
        args.shared_limiter = url.map(str::to_string);
        Setup::from_args(&args, None)
    };
    let url = Some("redis://127.0.0.1:6379/0");
    // The simulated engine has a paused clock; Redis has a real one.
    let e = with(&["--policy", "backchat"], url).expect_err("simulated");
    assert!(e.contains("--engine e2e"), "{e}");
    let e = with(&["--engine", "e2e", "--policy", "naive"], url).expect_err("no backchat");
    assert!(e.contains("backchat"), "{e}");
    // TLS is accepted; a cluster whose nodes mix TLS and plain text is not.
    with(
        &["--engine", "e2e", "--policy", "backchat"],
        Some("rediss://127.0.0.1:6379/0"),
    )
    .expect("TLS");
    let e = with(
        &["--engine", "e2e", "--policy", "backchat"],
        Some("redis://127.0.0.1:7000,rediss://127.0.0.1:7001"),
    )
    .expect_err("mixed schemes");
    assert!(
        e.contains("--shared-limiter") && e.contains("one scheme"),
        "{e}"
    );
    let e = with(&["--engine", "e2e", "--compare-unshared"], None).expect_err("nothing to compare");
    assert!(e.contains("--shared-limiter"), "{e}");
    // With the shared limiter the backchat row uses it; --compare-unshared adds the row
    // without it, first. The peers run once either way.
    let labels = |setup: Setup| -> Vec<String> { setup.rows().iter().map(|r| r.label()).collect() };
    let one = with(&["--engine", "e2e", "--policy", "naive,backchat"], url).expect("valid");
    assert_eq!(labels(one), ["naive", "backchat+shared"]);
    let both = with(
        &[
            "--engine",
            "e2e",
            "--processes",
            "4",
            "--policy",
            "backchat,naive",
            "--compare-unshared",
        ],
        url,
    )
    .expect("valid");
    assert_eq!(labels(both), ["backchat", "backchat+shared", "naive"]);
}

/// The structure of a JSON value: keys and value types, arrays by their first element.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::String(_) => "string".into(),
        Value::Number(_) => "number".into(),
        Value::Bool(_) => "bool".into(),
        Value::Null => "null".into(),
    }
}

/// The report's structure (schema_version 1). Keys may be added within a version (as
/// `shared_limiter`, `notes` and the `shared_limiter_*` metrics were); renaming or removing
/// one is a schema change.
const GOLDEN_SHAPE: &str = r#"{
  "engine": "string",
  "policies": [
    {
      "description": "string",
      "mean": {
        "attempts_per_success": "number",
        "countdown_error_max_s": "number",
        "countdown_error_mean_s": "number",
        "countdown_waits": "number",
        "finish_max_min": "number",
        "first_byte_max_s": "number",
        "first_byte_p50_s": "number",
        "first_byte_p99_s": "number",
        "give_ups": "number",
        "give_ups_per_request": "number",
        "jain": "number",
        "latency_max_s": "number",
        "latency_p50_s": "number",
        "latency_p99_s": "number",
        "lower_bound_s": "number",
        "makespan_s": "number",
        "overloaded_per_success": "number",
        "rate_limit_give_ups": "number",
        "rate_limited": "number",
        "rate_limited_per_success": "number",
        "ratio": "number",
        "send_vs_countdown_max_s": "number",
        "shared_limiter_degraded": "number",
        "shared_limiter_processes": "number",
        "successes": "number"
      },
      "notes": [],
      "policy": "string",
      "runs": [
        {
          "metrics": {
            "attempts_per_success": "number",
            "countdown_error_max_s": "number",
            "countdown_error_mean_s": "number",
            "countdown_waits": "number",
            "finish_max_min": "number",
            "first_byte_max_s": "number",
            "first_byte_p50_s": "number",
            "first_byte_p99_s": "number",
            "give_ups": "number",
            "give_ups_per_request": "number",
            "jain": "number",
            "latency_max_s": "number",
            "latency_p50_s": "number",
            "latency_p99_s": "number",
            "lower_bound_s": "number",
            "makespan_s": "number",
            "overloaded_per_success": "number",
            "rate_limit_give_ups": "number",
            "rate_limited": "number",
            "rate_limited_per_success": "number",
            "ratio": "number",
            "send_vs_countdown_max_s": "number",
            "shared_limiter_degraded": "number",
            "shared_limiter_processes": "number",
            "successes": "number"
          },
          "seed": "number"
        }
      ],
      "shared_limiter": "null",
      "worst": {
        "attempts_per_success": "number",
        "countdown_error_max_s": "number",
        "countdown_error_mean_s": "number",
        "countdown_waits": "number",
        "finish_max_min": "number",
        "first_byte_max_s": "number",
        "first_byte_p50_s": "number",
        "first_byte_p99_s": "number",
        "give_ups": "number",
        "give_ups_per_request": "number",
        "jain": "number",
        "latency_max_s": "number",
        "latency_p50_s": "number",
        "latency_p99_s": "number",
        "lower_bound_s": "number",
        "makespan_s": "number",
        "overloaded_per_success": "number",
        "rate_limit_give_ups": "number",
        "rate_limited": "number",
        "rate_limited_per_success": "number",
        "ratio": "number",
        "send_vs_countdown_max_s": "number",
        "shared_limiter_degraded": "number",
        "shared_limiter_processes": "number",
        "successes": "number"
      },
      "worst_seed": "number"
    }
  ],
  "processes": "number",
  "scenario": {
    "capacity_fraction": "number",
    "description": "string",
    "itpm": "number",
    "name": "string",
    "otpm": "null",
    "output_tokens": "number",
    "overload": {
      "probability": "number",
      "windows": [
        [
          "number"
        ]
      ]
    },
    "requests": "number",
    "resubmit_delay_s": "number",
    "rpm": "number",
    "rtt_s": "number",
    "size": {
      "kind": "string",
      "tokens": "number"
    },
    "stream_s": "number",
    "users": "number"
  },
  "schema_version": "number",
  "seeds": [
    "number"
  ],
  "time_scale": "number",
  "tool": "string"
}"#;

#[tokio::test]
async fn the_json_report_keeps_its_schema() {
    let args = parse_args([
        "--scenario",
        "D",
        "--requests",
        "3",
        "--seeds",
        "0..1",
        "--policy",
        "naive,backchat",
        "--overload-window",
        "1,2",
        "--json",
    ])
    .expect("parses");
    let setup = Setup::from_args(&args, None).expect("valid");
    let (report, _) = setup.run().await.expect("runs");
    let v = serde_json::to_value(&report).expect("json");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["policies"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["policies"][0]["runs"].as_array().map(Vec::len), Some(2));
    let got = serde_json::to_string_pretty(&shape(&v)).expect("json");
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        println!("{got}");
    }
    let want: Value = serde_json::from_str(GOLDEN_SHAPE).expect("golden is JSON");
    assert_eq!(
        shape(&v),
        want,
        "the JSON schema changed; bump SCHEMA_VERSION and docs/loadtest.md:\n{got}"
    );
}
