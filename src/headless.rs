//! Headless mode (`backchat -p`): one turn, the reply streamed to stdout as it arrives, one
//! human line per notable event on stderr, every event as JSON Lines with `--events`.
//!
//! Exit codes (docs/architecture.md, *Surfaces and exit codes*): 0 done, 2 usage or config error, 3 API error that is not retried,
//! 4 retries exhausted / wait too long / deadline passed, 5 the stream broke after it had
//! started (the partial reply stays printed), 130 cancelled.

use std::io::Write;

use futures::{FutureExt, Stream, StreamExt};

use crate::chat::{
    Conversation, LoadReport, Session, SessionChoice, SessionError, SessionStore, Turn,
};
use crate::clock::human_duration;
use crate::exit::{
    CANCELLED as EXIT_CANCELLED, FAILED as EXIT_FAILED, INTERRUPTED as EXIT_INTERRUPTED,
    OK as EXIT_OK, USAGE as EXIT_USAGE,
};
use crate::retry::{DelaySource, TurnEvent, WaitCause};

/// What a headless run sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// A prompt (`-` reads it from stdin).
    Prompt(&'a str),
    /// `--continue-reply`: continue the session's last reply that broke off mid-stream.
    ContinueReply,
}

/// How a headless turn ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The exit code.
    pub exit_code: i32,
    /// Bytes of reply text printed (complete or partial). The text itself is kept once, in
    /// the session's turn, not here as well.
    pub printed: usize,
    /// True when the turn ended `Interrupted`.
    pub interrupted: bool,
    /// Bytes of server text neutralised for the terminal (see [`crate::sanitize`]).
    pub stripped: usize,
}

/// How [`print_turn_with`] treats its outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrintOptions {
    /// Neutralise control characters and escape sequences in the reply (stdout is a
    /// terminal and `--raw` is off).
    pub sanitize_out: bool,
    /// Neutralise them in the human lines (stderr is a terminal).
    pub sanitize_err: bool,
    /// The transport's header timeout: announced on stderr when an attempt has had no
    /// answer for [`ANNOUNCE_SLOW_ANSWER`].
    pub header_timeout: Option<std::time::Duration>,
}

/// How long an attempt may go unanswered before stderr says what the wait is bounded by.
pub const ANNOUNCE_SLOW_ANSWER: std::time::Duration = std::time::Duration::from_secs(5);

