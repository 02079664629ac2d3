//! Hostile servers against the real binary: an endless reply, a 2 GB line with no newline, a
//! server that never answers, escape sequences aimed at the terminal, a 413 sent before the
//! body is read, a web page where a stream should be; and the errors a person must see (a
//! full disk, a key no header can carry, a password in the base URL). Each server is a few
//! lines of std TCP on loopback, generating its bytes lazily.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_backchat");
const KEY: &str = "sk-ant-hostile-test-key-0123456789";

/// What the server does with each request, once its headers are read.
#[derive(Clone, Copy)]
enum Behaviour {
    /// A normal reply with this text.
    Reply(&'static str),
    /// Text deltas forever, until the client goes away.
    Endless,
    /// `data: ` and then 2 GB of `x` with no newline.
    HugeLine,
    /// Read the request, never answer.
    Hang,
    /// 413 at once, closing without reading the body.
    EarlyTooLarge,
    /// 200 with a web page.
    Html,
}

struct Server {
    url: String,
    requests: Arc<AtomicUsize>,
}

fn serve(b: Behaviour) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let count = Arc::clone(&count);
            std::thread::spawn(move || handle(stream, b, &count));
        }
    });
    Server { url, requests }
}

/// Read up to the end of the request's headers.
fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn drain_body(s: &mut TcpStream, head: &str) {
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let _ = std::io::copy(&mut s.take(len as u64), &mut std::io::sink());
}

