//! The session file format: JSON Lines, one record per line, each versioned.
//!
//! ```text
//! {"type":"header","v":1,"app":"backchat","created":"2026-11-27T19:29:15Z","name":"work","model":"claude-sonnet-4-6"}
//! {"type":"turn","v":1,"n":1,"ts":"…","user":"hi","reply":"Hello!","end":"complete","stop_reason":"end_turn","model":"…","usage":{…},"request_id":"req_…"}
//! {"type":"turn","v":1,"n":2,"ts":"…","user":"go on","reply":"Once upon","end":"interrupted","reason":"the connection dropped mid-reply: …","model":"…"}
//! {"type":"turn","v":1,"n":3,"ts":"…","user":"and?","end":"failed","reason":"429 rate_limit_error: …","model":"…"}
//! {"type":"superseded","v":1,"n":2,"ts":"…"}
//! {"type":"superseded","v":1,"n":3,"ts":"…","edit":true}
//! ```
//!
//! `end` is `complete`, `interrupted`, `cancelled` or `failed`. A `complete` record always has a
//! non-empty `reply`: an empty reply is written as `failed` ("the reply was empty"), so that it
//! can never be sent back to the API as an empty assistant turn. `n` numbers the turns of the
//! file; a `superseded` record marks a turn that a later one retried (`edit`: a later one
//! replaced with an edited prompt). Readers ignore unknown
//! fields, and skip (and report) lines they cannot read, so one bad line never costs the rest.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

use crate::api::Usage;
use crate::chat::{ReplyState, Turn};

/// The format version this code writes.
pub const FORMAT_VERSION: u32 = 1;

/// The `app` field of the header.
pub const APP: &str = "backchat";

/// Why a turn has no reply when the API answered with nothing.
pub const EMPTY_REPLY: &str = "the reply was empty";

/// The first record of a session file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionHeader {
    /// Format version of the file.
    #[serde(rename = "v", default = "one")]
    pub version: u32,
    /// Always `"backchat"`.
    #[serde(default)]
    pub app: String,
    /// When the session was created (RFC 3339, UTC).
    #[serde(default)]
    pub created: String,
    /// The name it was created with (a rename moves the file; the file name wins).
    #[serde(default)]
    pub name: String,
    /// The model of its first turn.
    #[serde(default)]
    pub model: String,
}

fn one() -> u32 {
    1
}

/// A turn as stored. The texts borrow when writing, so that saving a 50 MB reply does not
/// copy it before serializing it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct TurnRecord<'a> {
    #[serde(default = "one")]
    v: u32,
    #[serde(default)]
    n: u64,
    #[serde(default)]
    ts: String,
    #[serde(deserialize_with = "text_from_line")]
    user: Cow<'a, str>,
    #[serde(
        default,
        skip_serializing_if = "str::is_empty",
        deserialize_with = "text_from_line"
    )]
    reply: Cow<'a, str>,
    #[serde(
        default,
        skip_serializing_if = "str::is_empty",
        deserialize_with = "text_from_line"
    )]
    thinking: Cow<'a, str>,
    end: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stop_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default)]
    model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    superseded: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<crate::chat::attach::Attachment>,
}

/// A turn's text, read from the line's own bytes: the JSON string token is unescaped straight
/// into a `String` of its size. serde_json's own way builds the text in a scratch buffer and
/// then copies it, so loading a 10 MB reply held the file, the buffer and the reply at once.
fn text_from_line<'de, D>(d: D) -> Result<Cow<'static, str>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let raw: &'de serde_json::value::RawValue = Deserialize::deserialize(d)?;
    unescape_json_string(raw.get())
        .map(Cow::Owned)
        .map_err(serde::de::Error::custom)
}

