//! Sessions: every conversation saved as it happens, so that nothing finished is ever lost.
//!
//! A session is a JSON Lines file `<name>.jsonl` in the sessions directory
//! (`$XDG_DATA_HOME/backchat/sessions`); the format is in [`super::session_format`]. Each turn
//! is appended as one line when it ends, under an advisory lock, and fsync'd before
//! [`Session::append_turn`] returns: a `kill -9` can cut off at most the turn in flight. A line
//! is serialized, redacted and written as a stream, never built whole in memory: a line up to
//! [`LINE_BUFFER`] goes out in one `write`, a longer one (a reply of megabytes) in several, under
//! the lock.
//! Files are created lazily, at the first turn, so opening the TUI and leaving creates nothing.
//!
//! These are blocking file operations, each small (one line, one fsync); an async caller that
//! cannot afford a few milliseconds may run them in `spawn_blocking`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::session_format::{self, Decoded};
use super::{Conversation, Turn};

pub use super::session_format::{LoadIssue, SessionHeader};

/// The longest session name, in characters.
pub const MAX_NAME_LEN: usize = 100;

/// The extension of session files.
pub const EXTENSION: &str = "jsonl";

/// Bytes of a record gathered before they are written: a record up to this size goes out in
/// one `write` (whole, even where advisory locks are not honoured, as `O_APPEND` writes are).
pub const LINE_BUFFER: usize = 1 << 20;

/// Characters refused in names, beyond path separators: they are not allowed in file names on
/// some systems, and sessions should move between machines.
const RESERVED: &[char] = &['<', '>', ':', '"', '|', '?', '*'];

/// What can go wrong with sessions.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The name cannot be used as a file name.
    #[error("invalid session name {name:?}: {why}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why.
        why: String,
    },
    /// No session of that name.
    #[error("there is no session named {0:?}")]
    NotFound(String),
    /// A session of that name exists already.
    #[error("a session named {0:?} exists already")]
    AlreadyExists(String),
    /// `--continue` with nothing to continue.
    #[error("there is no session to continue yet (none in {})", .0.display())]
    NothingToContinue(PathBuf),
    /// No data directory (no home directory).
    #[error("there is no data directory for sessions (set HOME or XDG_DATA_HOME)")]
    NoDataDir,
    /// A turn index past the end of the conversation.
    #[error("there is no turn {0} in this session")]
    NoSuchTurn(usize),
    /// A file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("write", "read", …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SessionError + 'a {
    move |source| SessionError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Check that `name` can be a session name: 1 to [`MAX_NAME_LEN`] characters, no path
/// separators, no `..`, not hidden, no control or reserved characters, no surrounding spaces.
pub fn validate_name(name: &str) -> Result<(), SessionError> {
    let bad = |why: &str| {
        Err(SessionError::InvalidName {
            name: crate::util::clip(name, MAX_NAME_LEN + 10),
            why: why.to_string(),
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.chars().count() > MAX_NAME_LEN {
        return bad(&format!("it is longer than {MAX_NAME_LEN} characters"));
    }
    if name.contains('/') || name.contains('\\') {
        return bad("names cannot contain / or \\");
    }
    if name.contains("..") {
        return bad("names cannot contain ..");
    }
    if name.starts_with('.') {
        return bad("names cannot start with a dot");
    }
    if name.trim() != name {
        return bad("names cannot start or end with spaces");
    }
    if name.chars().any(char::is_control) {
        return bad("names cannot contain control characters");
    }
    if let Some(c) = name.chars().find(|c| RESERVED.contains(c)) {
        return bad(&format!(
            "names cannot contain {c:?} (nor any of < > : \" | ? *)"
        ));
    }
    Ok(())
}

/// A session as listed in a picker.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionInfo {
    /// Its name (the file name without `.jsonl`).
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// When it was last written.
    pub modified: SystemTime,
    /// Turns in it (superseded ones included).
    pub turns: usize,
    /// The first line of its first prompt, shortened.
    pub first_prompt: Option<String>,
}

/// Which session a run uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionChoice {
    /// A new session with a generated name.
    New,
    /// `--session NAME`: open it, or create it if it does not exist.
    Named(String),
    /// `--continue`: the most recently written session.
    Continue,
}

impl SessionChoice {
    /// From `--session` and `--continue`.
    pub fn from_flags(session: Option<&str>, continue_last: bool) -> SessionChoice {
        match (session, continue_last) {
            (Some(name), _) => SessionChoice::Named(name.to_string()),
            (None, true) => SessionChoice::Continue,
            (None, false) => SessionChoice::New,
        }
    }
}

/// What [`Session::load`] found besides the turns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// The header, if it could be read.
    pub header: Option<SessionHeader>,
    /// Lines skipped or repaired, in file order.
    pub issues: Vec<LoadIssue>,
    /// Turns loaded.
    pub turns: usize,
}

