//! The real binary in a pseudo-terminal on its embedded mock: attach a file with `/attach`,
//! see its chip with the token estimate, send a prompt, and read the mock's reply naming the
//! file and the size it received.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const BIN: &str = env!("CARGO_BIN_EXE_backchat");
const GUARD: Duration = Duration::from_secs(30);

fn wait_for(parser: &Mutex<vt100::Parser>, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let text = parser.lock().expect("parser").screen().contents();
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

#[test]
fn attach_a_file_and_the_mock_proves_it_received_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("notes.txt");
    let content = "The bucket refills at 50 requests per minute.\n".repeat(30);
    std::fs::write(&file, &content).expect("write");

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
    cmd.env_remove("ANTHROPIC_API_KEY");
    cmd.env_remove("ANTHROPIC_BASE_URL");
    cmd.env("TERM", "xterm-256color");
    cmd.env("HOME", dir.path());
    cmd.env("XDG_CONFIG_HOME", dir.path().join("config"));
    cmd.env("XDG_DATA_HOME", dir.path().join("data"));
    cmd.env("XDG_STATE_HOME", dir.path().join("state"));
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
                        // Answer the device-attributes query as a real terminal would.
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
    let send = |bytes: &[u8]| {
        let mut w = writer.lock().expect("writer");
        w.write_all(bytes).expect("write");
        w.flush().expect("flush");
    };

    wait_for(&parser, "the composer", |s| s.contains("Type a message"));
    send(format!("/attach {}", file.display()).as_bytes());
    send(b"\r");
    let chip = wait_for(&parser, "the chip", |s| s.contains("📎 notes.txt"));
    let tokens = backchat::chat::attach::Attachment::from_bytes("notes.txt", content.as_bytes())
        .expect("text")
        .tokens;
    assert!(chip.contains(&format!("~{tokens} tokens")), "{chip}");

    send(b"What does the file say?");
    send(b"\r");
    let reply = wait_for(&parser, "the mock's receipt", |s| {
        s.contains(&format!("Received notes.txt ({} bytes).", content.len()))
    });
    assert!(
        !reply.contains("📎 notes.txt · ~"),
        "the chip went with the prompt"
    );
    assert!(reply.contains("📎 notes.txt"), "the turn names its file");

    send(b"\x03");
    send(b"\x03");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        assert!(start.elapsed() < GUARD, "backchat did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}