/// The text of the JSON string token `token` (quotes included), as serde_json reads it into a
/// `String`: the same escapes, and the same refusals (a control character, a bad escape, a
/// UTF-16 surrogate without its pair).
fn unescape_json_string(token: &str) -> Result<String, &'static str> {
    let inner = token
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or("invalid type: expected a string")?;
    let b = inner.as_bytes();
    let mut out = String::with_capacity(inner.len());
    let mut i = 0;
    while i < b.len() {
        let run = memchr::memchr(b'\\', &b[i..]).map_or(b.len(), |n| i + n);
        let piece = &inner[i..run];
        if piece.bytes().any(|c| c < 0x20 || c == b'"') {
            return Err("a control character or a quote inside a string");
        }
        out.push_str(piece);
        if run == b.len() {
            break;
        }
        let esc = *b.get(run + 1).ok_or("a string ends in a backslash")?;
        i = run + 2;
        match esc {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let first = hex4(b, i)?;
                i += 4;
                let c = match first {
                    0xD800..=0xDBFF => {
                        if b.get(i) != Some(&b'\\') || b.get(i + 1) != Some(&b'u') {
                            return Err("a lone leading surrogate");
                        }
                        let second = hex4(b, i + 2)?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return Err("a leading surrogate without its trailing one");
                        }
                        i += 6;
                        0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err("a lone trailing surrogate"),
                    c => u32::from(c),
                };
                out.push(char::from_u32(c).ok_or("an invalid code point")?);
            }
            _ => return Err("an invalid escape"),
        }
    }
    Ok(out)
}

/// The four hex digits of a `\u` escape at `b[at..]`.
fn hex4(b: &[u8], at: usize) -> Result<u16, &'static str> {
    let digits = b.get(at..at + 4).ok_or("a short \\u escape")?;
    let text = std::str::from_utf8(digits).map_err(|_| "a bad \\u escape")?;
    if !text.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err("a bad \\u escape");
    }
    u16::from_str_radix(text, 16).map_err(|_| "a bad \\u escape")
}

/// "A later turn retried turn `n`."
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SupersededRecord {
    #[serde(default = "one")]
    v: u32,
    n: u64,
    #[serde(default)]
    ts: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    edit: bool,
}

/// The header line (with its newline).
pub fn header_line(name: &str, model: &str, created: &str) -> String {
    let h = SessionHeader {
        version: FORMAT_VERSION,
        app: APP.into(),
        created: created.into(),
        name: name.into(),
        model: model.into(),
    };
    line_of(&Outgoing::Header(&h))
}

/// The line (with its newline) that stores `turn` as turn number `n`, ended at `ts`.
///
/// A turn that has not ended is stored as what it would become if the program stopped now:
/// still waiting → failed, still streaming → interrupted. An empty reply is never stored as a
/// reply.
pub fn turn_line(turn: &Turn, n: u64, ts: &str) -> String {
    let mut line = Vec::with_capacity(turn.user.len() + turn.assistant.len() + 1024);
    // Writing to a Vec cannot fail.
    let _ = write_turn_line(&mut line, turn, n, ts);
    // serde_json writes UTF-8 only.
    String::from_utf8(line).unwrap_or_default()
}

/// [`turn_line`], written to `w` as it is serialized: a long reply is never copied into a
/// line first (a 50 MB reply would otherwise be held twice more: the line, then the write).
pub fn write_turn_line(
    w: &mut dyn std::io::Write,
    turn: &Turn,
    n: u64,
    ts: &str,
) -> std::io::Result<()> {
    let has_reply = !turn.assistant.trim().is_empty();
    let (end, stop_reason, reason, keep_reply) = match &turn.state {
        ReplyState::Complete { stop_reason } if has_reply => {
            ("complete", stop_reason.clone(), None, true)
        }
        ReplyState::Complete { .. } => ("failed", None, Some(EMPTY_REPLY.to_string()), false),
        ReplyState::Interrupted { reason } => ("interrupted", None, Some(reason.clone()), true),
        ReplyState::Cancelled => ("cancelled", None, None, true),
        ReplyState::Failed { message, .. } => ("failed", None, Some(message.clone()), false),
        ReplyState::Pending => (
            "failed",
            None,
            Some("unfinished: the program stopped before a reply started".into()),
            false,
        ),
        ReplyState::Streaming => (
            "interrupted",
            None,
            Some("unfinished: the program stopped while the reply was streaming".into()),
            true,
        ),
    };
    let record = TurnRecord {
        v: FORMAT_VERSION,
        n,
        ts: ts.into(),
        user: Cow::Borrowed(&turn.user),
        reply: if keep_reply && has_reply {
            Cow::Borrowed(&turn.assistant)
        } else {
            Cow::Borrowed("")
        },
        thinking: Cow::Borrowed(&turn.thinking),
        end: end.into(),
        stop_reason,
        reason,
        model: turn.model.clone(),
        usage: turn.usage.clone(),
        request_id: turn.request_id.clone(),
        superseded: turn.superseded,
        attachments: turn.attachments.clone(),
    };
    write_line(w, &Outgoing::Turn(&record))
}

