//! The real TUI in a pseudo-terminal against a server that streams a reply forever, as fast
//! as the socket takes it: Esc, and then Ctrl+C on a second turn, each cancel the turn in
//! flight, also when the reply is one paragraph of megabytes that never ends; and while the
//! screen cannot keep up (here: its output is not read at all), the reply is not read ahead
//! of it without bound. The tests wait on what changes (the turn's "cancelled" line on
//! screen, the server seeing its connection closed, the server's writes stopping), never on
//! a clock; the guard only bounds a failure.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portable_pty::CommandBuilder;

use crate::support::pty::{GUARD, Pty};

const BIN: &str = env!("CARGO_BIN_EXE_backchat");

/// Counts of what the endless server saw.
#[derive(Default)]
struct Seen {
    /// Requests whose stream started.
    started: AtomicUsize,
    /// Bytes of the streams written to the client so far.
    written: AtomicUsize,
    /// Streams that ended because the client closed the connection.
    closed: AtomicUsize,
}

/// What the endless reply is made of.
#[derive(Clone, Copy)]
enum Reply {
    /// Short paragraphs, several per delta.
    Paragraphs,
    /// One paragraph: no blank line and no line break, ever.
    OneParagraph,
}

/// A server that answers every request with a reply that never ends, written as fast as the
/// client reads it, until the client goes away.
fn endless_server(reply: Reply) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Seen::default());
    let counts = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let counts = Arc::clone(&counts);
            std::thread::spawn(move || stream_forever(stream, &counts, reply));
        }
    });
    (url, seen)
}

