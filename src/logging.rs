//! Logs: the log file, the redaction filter every log line and panic message goes through,
//! and one log line per request from the turn events.
//!
//! The log goes to a file in the XDG state directory, never to the terminal: the TUI owns the
//! screen, and in headless mode stderr is for the one-line human messages. Every line passes
//! through [`redact`], which replaces the text of each secret given to
//! [`crate::secret::register_secret`]
//! (the API key), so a key cannot reach the log even if some library logs a header.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use crate::clock::human_duration;
use crate::retry::TurnEvent;
use crate::secret::redact;

/// The level filter for a level name (`off`, `error`, `warn`, `info`, `debug`, `trace`).
pub fn parse_level(level: &str) -> Option<LevelFilter> {
    match level.trim().to_ascii_lowercase().as_str() {
        "off" => Some(LevelFilter::OFF),
        "error" => Some(LevelFilter::ERROR),
        "warn" => Some(LevelFilter::WARN),
        "info" => Some(LevelFilter::INFO),
        "debug" => Some(LevelFilter::DEBUG),
        "trace" => Some(LevelFilter::TRACE),
        _ => None,
    }
}

/// Why the log could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// No state directory (no home directory).
    #[error("there is no state directory for the log file (set HOME or XDG_STATE_HOME)")]
    NoStateDir,
    /// The level is not one we know.
    #[error("unknown log level {0:?}")]
    BadLevel(String),
    /// The file (or its directory) could not be opened.
    #[error("cannot open the log file {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A global subscriber was already installed.
    #[error("logging was already set up")]
    AlreadySet,
}

/// Start logging to the file at `path` (appended) at `level`. Returns `Ok(None)` when the
/// level is `off` (no file is opened), otherwise the path written to.
///
/// `level` applies to backchat's own lines. Other crates (the HTTP stack) log warnings and
/// errors only, unless the level is `trace`, where everything is let through.
pub fn init(level: &str, path: Option<&Path>) -> Result<Option<PathBuf>, LogError> {
    let filter = parse_level(level).ok_or_else(|| LogError::BadLevel(level.to_string()))?;
    if filter == LevelFilter::OFF {
        return Ok(None);
    }
    let path = path.ok_or(LogError::NoStateDir)?;
    let file = open_log_file(path).map_err(|source| LogError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let others = if filter == LevelFilter::TRACE {
        LevelFilter::TRACE
    } else {
        filter.min(LevelFilter::WARN)
    };
    let targets = Targets::new()
        .with_target("backchat", filter)
        .with_default(others);
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(RedactingWriter::new(file));
    let subscriber = tracing_subscriber::registry().with(layer).with(targets);
    tracing::subscriber::set_global_default(subscriber).map_err(|_| LogError::AlreadySet)?;
    Ok(Some(path.to_path_buf()))
}

fn open_log_file(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        crate::util::create_private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // The log holds prompts' metadata and request ids: private to the user.
        options.mode(0o600);
    }
    options.open(path)
}

/// A [`MakeWriter`] that redacts each log line before it reaches `W`.
///
/// Each event gets a fresh [`RedactedLine`] that buffers the whole line and writes it, redacted,
/// in one piece when dropped; a secret split across two `write` calls is therefore still caught.
pub struct RedactingWriter<W> {
    inner: Arc<Mutex<W>>,
}

impl<W> Clone for RedactingWriter<W> {
    fn clone(&self) -> Self {
        RedactingWriter {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<W: Write> RedactingWriter<W> {
    /// Wrap a writer.
    pub fn new(inner: W) -> Self {
        RedactingWriter {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    /// The shared inner writer (tests read what was written).
    pub fn inner(&self) -> Arc<Mutex<W>> {
        Arc::clone(&self.inner)
    }
}

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for RedactingWriter<W> {
    type Writer = RedactedLine<W>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactedLine {
            buf: Vec::new(),
            inner: Arc::clone(&self.inner),
        }
    }
}

/// One log line on its way through [`redact`].
pub struct RedactedLine<W: Write> {
    buf: Vec<u8>,
    inner: Arc<Mutex<W>>,
}

impl<W: Write> Write for RedactedLine<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for RedactedLine<W> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = redact(&String::from_utf8_lossy(&self.buf));
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A log line that cannot be written is dropped: logging must never stop the program.
        let _ = inner.write_all(text.as_bytes());
        let _ = inner.flush();
    }
}

/// Install the panic hook: the message goes to stderr through [`redact`], so a key in a panic
/// message never reaches the terminal. It replaces (does not call) the default hook, which
/// would print the message unfiltered; a hook installed later (the TUI's, which restores the
/// terminal first) should call this one.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.payload_as_str().unwrap_or("(no message)");
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        let mut text = format!(
            "backchat crashed (thread '{name}'{location}): {message}\n\
             This is a bug in backchat; please report it. Set RUST_BACKTRACE=1 for a backtrace.\n"
        );
        let trace = std::backtrace::Backtrace::capture();
        if trace.status() == std::backtrace::BacktraceStatus::Captured {
            text.push_str(&format!("{trace}\n"));
        }
        let _ = std::io::stderr().write_all(redact(&text).as_bytes());
    }));
}