/// Run `backchat -p`: read the prompt (`-` means stdin), open the session, start the backend,
/// stream one turn, and append it to the session.
///
/// The session's earlier turns are sent as context. Without `--session`/`--continue` the turn
/// goes to a new session with a generated name, so that `backchat -p --continue` can follow up.
/// `session_choice` is `None` with `--no-session`: nothing is read or saved.
pub async fn run(
    input: Input<'_>,
    events_path: Option<&str>,
    config: &crate::config::Config,
    mock: Option<crate::mock::MockConfig>,
    session_choice: Option<&SessionChoice>,
) -> i32 {
    let mut stderr = std::io::stderr();
    let prompt = match input {
        Input::Prompt(arg) => match read_prompt(arg) {
            Ok(p) => Some(p),
            Err(message) => {
                say(&mut stderr, &message);
                return EXIT_USAGE;
            }
        },
        Input::ContinueReply => None,
    };
    let mut events_file: Option<Box<dyn Write>> = match events_path {
        None => None,
        Some("-") => Some(Box::new(std::io::stderr())),
        Some(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(f) => Some(Box::new(std::io::BufWriter::new(f))),
            Err(e) => {
                say(
                    &mut stderr,
                    &format!("cannot open the events file {path}: {e}"),
                );
                return EXIT_USAGE;
            }
        },
    };
    let opened = match session_choice {
        Some(choice) => open_session(config, choice),
        None => Ok((None, Conversation::default(), LoadReport::default())),
    };
    let (mut session, mut conversation) = match opened {
        Ok((session, conversation, report)) => {
            if let Some(s) = &session {
                for line in report.lines(s.name()) {
                    say(&mut stderr, &line);
                }
            }
            (session, conversation)
        }
        Err(SessionOpenError::Fatal(message)) => {
            say(&mut stderr, &message);
            return EXIT_USAGE;
        }
    };
    let backend = match crate::backend::Backend::start(config, mock).await {
        Ok(b) => b,
        Err(e) => {
            say(&mut stderr, &e.to_string());
            return EXIT_USAGE;
        }
    };
    if backend.is_mock() {
        say(
            &mut stderr,
            "no ANTHROPIC_API_KEY set; answering from the embedded mock API (canned replies, real rate limits).",
        );
    }
    if let Some(crate::limiter::LimiterHealth::Degraded(message)) =
        backend.driver.limiter().map(|l| l.health())
    {
        say(&mut stderr, &format!("warning: {message}"));
    }
    // The turn this run replaces, when it continues a broken reply.
    let mut replaces: Option<usize> = None;
    let (request, mut turn) = if let Some(prompt) = prompt {
        conversation
            .turns
            .push(Turn::new(prompt, config.model.clone()));
        let index = conversation.turns.len() - 1;
        let request = conversation.request_for(index, config, None);
        (request, conversation.turns[index].clone())
    } else {
        let last = conversation.turns.iter().rposition(|t| !t.superseded);
        let Some(index) = last.filter(|i| crate::chat::resume::can_resume(&conversation.turns[*i]))
        else {
            let name = session.as_ref().map_or("-", |s| s.name());
            say(
                &mut stderr,
                &format!(
                    "--continue-reply: the last turn of session {name} is not a reply that broke off"
                ),
            );
            return EXIT_USAGE;
        };
        let (request, mode) = conversation.continue_request(index, config);
        tracing::info!(?mode, turn = index, "continuing a broken reply");
        let turn =
            crate::chat::resume::continuation_turn(&conversation.turns[index], &config.model);
        // The reply on stdout is the whole of it: the part kept, then the rest.
        let mut stdout = std::io::stdout();
        let _ = write!(stdout, "{}", turn.assistant);
        let _ = stdout.flush();
        replaces = Some(index);
        (request, turn)
    };
    let mut logger = crate::logging::TurnLogger::new();
    let events = backend.driver.run(request).inspect(|event| {
        crate::chat::apply_event(&mut turn, event);
        logger.observe(event);
    });
    let mut stdout = std::io::stdout();
    let cancel = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let opts = {
        use std::io::IsTerminal;
        PrintOptions {
            sanitize_out: stdout.is_terminal() && !config.raw,
            sanitize_err: stderr.is_terminal(),
            header_timeout: (!backend.is_mock()).then_some(config.header_timeout),
        }
    };
    let outcome = print_turn_with(
        events,
        &mut stdout,
        &mut stderr,
        events_file.as_mut().map(|w| &mut **w as &mut dyn Write),
        cancel,
        opts,
    )
    .await;
    if outcome.stripped > 0 {
        tracing::info!(
            stripped_bytes = outcome.stripped,
            "terminal control characters neutralised"
        );
        if let Some(w) = events_file.as_mut() {
            let line = serde_json::json!({
                "event": "sanitized",
                "stripped_bytes": outcome.stripped,
                "ts": crate::clock::rfc3339_millis(crate::clock::wall_now()),
            });
            let _ = writeln!(w, "{line}").and_then(|()| w.flush());
        }
        say(
            &mut stderr,
            &format!(
                "{} bytes of terminal control characters in the server's text were neutralised (--raw prints them as sent)",
                outcome.stripped
            ),
        );
    }
    crate::chat::end_unfinished(&mut turn, outcome.exit_code == EXIT_CANCELLED);
    if let (Some(session), Some(index)) = (session.as_mut(), replaces)
        && let Err(e) = session.mark_superseded(index)
    {
        say(
            &mut stderr,
            &format!("warning: the broken turn was not marked superseded: {e}"),
        );
    }
    if let Some(session) = session.as_mut() {
        match session.append_turn(&turn) {
            Ok(()) => tracing::debug!(
                session = session.name(),
                path = %session.path().display(),
                "turn saved"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not save the turn");
                say(
                    &mut stderr,
                    &format!("warning: the turn was not saved to the session: {e}"),
                );
            }
        }
    }
    // A shared limiter may still be writing this turn's corrections: give it a moment, so
    // that the next process starts from the true state (bounded: Redis may be gone).
    if let Some(limiter) = backend.driver.limiter() {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(100), limiter.flush()).await;
    }
    outcome.exit_code
}

/// A line on stderr, `backchat: …`, with any secret redacted.
/// On a terminal, server text in the message is neutralised (see [`crate::sanitize`]).
fn say(err: &mut dyn Write, message: &str) {
    use std::io::IsTerminal;
    let message = crate::secret::redact(message);
    let (message, _) = crate::sanitize::for_terminal(&message, std::io::stderr().is_terminal());
    let _ = writeln!(err, "backchat: {message}");
}

