//! `backchat -p` as a user runs it: the real binary against a standalone `backchat mock`,
//! in real time over loopback. Each wait shows on stderr as it happens, `--events` records
//! every wait with its cause and source, and the exit codes are those of docs/architecture.md.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_backchat");

/// A standalone mock, killed on drop.
struct Mock {
    child: Child,
    url: String,
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_mock(dir: &Path, scenario: &str) -> Mock {
    let file = dir.join("scenario.toml");
    std::fs::write(&file, scenario).expect("write scenario");
    let mut child = Command::new(BIN)
        .args([
            "mock",
            "--addr",
            "127.0.0.1:0",
            "--seed",
            "2",
            "--token-rate",
            "400",
            "--scenario",
        ])
        .arg(&file)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn mock");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("mock printed its address")
            .expect("utf-8");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().expect("url").to_string();
        }
    };
    // Keep draining so the mock never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Mock { child, url }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    events: String,
}

fn run_p(dir: &Path, mock: &Mock, extra: &[&str]) -> Run {
    let events = dir.join("events.jsonl");
    let _ = std::fs::remove_file(&events);
    let out = Command::new(BIN)
        .args([
            "-p",
            "Tell me something",
            "--base-url",
            &mock.url,
            "--events",
        ])
        .arg(&events)
        .args(extra)
        .env("ANTHROPIC_API_KEY", "sk-ant-e2e-test")
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env_remove("ANTHROPIC_BASE_URL")
        .output()
        .expect("run backchat -p");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        events: std::fs::read_to_string(&events).unwrap_or_default(),
    }
}

fn events_named(events: &str, name: &str) -> Vec<serde_json::Value> {
    events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("each line is JSON"))
        .filter(|v| v["event"] == name)
        .collect()
}

#[test]
fn each_wait_shows_on_stderr_and_in_the_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mock = start_mock(
        dir.path(),
        r#"
[[script]]
type = "error"
status = 429
retry_after = "1"

[[script]]
type = "error"
status = 529

[[script]]
type = "ok"
"#,
    );
    let run = run_p(dir.path(), &mock, &[]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(run.stdout.len() > 100, "the reply streams to stdout");
    let waits: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("retrying in"))
        .collect();
    assert_eq!(waits.len(), 2, "{}", run.stderr);
    assert!(
        waits[0].starts_with("429 rate_limit_error: retrying in 1.")
            && waits[0].ends_with("(attempt 2/9, retry-after)"),
        "{}",
        waits[0]
    );
    assert!(
        waits[1].starts_with("529 overloaded_error: retrying in")
            && waits[1].contains("attempt 3/9, backoff"),
        "{}",
        waits[1]
    );
    let scheduled = events_named(&run.events, "retry_scheduled");
    assert_eq!(scheduled.len(), 2);
    assert_eq!(scheduled[0]["source"], "retry-after");
    assert_eq!(scheduled[0]["cause"], "rate_limit");
    assert_eq!(scheduled[1]["source"], "backoff");
    assert_eq!(scheduled[1]["cause"], "overloaded");
    for e in &scheduled {
        assert!(e["delay"].as_f64().is_some() && e["until"].is_string() && e["ts"].is_string());
    }
    assert_eq!(events_named(&run.events, "finished").len(), 1);
}

#[test]
fn exit_codes_follow_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mock = start_mock(
        dir.path(),
        r#"
[[script]]
type = "spend_cap"

[[script]]
type = "error"
status = 529

[[script]]
type = "error"
status = 529

[[script]]
type = "mid_stream_error"
after_tokens = 30
"#,
    );
    let spend = run_p(dir.path(), &mock, &[]);
    assert_eq!(spend.code, 3, "{}", spend.stderr);
    assert!(spend.stderr.contains("spend limit"), "{}", spend.stderr);

    let exhausted = run_p(dir.path(), &mock, &["--max-retries", "1"]);
    assert_eq!(exhausted.code, 4, "{}", exhausted.stderr);
    assert!(
        exhausted.stderr.contains("Gave up after 2 attempts"),
        "{}",
        exhausted.stderr
    );

    let broken = run_p(dir.path(), &mock, &[]);
    assert_eq!(broken.code, 5, "{}", broken.stderr);
    assert!(
        !broken.stdout.trim().is_empty(),
        "the partial reply stays printed"
    );
    assert!(broken.stderr.contains("interrupted"), "{}", broken.stderr);

    // Usage errors exit 2.
    let out = Command::new(BIN)
        .args(["-p", "   "])
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn no_key_uses_the_embedded_mock_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(["-p", "hello there"])
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("embedded mock"), "{stderr}");
    assert!(out.stdout.len() > 100);
}
