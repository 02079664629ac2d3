//! The transcript as rows, rendered on demand: each turn keeps only what scrolling needs (the
//! heights of its parts at the current width), and the rendered, wrapped lines of the parts
//! near the view are kept in a cache bounded by bytes. A frame draws only the visible rows,
//! and costs the same for a short conversation as for a very long one.
//!
//! A turn is a header (prompt, model, thinking), the reply's markdown and a footer, cut into
//! pieces: the reply at its top-level blocks ([`markdown::next_cut`]; a block longer than
//! [`markdown::PIECE`] is cut in pieces too), a long prompt or thinking at line starts.
//! Consecutive pieces are grouped into units of at least [`UNIT_BYTES`] of text; a unit is
//! what is rendered, measured and cached. Every piece is rendered once when it is finished
//! (or when the turn is laid out, for a resumed one) to learn its height, and its lines are
//! dropped unless its unit is in the cache; a unit scrolled into view is rendered again from
//! the few bytes that say where it starts ([`MdState`]). While a reply streams, only its
//! unfinished piece is rendered again, so a frame's work does not grow with a reply's
//! length. A change of width measures everything again, once. Row numbers are `usize`, never
//! `u16`, so there is no limit on the length of a conversation.
//!
//! Memory stays close to the text the conversation holds anyway: a few dozen bytes per turn
//! and per unit, and the cache ([`CACHE_BYTES`], plus the units in view), whose lines are
//! kept compactly (a [`LineStore`], with [`Wrapped`] rows pointing into it). Keeping every
//! turn's rendered lines instead had put the peak RSS with 10 MB resumed at 2.4× the text
//! above the base for one paragraph, 5.1× for 5,700 turns of prose and 7.4× for a reply of
//! short styled lines (`scripts/measure_tui_rss.sh`; now 1.6×, 2.3× and 2.6×, most of it the
//! session being read and the syntax highlighting's definitions).

use std::collections::BTreeMap;

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::line_store::LineStore;
use super::markdown::{self, MdState};
use super::sanitize::sanitize;
use super::theme::Theme;
use super::wrap::{StyledLine, WrapMode, Wrapped};
use crate::chat::{ReplyState, Turn};

/// Indentation of a turn's body under its header.
pub const INDENT: &str = "  ";

/// Pieces are grouped into units of at least this many bytes of text.
pub const UNIT_BYTES: usize = 16 << 10;

/// What the cache keeps of rendered lines, in bytes, beyond the units in view.
pub const CACHE_BYTES: usize = 4 << 20;

/// What one turn's rows were built from. Text only grows while a turn is live, so
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
    /// Logical lines wrapped (to be measured, drawn or searched).
    pub lines_wrapped: u64,
    /// Turns laid out from scratch.
    pub rebuilds: u64,
    /// Unfinished tails (a reply's last piece and the footer) rendered again.
    pub tail_renders: u64,
    /// Units rendered again to be drawn or searched (measured before, then dropped or
    /// evicted).
    pub units_rendered: u64,
    /// Bytes of text (prompts, thinking, replies) rendered, for any of the above.
    pub bytes_rendered: u64,
}

/// The parts of a turn, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    /// The "▌ you" line.
    Top,
    /// The prompt.
    User,
    /// Attachments, the "▌ claude" line and the thinking summary.
    Mid,
    /// The thinking, when expanded.
    Thinking,
    /// The reply.
    Reply,
}

/// Where a piece starts: enough to render the turn on from there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pos {
    part: Part,
    /// Byte offset in the part's text.
    at: u32,
    /// The markdown renderer's state (the reply only).
    md: MdState,
}

impl Pos {
    fn new(part: Part) -> Pos {
        Pos {
            part,
            at: 0,
            md: MdState::default(),
        }
    }

    fn order(&self) -> (Part, u32) {
        (self.part, self.at)
    }
}