enum SessionOpenError {
    /// The session the person asked for cannot be used: stop (exit 2).
    Fatal(String),
}

/// The session to append to and its conversation so far. A new unnamed session that cannot
/// be set up (no data directory) is not fatal: the turn runs, unsaved, with a warning.
fn open_session(
    config: &crate::config::Config,
    choice: &SessionChoice,
) -> Result<(Option<Session>, Conversation, LoadReport), SessionOpenError> {
    let fatal = |e: SessionError| SessionOpenError::Fatal(format!("session error: {e}"));
    let opened = SessionStore::from_paths(&config.paths).and_then(|store| store.choose(choice));
    let mut session = match (opened, choice) {
        (Ok(s), _) => s,
        (Err(e), SessionChoice::New) => {
            let _ = writeln!(
                std::io::stderr(),
                "backchat: warning: this turn will not be saved: {e}"
            );
            return Ok((None, Conversation::default(), LoadReport::default()));
        }
        (Err(e), _) => return Err(fatal(e)),
    };
    let (conversation, report) = session.load().map_err(fatal)?;
    tracing::info!(
        session = session.name(),
        path = %session.path().display(),
        turns = report.turns,
        skipped = report.issues.len(),
        "session opened"
    );
    Ok((Some(session), conversation, report))
}

/// The prompt from the argument, or from stdin when the argument is `-`.
fn read_prompt(arg: &str) -> Result<String, String> {
    let text = if arg == "-" {
        use std::io::{IsTerminal, Read};
        if std::io::stdin().is_terminal() {
            return Err("-p needs a prompt: give it as an argument or pipe it on stdin".into());
        }
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .map_err(|e| format!("cannot read the prompt from stdin: {e}"))?;
        buf
    } else {
        arg.to_string()
    };
    if text.trim().is_empty() {
        return Err("the prompt is empty".into());
    }
    Ok(text)
}

/// Consume a turn's events: text to `out` (flushed whenever the turn waits), human lines to `err`, JSON
/// Lines to `events`. Stops at the terminal event, or when `cancel` resolves (exit 130).
/// Bytes pass unchanged; see [`print_turn_with`].
pub async fn print_turn<S, C>(
    turn: S,
    out: &mut dyn Write,
    err: &mut dyn Write,
    events: Option<&mut dyn Write>,
    cancel: C,
) -> Outcome
where
    S: Stream<Item = TurnEvent>,
    C: std::future::Future<Output = ()>,
{
    print_turn_with(turn, out, err, events, cancel, PrintOptions::default()).await
}

/// Tracks the reply printed so far without keeping it: whether a newline is owed at the end.
#[derive(Default)]
struct Printed {
    bytes: usize,
    ends_with_newline: bool,
    stripped: usize,
}

/// A write that failed: the turn ends with this message and exit code 1.
fn write_failed(what: &str, e: &std::io::Error) -> String {
    format!("cannot write {what}: {e}; the turn was stopped")
}