impl LoadReport {
    /// True when every line was read as written.
    pub fn is_clean(&self) -> bool {
        self.issues.is_empty()
    }

    /// One line per issue, for a person: `session "work": line 4 skipped: truncated: …`.
    pub fn lines(&self, session_name: &str) -> Vec<String> {
        self.issues
            .iter()
            .map(|i| format!("session {session_name:?}: {i}"))
            .collect()
    }
}

/// The directory of session files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionStore {
    dir: PathBuf,
}

impl SessionStore {
    /// The store in `dir` (created when the first session is written).
    pub fn new(dir: impl Into<PathBuf>) -> SessionStore {
        SessionStore { dir: dir.into() }
    }

    /// The store in the configured data directory.
    pub fn from_paths(paths: &crate::config::Paths) -> Result<SessionStore, SessionError> {
        paths
            .sessions_dir()
            .map(SessionStore::new)
            .ok_or(SessionError::NoDataDir)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of the session `name` (whether or not it exists).
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.{EXTENSION}"))
    }

    /// Every session, most recently written first. Reads each file to count its turns.
    pub fn list(&self) -> Result<Vec<SessionInfo>, SessionError> {
        let mut out = Vec::new();
        for (name, path, modified) in self.files()? {
            // A file that vanished or cannot be read still shows up, with no turns.
            let decoded = std::fs::read(&path)
                .map(|b| session_format::decode(&b))
                .unwrap_or_default();
            let first_prompt = decoded
                .turns
                .first()
                .and_then(|(_, t)| t.user.lines().find(|l| !l.trim().is_empty()))
                .map(|l| crate::util::clip(l.trim(), 120));
            out.push(SessionInfo {
                name,
                path,
                modified,
                turns: decoded.turns.len(),
                first_prompt,
            });
        }
        Ok(out)
    }

    /// The most recently written session, if any (reads no file contents).
    pub fn latest(&self) -> Result<Option<Session>, SessionError> {
        Ok(self
            .files()?
            .into_iter()
            .next()
            .map(|(name, _, _)| self.session(name)))
    }

    /// The session `name`: the existing one, or a new one created at its first turn.
    pub fn open(&self, name: &str) -> Result<Session, SessionError> {
        validate_name(name)?;
        Ok(self.session(name.to_string()))
    }

    /// An existing session; an error if there is none of that name.
    pub fn open_existing(&self, name: &str) -> Result<Session, SessionError> {
        let s = self.open(name)?;
        if s.exists() {
            Ok(s)
        } else {
            Err(SessionError::NotFound(name.to_string()))
        }
    }

    /// A new session `name`; an error if one exists already.
    pub fn create(&self, name: &str) -> Result<Session, SessionError> {
        let s = self.open(name)?;
        if s.exists() {
            Err(SessionError::AlreadyExists(name.to_string()))
        } else {
            Ok(s)
        }
    }