/// The line (with its newline) that marks turn `n` superseded.
pub fn superseded_line(n: u64, ts: &str) -> String {
    superseded_line_by(n, ts, false)
}

/// The line (with its newline) that marks turn `n` superseded, by an edit of its prompt
/// when `edit`, otherwise by a retry.
pub fn superseded_line_by(n: u64, ts: &str, edit: bool) -> String {
    line_of(&Outgoing::Superseded(&SupersededRecord {
        v: FORMAT_VERSION,
        n,
        ts: ts.into(),
        edit,
    }))
}

/// A record as written: `type` first (serde's internal tag), then the record's fields in
/// declaration order, `v` first among them.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Outgoing<'a> {
    Header(&'a SessionHeader),
    Turn(&'a TurnRecord<'a>),
    Superseded(&'a SupersededRecord),
}

fn line_of(record: &Outgoing<'_>) -> String {
    let mut json = Vec::with_capacity(256);
    // Writing to a Vec cannot fail.
    let _ = write_line(&mut json, record);
    // serde_json writes UTF-8 only.
    String::from_utf8(json).unwrap_or_default()
}

/// One record and its newline. Serializing these plain structs cannot fail (string keys, no
/// maps with odd keys): an error here is the writer's.
fn write_line(w: &mut dyn std::io::Write, record: &Outgoing<'_>) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, record).map_err(std::io::Error::from)?;
    w.write_all(b"\n")
}

/// A line that could not be read as it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadIssue {
    /// 1-based line number.
    pub line: usize,
    /// True when the line was left out; false when it was kept with a repair.
    pub skipped: bool,
    /// What was wrong (and, for a repair, what was done).
    pub reason: String,
}

impl std::fmt::Display for LoadIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.skipped { "skipped" } else { "repaired" };
        write!(f, "line {} {what}: {}", self.line, self.reason)
    }
}

/// A session file, read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    /// The header, if its line could be read.
    pub header: Option<SessionHeader>,
    /// The turns in file order, each with its number `n`.
    pub turns: Vec<(u64, Turn)>,
    /// Lines skipped or repaired.
    pub issues: Vec<LoadIssue>,
    /// Lines in the file (blank ones included).
    pub lines: usize,
}

/// A record's `type`, as a raw token: reading it leaves the rest of the line unread.
#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<&'a serde_json::value::RawValue>,
}

