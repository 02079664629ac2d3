//! `backchat loadtest` end to end, in real time with a large time scale: one smoke test (about
//! ten seconds) that runs the in-process mock over loopback HTTP against the simulation of the
//! same scenario, then the binary with `--processes` (worker processes, JSON on stdout).
//! The two parts run one after the other, so that neither disturbs the other's timing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test may fail by panicking"
)]

use std::process::Command;
use std::time::Duration;

use backchat::loadtest::metrics::metrics;
use backchat::loadtest::policies::PolicyId;
use backchat::loadtest::scenario::Scenario;
use backchat::loadtest::users::RunPlan;
use backchat::loadtest::{e2e, simulate_one};
use serde_json::Value;

const SCALE: f64 = 25.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_smoke() {
    in_process_mock_agrees_with_the_simulation().await;
    worker_processes_share_one_mock_and_report_json();
}

async fn in_process_mock_agrees_with_the_simulation() {
    // Scenario A: 190 s of model time in under 8 s, both policies side by side.
    let scenario = Scenario::load("A").expect("built in");
    let plan = |policy| RunPlan {
        scenario: scenario.clone(),
        policy,
        seed: 0,
        users: 0..scenario.users,
        model: "claude-sonnet-4-6".into(),
        limiter_url: None,
        max_wait_s: None,
    };
    let (backchat, naive) = (plan(PolicyId::Backchat), plan(PolicyId::Naive));
    let limit = Duration::from_secs(30);
    let (b, n) = tokio::join!(
        tokio::time::timeout(limit, e2e::run(&backchat, SCALE, None)),
        tokio::time::timeout(limit, e2e::run(&naive, SCALE, None)),
    );
    let b = metrics(&b.expect("in time").expect("runs"), &scenario);
    let n = metrics(&n.expect("in time").expect("runs"), &scenario);
    let (sim, _, _) = simulate_one(&scenario, PolicyId::Backchat, 0).expect("simulates");
    assert_eq!((b.successes, n.successes), (40.0, 40.0));
    // backchat is deterministic here: the engines must agree closely.
    assert!(
        (b.ratio - sim.ratio).abs() <= 0.03,
        "e2e {b:?}\nsimulated {sim:?}"
    );
    assert!((b.latency_p99_s - sim.latency_p99_s).abs() < 2.0, "{b:?}");
    assert!(b.rate_limited_per_success <= 0.05, "{b:?}");
    assert_eq!(b.give_ups, 0.0);
    // naive races the other users at every refill, so its timing is noise; its waste is not.
    assert!(n.rate_limited_per_success > 10.0, "{n:?}");
    assert!(n.ratio < 1.2, "{n:?}");
}

fn worker_processes_share_one_mock_and_report_json() {
    let home = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_backchat"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_STATE_HOME", home.path().join("state"))
        .args([
            "loadtest",
            "--engine",
            "e2e",
            "--processes",
            "2",
            "--time-scale",
            "20",
            "--scenario",
            "D",
            "-k",
            "2",
            "-n",
            "3",
            "--policy",
            "backchat,retry-after-jitter",
            "--json",
        ])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["engine"], "e2e");
    assert_eq!(v["processes"], 2);
    assert_eq!(v["time_scale"], 20.0);
    for p in v["policies"].as_array().expect("policies") {
        assert_eq!(p["mean"]["successes"], 6.0, "{p}");
    }
    // A usage error says what to do and exits 2.
    let bad = Command::new(env!("CARGO_BIN_EXE_backchat"))
        .env_clear()
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .args(["loadtest", "--processes", "2"])
        .output()
        .expect("runs");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--engine e2e"));
}
