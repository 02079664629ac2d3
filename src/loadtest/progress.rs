//! A progress bar on stderr while a load test runs, only when stderr is a terminal (so logs,
//! pipes and `--json` consumers never see it). Counted in completed requests.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Redraw at most this often (real time, whatever clock the run is on).
const REDRAW: std::time::Duration = std::time::Duration::from_millis(100);

/// Shared by every user of every run; cheap to advance.
pub struct Progress {
    total: usize,
    done: AtomicUsize,
    enabled: bool,
    drawn: Mutex<(std::time::Instant, String)>,
}

impl Progress {
    /// A bar for `total` requests; drawn only if stderr is a terminal.
    pub fn new(total: usize) -> Progress {
        Progress::with_output(total, std::io::stderr().is_terminal())
    }

    /// A bar that draws or not, as told.
    pub fn with_output(total: usize, enabled: bool) -> Progress {
        Progress {
            total: total.max(1),
            done: AtomicUsize::new(0),
            enabled,
            drawn: Mutex::new((std::time::Instant::now(), String::new())),
        }
    }

    /// Say what is running now ("backchat, seed 3").
    pub fn label(&self, text: &str) {
        if !self.enabled {
            return;
        }
        let mut d = self
            .drawn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        d.1 = text.to_string();
        drop(d);
        self.draw(true);
    }

    /// `n` more requests completed.
    pub fn advance(&self, n: usize) {
        self.done.fetch_add(n, Ordering::Relaxed);
        if self.enabled {
            self.draw(false);
        }
    }

    /// Requests completed so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    fn draw(&self, force: bool) {
        let mut d = self
            .drawn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if !force && now.duration_since(d.0) < REDRAW {
            return;
        }
        d.0 = now;
        let done = self.done().min(self.total);
        let width = 30;
        let filled = done * width / self.total;
        let bar: String = "#".repeat(filled) + &"-".repeat(width - filled);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K[{bar}] {:>3}%  {done}/{} requests  {}",
            done * 100 / self.total,
            self.total,
            d.1
        );
        let _ = err.flush();
    }

    /// Erase the bar.
    pub fn finish(&self) {
        if self.enabled {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}
