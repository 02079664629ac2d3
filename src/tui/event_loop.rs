//! The thin shell around the pure app: terminal setup and teardown, the crossterm event
//! stream, turn tasks, the effect runner, and frame scheduling.
//!
//! Redraws happen on change only: every message marks the screen dirty, draws are coalesced
//! and capped at about 60 per second, and a 10 Hz-plus tick runs only while a countdown or a
//! spinner is on screen (otherwise the loop sleeps until the next label change, e.g. the
//! quota's age ticking over). An idle TUI uses no CPU.

use std::collections::HashMap;
use std::io::{self, Stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream, KeyEventKind, KeyboardEnhancementFlags, MouseEventKind,
    PopKeyboardEnhancementFlags, PushKeyboardEnhancementFlags,
};
use crossterm::terminal::{
    BeginSynchronizedUpdate, EndSynchronizedUpdate, EnterAlternateScreen, LeaveAlternateScreen,
    disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::app::{App, update};
use super::clipboard;
use super::msg::NoticeKind;
use super::msg::{Effect, Msg, TurnId};
use super::theme::Theme;
use super::view;
use crate::backend::Backend;
use crate::chat::{Session, SessionChoice, SessionStore};
use crate::config::Config;
use crate::limiter::LimiterHealth;
use crate::mock::MockConfig;
use crate::retry::Driver;

/// Shortest time between two frames (about 60 fps).
pub const FRAME: Duration = Duration::from_millis(16);

/// Tick while a countdown or spinner is on screen: faster than 10 Hz so that a countdown
/// shown with tenths never skips a step.
pub const TICK: Duration = Duration::from_millis(80);

/// How often the shared limiter's health is looked at while it is in use.
pub const HEALTH_CHECK: Duration = Duration::from_secs(1);

/// Turn events a stream may have sent that the loop has not yet taken: past this, the turn's
/// task waits (and the socket with it). Without it a server faster than the screen queued
/// the reply without bound, and every frame had more of it to lay out than the one before:
/// the screen froze and Esc waited behind it.
pub const TURN_EVENTS_IN_FLIGHT: usize = 1024;

/// Messages taken per pass of the loop: then it draws (when a frame is due) and looks at the
/// keyboard again, however fast a reply pours in.
pub const MESSAGES_PER_PASS: usize = 256;

static KEYBOARD_PUSHED: AtomicBool = AtomicBool::new(false);
static TERMINAL_ACTIVE: AtomicBool = AtomicBool::new(false);

/// Put the terminal back as it was: leave the alternate screen, stop mouse capture and
/// bracketed paste, pop keyboard flags, leave raw mode. Safe to call twice; never panics.
pub fn restore_terminal() {
    if !TERMINAL_ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = io::stdout();
    if KEYBOARD_PUSHED.swap(false, Ordering::SeqCst) {
        let _ = execute!(out, PopKeyboardEnhancementFlags);
    }
    let _ = execute!(
        out,
        DisableMouseCapture,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        cursor::Show
    );
    let _ = disable_raw_mode();
}

/// Restore the terminal before any panic message is printed, so it is readable.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
    });
}

/// The terminal, restored when dropped (also on early return and unwinding).
struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        install_panic_hook();
        take_terminal()?;
        match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                restore_terminal();
                Err(e)
            }
        }
    }
}

/// Raw mode, the alternate screen, bracketed paste, mouse capture and (where supported) the
/// kitty keyboard flags. Undone by [`restore_terminal`], also when a step fails.
fn take_terminal() -> io::Result<()> {
    enable_raw_mode()?;
    TERMINAL_ACTIVE.store(true, Ordering::SeqCst);
    let mut out = io::stdout();
    let setup = (|| -> io::Result<()> {
        execute!(
            out,
            EnterAlternateScreen,
            EnableBracketedPaste,
            EnableMouseCapture
        )?;
        // Lets terminals that support it report Shift+Enter (kitty protocol).
        if matches!(
            crossterm::terminal::supports_keyboard_enhancement(),
            Ok(true)
        ) {
            execute!(
                out,
                PushKeyboardEnhancementFlags(KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES)
            )?;
            KEYBOARD_PUSHED.store(true, Ordering::SeqCst);
        }
        Ok(())
    })();
    if let Err(e) = setup {
        restore_terminal();
        return Err(e);
    }
    Ok(())
}