fn event(name: &str, data: &serde_json::Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn stream_forever(mut s: TcpStream, seen: &Seen, reply: Reply) {
    // The request: its headers, then its body.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    let len: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let _ = std::io::copy(&mut (&mut s).take(len), &mut std::io::sink());
    let mut start = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nrequest-id: req_endless\r\nconnection: close\r\n\r\n",
    );
    start += &event(
        "message_start",
        &serde_json::json!({"type":"message_start","message":{"id":"msg_1","type":"message",
            "role":"assistant","model":"claude-test","content":[],"stop_reason":null,
            "stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}}),
    );
    start += &event(
        "content_block_start",
        &serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    );
    if s.write_all(start.as_bytes()).is_err() {
        return;
    }
    seen.started.fetch_add(1, Ordering::SeqCst);
    for n in 0u64.. {
        let paragraph = match reply {
            // Several short paragraphs per delta: cheap to decode, dear to lay out. Each
            // starts elsewhere in the phrase, so that the rows in view change as the reply
            // grows and every frame has a screenful to write, as with real text.
            Reply::Paragraphs => {
                let phrase = "and on it goes".repeat(21);
                let mut text = String::new();
                for k in 0..8 {
                    let at = (n as usize * 5 + k * 3) % 14;
                    text.push_str(&phrase[at..at + 280]);
                    text.push_str("\n\n");
                }
                text
            }
            // Words and spaces only: the paragraph never ends.
            Reply::OneParagraph => "and on it goes ".repeat(300),
        };
        let chunk = event(
            "content_block_delta",
            &serde_json::json!({"type":"content_block_delta","index":0,
                "delta":{"type":"text_delta","text":paragraph}}),
        )
        .repeat(32);
        if s.write_all(chunk.as_bytes()).is_err() {
            break;
        }
        seen.written.fetch_add(chunk.len(), Ordering::SeqCst);
    }
    seen.closed.fetch_add(1, Ordering::SeqCst);
}

/// Wait until `cond` holds; fail after [`GUARD`] naming `what`.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < GUARD, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The tokens the screen says have streamed so far ("streaming N tok"), 0 when it does not.
fn streamed_tokens(screen: &str) -> u64 {
    screen
        .split("streaming ")
        .skip(1)
        .filter_map(|rest| rest.split(" tok").next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// How many turns on screen ended cancelled.
fn cancelled(screen: &str) -> usize {
    screen.matches("■ cancelled").count()
}

/// The TUI in a 30×100 pseudo-terminal against `url`, in its own home under `dir`.
fn tui(url: &str, dir: &std::path::Path) -> Pty {
    let mut cmd = CommandBuilder::new(BIN);
    cmd.env_remove("ANTHROPIC_BASE_URL");
    cmd.env("ANTHROPIC_API_KEY", "sk-ant-cancel-test-key-0123456789");
    cmd.env("TERM", "xterm-256color");
    cmd.env("HOME", dir);
    cmd.env("XDG_CONFIG_HOME", dir.join("config"));
    cmd.env("XDG_DATA_HOME", dir.join("data"));
    cmd.env("XDG_STATE_HOME", dir.join("state"));
    // A cap far beyond what the tests let through: only a cancel can end the turn.
    cmd.args(["--no-pacing", "--max-tokens", "3000000", "--base-url", url]);
    let term = Pty::spawn(cmd, 30, 100);
    term.wait_for("the composer", |s| s.contains("Type a message"));
    term
}

#[test]
fn esc_and_ctrl_c_cancel_an_endless_stream() {
    let (url, seen) = endless_server(Reply::Paragraphs);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut term = tui(&url, dir.path());

    // Esc while the reply pours in.
    term.send(b"go on forever");
    term.send(b"\r");
    term.wait_for("the reply streaming", |s| {
        s.contains("and on it goesand on") && s.contains("Esc to cancel")
    });
    wait_until("the stream to start", || {
        seen.started.load(Ordering::SeqCst) == 1
    });
    term.send(b"\x1b");
    let screen = term.wait_for("the turn cancelled by Esc", |s| cancelled(s) >= 1);
    assert!(screen.contains("partial reply kept"), "{screen}");
    wait_until("the connection closed after Esc", || {
        seen.closed.load(Ordering::SeqCst) == 1
    });

    // Ctrl+C on a second turn.
    term.send(b"and again");
    term.send(b"\r");
    wait_until("the second stream to start", || {
        seen.started.load(Ordering::SeqCst) == 2
    });
    // The live line of a turn in flight: only the second one can show it now.
    term.wait_for("the second reply streaming", |s| {
        s.contains("Esc to cancel")
    });
    term.send(b"\x03");
    term.wait_for("the turn cancelled by Ctrl+C", |s| {
        s.contains("press Ctrl+C again to quit") && cancelled(s) >= 1
    });
    wait_until("the connection closed after Ctrl+C", || {
        seen.closed.load(Ordering::SeqCst) == 2
    });
    assert_eq!(
        seen.started.load(Ordering::SeqCst),
        2,
        "nothing was retried"
    );

    term.send(b"\x03");
    term.wait_exit();
}

#[test]
fn esc_cancels_a_reply_of_one_endless_paragraph() {
    let (url, seen) = endless_server(Reply::OneParagraph);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut term = tui(&url, dir.path());
    term.send(b"one paragraph forever");
    term.send(b"\r");
    wait_until("the stream to start", || {
        seen.started.load(Ordering::SeqCst) == 1
    });
    // Megabytes of one paragraph taken and laid out (the status counts about four
    // characters a token): every frame renders its unfinished part again, which must not
    // grow with it.
    term.wait_for("8 MB of the paragraph on screen", |s| {
        streamed_tokens(s) >= 2_000_000 && s.contains("and on it goes and on")
    });
    term.send(b"\x1b");
    let screen = term.wait_for("the turn cancelled by Esc", |s| cancelled(s) >= 1);
    assert!(screen.contains("partial reply kept"), "{screen}");
    wait_until("the connection closed after Esc", || {
        seen.closed.load(Ordering::SeqCst) == 1
    });
    term.send(b"\x03");
    term.send(b"\x03");
    term.wait_exit();
}

/// The most a stalled screen may let the client read ahead, from when the terminal stops
/// being read: what the screen still takes until the terminal's buffer is full (frames are
/// cheap, and a reply is taken fast), the turn events in flight (1,024 here of about 4.6 KB
/// each) and the socket buffers, with room to spare. Without a bound the client read on for
/// as long as the server wrote, into memory.
const READ_AHEAD: usize = 64 << 20;

#[test]
fn a_screen_that_cannot_keep_up_holds_the_stream_back() {
    let (url, seen) = endless_server(Reply::Paragraphs);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut term = tui(&url, dir.path());
    term.send(b"go on forever");
    term.send(b"\r");
    term.wait_for("the reply streaming", |s| s.contains("Esc to cancel"));
    // Nothing reads the screen now: the TUI's next frame blocks (once the terminal's buffer
    // is full), and with it the turn.
    term.pause_output(true);
    let start = Instant::now();
    let paused_at = seen.written.load(Ordering::SeqCst);
    let mut last = paused_at;
    let mut still = 0;
    // The server's writes stop once the client stops reading: five looks in a row with no
    // byte written.
    while still < 5 {
        std::thread::sleep(Duration::from_millis(100));
        let now = seen.written.load(Ordering::SeqCst);
        let ahead = now - paused_at;
        assert!(
            ahead < READ_AHEAD,
            "the client read {ahead} bytes ahead of a stalled screen"
        );
        still = if now == last { still + 1 } else { 0 };
        last = now;
        assert!(start.elapsed() < GUARD, "the server never stopped writing");
    }
    assert_eq!(seen.closed.load(Ordering::SeqCst), 0, "still connected");
    // The screen reads again, and Esc still cancels.
    term.pause_output(false);
    term.send(b"\x1b");
    term.wait_for("the turn cancelled", |s| cancelled(s) >= 1);
    wait_until("the connection closed", || {
        seen.closed.load(Ordering::SeqCst) == 1
    });
    term.send(b"\x03");
    term.send(b"\x03");
    term.wait_exit();
}