/// Turns a turn's events into log lines: one per request (accepted, or failed and retried)
/// with its status, request id, attempt and wait, plus pacing waits and how the turn ended.
/// The TUI and the headless printer feed it every event they consume.
#[derive(Debug, Default)]
pub struct TurnLogger {
    attempt: u32,
    max_attempts: u32,
    waited: Duration,
    request_id: Option<String>,
}

impl TurnLogger {
    /// A logger for a new turn.
    pub fn new() -> TurnLogger {
        TurnLogger::default()
    }

    /// Log what `event` says, if it is worth a line.
    pub fn observe(&mut self, event: &TurnEvent) {
        match event {
            TurnEvent::Pacing {
                delay,
                bucket,
                source,
                ..
            } => {
                self.waited += *delay;
                tracing::info!(
                    wait = %human_duration(*delay),
                    bucket = bucket.label(),
                    source = source.label(),
                    "pacing before sending"
                );
            }
            TurnEvent::Sending {
                attempt,
                max_attempts,
            } => {
                self.attempt = *attempt;
                self.max_attempts = *max_attempts;
                tracing::debug!(attempt, max_attempts, "sending request");
            }
            TurnEvent::Quota(q) => tracing::debug!(quota = ?q, "rate-limit headers"),
            TurnEvent::RetryScheduled {
                attempt,
                max_attempts,
                delay,
                cause,
                status,
                error_type,
                source,
                message,
                request_id,
                ..
            } => {
                self.waited += *delay;
                tracing::info!(
                    attempt = attempt.saturating_sub(1),
                    max_attempts,
                    status = status.map_or_else(|| "-".to_string(), |s| s.to_string()),
                    request_id = request_id.as_deref().unwrap_or("-"),
                    error_type = error_type.as_deref().unwrap_or("-"),
                    cause = cause.label(),
                    wait = %human_duration(*delay),
                    source = source.label(),
                    error = %crate::util::clip(message, 200),
                    "request failed; retrying after the wait"
                );
            }
            TurnEvent::Started { request_id, model } => {
                self.request_id.clone_from(request_id);
                tracing::info!(
                    status = 200,
                    request_id = request_id.as_deref().unwrap_or("-"),
                    attempt = self.attempt,
                    max_attempts = self.max_attempts,
                    waited = %human_duration(self.waited),
                    model = model.as_str(),
                    "request accepted; reply streaming"
                );
            }
            TurnEvent::TextDelta { text } | TurnEvent::ThinkingDelta { text } => {
                tracing::trace!(chars = text.chars().count(), "delta");
            }
            TurnEvent::Usage(_) => {}
            TurnEvent::Finished { stop_reason, usage } => tracing::info!(
                request_id = self.request_id.as_deref().unwrap_or("-"),
                stop_reason = stop_reason.as_deref().unwrap_or("-"),
                input_tokens = usage.input_tokens,
                output_tokens = usage.output_tokens,
                "turn finished"
            ),
            TurnEvent::Interrupted {
                error,
                partial_kept,
            } => tracing::warn!(
                request_id = self.request_id.as_deref().unwrap_or("-"),
                partial_kept,
                error = %error,
                "turn interrupted"
            ),
            TurnEvent::Failed(f) => tracing::warn!(
                kind = ?f.kind,
                attempts = f.attempts,
                status = f
                    .api
                    .as_ref()
                    .and_then(|a| a.status)
                    .map_or_else(|| "-".to_string(), |s| s.to_string()),
                request_id = f
                    .api
                    .as_ref()
                    .and_then(|a| a.request_id.as_deref())
                    .unwrap_or("-"),
                waited = %human_duration(self.waited),
                error = %f.message,
                "turn failed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{ApiKey, REDACTED, register_secret};

    #[test]
    fn log_lines_are_redacted_even_when_split_across_writes() {
        let key = ApiKey::new("sk-ant-unit-SPLIT-0987654").expect("non-empty");
        register_secret(&key);
        let writer = RedactingWriter::new(Vec::<u8>::new());
        {
            let mut line = writer.make_writer();
            line.write_all(b"header x-api-key: sk-ant-unit-SP")
                .expect("buffered");
            line.write_all(b"LIT-0987654\n").expect("buffered");
        }
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(key = "sk-ant-unit-SPLIT-0987654", "logged by accident");
        });
        let inner = writer.inner();
        let written = inner.lock().expect("not poisoned");
        let text = String::from_utf8_lossy(&written);
        assert!(!text.contains("SPLIT-0987654"), "{text}");
        assert_eq!(text.matches(REDACTED).count(), 2, "{text}");
    }

    #[test]
    fn levels() {
        assert_eq!(parse_level("DEBUG"), Some(LevelFilter::DEBUG));
        assert_eq!(parse_level("off"), Some(LevelFilter::OFF));
        assert_eq!(parse_level("loud"), None);
    }
}
