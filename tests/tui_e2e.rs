//! The real binary in a pseudo-terminal against a standalone mock: type a prompt, see the
//! reply, see a countdown under a scripted 429, quit, and find the terminal restored.
//! Waits are on conditions (text on screen, process exit) with generous hang guards.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test may fail by panicking"
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portable_pty::CommandBuilder;

#[path = "support/pty.rs"]
mod pty;
use pty::{GUARD, Pty};

const BIN: &str = env!("CARGO_BIN_EXE_backchat");

struct Mock(Child);

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_mock(dir: &std::path::Path) -> (Mock, String) {
    let scenario = dir.join("scenario.toml");
    std::fs::write(
        &scenario,
        r#"
token_rate = 400

[[script]]
type = "reply"
text = "Hello from the mock. **Bold** and `code`."

[[script]]
type = "error"
status = 429
retry_after = "3"

[[script]]
type = "reply"
text = "Second answer after the wait."
"#,
    )
    .expect("scenario");
    let mut child = Command::new(BIN)
        .args(["mock", "--addr", "127.0.0.1:0", "--scenario"])
        .arg(&scenario)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn mock");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines.next().expect("mock address").expect("utf-8");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().expect("url").to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Mock(child), url)
}

#[test]
fn chat_in_a_real_terminal_with_a_429_countdown_then_quit_restored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_mock, url) = start_mock(dir.path());

    let mut cmd = CommandBuilder::new(BIN);
    cmd.args(["--base-url", &url]);
    cmd.env("ANTHROPIC_API_KEY", "sk-ant-e2e-test");
    cmd.env("TERM", "xterm-256color");
    cmd.env("XDG_CONFIG_HOME", dir.path().join("config"));
    cmd.env("XDG_DATA_HOME", dir.path().join("data"));
    cmd.env("XDG_STATE_HOME", dir.path().join("state"));
    cmd.env_remove("NO_COLOR");
    let mut screen = Pty::spawn(cmd, 30, 100);

    screen.wait_for("the composer", |s| s.contains("Type a message"));
    assert!(screen.parser().screen().alternate_screen());

    screen.send(b"Hi there");
    screen.send(b"\r");
    screen.wait_for("the first reply", |s| s.contains("Hello from the mock"));

    screen.send(b"Another one");
    screen.send(b"\r");
    let countdown = screen.wait_for("a retry countdown", |s| s.contains("retry 2/9 in"));
    assert!(countdown.contains("429"), "{countdown}");
    screen.wait_for("the reply after the wait", |s| {
        s.contains("Second answer after the wait")
    });

    // Ctrl+C twice quits.
    screen.send(b"\x03");
    screen.wait_for("the quit hint", |s| s.contains("Ctrl+C again"));
    screen.send(b"\x03");
    let status = screen.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    // Let the drain thread take the last bytes (the restore sequence).
    let start = Instant::now();
    while screen.parser().screen().alternate_screen() {
        assert!(
            start.elapsed() < GUARD,
            "the alternate screen was never left"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let p = screen.parser();
    assert!(!p.screen().alternate_screen(), "left the alternate screen");
    assert!(!p.screen().hide_cursor(), "the cursor is visible again");

    // Both finished turns were saved to the session.
    let sessions = dir.path().join("data/backchat/sessions");
    let saved: String = std::fs::read_dir(&sessions)
        .expect("sessions dir")
        .filter_map(std::result::Result::ok)
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        saved.contains("Hello from the mock") && saved.contains("Second answer"),
        "{saved}"
    );
}