/// Ctrl+Z: hand the terminal back to the shell and stop as a job does; when the shell
/// continues us (`fg`), take the terminal again and repaint everything. In raw mode the
/// terminal does not turn Ctrl+Z into SIGTSTP, so we raise it ourselves.
fn suspend(terminal: &mut Terminal<CrosstermBackend<Stdout>>) -> io::Result<()> {
    restore_terminal();
    #[cfg(unix)]
    {
        // Returns once SIGCONT arrives.
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGTSTP);
    }
    take_terminal()?;
    terminal.clear()
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Run the TUI (see [`super::run`]).
pub async fn run(
    config: Config,
    mock: Option<MockConfig>,
    demo: bool,
    choice: SessionChoice,
) -> i32 {
    use std::io::IsTerminal;
    if !io::stdout().is_terminal() || !io::stdin().is_terminal() {
        eprintln!("backchat: the chat TUI needs a terminal; use -p PROMPT with pipes and scripts");
        return crate::exit::USAGE;
    }
    // Sessions first: a bad name or nothing to continue is reported before the screen changes.
    let mut sessions = match Sessions::open(&config, &choice) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("backchat: {}", crate::secret::redact(&e));
            return crate::exit::USAGE;
        }
    };
    let opened = sessions.load_current();
    let config_theme = config.theme;
    let backend = match Backend::start(&config, mock).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("backchat: {e}");
            return crate::exit::USAGE;
        }
    };
    let mut app = App::new(
        config,
        backend.is_mock(),
        demo,
        Theme::from_config(config_theme),
        Instant::now(),
    );
    if let Some(msg) = opened {
        let _ = update(&mut app, msg, Instant::now());
    }
    let mut guard = match TerminalGuard::enter() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("backchat: cannot set up the terminal: {e}");
            return crate::exit::USAGE;
        }
    };
    let result = main_loop(&mut guard.terminal, &mut app, &backend, sessions).await;
    drop(guard);
    // Let a shared limiter write what it still holds (bounded: Redis may be gone).
    if let Some(limiter) = backend.driver.limiter() {
        let _ = tokio::time::timeout(Duration::from_millis(100), limiter.flush()).await;
    }
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("backchat: terminal error: {e}");
            1
        }
    }
}

/// A crossterm event as a message; `None` for what the app does not use (mouse moves,
/// focus changes, key releases).
pub fn translate(event: Event) -> Option<Msg> {
    match event {
        Event::Key(k) if k.kind != KeyEventKind::Release => Some(Msg::Key(k)),
        Event::Paste(text) => Some(Msg::Paste(text)),
        Event::Mouse(m)
            if matches!(
                m.kind,
                MouseEventKind::ScrollUp | MouseEventKind::ScrollDown
            ) =>
        {
            Some(Msg::Mouse(m))
        }
        Event::Resize(width, height) => Some(Msg::Resize { width, height }),
        _ => None,
    }
}

/// The session the turns are saved to, and the record number of each saved turn (by its
/// index in the conversation), so that a retry can mark the one it replaces.
pub struct Sessions {
    store: SessionStore,
    current: Session,
    saved: HashMap<usize, u64>,
}

impl Sessions {
    /// Open the session the flags ask for.
    pub fn open(config: &Config, choice: &SessionChoice) -> Result<Sessions, String> {
        let store = SessionStore::from_paths(&config.paths).map_err(|e| e.to_string())?;
        let current = store.choose(choice).map_err(|e| e.to_string())?;
        Ok(Sessions {
            store,
            current,
            saved: HashMap::new(),
        })
    }

