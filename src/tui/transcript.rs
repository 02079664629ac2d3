//! The transcript as rows: wrapped lines cached per turn and width, with prefix sums of the
//! turns' heights, so that a frame draws only the visible rows and costs the same for a short
//! conversation as for a very long one.
//!
//! Each turn is a header (prompt, model, thinking), the reply's markdown and a footer. The
//! reply is cut into finished chunks ([`MdStream`]) that are rendered and wrapped once; while
//! it streams only the unfinished tail is rendered again. A change of width re-wraps
//! everything once; nothing else re-renders a finished turn. Row numbers are `usize`, never
//! `u16`, so there is no limit on the length of a conversation.
//!
//! Memory stays close to the text: a turn keeps its rendered lines once, compactly (a
//! [`LineStore`]: the text end to end, a few bytes per span), and its visual rows as
//! [`Wrapped`] references into them (byte ranges, not copies), made into `Line`s only when
//! drawn. Owned `Line`s per row and `StyledLine`s per line cost several times the text: a
//! 10 MB reply resumed took 5× its size, a 10 MB markdown reply of short lines 25×.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::line_store::LineStore;
use super::markdown::MdStream;
use super::sanitize::sanitize;
use super::theme::Theme;
use super::wrap::{StyledLine, WrapMode, Wrapped};
use crate::chat::{ReplyState, Turn};

/// Indentation of a turn's body under its header.
pub const INDENT: &str = "  ";

/// What one turn's cached lines were built from. Text only grows while a turn is live, so
/// lengths stand in for contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    label: u64,
    user_len: usize,
    assistant_len: usize,
    thinking_len: usize,
    state: u8,
    state_len: usize,
    superseded: bool,
    expanded: bool,
    retry_hint: bool,
}

impl Fingerprint {
    fn of(turn: &Turn, label: u64, expanded: bool, retry_hint: bool) -> Fingerprint {
        let (state, state_len) = match &turn.state {
            ReplyState::Pending => (0, 0),
            ReplyState::Streaming => (1, 0),
            ReplyState::Complete { stop_reason } => {
                (2, stop_reason.as_ref().map_or(0, String::len))
            }
            ReplyState::Interrupted { reason } => (3, reason.len()),
            ReplyState::Failed { message, .. } => (4, message.len()),
            ReplyState::Cancelled => (5, 0),
        };
        Fingerprint {
            label,
            user_len: turn.user.len(),
            assistant_len: turn.assistant.len(),
            thinking_len: turn.thinking.len(),
            state,
            state_len,
            superseded: turn.superseded,
            expanded: expanded && !turn.thinking.is_empty(),
            retry_hint,
        }
    }

    /// Whether the head changed, or the reply shrank: then the turn is built again.
    fn needs_rebuild(&self, new: &Fingerprint) -> bool {
        self.label != new.label
            || self.user_len != new.user_len
            || self.thinking_len != new.thinking_len
            || self.expanded != new.expanded
            || self.superseded != new.superseded
            || new.assistant_len < self.assistant_len
    }
}

/// Counters of work done, for tests and benchmarks (work, not time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Logical lines wrapped.
    pub lines_wrapped: u64,
    /// Turns built from scratch.
    pub rebuilds: u64,
    /// Reply tails rendered again.
    pub tail_renders: u64,
}

/// One turn's rows: its logical lines in three parts, each with its visual rows.
#[derive(Default)]
struct Entry {
    fp: Option<Fingerprint>,
    /// Where the reply's finished chunks end (their lines follow the head's in `body`).
    md: MdStream,
    /// The head's lines (prompt, model, thinking), then the reply's finished chunks'.
    body_lines: LineStore,
    body: Wrapped,
    /// The unfinished chunk and the footer: built again at each change of a live turn.
    tail_lines: LineStore,
    tail: Wrapped,
    live: bool,
}