    /// A new session named after the current time and this process
    /// (`2026-11-27T19-29-15-3f2k`, then `…-2` if that is taken).
    ///
    /// The file is only created with the first turn, so the clock alone cannot tell two
    /// sessions of one second apart: two processes started together, or `/new` twice in a
    /// second. The process id (base 36) separates processes; names handed out by this
    /// process are remembered, so it never hands one out twice.
    pub fn new_unnamed(&self) -> Session {
        static HANDED_OUT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
        let stamp = crate::clock::rfc3339_seconds(SystemTime::now())
            .trim_end_matches('Z')
            .replace(':', "-");
        let stamp = format!("{stamp}-{}", base36(std::process::id()));
        let mut handed = HANDED_OUT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut name = stamp.clone();
        let mut k = 2;
        while self.path_of(&name).exists() || handed.contains(&self.path_of(&name)) {
            name = format!("{stamp}-{k}");
            k += 1;
        }
        handed.push(self.path_of(&name));
        self.session(name)
    }

    /// The session a run asked for with `--session` / `--continue` (or a new one).
    pub fn choose(&self, choice: &SessionChoice) -> Result<Session, SessionError> {
        match choice {
            SessionChoice::New => Ok(self.new_unnamed()),
            SessionChoice::Named(name) => self.open(name),
            SessionChoice::Continue => self
                .latest()?
                .ok_or_else(|| SessionError::NothingToContinue(self.dir.clone())),
        }
    }

    /// Rename a session. The new name must be free.
    pub fn rename(&self, old: &str, new: &str) -> Result<(), SessionError> {
        validate_name(old)?;
        validate_name(new)?;
        let from = self.path_of(old);
        if !from.exists() {
            return Err(SessionError::NotFound(old.to_string()));
        }
        move_without_clobbering(&from, &self.path_of(new), new)
    }

    fn session(&self, name: String) -> Session {
        Session {
            path: self.path_of(&name),
            dir: self.dir.clone(),
            name,
            numbers: None,
            known_len: 0,
        }
    }

    /// `(name, path, modified)` of every session file, newest first.
    fn files(&self) -> Result<Vec<(String, PathBuf, SystemTime)>, SessionError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &self.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if validate_name(name).is_err() {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            out.push((name.to_string(), path, modified));
        }
        out.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| b.0.cmp(&a.0)));
        Ok(out)
    }
}