    /// Load the current session; the message that puts it on screen.
    fn load_current(&mut self) -> Option<Msg> {
        let name = self.current.name().to_string();
        match self.current.load() {
            Ok((conversation, report)) => {
                self.saved = self
                    .current
                    .turn_numbers()
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (i, *n))
                    .collect();
                for line in report.lines(&name) {
                    tracing::warn!("{line}");
                }
                let issues = report
                    .issues
                    .iter()
                    .map(|i| crate::secret::redact(&i.to_string()))
                    .collect();
                Some(Msg::SessionOpened {
                    name,
                    turns: conversation.turns,
                    issues,
                })
            }
            Err(e) => Some(Msg::Notice {
                kind: NoticeKind::Error,
                text: format!("cannot read session {name}: {e}"),
            }),
        }
    }

    fn save(&mut self, turn_index: usize, turn: &crate::chat::Turn) -> Result<(), String> {
        if self.saved.contains_key(&turn_index) {
            return Ok(());
        }
        match self.current.save_turn(turn) {
            Ok(Some(n)) => {
                self.saved.insert(turn_index, n);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(format!("could not save the turn: {e}")),
        }
    }

    fn supersede(&mut self, turn_index: usize, edit: bool) -> Result<(), String> {
        match self.saved.get(&turn_index) {
            Some(n) => self
                .current
                .mark_superseded_number_by(*n, edit)
                .map_err(|e| format!("could not update the session: {e}")),
            None => Ok(()),
        }
    }
}

struct Runner<'a> {
    driver: &'a Driver,
    http: crate::api::HttpTransport,
    tx: mpsc::UnboundedSender<Msg>,
    /// Permits for turn events in flight (see [`TURN_EVENTS_IN_FLIGHT`]): a turn's task
    /// takes one per event it sends, the loop gives it back when it has taken the event.
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    tasks: HashMap<TurnId, JoinHandle<()>>,
    sessions: Sessions,
}