impl Entry {
    fn height(&self) -> usize {
        self.line_rows() + usize::from(self.live) + 1
    }

    /// The cached lines, in order.
    fn lines(&self) -> impl Iterator<Item = Line<'_>> + '_ {
        self.body
            .rows(&self.body_lines)
            .chain(self.tail.rows(&self.tail_lines))
    }

    /// Cached line `local` (0 is the first row of the head), if it is one.
    fn line(&self, local: usize) -> Option<Line<'_>> {
        if local < self.body.len() {
            return self.body.row(local, &self.body_lines);
        }
        self.tail.row(local - self.body.len(), &self.tail_lines)
    }

    /// Rows that are cached lines (not the live line, not the blank after the turn).
    fn line_rows(&self) -> usize {
        self.body.len() + self.tail.len()
    }
}

/// A row of the transcript.
#[derive(Clone, Debug, PartialEq)]
pub enum Row<'a> {
    /// A cached line, borrowed from the cache.
    Line(Line<'a>),
    /// The live status line of the turn at this index (drawn at render time: it counts down).
    Live(usize),
    /// Space between turns.
    Blank,
}

/// The cache.
pub struct TranscriptCache {
    theme: Theme,
    width: u16,
    epoch: u64,
    expanded: bool,
    /// Boxed: a long transcript has thousands of turns, and a `Vec` of entries grown by
    /// doubling would hold up to twice their size.
    #[expect(clippy::vec_box, reason = "an entry is large; see above")]
    entries: Vec<Box<Entry>>,
    offsets: Vec<usize>,
    /// Leading turns that had ended at the last sync. An ended turn changes only when it
    /// becomes (or stops being) the retry target, or is superseded (it was the target), so
    /// a frame checks the turns after these plus the old and new target: a long history
    /// costs nothing per frame.
    settled: usize,
    last_target: Option<usize>,
    stats: Stats,
}

impl TranscriptCache {
    /// An empty cache.
    pub fn new(theme: Theme) -> Self {
        TranscriptCache {
            theme,
            width: 0,
            epoch: 0,
            expanded: false,
            entries: Vec::new(),
            offsets: vec![0],
            settled: 0,
            last_target: None,
            stats: Stats::default(),
        }
    }

    /// Look at turn `index` again at the next sync even though it had ended (an ended turn
    /// is otherwise not rechecked; an edit supersedes one).
    pub fn recheck(&mut self, index: usize) {
        self.settled = self.settled.min(index);
    }