/// Read a session file's bytes. Never fails: whatever can be read is returned, and every line
/// that could not be is listed in `issues`.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut out = Decoded::default();
    let mut superseded: Vec<(usize, u64, bool)> = Vec::new();
    let ends_cleanly = bytes.is_empty() || bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // `split` yields an empty piece after the final newline; it is not a line.
    let count = if ends_cleanly {
        lines.len().saturating_sub(1)
    } else {
        lines.len()
    };
    out.lines = count;
    for (i, raw) in lines.iter().take(count).enumerate() {
        let line = i + 1;
        let is_last_unterminated = !ends_cleanly && i + 1 == count;
        let (text, lossy) = match std::str::from_utf8(raw) {
            Ok(t) => (std::borrow::Cow::Borrowed(t), false),
            Err(_) => (String::from_utf8_lossy(raw), true),
        };
        if text.trim().is_empty() {
            continue;
        }
        // The record's type, checking that the whole line is JSON. Nothing else is read here:
        // a turn's long texts are read once, below, straight into place.
        let kind: Kind<'_> = match serde_json::from_str(&text) {
            Ok(k) => k,
            Err(e) => {
                skip(
                    &mut out,
                    line,
                    if lossy {
                        "not valid UTF-8 (a damaged line)".to_string()
                    } else if is_last_unterminated || e.is_eof() {
                        "truncated: the write was cut off (the program was killed or the disk filled)"
                        .to_string()
                    } else {
                        format!("not valid JSON ({e})")
                    },
                );
                continue;
            }
        };
        let repaired_utf8 = |out: &mut Decoded| {
            if lossy {
                out.issues.push(LoadIssue {
                    line,
                    skipped: false,
                    reason: "invalid UTF-8 bytes replaced with \u{FFFD}".into(),
                });
            }
        };
        let kind = kind
            .kind
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
            .unwrap_or_default();
        match kind.as_str() {
            "header" => match serde_json::from_str::<SessionHeader>(&text) {
                Ok(h) if out.header.is_none() => {
                    repaired_utf8(&mut out);
                    out.header = Some(h);
                }
                // A second header (two processes created the file at once): harmless.
                Ok(_) => {}
                Err(e) => skip(&mut out, line, format!("a header with a bad field ({e})")),
            },
            "turn" => match serde_json::from_str::<TurnRecord<'static>>(&text) {
                Ok(r) => {
                    repaired_utf8(&mut out);
                    if r.v > FORMAT_VERSION {
                        // Read as far as this version understands, and say so: fields a newer
                        // backchat added are ignored.
                        out.issues.push(LoadIssue {
                            line,
                            skipped: false,
                            reason: format!(
                                "a turn of format v{} (this backchat reads v{FORMAT_VERSION}); \
                                 read without the fields it does not know",
                                r.v
                            ),
                        });
                    }
                    let n = if r.n == 0 {
                        out.turns.last().map_or(1, |(n, _)| n + 1)
                    } else {
                        r.n
                    };
                    match turn_from_record(r) {
                        Ok((turn, repair)) => {
                            if let Some(reason) = repair {
                                out.issues.push(LoadIssue {
                                    line,
                                    skipped: false,
                                    reason,
                                });
                            }
                            out.turns.push((n, turn));
                        }
                        Err(reason) => skip(&mut out, line, reason),
                    }
                }
                Err(e) => skip(&mut out, line, format!("a turn with a bad field ({e})")),
            },
            "superseded" => match serde_json::from_str::<SupersededRecord>(&text) {
                Ok(r) => {
                    repaired_utf8(&mut out);
                    superseded.push((line, r.n, r.edit));
                }
                Err(e) => skip(
                    &mut out,
                    line,
                    format!("a superseded mark with a bad field ({e})"),
                ),
            },
            "" => skip(&mut out, line, "not a session record (no \"type\")".into()),
            other => skip(
                &mut out,
                line,
                format!("unknown record type {other:?} (written by a newer backchat?)"),
            ),
        }
    }
    // A file with nothing readable at all (a binary file, an image renamed .jsonl) is one
    // problem, not one per line.
    if out.header.is_none() && out.turns.is_empty() && out.issues.len() > 1 {
        let first = out.issues[0].clone();
        let count = out.issues.len();
        out.issues = vec![LoadIssue {
            line: first.line,
            skipped: true,
            reason: format!(
                "this is not a session file: none of its {count} lines could be read \
                 (the first, line {}: {})",
                first.line, first.reason
            ),
        }];
        return out;
    }
    for (line, n, edit) in superseded {
        // If two turns share a number (two writers raced), the later one is meant.
        match out.turns.iter_mut().rev().find(|(tn, _)| *tn == n) {
            Some((_, t)) => {
                t.superseded = true;
                t.superseded_by_edit |= edit;
            }
            None => out.issues.push(LoadIssue {
                line,
                skipped: true,
                reason: format!("marks turn {n} superseded, but there is no such turn"),
            }),
        }
    }
    out
}

fn skip(out: &mut Decoded, line: usize, reason: String) {
    out.issues.push(LoadIssue {
        line,
        skipped: true,
        reason,
    });
}

