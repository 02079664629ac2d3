//! The API key, wrapped so that it cannot leak by accident.
//!
//! [`ApiKey`] has no `Display` and no `Serialize`; its `Debug` prints a redacted form. The only
//! way to the raw text is [`ApiKey::expose`], used in exactly one place: building the request
//! header. Logs, events, sessions, `config show` and panic messages therefore never see it.
//!
//! A server may still echo the key back in an error message; every surface passes such text
//! through [`redact`], which replaces each key given to [`register_secret`].

use std::sync::RwLock;

use sha2::{Digest, Sha256};

/// An Anthropic API key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wrap a key, trimming surrounding whitespace (a trailing newline from a password
    /// manager's output is common).
    pub fn new(raw: impl Into<String>) -> Option<ApiKey> {
        let raw = raw.into();
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            None
        } else {
            Some(ApiKey(trimmed.to_string()))
        }
    }

    /// The raw key, for the `x-api-key` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short, stable, one-way fingerprint (the first 16 hex digits of SHA-256), safe to
    /// use as a namespace in shared storage and to show in diagnostics.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        digest.iter().take(8).fold(String::new(), |mut out, b| {
            use std::fmt::Write;
            let _ = write!(out, "{b:02x}");
            out
        })
    }

    /// What may be shown to a person: a prefix hint and the fingerprint, never the secret part.
    pub fn redacted(&self) -> String {
        let hint = if self.0.starts_with("sk-ant-") {
            "sk-ant-…"
        } else {
            "…"
        };
        format!("{hint} (redacted, fingerprint {})", self.fingerprint())
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({})", self.redacted())
    }
}

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not registered: replacing a two-letter "key" everywhere would
/// garble every line, and no real key is that short.
pub const MIN_SECRET_LEN: usize = 8;

// A plain RwLock: `redact` only reads, it never panics while holding the lock, so it is safe to
// call from a panic hook.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remember `key` so that [`redact`] replaces it from now on.
pub fn register_secret(key: &ApiKey) {
    let text = key.expose();
    if text.len() < MIN_SECRET_LEN {
        return;
    }
    let mut secrets = SECRETS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !secrets.iter().any(|s| s == text) {
        secrets.push(text.to_string());
    }
}

/// `text` with every registered secret replaced by [`REDACTED`].
pub fn redact(text: &str) -> String {
    let secrets = SECRETS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out = text.to_string();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    out
}

/// A writer that passes everything to `inner` with every registered secret replaced by
/// [`REDACTED`], as [`redact`] does for a string, without holding the whole text: so that a
/// 50 MB session line is redacted as it is written, not copied first.
///
/// A secret split across two writes is still found: the last bytes that could begin one are
/// held back until the next write shows whether they do, or until [`RedactWriter::finish`].
/// Secrets are replaced one after another, each in the output of the one before, exactly as
/// [`redact`] does.
pub struct RedactWriter<W: std::io::Write> {
    inner: W,
    /// One stage per secret registered when the writer was made.
    stages: Vec<Stage>,
    written: u64,
}

/// One secret's replacement: the bytes not yet passed on.
struct Stage {
    secret: Vec<u8>,
    held: Vec<u8>,
}

/// Bytes taken into a stage at a time: bounds what it holds, whatever the size of a write.
const STAGE_PIECE: usize = 64 << 10;

impl<W: std::io::Write> RedactWriter<W> {
    /// A writer to `inner` that redacts the secrets registered now.
    pub fn new(inner: W) -> Self {
        let secrets = SECRETS
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        RedactWriter {
            inner,
            stages: secrets
                .iter()
                .map(|s| Stage {
                    secret: s.as_bytes().to_vec(),
                    held: Vec::new(),
                })
                .collect(),
            written: 0,
        }
    }

    /// Pass on what is held back, flush, and give back `inner` with the number of bytes
    /// written to it (after redaction).
    pub fn finish(mut self) -> std::io::Result<(W, u64)> {
        feed(
            &mut self.stages,
            &mut self.inner,
            &mut self.written,
            &[],
            true,
        )?;
        self.inner.flush()?;
        Ok((self.inner, self.written))
    }
}