    /// Work counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The width of the last sync (0 before the first).
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Rows in the whole transcript at the last synced width.
    pub fn total_rows(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// Bring the cache up to date with `turns` at `width`. `labels` are the turns' numbers,
    /// `expanded` whether thinking is expanded, `retry_target` the turn Ctrl+R would retry.
    /// `epoch` changes when the conversation is replaced (`/clear`), which drops everything.
    pub fn sync(
        &mut self,
        turns: &[Turn],
        labels: &[u64],
        expanded: bool,
        retry_target: Option<usize>,
        width: u16,
        epoch: u64,
    ) {
        if width != self.width || epoch != self.epoch || expanded != self.expanded {
            self.entries.clear();
            self.offsets.truncate(1);
            self.settled = 0;
            self.width = width;
            self.epoch = epoch;
            self.expanded = expanded;
        }
        let mut first_changed = None;
        if self.entries.len() > turns.len() {
            self.entries.truncate(turns.len());
            first_changed = Some(turns.len());
        }
        self.settled = self.settled.min(self.entries.len());
        let mut check: Vec<usize> = [self.last_target, retry_target]
            .into_iter()
            .flatten()
            .filter(|&i| i < self.settled)
            .collect();
        check.sort_unstable();
        check.dedup();
        check.extend(self.settled..turns.len());
        for i in check {
            let turn = &turns[i];
            let label = labels.get(i).copied().unwrap_or(i as u64 + 1);
            let fp = Fingerprint::of(turn, label, expanded, retry_target == Some(i));
            match self.entries.get(i).and_then(|e| e.fp) {
                Some(old) if old == fp => continue,
                Some(old) if !old.needs_rebuild(&fp) => self.update(i, turn, fp),
                Some(_) => {
                    let e = self.build(turn, fp);
                    self.entries[i] = e;
                }
                None => {
                    let e = self.build(turn, fp);
                    self.entries.push(e);
                }
            }
            first_changed = Some(first_changed.map_or(i, |f: usize| f.min(i)));
        }
        self.last_target = retry_target;
        while self.settled < self.entries.len() && turns[self.settled].state.is_final() {
            self.settled += 1;
        }
        if let Some(from) = first_changed {
            self.offsets.truncate(from + 1);
            for i in self.offsets.len() - 1..self.entries.len() {
                let prev = self.offsets[i];
                self.offsets.push(prev + self.entries[i].height());
            }
        }
    }

    /// Wrap `lines` onto `rows`, and keep them in `store`.
    fn wrap(&mut self, lines: Vec<StyledLine>, store: &mut LineStore, rows: &mut Wrapped) {
        for l in lines {
            self.stats.lines_wrapped += 1;
            rows.push_line(store.len(), &l, self.width);
            store.push(l);
        }
    }

    fn build(&mut self, turn: &Turn, fp: Fingerprint) -> Box<Entry> {
        self.stats.rebuilds += 1;
        let mut e = Box::<Entry>::default();
        self.wrap(head(turn, fp, self.theme), &mut e.body_lines, &mut e.body);
        self.refresh(&mut e, turn, fp);
        e
    }

    fn update(&mut self, i: usize, turn: &Turn, fp: Fingerprint) {
        let mut e = std::mem::take(&mut self.entries[i]);
        self.refresh(&mut e, turn, fp);
        self.entries[i] = e;
    }

    /// Render newly finished chunks, the tail and the footer.
    fn refresh(&mut self, e: &mut Entry, turn: &Turn, fp: Fingerprint) {
        // Chunk by chunk: a resumed reply of megabytes is never held whole as StyledLines.
        let mut md = std::mem::take(&mut e.md);
        md.advance_each(&turn.assistant, self.theme, INDENT, |lines| {
            self.wrap(std::mem::take(lines), &mut e.body_lines, &mut e.body);
        });
        e.md = md;
        self.stats.tail_renders += 1;
        // The old tail goes first: for a long unfinished reply it is as big as the text.
        e.tail_lines = LineStore::default();
        e.tail = Wrapped::default();
        let mut tail_lines = e.md.tail(&turn.assistant, self.theme, INDENT);
        tail_lines.extend(footer(turn, fp, self.theme));
        self.wrap(tail_lines, &mut e.tail_lines, &mut e.tail);
        e.live = !turn.state.is_final();
        if !e.live {
            // A finished turn keeps its rows as they are: no room left for growth.
            e.body_lines.shrink_to_fit();
            e.body.shrink_to_fit();
            e.tail_lines.shrink_to_fit();
            e.tail.shrink_to_fit();
        }
        e.fp = Some(fp);
    }

    /// The row at `row` (0 is the first row of the first turn).
    pub fn row(&self, row: usize) -> Option<Row<'_>> {
        if row >= self.total_rows() {
            return None;
        }
        let i = self.offsets.partition_point(|&o| o <= row).checked_sub(1)?;
        let e = self.entries.get(i)?;
        let local = row - self.offsets[i];
        if let Some(l) = e.line(local) {
            return Some(Row::Line(l));
        }
        let local = local - e.line_rows();
        if e.live && local == 0 {
            return Some(Row::Live(i));
        }
        Some(Row::Blank)
    }