/// A `u32` offset or count (no turn holds 4 GiB of text or 4 billion rows).
fn idx(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Finished pieces of a turn, rendered and cached together.
#[derive(Clone, Copy, Debug)]
struct Unit {
    start: Pos,
    /// Its first row in the turn.
    first_row: u32,
}

/// One turn: its units, its unfinished tail, and their heights.
struct Entry {
    fp: Fingerprint,
    units: Vec<Unit>,
    /// Where the finished pieces end: the tail (the rest of the reply, and the footer)
    /// starts here.
    done: Pos,
    /// Rows of the units.
    rows: u32,
    /// Bytes of text in the last unit (it takes more pieces until it has [`UNIT_BYTES`]).
    open: u32,
    /// Rows of the tail.
    tail_rows: u32,
    /// The thinking shown ends here (trailing blanks are not), over this many lines.
    thinking_end: u32,
    thinking_lines: u32,
    live: bool,
}

impl Entry {
    fn height(&self) -> usize {
        self.line_rows() + usize::from(self.live) + 1
    }

    /// Rows that are rendered lines (not the live line, not the blank after the turn).
    fn line_rows(&self) -> usize {
        self.rows as usize + self.tail_rows as usize
    }

    /// The unit holding row `local` (below `rows`).
    fn unit_at(&self, local: usize) -> usize {
        self.units
            .partition_point(|u| u.first_row as usize <= local)
            .saturating_sub(1)
    }

    /// Where unit `u` ends.
    fn unit_end(&self, u: usize) -> Pos {
        self.units.get(u + 1).map_or(self.done, |n| n.start)
    }
}

/// What a turn's pieces are rendered from.
struct Ctx<'a> {
    turn: &'a Turn,
    fp: Fingerprint,
    theme: Theme,
    thinking_end: usize,
    thinking_lines: usize,
}

impl<'a> Ctx<'a> {
    fn new(turn: &'a Turn, e: &Entry, theme: Theme) -> Ctx<'a> {
        Ctx {
            turn,
            fp: e.fp,
            theme,
            thinking_end: e.thinking_end as usize,
            thinking_lines: e.thinking_lines as usize,
        }
    }
}

/// A unit's (or a tail's) lines and rows.
#[derive(Default)]
struct Rendered {
    lines: LineStore,
    rows: Wrapped,
}

impl Rendered {
    fn bytes(&self) -> usize {
        std::mem::size_of::<Rendered>() + self.lines.heap_bytes() + self.rows.heap_bytes()
    }

    fn row(&self, k: usize) -> Row<'_> {
        self.rows.row(k, &self.lines).map_or(Row::Blank, Row::Line)
    }
}

/// A cached unit: (turn, unit), the unit [`TAIL`] being the turn's tail.
type Key = (usize, u32);

/// The unit number of a turn's tail.
const TAIL: u32 = u32::MAX;

struct Slot {
    r: Rendered,
    bytes: usize,
    stamp: u64,
}

/// Rendered units, the least recently used dropped first.
#[derive(Default)]
struct Lru {
    slots: BTreeMap<Key, Slot>,
    /// Slots by last use.
    order: BTreeMap<u64, Key>,
    bytes: usize,
    clock: u64,
}

impl Lru {
    fn get(&self, key: Key) -> Option<&Rendered> {
        self.slots.get(&key).map(|s| &s.r)
    }

    fn contains(&self, key: Key) -> bool {
        self.slots.contains_key(&key)
    }

    /// Mark `key` used now; false when it is not cached.
    fn touch(&mut self, key: Key) -> bool {
        let Some(slot) = self.slots.get_mut(&key) else {
            return false;
        };
        self.order.remove(&slot.stamp);
        self.clock += 1;
        slot.stamp = self.clock;
        self.order.insert(self.clock, key);
        true
    }

    fn insert(&mut self, key: Key, r: Rendered) {
        self.remove(key);
        self.clock += 1;
        let bytes = r.bytes();
        self.bytes += bytes;
        self.order.insert(self.clock, key);
        self.slots.insert(
            key,
            Slot {
                r,
                bytes,
                stamp: self.clock,
            },
        );
    }

    /// Change `key`'s lines in place (its size is counted again); false when not cached.
    fn update(&mut self, key: Key, f: impl FnOnce(&mut Rendered)) -> bool {
        let Some(slot) = self.slots.get_mut(&key) else {
            return false;
        };
        f(&mut slot.r);
        let bytes = slot.r.bytes();
        self.bytes = self.bytes - slot.bytes + bytes;
        slot.bytes = bytes;
        true
    }

    fn remove(&mut self, key: Key) {
        if let Some(slot) = self.slots.remove(&key) {
            self.order.remove(&slot.stamp);
            self.bytes -= slot.bytes;
        }
    }