/// `n` in base 36, lower case (a short tag for a process id).
fn base36(mut n: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Move `from` to `to` unless `to` exists. A hard link fails atomically when the target
/// exists, so two renames racing for one name cannot overwrite a session.
fn move_without_clobbering(from: &Path, to: &Path, new_name: &str) -> Result<(), SessionError> {
    match std::fs::hard_link(from, to) {
        Ok(()) => std::fs::remove_file(from).map_err(io("remove", from)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(SessionError::AlreadyExists(new_name.to_string()))
        }
        // No hard links on this file system: check, then rename.
        Err(_) => {
            if to.exists() {
                return Err(SessionError::AlreadyExists(new_name.to_string()));
            }
            std::fs::rename(from, to).map_err(io("rename", from))
        }
    }
}

/// One session: its file, and the numbers of the turns this process knows about.
#[derive(Debug)]
pub struct Session {
    name: String,
    path: PathBuf,
    dir: PathBuf,
    /// `n` of each turn of the conversation, in order (set by `load` and `append_turn`).
    numbers: Option<Vec<u64>>,
    /// The file's length after our last read or write: if it changed, someone else wrote.
    known_len: u64,
}

impl Session {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True once its file exists (after the first turn).
    pub fn exists(&self) -> bool {
        self.path.is_file()
    }

    /// Everything that can be read. A missing file is an empty conversation; a damaged one
    /// gives every readable turn, and the report lists each line skipped or repaired.
    pub fn load(&mut self) -> Result<(Conversation, LoadReport), SessionError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io("read", &self.path)(e)),
        };
        self.known_len = bytes.len() as u64;
        let Decoded {
            header,
            turns,
            issues,
            ..
        } = session_format::decode(&bytes);
        self.numbers = Some(turns.iter().map(|(n, _)| *n).collect());
        let report = LoadReport {
            header,
            issues,
            turns: turns.len(),
        };
        let conversation = Conversation {
            turns: turns.into_iter().map(|(_, t)| t).collect(),
        };
        Ok((conversation, report))
    }

    /// Save a turn that has ended, and fsync it. The file (with its header) is created at the
    /// first turn. An empty reply is stored as a failure, never as a reply; a turn that has not
    /// ended is stored as failed or interrupted.
    pub fn append_turn(&mut self, turn: &Turn) -> Result<(), SessionError> {
        self.save_turn(turn).map(|_| ())
    }

    /// [`Session::append_turn`], returning the record number the turn was saved under (for
    /// [`Session::mark_superseded_number`]); `None` when there was nothing to save.
    pub fn save_turn(&mut self, turn: &Turn) -> Result<Option<u64>, SessionError> {
        if turn.user.trim().is_empty() && turn.assistant.trim().is_empty() {
            return Ok(None);
        }
        let ts = crate::clock::rfc3339_millis(SystemTime::now());
        let model = turn.model.clone();
        let n = self.write_locked(&model, |next, w| {
            session_format::write_turn_line(w, turn, next, &ts).map(|()| Some(next))
        })?;
        if let (Some(numbers), Some(n)) = (self.numbers.as_mut(), n) {
            numbers.push(n);
        }
        Ok(n)
    }

    /// The record number of each turn loaded by [`Session::load`], in order.
    pub fn turn_numbers(&self) -> Option<&[u64]> {
        self.numbers.as_deref()
    }

    /// Record that the turn saved under record number `n` was retried by a later one.
    pub fn mark_superseded_number(&mut self, n: u64) -> Result<(), SessionError> {
        self.mark_superseded_number_by(n, false)
    }

    /// Record that the turn saved under record number `n` was replaced by a later one: by an
    /// edit of its prompt when `edit`, otherwise by a retry. Either way it is no longer sent
    /// as context; the record stays in the file.
    pub fn mark_superseded_number_by(&mut self, n: u64, edit: bool) -> Result<(), SessionError> {
        let ts = crate::clock::rfc3339_millis(SystemTime::now());
        self.write_locked("", |_, w| {
            w.write_all(session_format::superseded_line_by(n, &ts, edit).as_bytes())
                .map(|()| None::<u64>)
        })?;
        Ok(())
    }

    /// Record that the turn at `index` (of the conversation loaded and appended through this
    /// session) was retried by a later one, so that it is left out of the API input on resume.
    pub fn mark_superseded(&mut self, index: usize) -> Result<(), SessionError> {
        if self.numbers.is_none() {
            self.load()?;
        }
        let n = self
            .numbers
            .as_ref()
            .and_then(|ns| ns.get(index).copied())
            .ok_or(SessionError::NoSuchTurn(index))?;
        self.mark_superseded_number(n)
    }

    /// Rename this session (its file moves; later turns go to the new file).
    pub fn rename(&mut self, new_name: &str) -> Result<(), SessionError> {
        validate_name(new_name)?;
        let to = self.dir.join(format!("{new_name}.{EXTENSION}"));
        if self.exists() {
            move_without_clobbering(&self.path, &to, new_name)?;
        } else if to.exists() {
            return Err(SessionError::AlreadyExists(new_name.to_string()));
        }
        self.name = new_name.to_string();
        self.path = to;
        Ok(())
    }

    /// Append what `line` writes (given the next turn number) under an exclusive lock, with
    /// the header first if the file is new, then fsync.
    fn write_locked<T>(
        &mut self,
        model: &str,
        line: impl FnOnce(u64, &mut dyn Write) -> std::io::Result<T>,
    ) -> Result<T, SessionError> {
        crate::util::create_private_dir(&self.dir).map_err(io("create", &self.dir))?;
        let (mut file, created) = open_for_append(&self.path)?;
        // Another backchat may be appending to the same session; the lock keeps the turn
        // numbers unique and the lines whole. Advisory locks are best effort: a file system
        // without them still gets whole lines from single O_APPEND writes.
        let _ = file.lock();
        let result = self.write_in(&mut file, model, line);
        let _ = file.unlock();
        if created {
            sync_dir(&self.dir);
        }
        result
    }

    fn write_in<T>(
        &mut self,
        file: &mut File,
        model: &str,
        line: impl FnOnce(u64, &mut dyn Write) -> std::io::Result<T>,
    ) -> Result<T, SessionError> {
        let path = self.path.clone();
        let len = file.metadata().map_err(io("read", &path))?.len();
        let mut bytes = Vec::new();
        if len != self.known_len || self.numbers.is_none() {
            file.seek(SeekFrom::Start(0)).map_err(io("read", &path))?;
            file.read_to_end(&mut bytes).map_err(io("read", &path))?;
        }
        let mut lead = String::new();
        if len == 0 {
            lead = session_format::header_line(
                &self.name,
                model,
                &crate::clock::rfc3339_seconds(SystemTime::now()),
            );
        } else if !ends_with_newline(file, len).map_err(io("read", &path))? {
            // The last write was cut off (a kill mid-write): end that line, so that the damage
            // stays confined to it and this record is whole.
            lead.push('\n');
        }
        let decoded = (!bytes.is_empty()).then(|| session_format::decode(&bytes));
        if let (Some(d), None) = (&decoded, &self.numbers) {
            self.numbers = Some(d.turns.iter().map(|(n, _)| *n).collect());
        }
        let next = match &decoded {
            Some(d) => d.turns.iter().map(|(n, _)| *n).max().unwrap_or(0) + 1,
            None => self.numbers.as_ref().and_then(|ns| ns.iter().max()).map_or(
                // Only our own writes since the last read: continue from them.
                1,
                |m| m + 1,
            ),
        };
        if self.numbers.is_none() {
            self.numbers = Some(Vec::new());
        }
        // Serialized → gathered (serde_json writes in small pieces) → redacted (the key must
        // never reach a session file, even if someone pasted it into a prompt) → gathered
        // into writes of up to a line buffer → the file.
        let to_file = std::io::BufWriter::with_capacity(LINE_BUFFER, &mut *file);
        let redact = crate::secret::RedactWriter::new(to_file);
        let mut w = std::io::BufWriter::with_capacity(64 << 10, redact);
        let written = (|| {
            w.write_all(lead.as_bytes())?;
            let out = line(next, &mut w)?;
            let (to_file, written) = w
                .into_inner()
                .map_err(std::io::IntoInnerError::into_error)?
                .finish()?;
            to_file
                .into_inner()
                .map_err(std::io::IntoInnerError::into_error)?;
            Ok((out, written))
        })();
        let (out, written) = written.map_err(io("write", &path))?;
        file.sync_data().map_err(io("sync", &path))?;
        self.known_len = len + written;
        Ok(out)
    }
}

fn open_for_append(path: &Path) -> Result<(File, bool), SessionError> {
    let mut options = OpenOptions::new();
    options.read(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Conversations are private.
        options.mode(0o600);
    }
    match options.clone().create_new(true).open(path) {
        Ok(f) => Ok((f, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => options
            .open(path)
            .map(|f| (f, false))
            .map_err(io("open", path)),
        Err(e) => Err(io("create", path)(e)),
    }
}

fn ends_with_newline(file: &mut File, len: u64) -> std::io::Result<bool> {
    if len == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Make a new file's directory entry durable too (POSIX needs an fsync of the directory).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}