/// The turn a record stands for, and the repair made to it, if any.
fn turn_from_record(r: TurnRecord<'_>) -> Result<(Turn, Option<String>), String> {
    let has_reply = !r.reply.trim().is_empty();
    if r.user.trim().is_empty() && !has_reply {
        return Err("an empty turn (no prompt and no reply)".into());
    }
    let mut repair = None;
    let state = match r.end.as_str() {
        "complete" if has_reply => ReplyState::Complete {
            stop_reason: r.stop_reason,
        },
        "complete" => {
            repair = Some(
                "an empty reply was recorded as complete; kept the prompt, dropped the reply"
                    .into(),
            );
            ReplyState::failed(EMPTY_REPLY)
        }
        "interrupted" => ReplyState::Interrupted {
            reason: r.reason.unwrap_or_else(|| "interrupted".into()),
        },
        "cancelled" => ReplyState::Cancelled,
        "failed" => ReplyState::failed(r.reason.unwrap_or_else(|| "failed".into())),
        other => {
            repair = Some(format!(
                "unknown end {other:?}; the reply is kept as an interrupted one"
            ));
            if has_reply {
                ReplyState::Interrupted {
                    reason: format!("ended as {other:?}"),
                }
            } else {
                ReplyState::failed(format!("ended as {other:?}"))
            }
        }
    };
    let keeps_reply = matches!(
        state,
        ReplyState::Complete { .. } | ReplyState::Interrupted { .. } | ReplyState::Cancelled
    );
    Ok((
        Turn {
            user: r.user.into_owned(),
            assistant: if keeps_reply {
                r.reply.into_owned()
            } else {
                String::new()
            },
            thinking: r.thinking.into_owned(),
            state,
            model: r.model,
            usage: r.usage,
            request_id: r.request_id,
            superseded: r.superseded,
            superseded_by_edit: false,
            attachments: r.attachments,
        },
        repair,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5_000))]

        /// Unescaping a string token agrees with serde_json reading it into a `String`, on
        /// what serde writes and on escape soup: the same text, or a refusal both times.
        #[test]
        fn unescaping_agrees_with_serde(
            text in ".*",
            soup in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just("\\".to_string()),
                    proptest::prelude::Just("u".to_string()),
                    proptest::prelude::Just("\\u".to_string()),
                    proptest::prelude::Just("\\uD83D".to_string()),
                    proptest::prelude::Just("\\uDE00".to_string()),
                    proptest::prelude::Just("\\udbff\\udfff".to_string()),
                    proptest::prelude::Just("\\u00e9".to_string()),
                    proptest::prelude::Just("\"".to_string()),
                    "[nrtbf/0-9a-fA-FxDC\u{1}\u{7f}é😀 ]",
                ],
                0..12,
            ),
        ) {
            let written = serde_json::to_string(&text).expect("a string serializes");
            proptest::prop_assert_eq!(unescape_json_string(&written).ok(), Some(text));
            let token = format!("\"{}\"", soup.concat());
            let ours = unescape_json_string(&token).ok();
            let serde = serde_json::from_str::<String>(&token).ok();
            proptest::prop_assert_eq!(ours, serde, "{}", token);
        }
    }

    #[test]
    fn a_turn_loads_its_texts_from_the_line_with_escapes_and_without() {
        let line = r#"{"type":"turn","v":1,"n":1,"user":"plain","reply":"a\nb \"q\" \u00e9 \ud83d\ude00","thinking":"t","end":"complete"}"#;
        let d = decode(format!("{line}\n").as_bytes());
        assert!(d.issues.is_empty(), "{:?}", d.issues);
        let (_, turn) = &d.turns[0];
        assert_eq!(turn.user, "plain");
        assert_eq!(turn.assistant, "a\nb \"q\" é 😀");
        // A text that is not a string costs its line, with a reason.
        let bad = r#"{"type":"turn","v":1,"n":1,"user":7,"end":"complete"}"#;
        let d = decode(format!("{bad}\n").as_bytes());
        assert!(d.turns.is_empty());
        assert!(d.issues[0].reason.contains("bad field"), "{:?}", d.issues);
    }

    fn turn(user: &str, reply: &str, state: ReplyState) -> Turn {
        let mut t = Turn::new(user, "m");
        t.assistant = reply.into();
        t.state = state;
        t
    }

    #[test]
    fn lines_round_trip() {
        let complete = turn(
            "hi",
            "hello",
            ReplyState::Complete {
                stop_reason: Some("end_turn".into()),
            },
        );
        let cut = turn(
            "more",
            "Once upon",
            ReplyState::Interrupted {
                reason: "dropped".into(),
            },
        );
        let failed = turn("again", "", ReplyState::failed("429"));
        let mut file = header_line("s", "m", "2026-01-01T00:00:00Z");
        file += &turn_line(&complete, 1, "t");
        file += &turn_line(&cut, 2, "t");
        file += &turn_line(&failed, 3, "t");
        file += &superseded_line(2, "t");
        assert!(file.starts_with("{\"type\":\"header\",\"v\":1,"), "{file}");
        let d = decode(file.as_bytes());
        assert_eq!(d.issues, vec![]);
        assert_eq!(d.header.as_ref().map(|h| h.name.as_str()), Some("s"));
        let turns: Vec<Turn> = d.turns.into_iter().map(|(_, t)| t).collect();
        let mut cut_superseded = cut.clone();
        cut_superseded.superseded = true;
        assert_eq!(turns, vec![complete, cut_superseded, failed]);
    }

    #[test]
    fn an_empty_reply_is_never_stored_as_a_reply() {
        let empty = turn("prompt", "  \n", ReplyState::Complete { stop_reason: None });
        let line = turn_line(&empty, 1, "t");
        assert!(line.contains("\"end\":\"failed\""), "{line}");
        assert!(!line.contains("\"reply\""), "{line}");
        let d = decode(line.as_bytes());
        assert_eq!(d.turns.len(), 1);
        assert_eq!(d.turns[0].1.user, "prompt");
        assert!(matches!(d.turns[0].1.state, ReplyState::Failed { .. }));
    }

    #[test]
    fn unknown_fields_and_newer_versions_are_read() {
        let line =
            r#"{"v":7,"type":"turn","n":1,"user":"u","reply":"r","end":"complete","mood":"happy"}"#;
        let d = decode(format!("{line}\n").as_bytes());
        assert_eq!(d.turns[0].1.assistant, "r");
        // Read, with a notice: a newer format may carry meaning this one drops.
        assert_eq!(d.issues.len(), 1);
        assert!(!d.issues[0].skipped);
        assert!(d.issues[0].reason.contains("format v7"), "{:?}", d.issues);
    }

    #[test]
    fn a_binary_file_is_one_issue_not_one_per_line() {
        let mut bytes = Vec::new();
        for i in 0..500u32 {
            bytes.extend_from_slice(&[0, 0xff, 0xfe, (i % 251) as u8, b'\n']);
        }
        let d = decode(&bytes);
        assert_eq!(d.issues.len(), 1, "{:?}", &d.issues[..3]);
        assert!(d.issues[0].reason.contains("not a session file"));
        assert!(d.turns.is_empty());
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const GOOD: &str = r#"{"v":1,"type":"turn","n":1,"user":"u","reply":"r","end":"complete"}"#;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(10_000))]

            /// Never panics; a corrupt line costs that line only, and is reported.
            #[test]
            fn a_corrupt_line_costs_that_line_only(
                junk in proptest::collection::vec(any::<u8>(), 0..200),
                before in 0usize..4,
                after in 0usize..4,
            ) {
                let junk: Vec<u8> = junk.into_iter().map(|b| if b == b'\n' { b' ' } else { b }).collect();
                let mut bytes = Vec::new();
                for _ in 0..before {
                    bytes.extend_from_slice(GOOD.as_bytes());
                    bytes.push(b'\n');
                }
                bytes.extend_from_slice(&junk);
                bytes.push(b'\n');
                for _ in 0..after {
                    bytes.extend_from_slice(GOOD.as_bytes());
                    bytes.push(b'\n');
                }
                let d = decode(&bytes);
                let junk_line = before + 1;
                let junk_turns = usize::from(d.turns.len() > before + after);
                prop_assert_eq!(d.turns.len(), before + after + junk_turns);
                for i in &d.issues {
                    prop_assert_eq!(i.line, junk_line, "{:?}", d.issues);
                }
                // Blank lines (any Unicode whitespace) are not records, and are skipped silently.
                let blank = String::from_utf8_lossy(&junk).trim().is_empty();
                if !blank && junk_turns == 0 && serde_json::from_slice::<serde_json::Value>(&junk).map_or(true, |v| v.get("type").and_then(serde_json::Value::as_str) != Some("header")) {
                    prop_assert!(!d.issues.is_empty(), "a skipped line is reported");
                }
            }

            /// Any bytes at all: no panic.
            #[test]
            fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                let _ = decode(&bytes);
            }
        }
    }
}
