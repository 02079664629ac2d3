//! The real binary in a pseudo-terminal, read through a vt100 parser: the screen as a person
//! sees it. A thread always drains the PTY (a full PTY buffer would stall the program's
//! rendering) and answers the device-attributes query crossterm sends at start-up, as a real
//! terminal would, so that the program does not wait for it.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, ExitStatus, MasterPty, PtySize, native_pty_system};

/// Longest wait for anything on screen before the test fails.
pub const GUARD: Duration = Duration::from_secs(30);

/// A program running in a pseudo-terminal.
pub struct Pty {
    parser: Arc<Mutex<vt100::Parser>>,
    /// While set, the program's output is left unread (its writes block, as on a terminal
    /// that has stopped scrolling).
    paused: Arc<std::sync::atomic::AtomicBool>,
    writer: Arc<Mutex<Box<dyn Write + Send>>>,
    child: Box<dyn Child + Send + Sync>,
    _master: Box<dyn MasterPty + Send>,
}

impl Pty {
    /// Start `cmd` in a `rows` × `cols` terminal.
    pub fn spawn(cmd: CommandBuilder, rows: u16, cols: u16) -> Pty {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("pty");
        let child = pair.slave.spawn_command(cmd).expect("spawn the program");
        drop(pair.slave);
        let parser = Arc::new(Mutex::new(vt100::Parser::new(
            std::num::NonZeroU16::new(rows).expect("non-zero rows"),
            std::num::NonZeroU16::new(cols).expect("non-zero cols"),
            0,
        )));
        let mut reader = pair.master.try_clone_reader().expect("reader");
        let writer = Arc::new(Mutex::new(pair.master.take_writer().expect("writer")));
        let paused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let parser = Arc::clone(&parser);
            let writer = Arc::clone(&writer);
            let paused = Arc::clone(&paused);
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    while paused.load(std::sync::atomic::Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let chunk = &buf[..n];
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
        Pty {
            parser,
            paused,
            writer,
            child,
            _master: pair.master,
        }
    }

    /// The screen's text now.
    pub fn text(&self) -> String {
        self.parser.lock().expect("parser").screen().contents()
    }

    /// The parsed terminal, for attributes beyond the text (alternate screen, cursor).
    pub fn parser(&self) -> std::sync::MutexGuard<'_, vt100::Parser> {
        self.parser.lock().expect("parser")
    }

    /// Wait until the screen satisfies `cond`; fail after [`GUARD`] naming `what`.
    pub fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
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

    /// Stop reading the program's output (`true`), or read it again.
    #[allow(
        dead_code,
        reason = "tests/tui_e2e.rs includes this file on its own and does not pause"
    )]
    pub fn pause_output(&self, paused: bool) {
        self.paused
            .store(paused, std::sync::atomic::Ordering::SeqCst);
    }

    /// Type `bytes`.
    pub fn send(&self, bytes: &[u8]) {
        let mut w = self.writer.lock().expect("writer");
        w.write_all(bytes).expect("write");
        w.flush().expect("flush");
    }

    /// Wait for the program to exit; fail after [`GUARD`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(start.elapsed() < GUARD, "the program did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
