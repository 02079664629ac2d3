//! `backchat loadtest --processes P --shared-limiter redis://…` against a private
//! redis-server: worker processes that share one key's quota through Redis stop finding the
//! limit by hitting it, and a Redis killed in the middle of a run costs coordination, not the
//! run. Real time with a large `--time-scale`, so each run takes a few seconds; every wait is
//! a hang guard, never a timing assertion.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test may fail by panicking"
)]

#[path = "support/mod.rs"]
mod support;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::redis::RedisServer;

/// The longest a run may take before the test calls it hung (each needs a few seconds).
const HANG: Duration = Duration::from_mins(2);

/// The two tests run one after the other: each is a timing-sensitive multi-process run, and
/// two at once on a small machine would only measure the machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn backchat(home: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backchat"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Wait for `child` within [`HANG`] (killing it and failing otherwise); its exit status,
/// stdout and stderr. Both pipes are drained on their own threads so a chatty child never
/// blocks on a full pipe.
fn finish(mut child: Child) -> (std::process::ExitStatus, String, String) {
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + HANG;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the load test hung: no exit within {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = out.join().expect("stdout reader");
    let err = err.join().expect("stderr reader");
    (status, out, err)
}

fn row(report: &Value, shared: bool) -> &Value {
    report["policies"]
        .as_array()
        .expect("policies")
        .iter()
        .find(|p| p["shared_limiter"].is_string() == shared)
        .unwrap_or_else(|| panic!("no row with shared = {shared}: {report}"))
}

#[test]
fn sharing_the_limiter_between_processes_removes_the_429s() {
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let redis = RedisServer::start();
    let home = tempfile::tempdir().expect("temp dir");
    // Scenario A's limits, 2 processes × 2 users, 5 requests each: the quota binds from the
    // third round on. Alone, each process's pacer sees only its own requests; shared, they
    // queue behind each other.
    let url = redis.url();
    let child = backchat(
        home.path(),
        &[
            "loadtest",
            "--shared-limiter",
            &url,
            "--engine",
            "e2e",
            "--processes",
            "2",
            "--scenario",
            "A",
            "-k",
            "4",
            "-n",
            "5",
            "--time-scale",
            "40",
            "--policy",
            "backchat",
            "--compare-unshared",
            "--json",
        ],
    )
    .spawn()
    .expect("starts");
    let (status, out, err) = finish(child);
    assert!(status.success(), "{status}: {err}");
    let report: Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert_eq!(report["processes"], 2);
    let (alone, shared) = (row(&report, false), row(&report, true));
    assert_eq!(alone["policy"], "backchat");
    assert_eq!(shared["policy"], "backchat");
    assert_eq!(
        shared["shared_limiter"].as_str(),
        Some(url.as_str()),
        "{shared}"
    );
    for r in [alone, shared] {
        assert_eq!(r["mean"]["successes"], 20.0, "{r}");
    }
    // Without coordination the processes meet the limit; through Redis they do not.
    assert!(
        alone["mean"]["rate_limited"].as_f64() >= Some(1.0),
        "the processes alone should meet 429s: {}",
        alone["mean"]
    );
    assert!(
        shared["mean"]["rate_limited_per_success"].as_f64() <= Some(0.05),
        "shared: {}",
        shared["mean"]
    );
    assert_eq!(alone["mean"]["shared_limiter_processes"], 0.0);
    assert_eq!(shared["mean"]["shared_limiter_processes"], 2.0);
    assert_eq!(shared["mean"]["shared_limiter_degraded"], 0.0, "{shared}");
    assert_eq!(shared["notes"].as_array().map(Vec::len), Some(0));
}

#[test]
fn killing_redis_in_the_middle_of_a_run_fails_over_and_the_run_completes() {
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut redis = RedisServer::start();
    let home = tempfile::tempdir().expect("temp dir");
    let url = redis.url();
    let child = backchat(
        home.path(),
        &[
            "loadtest",
            "--shared-limiter",
            &url,
            "--engine",
            "e2e",
            "--processes",
            "2",
            "--scenario",
            "A",
            "-k",
            "4",
            "-n",
            "6",
            "--time-scale",
            "20",
            "--policy",
            "backchat",
            "--json",
        ],
    )
    .spawn()
    .expect("starts");
    // The run is under way once the workers have learned the limits and reserved through
    // Redis: then kill it (every worker still has most of its requests ahead).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let deadline = Instant::now() + HANG;
    runtime.block_on(async {
        let mut con = redis.conn().await;
        loop {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("backchat:*:tat:input_tokens")
                .query_async(&mut con)
                .await
                .expect("KEYS");
            if !keys.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "the run never reached Redis");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    redis.stop();
    let (status, out, err) = finish(child);
    assert!(status.success(), "{status}: {err}");
    let report: Value = serde_json::from_str(&out).expect("JSON on stdout");
    let shared = row(&report, true);
    assert_eq!(shared["mean"]["successes"], 24.0, "{shared}");
    assert_eq!(shared["mean"]["shared_limiter_processes"], 2.0);
    assert_eq!(
        shared["mean"]["shared_limiter_degraded"], 2.0,
        "every worker saw Redis go: {shared}"
    );
    let notes = shared["notes"].as_array().expect("notes");
    assert_eq!(notes.len(), 1, "{notes:?}");
    let note = notes[0].as_str().expect("a line");
    assert!(
        note.contains("failed over to local pacing in 2 of 2 processes")
            && note.contains("shared limiter unreachable")
            && note.contains(&url),
        "{note}"
    );
}
