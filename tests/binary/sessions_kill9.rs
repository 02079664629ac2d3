//! End to end against the real mock server (`backchat mock`): `kill -9` in the middle of a
//! streamed reply, then `--continue`. Every finished turn must be in the session.
//!
//! Run: `cargo test --test binary sessions_kill9`. It needs the mock API (`src/mock/`); with the stub
//! mock it fails at start-up, saying that the mock did not report its address.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::home::{BIN, Home, texts};
use backchat::chat::{ReplyState, SessionStore};

/// Kills the mock when the test ends, however it ends.
struct Mock(Child);

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `backchat mock` on a free port with a slow token rate; return it and its URL.
fn start_mock() -> (Mock, String) {
    let mut child = std::process::Command::new(BIN)
        .args([
            "mock",
            "--addr",
            "127.0.0.1:0",
            "--token-rate",
            "5",
            "--seed",
            "1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the mock starts");
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let (false, Some(at)) = (sent, line.find("listening on http://")) {
                let url = line[at + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let _ = tx.send(url);
                sent = true;
            }
            // Keep draining, so the mock never blocks on a full pipe.
        }
    });
    let mock = Mock(child);
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the mock reports `backchat mock listening on http://…` on stderr");
    (mock, url)
}

#[test]
fn kill_9_during_a_stream_then_continue() {
    let home = Home::new();
    let (_mock, url) = start_mock();
    let key = ("ANTHROPIC_API_KEY", "sk-ant-test-any-key");

    // Two short finished turns (few tokens, so the slow mock ends them quickly).
    for prompt in ["first question", "second question"] {
        let out = home.run(
            &[
                "-p",
                prompt,
                "--session",
                "crash",
                "--base-url",
                &url,
                "--max-tokens",
                "8",
            ],
            &[key],
        );
        assert_eq!(out.status.code(), Some(0), "{}", texts(&out).1);
    }

    // A long reply at 5 tokens a second, killed once its first bytes are on stdout.
    let mut child = home
        .command()
        .args([
            "-p",
            "tell me a long story",
            "--session",
            "crash",
            "--base-url",
            &url,
        ])
        .env(key.0, key.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let mut stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 16];
        if let Ok(n) = stdout.read(&mut buf) {
            let _ = tx.send(n);
        }
    });
    let streamed = rx.recv_timeout(Duration::from_mins(1));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(
        matches!(streamed, Ok(n) if n > 0),
        "the reply should have started streaming before the kill"
    );

    let store = SessionStore::new(home.sessions_dir());
    let (conv, report) = store.open("crash").expect("valid").load().expect("loads");
    assert!(report.is_clean(), "{:?}", report.issues);
    let users: Vec<&str> = conv.turns.iter().map(|t| t.user.as_str()).collect();
    assert_eq!(users, vec!["first question", "second question"]);
    for t in &conv.turns {
        assert!(matches!(t.state, ReplyState::Complete { .. }), "{t:?}");
        assert!(!t.assistant.trim().is_empty());
    }

    let out = home.run(
        &[
            "-p",
            "and then?",
            "--continue",
            "--base-url",
            &url,
            "--max-tokens",
            "8",
        ],
        &[key],
    );
    assert_eq!(out.status.code(), Some(0), "{}", texts(&out).1);
    let (conv, report) = store.open("crash").expect("valid").load().expect("loads");
    assert!(report.is_clean(), "{:?}", report.issues);
    let users: Vec<&str> = conv.turns.iter().map(|t| t.user.as_str()).collect();
    assert_eq!(
        users,
        vec!["first question", "second question", "and then?"]
    );
}