    /// Forget the units of turns `from..`.
    fn remove_turns_from(&mut self, from: usize) {
        let keys: Vec<Key> = self.slots.range((from, 0)..).map(|(k, _)| *k).collect();
        for k in keys {
            self.remove(k);
        }
    }

    /// Forget the units of turn `i`.
    fn remove_turn(&mut self, i: usize) {
        let keys: Vec<Key> = self
            .slots
            .range((i, 0)..=(i, TAIL))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.remove(k);
        }
    }

    fn clear(&mut self) {
        self.slots.clear();
        self.order.clear();
        self.bytes = 0;
    }

    /// Drop the least recently used units while more than `limit` bytes are kept, but none
    /// used at or after `keep_from`.
    fn evict(&mut self, limit: usize, keep_from: u64) {
        while self.bytes > limit {
            let Some((&stamp, &key)) = self.order.first_key_value() else {
                break;
            };
            if stamp >= keep_from {
                break;
            }
            self.remove(key);
        }
    }
}

/// A row of the transcript.
#[derive(Clone, Debug, PartialEq)]
pub enum Row<'a> {
    /// A rendered line, borrowed from the cache.
    Line(Line<'a>),
    /// The live status line of the turn at this index (drawn at render time: it counts down).
    Live(usize),
    /// Space between turns.
    Blank,
}

/// Wrap `lines` to `width` onto `into`, or only count their rows; returns how many.
fn wrap_lines(
    stats: &mut Stats,
    width: u16,
    lines: Vec<StyledLine>,
    into: Option<&mut Rendered>,
) -> u32 {
    let mut n = 0;
    if let Some(r) = into {
        for l in lines {
            stats.lines_wrapped += 1;
            n += r.rows.push_line(r.lines.len(), &l, width);
            r.lines.push(l);
        }
    } else {
        let mut scratch = Wrapped::default();
        for l in &lines {
            stats.lines_wrapped += 1;
            n += scratch.push_line(0, l, width);
            scratch.clear();
        }
    }
    idx(n)
}

/// The cache.
pub struct TranscriptCache {
    theme: Theme,
    width: u16,
    epoch: u64,
    expanded: bool,
    entries: Vec<Entry>,
    offsets: Vec<usize>,
    /// Leading turns that had ended at the last sync. An ended turn changes only when it
    /// becomes (or stops being) the retry target, or is superseded (it was the target), so
    /// a frame checks the turns after these plus the old and new target: a long history
    /// costs nothing per frame.
    settled: usize,
    last_target: Option<usize>,
    lru: Lru,
    limit: usize,
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
            lru: Lru::default(),
            limit: CACHE_BYTES,
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

    /// Bytes held in rendered lines now.
    pub fn cached_bytes(&self) -> usize {
        self.lru.bytes
    }

    /// What the cache keeps beyond the units in view ([`CACHE_BYTES`] unless set).
    pub fn cache_limit(&self) -> usize {
        self.limit
    }