impl Runner<'_> {
    /// Run effects; `true` when one of them is Quit.
    fn run(
        &mut self,
        effects: Vec<Effect>,
        terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    ) -> io::Result<bool> {
        for effect in effects {
            match effect {
                Effect::StartTurn { id, request, .. } => {
                    let mut stream = self.driver.run(request);
                    let tx = self.tx.clone();
                    let in_flight = std::sync::Arc::clone(&self.in_flight);
                    let handle = tokio::spawn(async move {
                        let mut logger = crate::logging::TurnLogger::new();
                        while let Some(event) = stream.next().await {
                            logger.observe(&event);
                            let event = redact_event(event);
                            // Wait while the screen is behind (the semaphore is never closed).
                            let Ok(permit) = in_flight.acquire().await else {
                                return;
                            };
                            permit.forget();
                            if tx.send(Msg::Turn { id, event }).is_err() {
                                return;
                            }
                        }
                        let _ = tx.send(Msg::TurnStreamEnded { id });
                    });
                    self.tasks.insert(id, handle);
                }
                Effect::CancelTurn { id, .. } => {
                    // Aborting drops the driver's stream: the wait or the stream stops at once.
                    if let Some(h) = self.tasks.remove(&id) {
                        h.abort();
                    }
                }
                Effect::TurnEnded { turn_index, turn } => {
                    // Saved (and fsync'd) the moment it ends, right after the frame that shows
                    // it (see `main_loop`). Finished tasks are forgotten.
                    self.tasks.retain(|_, h| !h.is_finished());
                    if let Err(text) = self.sessions.save(turn_index, &turn) {
                        self.notify(NoticeKind::Error, text);
                    }
                }
                Effect::Superseded { turn_index } => {
                    if let Err(text) = self.sessions.supersede(turn_index, false) {
                        self.notify(NoticeKind::Error, text);
                    }
                }
                Effect::Edited { turn_index } => {
                    if let Err(text) = self.sessions.supersede(turn_index, true) {
                        self.notify(NoticeKind::Error, text);
                    }
                }
                Effect::WriteFile {
                    path,
                    text,
                    overwrite,
                } => {
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true);
                    if overwrite {
                        options.create(true).truncate(true);
                    } else {
                        options.create_new(true);
                    }
                    let written = options
                        .open(&path)
                        .and_then(|mut f| io::Write::write_all(&mut f, text.as_bytes()));
                    match written {
                        Ok(()) => self.notify_ok(format!("exported to {path}")),
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => self.notify(
                            NoticeKind::Error,
                            format!("{path} exists: /export FILE names another (or the same, to replace it)"),
                        ),
                        Err(e) => {
                            self.notify(NoticeKind::Error, format!("cannot write {path}: {e}"));
                        }
                    }
                }
                Effect::ReadAttachment(path) => {
                    let result = crate::chat::attach::Attachment::read(&expand_home(&path));
                    let _ = self.tx.send(Msg::Attached(result.map(Box::new)));
                }
                Effect::ReadForPrompt { prompt, paths } => {
                    let files = paths
                        .iter()
                        .map(|p| {
                            crate::chat::attach::Attachment::read(&expand_home(p)).map(Box::new)
                        })
                        .collect();
                    let _ = self.tx.send(Msg::PromptFiles { prompt, files });
                }
                Effect::CompletePath(partial) => {
                    let matches = complete_path(&partial);
                    let _ = self.tx.send(Msg::PathCompletions { partial, matches });
                }
                Effect::ListModels => {
                    let http = self.http.clone();
                    let tx = self.tx.clone();
                    tokio::spawn(async move {
                        let _ = tx.send(Msg::Models(http.list_models().await));
                    });
                }
                Effect::ListSessions => match self.sessions.store.list() {
                    Ok(items) => {
                        let _ = self.tx.send(Msg::SessionList(items));
                    }
                    Err(e) => self.notify(NoticeKind::Error, format!("cannot list sessions: {e}")),
                },
                Effect::OpenSession(name) => match self.sessions.store.open_existing(&name) {
                    Ok(session) => {
                        self.sessions.current = session;
                        if let Some(msg) = self.sessions.load_current() {
                            let _ = self.tx.send(msg);
                        }
                    }
                    Err(e) => self.notify(
                        NoticeKind::Error,
                        format!("cannot open session {name}: {e}"),
                    ),
                },
                Effect::NewSession => {
                    self.sessions.current = self.sessions.store.new_unnamed();
                    self.sessions.saved.clear();
                    let _ = self.tx.send(Msg::SessionOpened {
                        name: self.sessions.current.name().to_string(),
                        turns: Vec::new(),
                        issues: Vec::new(),
                    });
                }
                Effect::RenameSession(name) => match self.sessions.current.rename(&name) {
                    Ok(()) => {
                        let _ = self.tx.send(Msg::SessionRenamed(name));
                    }
                    Err(e) => self.notify(NoticeKind::Error, format!("cannot rename: {e}")),
                },
                Effect::SetMouseCapture(on) => {
                    let out = terminal.backend_mut();
                    if on {
                        execute!(out, EnableMouseCapture)?;
                    } else {
                        execute!(out, DisableMouseCapture)?;
                    }
                }
                Effect::CopyToClipboard(text) => clipboard::copy(terminal.backend_mut(), &text)?,
                Effect::ClearScreen => terminal.clear()?,
                Effect::Suspend => suspend(terminal)?,
                Effect::Quit => return Ok(true),
            }
        }
        Ok(false)
    }

    fn notify_ok(&self, text: String) {
        let _ = self.tx.send(Msg::Notice {
            kind: NoticeKind::Info,
            text,
        });
    }

    fn notify(&self, kind: NoticeKind, text: String) {
        tracing::warn!("{text}");
        let _ = self.tx.send(Msg::Notice {
            kind,
            text: crate::secret::redact(&text),
        });
    }

    fn abort_all(&mut self) {
        for (_, h) in self.tasks.drain() {
            h.abort();
        }
    }
}

/// `~/x` as `$HOME/x`.
fn expand_home(path: &str) -> std::path::PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME").map_or_else(
            || std::path::PathBuf::from(path),
            |h| std::path::PathBuf::from(h).join(rest),
        ),
        None => std::path::PathBuf::from(path),
    }
}

/// The entries a partial path could complete to, as the person would type them (their
/// directory part kept as typed, directories ending with `/`), sorted; hidden files only
/// when the partial name starts with a dot.
fn complete_path(partial: &str) -> Vec<String> {
    let (dir_typed, stem) = match partial.rfind('/') {
        Some(i) => (&partial[..=i], &partial[i + 1..]),
        None => ("", partial),
    };
    let dir = if dir_typed.is_empty() {
        std::path::PathBuf::from(".")
    } else {
        expand_home(dir_typed)
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(stem) || (name.starts_with('.') && !stem.starts_with('.')) {
                return None;
            }
            let slash = if e.path().is_dir() { "/" } else { "" };
            Some(format!("{dir_typed}{name}{slash}"))
        })
        .collect();
    out.sort();
    out
}