/// [`print_turn`] with options. A failed write to `out` or `events` ends the turn at once
/// (dropping `turn` cancels it) with a message on `err` and exit code 1; a failed write to
/// `err` ends it with exit code 1 too, as there is nowhere left to say so.
pub async fn print_turn_with<S, C>(
    turn: S,
    out: &mut dyn Write,
    err: &mut dyn Write,
    mut events: Option<&mut dyn Write>,
    cancel: C,
    opts: PrintOptions,
) -> Outcome
where
    S: Stream<Item = TurnEvent>,
    C: std::future::Future<Output = ()>,
{
    let mut turn = std::pin::pin!(turn);
    let mut cancel = std::pin::pin!(cancel);
    let mut printed = Printed::default();
    // Deltas are buffered and flushed whenever no further event is ready at once: a write
    // per delta made the reply's printing cost more than its decoding.
    let mut out = std::io::BufWriter::with_capacity(64 << 10, out);
    let out: &mut dyn Write = &mut out;
    let outcome = |code: i32, printed: &Printed, interrupted: bool| Outcome {
        exit_code: code,
        printed: printed.bytes,
        interrupted,
        stripped: printed.stripped,
    };
    let failed = |err: &mut dyn Write, printed: &Printed, message: String| {
        let _ = writeln!(err, "backchat: {message}");
        let _ = err.flush();
        outcome(EXIT_FAILED, printed, false)
    };
    // When the last event was `Sending` (an attempt in flight), and whether the slow answer
    // was announced already.
    let mut sending_since: Option<tokio::time::Instant> = None;
    // The model that answers (from `Started`): usage events are priced for it.
    let mut model: Option<String> = None;
    loop {
        // An event ready at once is handled without a flush or a timer; the reply is flushed
        // whenever the turn has to wait.
        let next = if let Some(next) = turn.next().now_or_never() {
            if (&mut cancel).now_or_never().is_some() {
                let _ = end_line(out, &printed);
                let _ = writeln!(err, "cancelled");
                return outcome(EXIT_CANCELLED, &printed, false);
            }
            next
        } else {
            if let Err(e) = out.flush() {
                return failed(err, &printed, write_failed("the reply to stdout", &e));
            }
            let announce_at = sending_since
                .filter(|_| opts.header_timeout.is_some())
                .map(|t| t + ANNOUNCE_SLOW_ANSWER);
            tokio::select! {
                ev = turn.next() => ev,
                () = async {
                    match announce_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    sending_since = None;
                    if let Some(limit) = opts.header_timeout {
                        let _ = writeln!(
                            err,
                            "no answer from the server yet after {}; waiting up to {} for it to start (--header-timeout)",
                            human_duration(ANNOUNCE_SLOW_ANSWER),
                            human_duration(limit)
                        );
                    }
                    continue;
                }
                () = &mut cancel => {
                    let _ = end_line(out, &printed);
                    let _ = writeln!(err, "cancelled");
                    return outcome(EXIT_CANCELLED, &printed, false);
                }
            }
        };
        let Some(event) = next else {
            // A driver always ends with a terminal event; treat a silent end as a break.
            let _ = end_line(out, &printed);
            let _ = writeln!(err, "interrupted: the turn ended without a result");
            return outcome(EXIT_INTERRUPTED, &printed, true);
        };
        sending_since = matches!(event, TurnEvent::Sending { .. }).then(tokio::time::Instant::now);
        if let TurnEvent::Started { model: m, .. } = &event {
            model = Some(m.clone());
        }
        if let Some(w) = events.as_deref_mut()
            && let Err(e) = write_event_priced(w, &event, model.as_deref())
        {
            return failed(err, &printed, write_failed("the events file", &e));
        }
        if let Some(line) = human_line(&event) {
            // The reply so far goes out first, so that the two streams interleave in order.
            let _ = out.flush();
            let line = crate::secret::redact(&line);
            let (line, n) = crate::sanitize::for_terminal(&line, opts.sanitize_err);
            printed.stripped += n;
            if writeln!(err, "{line}").and_then(|()| err.flush()).is_err() {
                return outcome(EXIT_FAILED, &printed, false);
            }
        }
        match event {
            TurnEvent::TextDelta { text: t } => {
                let (t, n) = crate::sanitize::for_terminal(&t, opts.sanitize_out);
                printed.stripped += n;
                if let Err(e) = out.write_all(t.as_bytes()) {
                    return failed(err, &printed, write_failed("the reply to stdout", &e));
                }
                if !t.is_empty() {
                    printed.bytes += t.len();
                    printed.ends_with_newline = t.ends_with('\n');
                }
            }
            TurnEvent::Finished { .. } => {
                if let Err(e) = end_line(out, &printed) {
                    return failed(err, &printed, write_failed("the reply to stdout", &e));
                }
                return outcome(EXIT_OK, &printed, false);
            }
            TurnEvent::Interrupted { .. } => {
                let _ = end_line(out, &printed);
                return outcome(EXIT_INTERRUPTED, &printed, true);
            }
            TurnEvent::Failed(f) => {
                return outcome(f.kind.exit_code(), &printed, false);
            }
            _ => {}
        }
    }
}

fn end_line(out: &mut dyn Write, printed: &Printed) -> std::io::Result<()> {
    if printed.bytes > 0 && !printed.ends_with_newline {
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// One JSON line: the event's fields plus `ts`, the wall-clock time it was written. Any
/// registered secret is redacted (a misbehaving proxy could echo the key in an error).
pub fn write_event(w: &mut dyn Write, event: &TurnEvent) -> std::io::Result<()> {
    let mut value = match serde_json::to_value(event) {
        Ok(v) => v,
        Err(e) => serde_json::json!({"event": "unserializable", "error": e.to_string()}),
    };
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "ts".into(),
            serde_json::Value::String(crate::clock::rfc3339_millis(crate::clock::wall_now())),
        );
    }
    writeln!(w, "{}", crate::secret::redact(&value.to_string()))?;
    w.flush()
}