    /// The rows from `top` on, in order (one binary search, then a walk).
    pub fn rows_from(&self, top: usize) -> impl Iterator<Item = Row<'_>> + '_ {
        let start = self
            .offsets
            .partition_point(|&o| o <= top)
            .saturating_sub(1);
        let skip = top.saturating_sub(self.offsets.get(start).copied().unwrap_or(0));
        self.entries
            .get(start..)
            .unwrap_or(&[])
            .iter()
            .enumerate()
            .flat_map(move |(k, e)| {
                let i = start + k;
                e.lines()
                    .map(Row::Line)
                    .chain(e.live.then_some(Row::Live(i)))
                    .chain(std::iter::once(Row::Blank))
            })
            .skip(skip)
    }
}

fn head(turn: &Turn, fp: Fingerprint, theme: Theme) -> Vec<StyledLine> {
    let dim = theme.dim();
    let mut out = Vec::new();
    let mut you = vec![Span::styled("▌ you", theme.user_header())];
    you.push(Span::styled(format!("  #{}", fp.label), dim));
    if turn.superseded_by_edit {
        you.push(Span::styled(" · edited and resent below", dim));
    } else if turn.superseded {
        you.push(Span::styled(" · superseded by a retry", dim));
    }
    out.push(StyledLine {
        spans: you,
        ..StyledLine::default()
    });
    let user = sanitize(&turn.user, 0);
    for line in user.split('\n') {
        out.push(StyledLine::simple(INDENT, line, Style::new()));
    }
    if !turn.attachments.is_empty() {
        let names: Vec<String> = turn
            .attachments
            .iter()
            .map(|a| format!("📎 {}", sanitize(&a.name, 0)))
            .collect();
        out.push(StyledLine::simple(INDENT, names.join("  "), dim));
    }
    out.push(StyledLine::blank());
    let mut claude = vec![Span::styled("▌ claude", theme.assistant_header())];
    if !turn.model.is_empty() {
        claude.push(Span::styled(
            format!(" · {}", sanitize(&turn.model, 0)),
            dim,
        ));
    }
    out.push(StyledLine {
        spans: claude,
        ..StyledLine::default()
    });
    if !turn.thinking.is_empty() {
        let thinking = sanitize(&turn.thinking, 0);
        let n = thinking.trim_end().lines().count().max(1);
        let noun = if n == 1 { "line" } else { "lines" };
        if fp.expanded {
            out.push(StyledLine::simple(
                INDENT,
                format!("▾ thinking ({n} {noun}) · Ctrl+O to collapse"),
                dim,
            ));
            for line in thinking.trim_end().split('\n') {
                out.push(StyledLine::simple("  │ ", line, dim));
            }
        } else {
            out.push(StyledLine::simple(
                INDENT,
                format!("▸ thinking ({n} {noun}) · Ctrl+O to expand"),
                dim,
            ));
        }
    }
    out
}

