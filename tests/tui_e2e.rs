//! The real binary in a pseudo-terminal against a standalone mock: type a prompt, see the
//! reply, see a countdown under a scripted 429, quit, and find the terminal restored.
//! Waits are on conditions (text on screen, process exit) with generous hang guards.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test may fail by panicking"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const BIN: &str = env!("CARGO_BIN_EXE_backchat");
const GUARD: Duration = Duration::from_secs(30);

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

/// The screen as the terminal shows it, fed by a thread that always drains the PTY (a full
/// PTY buffer would stall the program's rendering).
struct Screen {
    parser: Arc<Mutex<vt100::Parser>>,
}

impl Screen {
    fn text(&self) -> String {
        self.parser.lock().expect("parser").screen().contents()
    }

    fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let text = self.text();
            if cond(&text) {
                return text;
            }
            assert!(
                start.elapsed() < GUARD,
                "timed out waiting for {what}; screen:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn chat_in_a_real_terminal_with_a_429_countdown_then_quit_restored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_mock, url) = start_mock(dir.path());

    let pty = native_pty_system();
    let pair = pty
        .openpty(PtySize {
            rows: 30,
            cols: 100,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("pty");
    let mut cmd = CommandBuilder::new(BIN);
    cmd.args(["--base-url", &url]);
    cmd.env("ANTHROPIC_API_KEY", "sk-ant-e2e-test");
    cmd.env("TERM", "xterm-256color");
    cmd.env("XDG_CONFIG_HOME", dir.path().join("config"));
    cmd.env("XDG_DATA_HOME", dir.path().join("data"));
    cmd.env("XDG_STATE_HOME", dir.path().join("state"));
    cmd.env_remove("NO_COLOR");
    let mut child = pair.slave.spawn_command(cmd).expect("spawn backchat");
    drop(pair.slave);

    let rows = std::num::NonZeroU16::new(30).expect("non-zero");
    let cols = std::num::NonZeroU16::new(100).expect("non-zero");
    let parser = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
    let mut reader = pair.master.try_clone_reader().expect("reader");
    let writer = Arc::new(Mutex::new(pair.master.take_writer().expect("writer")));
    {
        let parser = Arc::clone(&parser);
        let writer = Arc::clone(&writer);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let chunk = &buf[..n];
                        // Answer the terminal queries crossterm sends at start-up (device
                        // attributes), as a real terminal would, so it does not wait for them.
                        if chunk.windows(3).any(|w| w == b"\x1b[c") {
                            let mut w = writer.lock().expect("writer");
                            let _ = w.write_all(b"\x1b[?62;22c");
                            let _ = w.flush();
                        }
                        parser.lock().expect("parser").process(chunk);
                    }
                }
            }
        });
    }
    let screen = Screen {
        parser: Arc::clone(&parser),
    };
    let send = |bytes: &[u8]| {
        let mut w = writer.lock().expect("writer");
        w.write_all(bytes).expect("write");
        w.flush().expect("flush");
    };

    screen.wait_for("the composer", |s| s.contains("Type a message"));
    assert!(parser.lock().expect("parser").screen().alternate_screen());

    send(b"Hi there");
    send(b"\r");
    screen.wait_for("the first reply", |s| s.contains("Hello from the mock"));

    send(b"Another one");
    send(b"\r");
    let countdown = screen.wait_for("a retry countdown", |s| s.contains("retry 2/9 in"));
    assert!(countdown.contains("429"), "{countdown}");
    screen.wait_for("the reply after the wait", |s| {
        s.contains("Second answer after the wait")
    });

    // Ctrl+C twice quits.
    send(b"\x03");
    screen.wait_for("the quit hint", |s| s.contains("Ctrl+C again"));
    send(b"\x03");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(start.elapsed() < GUARD, "backchat did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    // Let the drain thread take the last bytes (the restore sequence).
    let start = Instant::now();
    while parser.lock().expect("parser").screen().alternate_screen() {
        assert!(
            start.elapsed() < GUARD,
            "the alternate screen was never left"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let p = parser.lock().expect("parser");
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