    /// Keep at most `bytes` of rendered lines beyond the units in view.
    pub fn set_cache_limit(&mut self, bytes: usize) {
        self.limit = bytes;
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
            self.lru.clear();
            self.offsets.truncate(1);
            self.settled = 0;
            self.width = width;
            self.epoch = epoch;
            self.expanded = expanded;
        }
        let mut first_changed = None;
        if self.entries.len() > turns.len() {
            self.entries.truncate(turns.len());
            self.lru.remove_turns_from(turns.len());
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
            match self.entries.get(i).map(|e| e.fp) {
                Some(old) if old == fp => continue,
                Some(old) if !old.needs_rebuild(&fp) => {
                    let mut e = std::mem::replace(&mut self.entries[i], Entry::empty(fp));
                    e.fp = fp;
                    self.refresh(i, &mut e, turn);
                    self.entries[i] = e;
                }
                Some(_) => {
                    let e = self.build(i, turn, fp);
                    self.entries[i] = e;
                }
                None => {
                    let e = self.build(i, turn, fp);
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

    fn build(&mut self, i: usize, turn: &Turn, fp: Fingerprint) -> Entry {
        self.stats.rebuilds += 1;
        self.lru.remove_turn(i);
        let mut e = Entry::new(fp, turn);
        self.refresh(i, &mut e, turn);
        e
    }

    /// Render the pieces finished since the last time, and the tail.
    fn refresh(&mut self, i: usize, e: &mut Entry, turn: &Turn) {
        e.live = !turn.state.is_final();
        self.advance(i, e, turn);
        self.render_tail(i, e, turn);
        if !e.live {
            // A finished turn keeps what it has as it is: no room left for growth.
            e.units.shrink_to_fit();
            if let Some(last) = e.units.len().checked_sub(1) {
                self.lru.update((i, idx(last)), |r| {
                    r.lines.shrink_to_fit();
                    r.rows.shrink_to_fit();
                });
            }
        }
    }

    /// Render and measure the pieces that finished since the last time. Their lines go to
    /// their unit if it is cached (a live turn's are: they are being watched), else they
    /// are dropped.
    fn advance(&mut self, i: usize, e: &mut Entry, turn: &Turn) {
        let c = Ctx::new(turn, e, self.theme);
        let mut out = Vec::new();
        while let Some((next, bytes)) = step(&c, e.done, &mut out) {
            self.stats.bytes_rendered += bytes as u64;
            if e.units.is_empty() || e.open as usize >= UNIT_BYTES {
                e.units.push(Unit {
                    start: e.done,
                    first_row: e.rows,
                });
                e.open = 0;
                if e.live {
                    self.lru
                        .insert((i, idx(e.units.len() - 1)), Rendered::default());
                }
            }
            let key = (i, idx(e.units.len() - 1));
            let lines = std::mem::take(&mut out);
            let (stats, width) = (&mut self.stats, self.width);
            let mut rows = 0;
            let mut lines = Some(lines);
            self.lru.update(key, |r| {
                rows = wrap_lines(stats, width, lines.take().unwrap_or_default(), Some(r));
            });
            if let Some(lines) = lines {
                rows = wrap_lines(stats, width, lines, None);
            }
            e.rows += rows;
            e.open = e.open.saturating_add(idx(bytes));
            e.done = next;
        }
    }

    /// Render the tail: the rest of the reply and the footer. Kept in the cache when the
    /// turn is live or the tail was cached (it is in view), else only measured.
    fn render_tail(&mut self, i: usize, e: &mut Entry, turn: &Turn) {
        self.stats.tail_renders += 1;
        let key = (i, TAIL);
        let keep = e.live || self.lru.contains(key);
        self.lru.remove(key);
        let lines = tail_lines(&Ctx::new(turn, e, self.theme), e.done, &mut self.stats);
        if keep {
            let mut r = Rendered::default();
            e.tail_rows = wrap_lines(&mut self.stats, self.width, lines, Some(&mut r));
            self.lru.insert(key, r);
        } else {
            e.tail_rows = wrap_lines(&mut self.stats, self.width, lines, None);
        }
    }

    /// The lines of unit `u` of turn `i` (or of its tail), rendered again.
    fn unit_lines(&mut self, turns: &[Turn], i: usize, u: u32) -> Option<Vec<StyledLine>> {
        let turn = turns.get(i)?;
        let e = self.entries.get(i)?;
        let c = Ctx::new(turn, e, self.theme);
        self.stats.units_rendered += 1;
        if u == TAIL {
            return Some(tail_lines(&c, e.done, &mut self.stats));
        }
        let mut out = Vec::new();
        let mut pos = e.units.get(u as usize)?.start;
        let end = e.unit_end(u as usize);
        while pos.order() < end.order() {
            let Some((next, bytes)) = step(&c, pos, &mut out) else {
                break;
            };
            self.stats.bytes_rendered += bytes as u64;
            pos = next;
        }
        Some(out)
    }

    /// Render unit `u` of turn `i` (or its tail) again, and wrap it.
    fn render_unit(&mut self, turns: &[Turn], i: usize, u: u32) -> Option<Rendered> {
        let lines = self.unit_lines(turns, i, u)?;
        Some(self.wrapped(lines))
    }

    fn wrapped(&mut self, lines: Vec<StyledLine>) -> Rendered {
        let mut r = Rendered::default();
        wrap_lines(&mut self.stats, self.width, lines, Some(&mut r));
        r.lines.shrink_to_fit();
        r.rows.shrink_to_fit();
        r
    }

    /// Rows of unit `u` of turn `i` (or of its tail).
    fn unit_rows(&self, i: usize, u: u32) -> usize {
        let Some(e) = self.entries.get(i) else {
            return 0;
        };
        if u == TAIL {
            return e.tail_rows as usize;
        }
        let first = e.units.get(u as usize).map_or(0, |x| x.first_row);
        let next = e.units.get(u as usize + 1).map_or(e.rows, |x| x.first_row);
        next.saturating_sub(first) as usize
    }

    /// The units (and tails) that hold rows `top..top + height`.
    fn keys_in(&self, top: usize, height: usize) -> Vec<Key> {
        let mut keys = Vec::new();
        let end = top.saturating_add(height).min(self.total_rows());
        if top >= end {
            return keys;
        }
        let mut i = self
            .offsets
            .partition_point(|&o| o <= top)
            .saturating_sub(1);
        while let Some(e) = self.entries.get(i) {
            let base = self.offsets[i];
            if base >= end {
                break;
            }
            let (lo, hi) = (top.saturating_sub(base), end - base);
            if lo < e.rows as usize {
                let mut u = e.unit_at(lo);
                while u < e.units.len() && (e.units[u].first_row as usize) < hi {
                    keys.push((i, idx(u)));
                    u += 1;
                }
            }
            if e.tail_rows > 0 && (e.rows as usize) < hi && e.line_rows() > lo {
                keys.push((i, TAIL));
            }
            i += 1;
        }
        keys
    }

    /// How many units (and tails) hold rows `top..top + height`.
    pub fn units_in_view(&self, top: usize, height: usize) -> usize {
        self.keys_in(top, height).len()
    }

    /// Have rows `top..top + height` rendered, rendering the units they belong to that are
    /// not cached; then drop the least recently used units beyond the cache's limit (never
    /// these).
    pub fn prepare(&mut self, turns: &[Turn], top: usize, height: usize) {
        let keep_from = self.lru.clock + 1;
        for key in self.keys_in(top, height) {
            if !self.lru.touch(key)
                && let Some(r) = self.render_unit(turns, key.0, key.1)
            {
                self.lru.insert(key, r);
            }
        }
        self.lru.evict(self.limit, keep_from);
    }

    /// The row at `row` (0 is the first row of the first turn); `None` past the end, or
    /// when its unit is not rendered (see [`TranscriptCache::prepare`]).
    pub fn row(&self, row: usize) -> Option<Row<'_>> {
        if row >= self.total_rows() {
            return None;
        }
        let i = self.offsets.partition_point(|&o| o <= row).checked_sub(1)?;
        let e = self.entries.get(i)?;
        let local = row - self.offsets[i];
        if local < e.rows as usize {
            let u = e.unit_at(local);
            let r = self.lru.get((i, idx(u)))?;
            return Some(r.row(local - e.units[u].first_row as usize));
        }
        if local < e.line_rows() {
            let r = self.lru.get((i, TAIL))?;
            return Some(r.row(local - e.rows as usize));
        }
        if e.live && local == e.line_rows() {
            return Some(Row::Live(i));
        }
        Some(Row::Blank)
    }

    /// Rows `top..top + n` (fewer at the end), once [`TranscriptCache::prepare`] has
    /// rendered them.
    pub fn rows(&self, top: usize, n: usize) -> Vec<Row<'_>> {
        let end = top.saturating_add(n).min(self.total_rows());
        (top..end)
            .map(|r| self.row(r).unwrap_or(Row::Blank))
            .collect()
    }

    /// Call `f` with every row in order, rendering the units that are not cached one at a
    /// time (and dropping them after: a search does not fill the cache).
    pub fn for_each_row(&mut self, turns: &[Turn], f: impl FnMut(usize, Row<'_>)) {
        self.for_each_row_where(turns, |_| true, f);
    }

    /// [`TranscriptCache::for_each_row`], but only sure to call `f` with the rows of the
    /// lines `wanted` keeps: a unit that is not cached is rendered, and laid out only when
    /// one of its lines is wanted (a search looks at a line's text before laying it out).
    pub fn for_each_row_where(
        &mut self,
        turns: &[Turn],
        wanted: impl Fn(&StyledLine) -> bool,
        mut f: impl FnMut(usize, Row<'_>),
    ) {
        let mut row = 0;
        for i in 0..self.entries.len() {
            let n = self.entries[i].units.len();
            let tail = (self.entries[i].tail_rows > 0).then_some(TAIL);
            for u in (0..idx(n)).chain(tail) {
                let (fresh, keep) = if self.lru.contains((i, u)) {
                    (None, Vec::new())
                } else {
                    let lines = self.unit_lines(turns, i, u).unwrap_or_default();
                    let keep: Vec<bool> = lines.iter().map(&wanted).collect();
                    if !keep.contains(&true) {
                        row += self.unit_rows(i, u);
                        continue;
                    }
                    (Some(self.wrapped(lines)), keep)
                };
                let Some(r) = fresh.as_ref().or_else(|| self.lru.get((i, u))) else {
                    continue;
                };
                for k in 0..r.rows.len() {
                    let line = r.rows.line_of(k).unwrap_or(0);
                    if keep.is_empty() || keep.get(line).copied().unwrap_or(true) {
                        f(row, r.row(k));
                    }
                    row += 1;
                }
            }
            if self.entries[i].live {
                f(row, Row::Live(i));
                row += 1;
            }
            f(row, Row::Blank);
            row += 1;
        }
    }
}

impl TranscriptCache {
    /// The unit (or tail) that holds row `row`, and the unit's first row; `None` for a live
    /// line, a blank between turns, or past the end.
    fn unit_of(&self, row: usize) -> Option<(Key, usize)> {
        let i = self.offsets.partition_point(|&o| o <= row).checked_sub(1)?;
        let e = self.entries.get(i)?;
        let base = self.offsets[i];
        let local = row - base;
        if local < e.rows as usize {
            let u = e.unit_at(local);
            return Some(((i, idx(u)), base + e.units[u].first_row as usize));
        }
        (local < e.line_rows()).then_some(((i, TAIL), base + e.rows as usize))
    }

    /// Call `f` with each of `rows` (ascending) that is a rendered line, rendering the units
    /// that hold them and are not cached (and dropping them after).
    pub fn for_rows(&mut self, turns: &[Turn], rows: &[usize], mut f: impl FnMut(usize, Row<'_>)) {
        let mut k = 0;
        while let Some(&row) = rows.get(k) {
            let Some((key, first)) = self.unit_of(row) else {
                k += 1;
                continue;
            };
            let fresh = if self.lru.contains(key) {
                None
            } else {
                self.render_unit(turns, key.0, key.1)
            };
            let Some(r) = fresh.as_ref().or_else(|| self.lru.get(key)) else {
                k += 1;
                continue;
            };
            let end = first + r.rows.len();
            while let Some(&row) = rows.get(k).filter(|&&row| row < end) {
                f(row, r.row(row - first));
                k += 1;
            }
            if end <= row {
                k += 1;
            }
        }
    }
}

impl Entry {
    fn empty(fp: Fingerprint) -> Entry {
        Entry {
            fp,
            units: Vec::new(),
            done: Pos::new(Part::Top),
            rows: 0,
            open: 0,
            tail_rows: 0,
            thinking_end: 0,
            thinking_lines: 1,
            live: false,
        }
    }

    fn new(fp: Fingerprint, turn: &Turn) -> Entry {
        let end = thinking_end(&turn.thinking);
        let lines = turn.thinking.get(..end).unwrap_or("").matches('\n').count() + 1;
        Entry {
            thinking_end: idx(end),
            thinking_lines: idx(lines),
            live: !turn.state.is_final(),
            ..Entry::empty(fp)
        }
    }
}

/// Whether `c` is blank or gone once sanitized ([`sanitize`]: tabs become spaces, `\r` and
/// bidirectional controls are dropped, other controls become visible pictures).
fn blank_when_clean(c: char) -> bool {
    match c {
        '\t' | '\n' | '\r' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        c if (c as u32) < 0x20 || ('\u{7f}'..='\u{9f}').contains(&c) => false,
        c => c.is_whitespace(),
    }
}

/// The length of the start of `thinking` that sanitizes to `sanitize(thinking).trim_end()`.
fn thinking_end(thinking: &str) -> usize {
    thinking
        .char_indices()
        .rev()
        .find(|(_, c)| !blank_when_clean(*c))
        .map_or(0, |(i, c)| i + c.len_utf8())
}

/// Render the piece of a turn at `pos` into `out`: returns where the next one starts and the
/// bytes of text this one held, or `None` when it is the reply's unfinished tail (nothing is
/// rendered then).
fn step(c: &Ctx<'_>, pos: Pos, out: &mut Vec<StyledLine>) -> Option<(Pos, usize)> {
    let at = pos.at as usize;
    let then = |part: Part, text: &str, end: usize| {
        if end >= text.len() {
            Pos::new(part)
        } else {
            Pos {
                at: idx(end),
                ..pos
            }
        }
    };
    match pos.part {
        Part::Top => {
            out.push(you_line(c));
            Some((Pos::new(Part::User), 0))
        }
        Part::User => {
            let text = &c.turn.user;
            let end = plain_piece(text, at, INDENT, Style::new(), out);
            Some((then(Part::Mid, text, end), end - at))
        }
        Part::Mid => {
            mid_lines(c, out);
            let next = if c.fp.expanded {
                Part::Thinking
            } else {
                Part::Reply
            };
            Some((Pos::new(next), 0))
        }
        Part::Thinking => {
            let text = c.turn.thinking.get(..c.thinking_end).unwrap_or("");
            let end = plain_piece(text, at, "  │ ", c.theme.dim(), out);
            Some((then(Part::Reply, text, end), end - at))
        }
        Part::Reply => {
            let text = &c.turn.assistant;
            let (end, md) = markdown::step(text, at, &pos.md, c.theme, INDENT, out)?;
            let next = Pos {
                part: Part::Reply,
                at: idx(end),
                md,
            };
            Some((next, end - at))
        }
    }
}

/// The lines of a piece of plain text from `at`, one per line of the text, each with
/// `prefix`; returns where the piece ends.
fn plain_piece(
    text: &str,
    at: usize,
    prefix: &str,
    style: Style,
    out: &mut Vec<StyledLine>,
) -> usize {
    let end = markdown::plain_cut(text, at).unwrap_or(text.len());
    let piece = text.get(at..end).unwrap_or("");
    // A piece cut at a line start ends with that line's break, which starts no line here.
    let piece = if end < text.len() {
        piece.strip_suffix('\n').unwrap_or(piece)
    } else {
        piece
    };
    for line in sanitize(piece, 0).split('\n') {
        out.push(StyledLine::simple(prefix, line, style));
    }
    end
}

/// A tail's lines: the reply from `from` on (unfinished, or the last piece of a finished
/// one), and the footer.
fn tail_lines(c: &Ctx<'_>, from: Pos, stats: &mut Stats) -> Vec<StyledLine> {
    let mut out = Vec::new();
    let text = &c.turn.assistant;
    let at = from.at as usize;
    markdown::render_rest(text, at, &from.md, c.theme, INDENT, &mut out);
    stats.bytes_rendered += text.len().saturating_sub(at) as u64;
    out.extend(footer(c.turn, c.fp, c.theme));
    out
}

fn you_line(c: &Ctx<'_>) -> StyledLine {
    let (turn, theme) = (c.turn, c.theme);
    let dim = theme.dim();
    let mut you = vec![Span::styled("▌ you", theme.user_header())];
    you.push(Span::styled(format!("  #{}", c.fp.label), dim));
    if turn.superseded_by_edit {
        you.push(Span::styled(" · edited and resent below", dim));
    } else if turn.superseded {
        you.push(Span::styled(" · superseded by a retry", dim));
    }
    StyledLine {
        spans: you,
        ..StyledLine::default()
    }
}

fn mid_lines(c: &Ctx<'_>, out: &mut Vec<StyledLine>) {
    let (turn, theme) = (c.turn, c.theme);
    let dim = theme.dim();
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
        let n = c.thinking_lines;
        let noun = if n == 1 { "line" } else { "lines" };
        let text = if c.fp.expanded {
            format!("▾ thinking ({n} {noun}) · Ctrl+O to collapse")
        } else {
            format!("▸ thinking ({n} {noun}) · Ctrl+O to expand")
        };
        out.push(StyledLine::simple(INDENT, text, dim));
    }
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

    fn shown(row: Row<'_>) -> String {
        match row {
            Row::Line(l) => l.to_string(),
            Row::Live(i) => format!("<live {i}>"),
            Row::Blank => String::new(),
        }
    }

    /// Every row, rendered as needed (the cache is left as it was).
    fn rows(c: &mut TranscriptCache, turns: &[Turn]) -> Vec<String> {
        let mut out = Vec::new();
        c.for_each_row(turns, |_, r| out.push(shown(r)));
        out
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
        let r = rows(&mut c, std::slice::from_ref(&turn));
        // The rows of a prepared view are the same rows.
        c.prepare(std::slice::from_ref(&turn), 5, 1000);
        let viewed: Vec<String> = c.rows(5, 1000).into_iter().map(shown).collect();
        assert_eq!(viewed, r[5..]);
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
            rows(&mut c, &turns)[..6],
            ["▌ you  #1", "  q", "", "▌ claude · m", "  answer", ""]
        );
        // A new width re-wraps once.
        c.sync(&turns, &[1, 1, 1], false, None, 31, 0);
        assert!(c.stats().lines_wrapped > s.lines_wrapped);
    }

    proptest::proptest! {
        #[test]
        fn the_thinking_shown_ends_where_its_clean_text_does(
            text in "[a-z\t\n\r \u{1b}\u{85}\u{a0}\u{202e}\u{7f}\u{3000}]{0,12}",
        ) {
            let end = thinking_end(&text);
            let clean = sanitize(&text, 0);
            let shown = sanitize(&text[..end], 0);
            proptest::prop_assert_eq!(shown.as_ref(), clean.trim_end());
        }
    }

    /// A turn of every part, long enough to be cut: a prompt and thinking of many lines,
    /// and a reply of short blocks, a long paragraph and a long code block.
    fn long_turn() -> Turn {
        let mut t = Turn::new(
            (0..5000)
                .map(|i| format!("prompt line {i}\twith a tab"))
                .collect::<Vec<_>>()
                .join("\n"),
            "m",
        );
        t.thinking = (0..4000)
            .map(|i| format!("thought {i}"))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n\n";
        for i in 0..400 {
            t.assistant
                .push_str(&format!("## Part {i}\n\nSome **bold** and `code` {i}.\n\n"));
        }
        t.assistant.push_str(&"words and more words ".repeat(8000));
        t.assistant.push_str("\n\n```rust\n");
        for i in 0..5000 {
            t.assistant.push_str(&format!("let v{i} = {i};\n"));
        }
        t.assistant.push_str("```\n\nThe end.");
        t.state = ReplyState::Complete { stop_reason: None };
        t
    }

    #[test]
    fn rows_drawn_on_demand_are_the_rows_measured() {
        let mut short = Turn::new("q", "m");
        short.assistant = "a short answer".into();
        short.state = ReplyState::Complete { stop_reason: None };
        let turns = vec![short.clone(), long_turn(), short];
        let mut c = TranscriptCache::new(Theme::default());
        c.sync(&turns, &[1, 2, 3], true, None, 60, 0);
        let all = rows(&mut c, &turns);
        assert_eq!(all.len(), c.total_rows());
        // The parts, as a reader sees them.
        assert_eq!(all[6], "▌ you  #2");
        assert_eq!(all[7], "  prompt line 0   with a tab");
        assert_eq!(all[7 + 4999], "  prompt line 4999    with a tab");
        assert_eq!(all[7 + 5001], "▌ claude · m");
        assert_eq!(
            all[7 + 5002],
            "  ▾ thinking (4000 lines) · Ctrl+O to collapse"
        );
        assert_eq!(all[7 + 5003 + 3999], "  │ thought 3999");
        assert_eq!(all[7 + 5003 + 4000], "  ## Part 0");
        let code: Vec<&String> = all.iter().filter(|r| r.starts_with("  let v")).collect();
        assert_eq!(code.len(), 5000);
        assert!(
            code.iter()
                .enumerate()
                .all(|(i, r)| **r == format!("  let v{i} = {i};"))
        );
        assert_eq!(all.iter().filter(|r| r.contains("```rust")).count(), 1);
        let n = all.len();
        assert_eq!(all[n - 8..n - 6], ["  The end.", ""]);
        let last = [
            "▌ you  #3",
            "  q",
            "",
            "▌ claude · m",
            "  a short answer",
            "",
        ];
        assert_eq!(all[n - 6..], last[..]);
        // Windows anywhere, with a cache too small to keep much: the same rows.
        c.set_cache_limit(32 << 10);
        let total = c.total_rows();
        for top in (0..total).step_by(997).chain([total - 30]) {
            c.prepare(&turns, top, 30);
            let window: Vec<String> = c.rows(top, 30).into_iter().map(shown).collect();
            assert_eq!(window, all[top..(top + 30).min(total)], "rows from {top}");
            assert!(
                c.cached_bytes() <= (32 << 10) + (1 << 20),
                "{}",
                c.cached_bytes()
            );
        }
    }
}