/// Like [`write_event`], and a `usage` or `finished` event also gets a `cost` object priced
/// for `model` (docs/architecture.md, *The TurnEvent seam*): `usd`, `uncached_usd` (the same
/// tokens with no caching), `saved_usd`, `cache_hit_rate` and `price` (`"known"` or
/// `"unknown"`; with an unknown price the dollar fields are null, never a guess).
pub fn write_event_priced(
    w: &mut dyn Write,
    event: &TurnEvent,
    model: Option<&str>,
) -> std::io::Result<()> {
    let (TurnEvent::Usage(usage) | TurnEvent::Finished { usage, .. }) = event else {
        return write_event(w, event);
    };
    let mut value = match serde_json::to_value(event) {
        Ok(v) => v,
        Err(e) => serde_json::json!({"event": "unserializable", "error": e.to_string()}),
    };
    if let Some(obj) = value.as_object_mut() {
        obj.insert("cost".into(), cost_json(usage, model));
        obj.insert(
            "ts".into(),
            serde_json::Value::String(crate::clock::rfc3339_millis(crate::clock::wall_now())),
        );
    }
    writeln!(w, "{}", crate::secret::redact(&value.to_string()))?;
    w.flush()
}

fn cost_json(usage: &crate::api::Usage, model: Option<&str>) -> serde_json::Value {
    let tokens = crate::cost::Tokens::from(usage);
    let prices = model.and_then(crate::cost::prices_for);
    let usd = prices.map(|p| p.cost(&tokens));
    let uncached = prices.map(|p| p.uncached_cost(&tokens));
    serde_json::json!({
        "model": model,
        "price": if prices.is_some() { "known" } else { "unknown" },
        "usd": usd,
        "uncached_usd": uncached,
        "saved_usd": usd.zip(uncached).map(|(a, b)| b - a),
        "cache_hit_rate": tokens.hit_rate(),
    })
}