fn draw(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    app: &App,
    now: Instant,
) -> io::Result<()> {
    // Synchronized updates: the terminal shows the frame whole, never half-drawn.
    execute!(terminal.backend_mut(), BeginSynchronizedUpdate)?;
    let drawn = terminal
        .draw(|f| {
            let area = f.area();
            if let Some(p) = view::render(app, area, f.buffer_mut(), now) {
                f.set_cursor_position(p);
            }
        })
        .map(|_| ());
    execute!(terminal.backend_mut(), EndSynchronizedUpdate)?;
    drawn
}

async fn main_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    app: &mut App,
    backend: &Backend,
    sessions: Sessions,
) -> io::Result<()> {
    let driver = &backend.driver;
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(TURN_EVENTS_IN_FLIGHT));
    let mut runner = Runner {
        driver,
        http: backend.http.clone(),
        tx,
        in_flight: std::sync::Arc::clone(&in_flight),
        tasks: HashMap::new(),
        sessions,
    };
    let mut events = EventStream::new();
    let mut dirty = true;
    let mut last_draw: Option<Instant> = None;
    let result = loop {
        let now = Instant::now();
        // A shared limiter's health changes on its own (Redis goes away, comes back).
        let health = driver
            .limiter()
            .map_or(LimiterHealth::Local, |l| l.health());
        if health != app.limiter {
            if let LimiterHealth::Degraded(why) = &health {
                tracing::warn!("{why}");
            }
            app.limiter = health;
            dirty = true;
        }
        if dirty && last_draw.is_none_or(|t| now >= t + FRAME) {
            if let Err(e) = draw(terminal, app, now) {
                break Err(e);
            }
            last_draw = Some(now);
            dirty = false;
        }
        let frame_due = if dirty {
            last_draw.map(|t| t + FRAME)
        } else {
            None
        };
        let tick_due = if app.animating(now) {
            Some(last_draw.unwrap_or(now) + TICK)
        } else {
            app.next_change(now)
        };
        // With a shared limiter, look at its health about once a second.
        let tick_due = match (&app.limiter, tick_due) {
            (LimiterHealth::Local, t) => t,
            (_, t) => Some(t.map_or(now + HEALTH_CHECK, |t| t.min(now + HEALTH_CHECK))),
        };
        let wake = match (frame_due, tick_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let first = tokio::select! {
            // The keyboard first: a key is never left waiting behind a flood of deltas.
            biased;
            ev = events.next() => match ev {
                Some(Ok(e)) => translate(e),
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            },
            m = rx.recv() => m,
            () = tokio::time::sleep_until(wake.unwrap_or(now)), if wake.is_some() => {
                dirty = true;
                Some(Msg::Tick)
            }
        };
        // Take what is already queued before drawing (a burst of deltas is one frame), up to
        // a bound, so that a frame's work and the wait for the next key stay bounded too.
        let mut batch: Vec<Msg> = first.into_iter().collect();
        while batch.len() < MESSAGES_PER_PASS
            && let Ok(m) = rx.try_recv()
        {
            batch.push(m);
        }
        let mut quit = false;
        for msg in batch {
            dirty = true;
            if matches!(msg, Msg::Turn { .. }) {
                in_flight.add_permits(1);
            }
            let effects = update(app, msg, Instant::now());
            // A turn that ended is saved (serialised and fsync'd: for a reply of megabytes,
            // many milliseconds, growing with it). The frame that shows it ended goes first,
            // so that Esc or Ctrl+C shows at once whatever the reply's length.
            if effects
                .iter()
                .any(|e| matches!(e, Effect::TurnEnded { .. }))
            {
                let now = Instant::now();
                if let Err(e) = draw(terminal, app, now) {
                    runner.abort_all();
                    return Err(e);
                }
                last_draw = Some(now);
                dirty = false;
            }
            match runner.run(effects, terminal) {
                Ok(true) => quit = true,
                Ok(false) => {}
                Err(e) => {
                    runner.abort_all();
                    return Err(e);
                }
            }
        }
        if quit {
            break Ok(());
        }
    };
    runner.abort_all();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ReplyState, Turn};

    fn done(user: &str) -> Turn {
        let mut t = Turn::new(user, "m");
        t.assistant = "an answer".into();
        t.state = ReplyState::Complete { stop_reason: None };
        t
    }

    #[test]
    fn a_turn_that_cannot_be_saved_gives_a_message_and_nothing_is_marked_saved() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The sessions directory would have to be created inside a file: impossible, even
        // for root.
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"x").expect("file");
        let store = SessionStore::new(blocker.join("sessions"));
        let current = store.new_unnamed();
        let mut sessions = Sessions {
            store,
            current,
            saved: HashMap::new(),
        };
        let err = sessions
            .save(0, &done("hello"))
            .expect_err("cannot be saved");
        assert!(err.starts_with("could not save the turn"), "{err}");
        assert!(sessions.saved.is_empty());
        // Nothing saved, nothing to mark superseded: no second error.
        assert!(sessions.supersede(0, false).is_ok());
    }

    #[test]
    fn each_turn_is_saved_once_and_a_retry_marks_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SessionStore::new(dir.path().join("sessions"));
        let current = store.new_unnamed();
        let mut sessions = Sessions {
            store,
            current,
            saved: HashMap::new(),
        };
        sessions.save(0, &done("first")).expect("saved");
        sessions
            .save(0, &done("first"))
            .expect("a second end is ignored");
        sessions.supersede(0, true).expect("marked");
        let (conversation, _) = sessions.current.load().expect("loads");
        assert_eq!(conversation.turns.len(), 1);
        assert!(conversation.turns[0].superseded);
        assert!(conversation.turns[0].superseded_by_edit);
    }
}