fn footer(turn: &Turn, fp: Fingerprint, theme: Theme) -> Vec<StyledLine> {
    let dim = theme.dim();
    let mut out = Vec::new();
    let kept = if turn.assistant.trim().is_empty() {
        ""
    } else {
        " · partial reply kept"
    };
    match &turn.state {
        ReplyState::Pending | ReplyState::Streaming => return out,
        ReplyState::Complete { stop_reason } => {
            if turn.assistant.trim().is_empty() {
                out.push(StyledLine::simple(INDENT, "(empty reply)", dim));
            }
            match stop_reason.as_deref() {
                Some("max_tokens") => out.push(StyledLine::simple(
                    INDENT,
                    "! stopped at the max_tokens limit (--max-tokens)",
                    theme.warn(),
                )),
                Some("refusal") => {
                    out.push(StyledLine::simple(
                        INDENT,
                        "! the model declined",
                        theme.warn(),
                    ));
                }
                _ => {}
            }
        }
        ReplyState::Interrupted { reason } => {
            out.push(StyledLine::simple(
                INDENT,
                format!("! interrupted — {}{kept}", sanitize(reason, 0)),
                theme.warn(),
            ));
        }
        ReplyState::Failed { message, .. } => {
            let msg = sanitize(message, 0);
            let mut first = true;
            for line in msg.split('\n') {
                let text = if first {
                    format!("✗ error: {line}")
                } else {
                    line.to_string()
                };
                first = false;
                out.push(StyledLine::simple(INDENT, text, theme.error()));
            }
        }
        ReplyState::Cancelled => {
            out.push(StyledLine::simple(
                INDENT,
                format!("■ cancelled{kept}"),
                theme.warn(),
            ));
        }
    }
    if turn.is_retryable() && !turn.superseded && fp.retry_hint {
        out.push(StyledLine {
            first_prefix: vec![Span::raw(INDENT)],
            prefix: vec![Span::raw(INDENT)],
            spans: vec![
                Span::styled("Ctrl+R", theme.warn()),
                Span::styled(
                    if crate::chat::resume::can_resume(turn) {
                        " to retry or continue"
                    } else {
                        " to retry"
                    },
                    dim,
                ),
            ],
            mode: WrapMode::Word,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(c: &TranscriptCache) -> Vec<String> {
        (0..c.total_rows())
            .map(|r| match c.row(r) {
                Some(Row::Line(l)) => l.to_string(),
                Some(Row::Live(i)) => format!("<live {i}>"),
                Some(Row::Blank) => String::new(),
                None => "<none>".into(),
            })
            .collect()
    }

    #[test]
    fn streaming_rerenders_only_the_tail() {
        let mut turn = Turn::new("hi", "m");
        turn.state = ReplyState::Streaming;
        let mut c = TranscriptCache::new(Theme::default());
        let mut text = String::new();
        for i in 0..50 {
            text.push_str(&format!("Paragraph {i} with some words.\n\n"));
        }
        turn.assistant = text.clone();
        c.sync(std::slice::from_ref(&turn), &[1], false, None, 40, 0);
        let before = c.stats();
        turn.assistant.push_str("More");
        c.sync(std::slice::from_ref(&turn), &[1], false, None, 40, 0);
        let after = c.stats();
        assert_eq!(
            after.rebuilds, before.rebuilds,
            "no rebuild while streaming"
        );
        // The paragraph that just finished and the new tail were wrapped (each with its
        // separating blank line); the 49 paragraphs before them were not.
        assert_eq!(
            after.lines_wrapped - before.lines_wrapped,
            4,
            "{before:?} {after:?}"
        );
        let r = rows(&c);
        // Walking from a row gives the same rows as looking each one up.
        let walked: Vec<String> = c
            .rows_from(5)
            .map(|row| match row {
                Row::Line(l) => l.to_string(),
                Row::Live(i) => format!("<live {i}>"),
                Row::Blank => String::new(),
            })
            .collect();
        assert_eq!(walked, r[5..]);
        assert_eq!(r[r.len() - 3], "  More");
        assert_eq!(r[r.len() - 2], "<live 0>");
    }

    #[test]
    fn finished_turns_cost_nothing_per_frame() {
        let mut t = Turn::new("q", "m");
        t.assistant = "answer".into();
        t.state = ReplyState::Complete { stop_reason: None };
        let turns = vec![t.clone(), t.clone(), t];
        let mut c = TranscriptCache::new(Theme::default());
        c.sync(&turns, &[1, 1, 1], false, None, 30, 0);
        let s = c.stats();
        c.sync(&turns, &[1, 1, 1], false, None, 30, 0);
        assert_eq!(c.stats(), s);
        assert_eq!(
            rows(&c)[..6],
            ["▌ you  #1", "  q", "", "▌ claude · m", "  answer", ""]
        );
        // A new width re-wraps once.
        c.sync(&turns, &[1, 1, 1], false, None, 31, 0);
        assert!(c.stats().lines_wrapped > s.lines_wrapped);
    }
}