/// The one human line for an event, if it is notable.
pub fn human_line(event: &TurnEvent) -> Option<String> {
    match event {
        TurnEvent::Pacing {
            delay,
            bucket,
            source,
            ..
        } => Some(format!(
            "pacing: waiting {} for {} quota before sending ({})",
            human_duration(*delay),
            bucket.label(),
            source.label()
        )),
        TurnEvent::RetryScheduled {
            attempt,
            max_attempts,
            delay,
            cause,
            status,
            error_type,
            source,
            message,
            ..
        } => {
            let what = match (status, error_type) {
                (Some(s), Some(t)) => format!("{s} {t}"),
                (None, Some(t)) => t.clone(),
                _ => format!("network error ({})", crate::util::clip(message, 80)),
            };
            let cause = match cause {
                WaitCause::Network
                | WaitCause::Overloaded
                | WaitCause::ServerError
                | WaitCause::RateLimit => String::new(),
                c => format!(", {}", c.label()),
            };
            let source = match source {
                DelaySource::Backoff => "backoff".to_string(),
                s => s.label().to_string(),
            };
            Some(format!(
                "{what}: retrying in {} (attempt {attempt}/{max_attempts}, {source}{cause})",
                human_duration(*delay)
            ))
        }
        TurnEvent::Interrupted {
            error,
            partial_kept,
        } => Some(if *partial_kept {
            format!(
                "interrupted: {error}. The partial reply above is kept; run the command again to retry."
            )
        } else {
            format!("interrupted: {error}. No reply text arrived; run the command again to retry.")
        }),
        TurnEvent::Failed(f) => Some(format!("error: {}", f.message)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{StreamFailure, Usage};
    use crate::quota::Bucket;
    use crate::retry::{FailureKind, TurnFailure};
    use std::time::Duration;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn lines_read_like_the_issue_says() {
        let now = Instant::now();
        let ev = TurnEvent::RetryScheduled {
            attempt: 2,
            max_attempts: 9,
            delay: Duration::from_millis(4200),
            until: now + Duration::from_millis(4200),
            cause: WaitCause::RateLimit,
            status: Some(429),
            error_type: Some("rate_limit_error".into()),
            source: DelaySource::RetryAfter,
            message: "x".into(),
            request_id: None,
        };
        assert_eq!(
            human_line(&ev).as_deref(),
            Some("429 rate_limit_error: retrying in 4.2s (attempt 2/9, retry-after)")
        );
        let pacing = TurnEvent::Pacing {
            delay: Duration::from_millis(2100),
            until: now,
            bucket: Bucket::InputTokens,
            source: DelaySource::Pacer,
        };
        assert_eq!(
            human_line(&pacing).as_deref(),
            Some("pacing: waiting 2.1s for input tokens quota before sending (pacer)")
        );
    }

    #[tokio::test]
    async fn text_goes_to_stdout_and_the_exit_code_follows_the_end() {
        let events = vec![
            TurnEvent::TextDelta {
                text: "Hello".into(),
            },
            TurnEvent::ThinkingDelta {
                text: "secret thoughts".into(),
            },
            TurnEvent::TextDelta {
                text: ", world".into(),
            },
            TurnEvent::Interrupted {
                error: StreamFailure::EndedEarly,
                partial_kept: true,
            },
        ];
        let (mut out, mut err, mut ev) = (Vec::new(), Vec::new(), Vec::new());
        let o = print_turn(
            futures::stream::iter(events),
            &mut out,
            &mut err,
            Some(&mut ev),
            std::future::pending(),
        )
        .await;
        assert_eq!(o.exit_code, EXIT_INTERRUPTED);
        assert_eq!(String::from_utf8_lossy(&out), "Hello, world\n");
        assert!(
            !String::from_utf8_lossy(&out).contains("secret"),
            "thinking never goes to stdout"
        );
        assert!(
            String::from_utf8_lossy(&ev).contains("secret thoughts"),
            "but it is in the events"
        );
        assert_eq!(String::from_utf8_lossy(&ev).lines().count(), 4);

        let failed = vec![TurnEvent::Failed(TurnFailure {
            kind: FailureKind::RetriesExhausted,
            message: "gave up".into(),
            api: None,
            transport: None,
            resets_at: None,
            attempts: 4,
        })];
        let o = print_turn(
            futures::stream::iter(failed),
            &mut Vec::new(),
            &mut err,
            None,
            std::future::pending(),
        )
        .await;
        assert_eq!(o.exit_code, 4);

        let done = vec![TurnEvent::Finished {
            stop_reason: Some("end_turn".into()),
            usage: Usage::default(),
        }];
        let o = print_turn(
            futures::stream::iter(done),
            &mut Vec::new(),
            &mut Vec::new(),
            None,
            std::future::pending(),
        )
        .await;
        assert_eq!(o.exit_code, EXIT_OK);
    }

    #[tokio::test]
    async fn cancel_exits_130() {
        let o = print_turn(
            futures::stream::pending::<TurnEvent>(),
            &mut Vec::new(),
            &mut Vec::new(),
            None,
            async {},
        )
        .await;
        assert_eq!(o.exit_code, EXIT_CANCELLED);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_answer_is_announced_with_its_bound() {
        let turn = futures::stream::iter(vec![TurnEvent::Sending {
            attempt: 1,
            max_attempts: 3,
        }])
        .chain(futures::stream::pending());
        let mut err = Vec::new();
        let o = print_turn_with(
            turn,
            &mut Vec::new(),
            &mut err,
            None,
            tokio::time::sleep(Duration::from_secs(6)),
            PrintOptions {
                header_timeout: Some(Duration::from_mins(1)),
                ..PrintOptions::default()
            },
        )
        .await;
        assert_eq!(o.exit_code, EXIT_CANCELLED);
        let err = String::from_utf8_lossy(&err);
        assert!(
            err.contains("no answer from the server yet after 5.0s; waiting up to 1m00s"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn reply_text_is_neutralised_for_a_terminal_only() {
        let events = || {
            futures::stream::iter(vec![
                TurnEvent::TextDelta {
                    text: "a\u{1b}]52;c;eA==\u{7}b".into(),
                },
                TurnEvent::Finished {
                    stop_reason: None,
                    usage: Usage::default(),
                },
            ])
        };
        let mut out = Vec::new();
        let o = print_turn_with(
            events(),
            &mut out,
            &mut Vec::new(),
            None,
            std::future::pending(),
            PrintOptions {
                sanitize_out: true,
                ..PrintOptions::default()
            },
        )
        .await;
        assert_eq!(o.stripped, 2);
        assert!(!out.contains(&0x1b));
        let mut out = Vec::new();
        let o = print_turn(
            events(),
            &mut out,
            &mut Vec::new(),
            None,
            std::future::pending(),
        )
        .await;
        assert_eq!(o.stripped, 0);
        assert_eq!(out, b"a\x1b]52;c;eA==\x07b\n");
    }
}