/// `event` with every registered secret redacted from the text a server supplied (error
/// messages, request ids, the model name): a server may echo the key back in a 401 or 400,
/// and the screen, like every other surface, must not show it. Reply text is left alone.
fn redact_event(event: crate::retry::TurnEvent) -> crate::retry::TurnEvent {
    use crate::retry::TurnEvent;
    use crate::secret::redact;
    fn api(mut a: crate::api::ApiError) -> crate::api::ApiError {
        a.message = redact(&a.message);
        a.error_type = redact(&a.error_type);
        a.request_id = a.request_id.map(|r| redact(&r));
        a
    }
    match event {
        TurnEvent::Failed(mut f) => {
            f.message = redact(&f.message);
            f.api = f.api.map(api);
            TurnEvent::Failed(f)
        }
        TurnEvent::RetryScheduled {
            attempt,
            max_attempts,
            delay,
            until,
            cause,
            status,
            error_type,
            source,
            message,
            request_id,
        } => TurnEvent::RetryScheduled {
            attempt,
            max_attempts,
            delay,
            until,
            cause,
            status,
            error_type: error_type.map(|t| redact(&t)),
            source,
            message: redact(&message),
            request_id: request_id.map(|r| redact(&r)),
        },
        TurnEvent::Started { request_id, model } => TurnEvent::Started {
            request_id: request_id.map(|r| redact(&r)),
            model: redact(&model),
        },
        TurnEvent::Interrupted {
            error,
            partial_kept,
        } => {
            use crate::api::StreamFailure as F;
            let error = match error {
                F::Server(a) => F::Server(api(a)),
                F::Disconnected(m) => F::Disconnected(redact(&m)),
                F::Decode(m) => F::Decode(redact(&m)),
                other => other,
            };
            TurnEvent::Interrupted {
                error,
                partial_kept,
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::redact_event;
    use crate::retry::{FailureKind, TurnEvent, TurnFailure};
    use crate::secret::{ApiKey, register_secret};

    #[test]
    fn a_key_echoed_by_the_server_never_reaches_the_screen() {
        let key = ApiKey::new("sk-ant-tui-echo-SECRET-1234").expect("key");
        register_secret(&key);
        let api = crate::api::ApiError::from_response(
            401,
            http::HeaderMap::new(),
            br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key sk-ant-tui-echo-SECRET-1234"}}"#,
        );
        let ev = TurnEvent::Failed(TurnFailure {
            kind: FailureKind::Authentication,
            message: format!("401: {}", api.message),
            api: Some(api),
            transport: None,
            resets_at: None,
            attempts: 1,
        });
        let shown = format!("{:?}", redact_event(ev));
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }
}