fn event(name: &str, data: &serde_json::Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn start_events() -> String {
    let mut s = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nrequest-id: req_hostile\r\nconnection: close\r\n\r\n",
    );
    s += &event(
        "message_start",
        &serde_json::json!({"type":"message_start","message":{"id":"msg_1","type":"message",
            "role":"assistant","model":"claude-test","content":[],"stop_reason":null,
            "stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}}),
    );
    s += &event(
        "content_block_start",
        &serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    );
    s
}

fn delta(text: &str) -> String {
    event(
        "content_block_delta",
        &serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":text}}),
    )
}

fn handle(mut s: TcpStream, b: Behaviour, count: &AtomicUsize) {
    let Some(head) = read_head(&mut s) else {
        return;
    };
    count.fetch_add(1, Ordering::SeqCst);
    match b {
        Behaviour::EarlyTooLarge => {
            let body = r#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#;
            let _ = write!(
                s,
                "HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.flush();
            let _ = s.shutdown(std::net::Shutdown::Both);
            return;
        }
        Behaviour::Hang => {
            drain_body(&mut s, &head);
            std::thread::sleep(Duration::from_mins(2));
            return;
        }
        _ => drain_body(&mut s, &head),
    }
    match b {
        Behaviour::Reply(text) => {
            let mut out = start_events();
            out += &delta(text);
            out += &event(
                "content_block_stop",
                &serde_json::json!({"type":"content_block_stop","index":0}),
            );
            out += &event(
                "message_delta",
                &serde_json::json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":9}}),
            );
            out += &event("message_stop", &serde_json::json!({"type":"message_stop"}));
            let _ = s.write_all(out.as_bytes());
        }
        Behaviour::Endless => {
            if s.write_all(start_events().as_bytes()).is_err() {
                return;
            }
            let chunk = delta(&"endless ".repeat(128)).repeat(16);
            while s.write_all(chunk.as_bytes()).is_ok() {}
        }
        Behaviour::HugeLine => {
            let mut head = start_events();
            head += "event: content_block_delta\ndata: ";
            if s.write_all(head.as_bytes()).is_err() {
                return;
            }
            let block = vec![b'x'; 1 << 20];
            for _ in 0..2048 {
                if s.write_all(&block).is_err() {
                    return;
                }
            }
        }
        Behaviour::Html => {
            let body =
                "<html><head><title>Welcome to Hotel WiFi</title></head><body>log in</body></html>";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Behaviour::Hang | Behaviour::EarlyTooLarge => {}
    }
}

/// `backchat` with an isolated home, the test key and no pacing.
fn backchat(dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("ANTHROPIC_API_KEY", KEY);
    c
}

fn run_p(server: &Server, extra: &[&str]) -> (Output, Duration) {
    let dir = tempfile::tempdir().expect("dir");
    let t = Instant::now();
    let out = backchat(dir.path())
        .args([
            "-p",
            "hi",
            "--no-pacing",
            "--max-retries",
            "2",
            "--base-url",
        ])
        .arg(&server.url)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    (out, t.elapsed())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn an_endless_reply_is_cut_at_the_cap_with_a_clear_reason() {
    let server = serve(Behaviour::Endless);
    let (out, took) = run_p(&server, &["--max-tokens", "1000"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("more than its max_tokens allows"), "{err}");
    // 1000 tokens → the 64 KiB floor; the partial text is kept up to the cap.
    let cap = 64 << 10;
    assert!(out.stdout.len() <= cap + 1, "{}", out.stdout.len());
    assert!(out.stdout.len() >= cap - 2048, "{}", out.stdout.len());
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[test]
fn a_2gb_line_with_no_newline_fails_fast() {
    let server = serve(Behaviour::HugeLine);
    let (out, took) = run_p(&server, &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("larger than 4 MiB"), "{err}");
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[test]
fn sigint_while_decoding_a_huge_line_stops_within_a_moment() {
    // Before, a long line pinned a core and SIGINT was ignored. Use a very large event cap
    // stand-in: the 2 GB line server, interrupted as soon as bytes flow.
    let server = serve(Behaviour::Endless);
    let dir = tempfile::tempdir().expect("dir");
    let mut child = backchat(dir.path())
        .args([
            "-p",
            "hi",
            "--no-pacing",
            "--max-tokens",
            "100000000",
            "--base-url",
        ])
        .arg(&server.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut buf = vec![0u8; 1 << 16];
    // Wait until the reply streams.
    let mut got = 0;
    while got < 1 << 20 {
        got += stdout.read(&mut buf).expect("read");
    }
    std::thread::spawn(move || while stdout.read(&mut buf).is_ok_and(|n| n > 0) {});
    let t = Instant::now();
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "SIGINT ignored");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(status.code(), Some(130));
    // Exit includes saving the session and a 100 ms limiter flush; the cancel itself is
    // immediate.
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn a_hung_server_is_bounded_by_the_deadline() {
    let server = serve(Behaviour::Hang);
    let (out, took) = run_p(&server, &["--deadline", "2s"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("deadline (2.0s) passed while waiting for the server"),
        "{err}"
    );
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[test]
fn a_413_before_the_body_is_read_is_not_retried() {
    let server = serve(Behaviour::EarlyTooLarge);
    let dir = tempfile::tempdir().expect("dir");
    let mut child = backchat(dir.path())
        .args(["-p", "-", "--no-pacing", "--base-url"])
        .arg(&server.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let prompt = "big ".repeat(5_000_000 / 4);
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(prompt.as_bytes())
        .expect("prompt");
    let out = child.wait_with_output().expect("run");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("request_too_large") || err.contains("413"),
        "{err}"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 1, "{err}");
}

#[test]
fn a_web_page_instead_of_a_stream_is_named() {
    let server = serve(Behaviour::Html);
    let (out, _) = run_p(&server, &[]);
    let err = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("content-type `text/html`"), "{err}");
    assert!(err.contains("Hotel WiFi"), "{err}");
}

#[test]
fn a_full_stdout_or_events_file_fails_the_turn() {
    let server = serve(Behaviour::Reply("hello there"));
    let dir = tempfile::tempdir().expect("dir");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = backchat(dir.path())
        .args(["-p", "hi", "--no-pacing", "--base-url"])
        .arg(&server.url)
        .stdout(full)
        .output()
        .expect("run");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write the reply to stdout"), "{err}");

    let (out, _) = run_p(&server, &["--events", "/dev/full"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write the events file"), "{err}");
}

#[test]
fn a_key_no_header_can_carry_is_a_config_error() {
    let server = serve(Behaviour::Reply("never"));
    let dir = tempfile::tempdir().expect("dir");
    let out = backchat(dir.path())
        .env("ANTHROPIC_API_KEY", "sk-ant-abc\u{1}def-0123456789")
        .args(["-p", "hi", "--base-url"])
        .arg(&server.url)
        .output()
        .expect("run");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no HTTP header can carry"), "{err}");
    assert!(!err.contains("abc\u{1}def"), "{err}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[test]
fn a_password_in_the_base_url_is_never_shown() {
    let dir = tempfile::tempdir().expect("dir");
    let out = backchat(dir.path())
        .args([
            "config",
            "show",
            "--base-url",
            "http://user:hunter2pw@127.0.0.1:9/x",
        ])
        .output()
        .expect("run");
    let shown = text(&out.stdout);
    assert!(shown.contains("http://user:***@127.0.0.1:9/x"), "{shown}");
    assert!(!shown.contains("hunter2pw"), "{shown}");
    let (_, _) = run_p(&serve(Behaviour::Reply("ok")), &["--log-level", "debug"]);
    let log_dir = dir.path().join("state");
    let logs = walk(&log_dir);
    assert!(!logs.contains("hunter2pw"));
}

fn walk(dir: &std::path::Path) -> String {
    let mut all = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                all += &walk(&p);
            } else {
                all += &std::fs::read_to_string(&p).unwrap_or_default();
            }
        }
    }
    all
}

/// Run `backchat -p` on a pseudo-terminal and return all it wrote there.
fn on_pty(server: &Server, extra: &[&str]) -> String {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    let dir = tempfile::tempdir().expect("dir");
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 30,
            cols: 100,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("pty");
    let mut cmd = CommandBuilder::new(BIN);
    cmd.env_clear();
    cmd.env("HOME", dir.path());
    cmd.env("XDG_CONFIG_HOME", dir.path().join("config"));
    cmd.env("XDG_DATA_HOME", dir.path().join("data"));
    cmd.env("XDG_STATE_HOME", dir.path().join("state"));
    cmd.env("ANTHROPIC_API_KEY", KEY);
    cmd.args(["-p", "hi", "--no-pacing", "--base-url", &server.url]);
    cmd.args(extra);
    let mut child = pty.slave.spawn_command(cmd).expect("spawn");
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().expect("reader");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        let _ = tx.send(all);
    });
    let t = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        assert!(t.elapsed() < Duration::from_secs(30), "hung");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(pty.master);
    text(&rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default())
}

const OSC52: &str = "before \u{1b}]52;c;cHduZWQ=\u{7} \u{1b}]0;title\u{7}\u{1b}[2J\u{9b}2J after";

#[test]
fn osc52_in_a_reply_never_reaches_a_terminal() {
    let server = serve(Behaviour::Reply(OSC52));
    let screen = on_pty(&server, &[]);
    assert!(screen.contains("before"), "{screen:?}");
    assert!(screen.contains("after"), "{screen:?}");
    assert!(!screen.contains("\u{1b}]52"), "{screen:?}");
    assert!(!screen.contains("\u{1b}]0;"), "{screen:?}");
    assert!(!screen.contains("\u{1b}[2J"), "{screen:?}");
    assert!(!screen.contains('\u{9b}'), "{screen:?}");
    assert!(screen.contains("neutralised"), "{screen:?}");

    // --raw prints the bytes as sent, on a terminal too.
    let raw = on_pty(&server, &["--raw"]);
    assert!(raw.contains("\u{1b}]52;c;cHduZWQ="), "{raw:?}");

    // A pipe gets the bytes as sent.
    let (out, _) = run_p(&server, &[]);
    assert_eq!(text(&out.stdout), format!("{OSC52}\n"));
}

/// A transport whose server never answers.
struct Hung;

impl backchat::api::Transport for Hung {
    fn send(
        &self,
        _request: &backchat::api::MessagesRequest,
        _attempt: u32,
    ) -> futures::future::BoxFuture<
        'static,
        Result<backchat::api::TransportResponse, backchat::api::TransportError>,
    > {
        Box::pin(futures::future::pending())
    }

    fn describe(&self) -> String {
        "hung".into()
    }
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_an_attempt_in_flight_on_a_paused_clock() {
    use backchat::retry::{Driver, FailureKind, RetryConfig, TurnEvent};
    use futures::StreamExt;
    let driver = Driver::new(Arc::new(Hung)).with_config(RetryConfig {
        deadline: Duration::from_secs(10),
        ..RetryConfig::default()
    });
    let t0 = tokio::time::Instant::now();
    let events: Vec<TurnEvent> = driver
        .run(backchat::api::MessagesRequest::new("m", 10, vec![]))
        .collect()
        .await;
    assert_eq!(tokio::time::Instant::now() - t0, Duration::from_secs(10));
    match events.last() {
        Some(TurnEvent::Failed(f)) => {
            assert_eq!(f.kind, FailureKind::DeadlineExceeded);
            assert!(
                f.message.contains("deadline (10.0s) passed"),
                "{}",
                f.message
            );
        }
        other => panic!("{other:?}"),
    }
}

/// One raw request to the mock; the status line of its answer.
async fn raw_request(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /v1/models HTTP/1.1\r\nhost: x\r\nx-api-key: sk-ant-mock-1234567890\r\nanthropic-version: 2023-06-01\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).await.expect("read");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn the_mock_survives_slowloris_clients() {
    use backchat::mock::{MockConfig, MockServer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = MockServer::start(MockConfig {
        max_connections: 2,
        header_read_timeout: Some(Duration::from_millis(500)),
        ..MockConfig::default()
    })
    .await
    .expect("mock");
    let addr = server.addr();
    // Two clients take every slot and send their headers a byte at a time.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"POST /v1/mes").await.expect("write");
        slow.push(s);
    }
    // A third client is still served once the slow ones are cut off.
    let t = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), raw_request(addr))
        .await
        .expect("served");
    assert!(status.starts_with("HTTP/1.1 "), "{status}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    for mut s in slow {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("closed")
            .unwrap_or(0);
        assert_eq!(n, 0, "the slow client was disconnected");
    }
}

#[tokio::test]
async fn mock_stats_are_bounded() {
    use backchat::mock::{MockConfig, MockServer};
    let server = MockServer::start(MockConfig {
        keep_request_records: false,
        ..MockConfig::default()
    })
    .await
    .expect("mock");
    let url = format!("{}/v1/messages", server.base_url());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let _ = client
            .post(&url)
            .header("x-api-key", "sk-ant-mock-1234567890")
            .header("anthropic-version", "2023-06-01")
            .body("{}")
            .send()
            .await
            .expect("send");
    }
    let stats = server.control().stats();
    assert_eq!(stats.messages_requests, 3);
    assert!(stats.requests.is_empty(), "no per-request records");
}
