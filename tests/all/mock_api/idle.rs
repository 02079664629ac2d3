//! The idle timeout for kept-alive connections: an idle connection is closed and frees its
//! slot, while a response in progress (a slow first byte, a pause, a long stream) is never
//! idle, and each request restarts the idle clock.

use std::io;
use std::time::Duration;

use backchat::mock::{MockConfig, MockServer, ScriptStep};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::harness::{Harness, KEY, instant, names, simple};

/// The idle timeout these tests give the mock.
const IDLE: Duration = Duration::from_secs(5);

/// `GET /v1/models` on an open connection, kept alive; the status of the answer, read to the
/// end of its body.
async fn get_models(s: &mut TcpStream) -> io::Result<u16> {
    let request = format!(
        "GET /v1/models HTTP/1.1\r\nhost: mock\r\nx-api-key: {KEY}\r\nanthropic-version: 2023-06-01\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .expect("a status line");
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .expect("a content-length");
    while buf.len() < head_end + length {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(status)
}

/// Wait (at most `limit`) for the server to close `s`; true if it did.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(limit, s.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

fn with_idle_timeout(config: MockConfig) -> MockConfig {
    MockConfig {
        idle_timeout: Some(IDLE),
        ..config
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_kept_alive_connection_is_closed_and_frees_its_slot() {
    let server = MockServer::start(MockConfig {
        max_connections: 1,
        ..with_idle_timeout(instant())
    })
    .await
    .expect("mock starts");
    // The first client takes the only slot, makes a request and keeps the connection open.
    let mut idle = TcpStream::connect(server.addr()).await.expect("connect");
    assert_eq!(get_models(&mut idle).await.expect("served"), 200);
    let t0 = Instant::now();
    // A second client waits behind the cap until the idle one is closed.
    let mut waiting = TcpStream::connect(server.addr()).await.expect("connect");
    let status = tokio::time::timeout(Duration::from_mins(10), get_models(&mut waiting))
        .await
        .expect("the waiting client is served once the idle connection is closed")
        .expect("served");
    assert_eq!(status, 200);
    let waited = t0.elapsed();
    assert!(
        waited >= IDLE && waited < IDLE + Duration::from_secs(1),
        "{waited:?}"
    );
    assert!(
        closed_within(&mut idle, Duration::ZERO).await,
        "the idle connection was closed"
    );
}

/// Three idle timeouts: how long the stalled responses below keep silent.
const STALL: Duration = Duration::from_secs(15);

#[tokio::test(start_paused = true)]
async fn a_slow_first_byte_past_the_idle_timeout_is_not_cut() {
    let h = Harness::start(with_idle_timeout(instant())).await;
    h.server
        .control()
        .push_script([ScriptStep::SlowFirstByte { delay: STALL }]);
    let t = Instant::now();
    let r = h.post(&simple("x", 50, false)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.broken);
    assert_eq!(r.json()["type"], "message");
    assert!(t.elapsed() >= STALL, "{:?}", t.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_stream_paused_past_the_idle_timeout_is_not_cut() {
    let h = Harness::start(with_idle_timeout(instant())).await;
    h.server.control().push_script([ScriptStep::Pause {
        after_tokens: 1,
        delay: STALL,
    }]);
    let t = Instant::now();
    let r = h.post(&simple("x", 50, true)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.broken, "the paused stream was cut");
    assert_eq!(names(&r.events()).last(), Some(&"message_stop"));
    assert!(t.elapsed() >= STALL, "{:?}", t.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_stream_longer_than_the_idle_timeout_is_not_cut() {
    // 5 tokens a second: a reply of a hundred-odd tokens streams for well over the timeout.
    let h = Harness::start(with_idle_timeout(MockConfig {
        token_rate: 5.0,
        ..instant()
    }))
    .await;
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(12);
    h.server
        .control()
        .push_script([ScriptStep::Reply { text: text.clone() }]);
    let t = Instant::now();
    let r = h.post(&simple("x", 4000, true)).await;
    let lasted = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.broken, "the stream was cut after {lasted:?}");
    assert_eq!(names(&r.events()).last(), Some(&"message_stop"));
    assert!(lasted > IDLE * 3, "the stream lasted only {lasted:?}");
}

#[tokio::test(start_paused = true)]
async fn each_request_restarts_the_idle_clock() {
    let server = MockServer::start(with_idle_timeout(instant()))
        .await
        .expect("mock starts");
    let mut s = TcpStream::connect(server.addr()).await.expect("connect");
    assert_eq!(get_models(&mut s).await.expect("first request"), 200);
    // Two more requests, each 0.6 timeouts after the previous one: the connection has been
    // open longer than the timeout, but never idle that long.
    for n in 2..=3 {
        tokio::time::sleep(IDLE.mul_f64(0.6)).await;
        let status = get_models(&mut s)
            .await
            .unwrap_or_else(|e| panic!("request {n} on the same connection: {e}"));
        assert_eq!(status, 200);
    }
    // Then it is closed one full timeout after the last response.
    let t = Instant::now();
    assert!(
        closed_within(&mut s, IDLE * 10).await,
        "the idle connection was closed"
    );
    let idle_for = t.elapsed();
    assert!(
        idle_for >= IDLE && idle_for < IDLE + Duration::from_millis(100),
        "{idle_for:?}"
    );
}