/// Run `data` through `stages` into `out`; `last` passes on everything held back.
fn feed<W: std::io::Write>(
    stages: &mut [Stage],
    out: &mut W,
    written: &mut u64,
    data: &[u8],
    last: bool,
) -> std::io::Result<()> {
    let Some((stage, rest)) = stages.split_first_mut() else {
        out.write_all(data)?;
        *written += data.len() as u64;
        return Ok(());
    };
    let mut pieces = data.chunks(STAGE_PIECE).peekable();
    loop {
        let piece = pieces.next().unwrap_or(&[]);
        let final_piece = pieces.peek().is_none();
        stage.held.extend_from_slice(piece);
        let flush_all = last && final_piece;
        // A match can only start before the last `len - 1` bytes, unless nothing follows.
        let keep = if flush_all {
            0
        } else {
            stage.secret.len().saturating_sub(1)
        };
        let held = std::mem::take(&mut stage.held);
        let mut done = 0;
        for at in memchr::memmem::find_iter(&held, &stage.secret) {
            if at < done {
                continue;
            }
            feed(rest, out, written, &held[done..at], false)?;
            feed(rest, out, written, REDACTED.as_bytes(), false)?;
            done = at + stage.secret.len();
        }
        let cut = held.len().saturating_sub(keep).max(done);
        feed(rest, out, written, &held[done..cut], flush_all)?;
        stage.held = held;
        stage.held.drain(..cut);
        if final_piece {
            return Ok(());
        }
    }
}

impl<W: std::io::Write> std::io::Write for RedactWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        feed(
            &mut self.stages,
            &mut self.inner,
            &mut self.written,
            buf,
            false,
        )?;
        Ok(buf.len())
    }

    /// Flushes `inner`; bytes that may begin a secret stay held until more arrive or
    /// [`RedactWriter::finish`].
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let k = ApiKey::new("sk-ant-api03-SECRETSECRET\n").expect("non-empty");
        assert_eq!(k.expose(), "sk-ant-api03-SECRETSECRET");
        let shown = format!("{k:?} {}", k.redacted());
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_eq!(k.fingerprint().len(), 16);
        assert!(ApiKey::new("  ").is_none());
    }

    #[test]
    fn registered_secrets_are_replaced_everywhere() {
        let key = ApiKey::new("sk-ant-unit-REDACTME-42").expect("non-empty");
        register_secret(&key);
        register_secret(&ApiKey::new("short").expect("non-empty"));
        assert_eq!(
            redact("a sk-ant-unit-REDACTME-42 b sk-ant-unit-REDACTME-42"),
            format!("a {REDACTED} b {REDACTED}")
        );
        assert_eq!(redact("short stays"), "short stays");
    }

    /// Everything written through a `RedactWriter`, in writes cut at `cuts`.
    fn streamed(text: &str, cuts: &[usize]) -> String {
        use std::io::Write;
        let mut w = RedactWriter::new(Vec::new());
        let mut from = 0;
        for &c in cuts {
            let c = c.clamp(from, text.len());
            w.write_all(&text.as_bytes()[from..c]).expect("vec");
            from = c;
        }
        w.write_all(&text.as_bytes()[from..]).expect("vec");
        let (out, n) = w.finish().expect("vec");
        let out = String::from_utf8(out).expect("utf-8");
        assert_eq!(n, out.len() as u64);
        out
    }

    #[test]
    fn a_stream_is_redacted_like_a_string_however_it_is_cut() {
        let key = ApiKey::new("sk-ant-stream-REDACTME-7").expect("non-empty");
        register_secret(&key);
        let k = key.expose();
        let long = format!("{}{k}{}", "x".repeat(200_000), "y".repeat(70_000));
        for text in [
            k.to_string(),
            format!("a{k}b{k}{k}c"),
            format!("sk-ant-stream-{k}sk-ant"),
            long,
            "nothing here".to_string(),
            String::new(),
        ] {
            let want = redact(&text);
            assert!(!want.contains(k));
            for cuts in [
                vec![],
                vec![1],
                vec![3, 9, 10, 30],
                (0..text.len()).collect(),
            ] {
                if cuts.len() > 1000 && text.len() > 1000 {
                    continue;
                }
                assert_eq!(streamed(&text, &cuts), want, "{cuts:?}");
            }
            for cut in [65_535, 65_536, 200_005, 200_010] {
                assert_eq!(streamed(&text, &[cut]), want);
            }
        }
    }
}
