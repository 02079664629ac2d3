//! Wrapping styled lines to a width, by display cells and grapheme clusters.
//!
//! ratatui's `Paragraph` wraps at render time, every frame, so a frame's cost grows with the
//! whole transcript and long conversations get slow to scroll and stream into. Here a logical
//! line is wrapped once into visual lines that the transcript cache keeps; the view then
//! copies the visible rows only. Widths come from `unicode-width` per grapheme, so wide
//! characters never straddle the edge and combining marks stay on their base character.

use std::sync::Arc;

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::line_store::LineStore;

/// How a logical line breaks when it is too wide.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum WrapMode {
    /// Break between words; a word longer than the line is broken between graphemes.
    #[default]
    Word,
    /// Break anywhere, keep every space (code).
    Char,
    /// A horizontal rule: the first span's text is repeated to fill the width.
    Rule,
    /// A whole table, laid out for the width: columns keep their alignment, and cells too
    /// wide for their share wrap inside their column.
    Table(Arc<TableBlock>),
}

/// A table's cells (each a list of styled spans), for [`WrapMode::Table`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableBlock {
    /// Rows of cells.
    pub rows: Vec<Vec<Vec<Span<'static>>>>,
    /// How many leading rows are the header (a rule is drawn under them).
    pub head_rows: usize,
    /// The style of the column separators and the rule.
    pub border: Style,
}

/// Between two columns.
const COLUMN_GAP: &str = " │ ";

/// Narrower than this, a column would chop its words into pieces: the table is then written
/// row by row as text instead.
const MIN_COLUMN: usize = 6;

/// Column widths for `natural` widths in `budget` cells: columns that fit their share keep
/// their width; the wider ones share what is left equally ("water filling").
fn fit_columns(natural: &[usize], budget: usize) -> Vec<usize> {
    let n = natural.len();
    let mut widths = vec![0usize; n];
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| natural[i]);
    let mut left = budget;
    for (k, &i) in order.iter().enumerate() {
        let share = left / (n - k);
        let w = natural[i].min(share).max(1);
        widths[i] = w;
        left = left.saturating_sub(w);
    }
    widths
}

fn wrap_table(line: &StyledLine, table: &TableBlock, width: usize, out: &mut Vec<Line<'static>>) {
    let ncols = table.rows.iter().map(Vec::len).max().unwrap_or(0);
    if ncols == 0 {
        out.push(Line::from(line.first_prefix.clone()));
        return;
    }
    let prefix_w = spans_width(&line.prefix).max(spans_width(&line.first_prefix));
    let gaps = COLUMN_GAP.width() * (ncols - 1);
    let mut natural = vec![1usize; ncols];
    for row in &table.rows {
        for (i, cell) in row.iter().enumerate() {
            natural[i] = natural[i].max(spans_width(cell));
        }
    }
    let avail = width.saturating_sub(prefix_w);
    let widths = if natural.iter().sum::<usize>() + gaps <= avail {
        natural
    } else if avail >= gaps + natural.iter().map(|w| (*w).min(MIN_COLUMN)).sum::<usize>() {
        fit_columns(&natural, avail - gaps)
    } else {
        // Too narrow for columns: one line per row, wrapped like text.
        for row in &table.rows {
            let mut spans = Vec::new();
            for (ci, cell) in row.iter().enumerate() {
                if ci > 0 {
                    spans.push(Span::styled(COLUMN_GAP, table.border));
                }
                spans.extend(cell.iter().cloned());
            }
            let l = StyledLine {
                first_prefix: line.first_prefix.clone(),
                prefix: line.prefix.clone(),
                spans,
                mode: WrapMode::Word,
            };
            wrap_into(&l, u16::try_from(width).unwrap_or(u16::MAX), out);
        }
        return;
    };
    let mut first = true;
    let mut push = |mut spans: Vec<Span<'static>>, out: &mut Vec<Line<'static>>| {
        let mut line_spans = if first {
            line.first_prefix.clone()
        } else {
            line.prefix.clone()
        };
        first = false;
        line_spans.append(&mut spans);
        out.push(Line::from(line_spans));
    };
    for (ri, row) in table.rows.iter().enumerate() {
        // Each cell wrapped in its column.
        let cells: Vec<Vec<Line<'static>>> = (0..ncols)
            .map(|ci| {
                let mut lines = Vec::new();
                let cell = StyledLine {
                    spans: row.get(ci).cloned().unwrap_or_default(),
                    ..StyledLine::default()
                };
                wrap_into(
                    &cell,
                    u16::try_from(widths[ci]).unwrap_or(u16::MAX),
                    &mut lines,
                );
                lines
            })
            .collect();
        let height = cells.iter().map(Vec::len).max().unwrap_or(1);
        for k in 0..height {
            let mut spans = Vec::new();
            for (ci, cell) in cells.iter().enumerate() {
                if ci > 0 {
                    spans.push(Span::styled(COLUMN_GAP, table.border));
                }
                let (mut content, w) = match cell.get(k) {
                    Some(l) => (l.spans.clone(), l.width()),
                    None => (Vec::new(), 0),
                };
                spans.append(&mut content);
                // Pad all but the last column, so the separators line up.
                if ci + 1 < ncols && w < widths[ci] {
                    spans.push(Span::raw(" ".repeat(widths[ci] - w)));
                }
            }
            push(spans, out);
        }
        if ri + 1 == table.head_rows {
            let rule: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
            push(vec![Span::styled(rule.join("─┼─"), table.border)], out);
        }
    }
}

/// A line before wrapping: its content and the prefixes drawn before each visual line
/// (indentation, list markers, quote bars).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StyledLine {
    /// Drawn before the first visual line.
    pub first_prefix: Vec<Span<'static>>,
    /// Drawn before every following visual line.
    pub prefix: Vec<Span<'static>>,
    /// The content.
    pub spans: Vec<Span<'static>>,
    /// How it breaks.
    pub mode: WrapMode,
}

impl StyledLine {
    /// A line of one span with the same prefix on every visual line.
    pub fn simple(prefix: &str, text: impl Into<String>, style: Style) -> StyledLine {
        let p = if prefix.is_empty() {
            Vec::new()
        } else {
            vec![Span::raw(prefix.to_string())]
        };
        StyledLine {
            first_prefix: p.clone(),
            prefix: p,
            spans: vec![Span::styled(text.into(), style)],
            mode: WrapMode::Word,
        }
    }

    /// An empty line.
    pub fn blank() -> StyledLine {
        StyledLine::default()
    }
}

/// Display width of some spans.
pub fn spans_width(spans: &[Span<'_>]) -> usize {
    spans.iter().map(|s| s.content.width()).sum()
}

/// Which prefix a visual row starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prefix {
    /// None: the prefix left no room for text, or a grapheme needed the whole row.
    No,
    /// The line's `first_prefix` (its first row).
    First,
    /// The line's `prefix` (every following row).
    Rest,
}

/// What a visual row is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RowKind {
    /// The whole line, as it is (it fits): its `first_prefix` and every span, no pieces.
    Fits,
    /// A prefix, then `pieces[start..end]`: byte ranges of the line's own spans. With
    /// `merge`, text continuing a span of the same style joins it (as a row built grapheme
    /// by grapheme always did); without, each span stays whole (a line that fits as it is).
    Pieces { prefix: Prefix, merge: bool },
    /// `owned[start]`: a row whose text the line does not hold (rules, tables).
    Owned,
}

/// A byte range of one of a line's content spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Piece {
    span: u32,
    start: u32,
    end: u32,
}

/// One visual row: which logical line it belongs to, and what it is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RowRef {
    line: u32,
    kind: RowKind,
    start: u32,
    end: u32,
}

/// Logical lines wrapped to a width, kept as references into the lines rather than as text.
///
/// A visual row is a prefix and byte ranges of its line's spans (16 bytes for a line that
/// fits, about 30 for a wrapped row), so a wrapped reply costs a small fraction of its text
/// on top of the lines themselves, where owned `Line`s per row cost several times the text.
/// Rows are materialised as borrowed [`Line`]s on demand ([`Wrapped::row`]), which a frame
/// does for the visible ones only. The lines are not held here: they are wrapped as
/// [`StyledLine`]s, stored in a [`LineStore`] (at the index given to
/// [`Wrapped::push_line`]), and every call that reads rows passes that store.
#[derive(Clone, Debug, Default)]
pub struct Wrapped {
    rows: Vec<RowRef>,
    pieces: Vec<Piece>,
    owned: Vec<Line<'static>>,
}

/// A `u32` index; the transcript never holds 4 GiB of text in one line, nor 4 billion rows.
fn idx(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Wrapped {
    /// Visual rows so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Forget every row.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.pieces.clear();
        self.owned.clear();
    }

    /// Give back the room that growing by doubling left unused.
    pub fn shrink_to_fit(&mut self) {
        self.rows.shrink_to_fit();
        self.pieces.shrink_to_fit();
        self.owned.shrink_to_fit();
    }

    /// Bytes these rows hold on the heap (room included; the lines are the store's).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.rows.capacity() * size_of::<RowRef>()
            + self.pieces.capacity() * size_of::<Piece>()
            + self.owned.capacity() * size_of::<Line<'static>>()
            + self
                .owned
                .iter()
                .map(|l| {
                    l.spans.capacity() * size_of::<Span<'static>>()
                        + l.spans.iter().map(|s| s.content.len()).sum::<usize>()
                })
                .sum::<usize>()
    }

    /// Wrap `line`, the logical line number `index` of the slice later passed to
    /// [`Wrapped::row`], to `width` cells, and append its visual rows; returns how many.
    /// Always at least one.
    pub fn push_line(&mut self, index: usize, line: &StyledLine, width: u16) -> usize {
        let width = usize::from(width).max(1);
        let before = self.rows.len();
        let index = idx(index);
        let content_w = spans_width(&line.spans);
        let first_w = spans_width(&line.first_prefix);
        match &line.mode {
            WrapMode::Table(table) => {
                let mut out = Vec::new();
                wrap_table(line, table, width, &mut out);
                for l in out {
                    self.push_owned(index, l);
                }
            }
            WrapMode::Rule => {
                let (prefix, avail) = prefix_for(line, width, true);
                let mut spans: Vec<Span<'static>> = match prefix {
                    Prefix::First => line.first_prefix.clone(),
                    Prefix::Rest | Prefix::No => Vec::new(),
                };
                if let Some(span) = line.spans.first() {
                    let unit = if span.content.is_empty() {
                        "─"
                    } else {
                        &*span.content
                    };
                    let uw = unit.width().max(1);
                    let text = unit.repeat(avail / uw);
                    merge_or_push(&mut spans, text, span.style);
                }
                self.push_owned(index, Line::from(spans));
            }
            // The common case: it fits.
            _ if first_w + content_w <= width => {
                let at = idx(self.pieces.len());
                self.rows.push(RowRef {
                    line: index,
                    kind: RowKind::Fits,
                    start: at,
                    end: at,
                });
            }
            WrapMode::Char => {
                let mut b = Builder::new(self, index, line, width);
                for (i, span) in line.spans.iter().enumerate() {
                    b.push_breaking(i, 0, &span.content);
                }
                b.finish();
            }
            WrapMode::Word => wrap_words(self, index, line, width, true),
        }
        self.rows.len() - before
    }

    fn push_owned(&mut self, line: u32, l: Line<'static>) {
        let start = idx(self.owned.len());
        self.owned.push(l);
        self.rows.push(RowRef {
            line,
            kind: RowKind::Owned,
            start,
            end: start + 1,
        });
    }

    /// Visual row `row`, borrowing from `lines` (the store the rows' lines went to).
    pub fn row<'a>(&'a self, row: usize, lines: &'a LineStore) -> Option<Line<'a>> {
        let r = self.rows.get(row)?;
        Some(self.materialise(r, lines))
    }

    /// The logical line (its index in the store) that row `row` belongs to.
    pub fn line_of(&self, row: usize) -> Option<usize> {
        self.rows.get(row).map(|r| r.line as usize)
    }

    /// Every visual row in order, borrowing from `lines`.
    pub fn rows<'a>(&'a self, lines: &'a LineStore) -> impl Iterator<Item = Line<'a>> + 'a {
        self.rows.iter().map(move |r| self.materialise(r, lines))
    }

    fn materialise<'a>(&'a self, r: &RowRef, lines: &'a LineStore) -> Line<'a> {
        let line = r.line as usize;
        match r.kind {
            RowKind::Owned => self
                .owned
                .get(r.start as usize)
                .map(|l| {
                    Line::from(
                        l.spans
                            .iter()
                            .map(|s| Span::styled(&*s.content, s.style))
                            .collect::<Vec<_>>(),
                    )
                })
                .unwrap_or_default(),
            RowKind::Fits => Line::from(
                lines
                    .prefix(line, true)
                    .chain(lines.contents(line))
                    .collect::<Vec<_>>(),
            ),
            RowKind::Pieces { prefix, merge } => {
                let mut spans: Vec<Span<'a>> = match prefix {
                    Prefix::No => Vec::new(),
                    Prefix::First => lines.prefix(line, true).collect(),
                    Prefix::Rest => lines.prefix(line, false).collect(),
                };
                let pieces = self
                    .pieces
                    .get(r.start as usize..r.end as usize)
                    .unwrap_or(&[]);
                for p in pieces {
                    if let Some((text, style)) = lines.content(line, p.span as usize) {
                        let text = text.get(p.start as usize..p.end as usize).unwrap_or("");
                        // Text of one style is one span, as it was when rows were owned: a
                        // combining mark split from its base by a span boundary would be
                        // drawn apart from it.
                        match spans.last_mut() {
                            Some(last) if merge && last.style == style => {
                                last.content.to_mut().push_str(text);
                            }
                            _ => spans.push(Span::styled(text, style)),
                        }
                    }
                }
                Line::from(spans)
            }
        }
    }
}

/// Push `text` onto `spans`, into the last span if it has the same style.
fn merge_or_push(spans: &mut Vec<Span<'static>>, text: String, style: Style) {
    if let Some(last) = spans.last_mut()
        && last.style == style
    {
        last.content.to_mut().push_str(&text);
    } else {
        spans.push(Span::styled(text, style));
    }
}

/// The prefix a row starts with and the cells left for text. A prefix that leaves no room
/// for text is dropped rather than pushing text off-screen.
fn prefix_for(line: &StyledLine, width: usize, first: bool) -> (Prefix, usize) {
    let (kind, prefix) = if first {
        (Prefix::First, &line.first_prefix)
    } else {
        (Prefix::Rest, &line.prefix)
    };
    let pw = spans_width(prefix);
    if pw < width {
        (kind, width - pw)
    } else {
        (Prefix::No, width.max(1))
    }
}

/// Builds the rows of one logical line, piece by piece.
struct Builder<'a> {
    out: &'a mut Wrapped,
    index: u32,
    line: &'a StyledLine,
    width: usize,
    prefix: Prefix,
    /// Where this row's pieces start in `out.pieces`.
    row_start: usize,
    cur_w: usize,
    avail: usize,
    first: bool,
}

impl<'a> Builder<'a> {
    fn new(out: &'a mut Wrapped, index: u32, line: &'a StyledLine, width: usize) -> Self {
        let row_start = out.pieces.len();
        let mut b = Builder {
            out,
            index,
            line,
            width,
            prefix: Prefix::First,
            row_start,
            cur_w: 0,
            avail: 1,
            first: true,
        };
        b.start(true);
        b
    }

    fn start(&mut self, first: bool) {
        self.first = first;
        (self.prefix, self.avail) = prefix_for(self.line, self.width, first);
        self.row_start = self.out.pieces.len();
        self.cur_w = 0;
    }

    /// Add bytes `start..end` of span `span` (`w` cells) to the row.
    fn push(&mut self, span: usize, start: usize, end: usize, w: usize) {
        let (span, start, end) = (idx(span), idx(start), idx(end));
        self.cur_w += w;
        if self.out.pieces.len() > self.row_start
            && let Some(last) = self.out.pieces.last_mut()
            && last.span == span
            && last.end == start
        {
            last.end = end;
            return;
        }
        self.out.pieces.push(Piece { span, start, end });
    }

    fn end_row(&mut self) {
        self.out.rows.push(RowRef {
            line: self.index,
            kind: RowKind::Pieces {
                prefix: self.prefix,
                merge: true,
            },
            start: idx(self.row_start),
            end: idx(self.out.pieces.len()),
        });
    }

    fn newline(&mut self) {
        self.end_row();
        self.start(false);
    }

    fn finish(mut self) {
        self.end_row();
    }

    /// Before a grapheme `gw` cells wide: break the row if it does not fit.
    fn make_room(&mut self, gw: usize) {
        if self.cur_w + gw > self.avail && self.cur_w > 0 {
            self.newline();
        }
        if gw > self.avail && self.cur_w == 0 {
            self.drop_prefix();
        }
    }

    /// Push graphemes of `text` (which starts at byte `base` of span `span`) one by one,
    /// breaking whenever the next one does not fit.
    fn push_breaking(&mut self, span: usize, base: usize, text: &str) {
        for (at, g) in text.grapheme_indices(true) {
            let gw = g.width();
            self.make_room(gw);
            let start = base + at;
            self.push(span, start, start + g.len(), gw);
        }
    }

    /// [`Builder::push_breaking`] for runs of one style from several spans: their text is
    /// cut into graphemes as one string (a combining mark at the start of a span belongs to
    /// the character before it), and each grapheme maps back to the runs it covers.
    fn push_breaking_runs(&mut self, runs: &[Run]) {
        let spans = &self.line.spans;
        let slice = |r: &Run| spans[r.span].content.get(r.start..r.end).unwrap_or("");
        if let [r] = runs {
            self.push_breaking(r.span, r.start, slice(r));
            return;
        }
        let text: String = runs.iter().map(slice).collect();
        for (at, g) in text.grapheme_indices(true) {
            let gw = g.width();
            self.make_room(gw);
            let (lo, hi) = (at, at + g.len());
            let mut off = 0;
            let mut w = gw;
            for r in runs {
                let len = r.end - r.start;
                let (a, b) = (lo.max(off), hi.min(off + len));
                if a < b {
                    self.push(r.span, r.start + a - off, r.start + b - off, w);
                    w = 0;
                }
                off += len;
            }
        }
    }

    /// Push runs of one style from several spans, `w` cells together.
    fn push_runs(&mut self, runs: &[Run], w: usize) {
        let mut w = w;
        for r in runs {
            self.push(r.span, r.start, r.end, w);
            w = 0;
        }
    }

    /// A grapheme wider than the room beside the prefix gets the whole line instead.
    fn drop_prefix(&mut self) {
        self.out.pieces.truncate(self.row_start);
        self.prefix = Prefix::No;
        self.avail = self.width.max(1);
    }
}

/// Wrap `line` to `width` cells, appending the visual lines to `out`; returns how many.
/// Always produces at least one line. (The transcript keeps rows as [`Wrapped`] instead:
/// this owned form is for small, short-lived text.)
pub fn wrap_into(line: &StyledLine, width: u16, out: &mut Vec<Line<'static>>) -> usize {
    let mut w = Wrapped::default();
    let mut lines = LineStore::default();
    let n = w.push_line(lines.push(line.clone()), line, width);
    out.extend(w.rows(&lines).map(|l| {
        Line::from(
            l.spans
                .into_iter()
                .map(|s| Span::styled(s.content.into_owned(), s.style))
                .collect::<Vec<_>>(),
        )
    }));
    n
}

/// A run of graphemes of one span: bytes `start..end` of span `span`.
#[derive(Clone, Copy)]
struct Run {
    span: usize,
    start: usize,
    end: usize,
}

/// Add a grapheme to a list of runs, extending the last run when it continues it.
fn add(runs: &mut Vec<Run>, span: usize, start: usize, end: usize) {
    match runs.last_mut() {
        Some(r) if r.span == span && r.end == start => r.end = end,
        _ => runs.push(Run { span, start, end }),
    }
}

/// Break `line` between words. `ascii`: take printable ASCII byte by byte (as grapheme by
/// grapheme gives the same, slower).
fn wrap_words(out: &mut Wrapped, index: u32, line: &StyledLine, width: usize, ascii: bool) {
    let mut b = Builder::new(out, index, line, width);
    let mut word: Vec<Run> = Vec::new();
    let mut word_w = 0usize;
    let mut space: Vec<Run> = Vec::new();
    let mut space_w = 0usize;

    // Runs of one style, from however many spans, count as one piece of text (its width
    // is measured whole), as they did when words were built as strings per style.
    let same_style = |a: &Run, b: &Run| line.spans[a.span].style == line.spans[b.span].style;
    let width_of = |runs: &[Run]| -> usize {
        let slice = |r: &Run| line.spans[r.span].content.get(r.start..r.end).unwrap_or("");
        match runs {
            [r] => slice(r).width(),
            _ => runs.iter().map(slice).collect::<String>().width(),
        }
    };
    let flush = |b: &mut Builder<'_>,
                 word: &mut Vec<Run>,
                 word_w: &mut usize,
                 space: &mut Vec<Run>,
                 space_w: &mut usize| {
        if word.is_empty() {
            return;
        }
        if b.cur_w + *space_w + *word_w <= b.avail {
            // Leading spaces of a continuation line are dropped; elsewhere they are kept.
            if b.cur_w > 0 || b.first {
                for runs in space.chunk_by(same_style) {
                    b.push_runs(runs, width_of(runs));
                }
            }
        } else if b.cur_w > 0 {
            b.newline();
        }
        space.clear();
        *space_w = 0;
        if b.cur_w + *word_w <= b.avail {
            for runs in word.chunk_by(same_style) {
                b.push_runs(runs, width_of(runs));
            }
        } else {
            for runs in word.chunk_by(same_style) {
                b.push_breaking_runs(runs);
            }
        }
        word.clear();
        *word_w = 0;
    };

    for (si, span) in line.spans.iter().enumerate() {
        let text: &str = &span.content;
        if ascii && text.bytes().all(|c| (b' '..=b'~').contains(&c)) {
            // Printable ASCII, the common case: each byte is a grapheme one cell wide.
            for (at, c) in text.bytes().enumerate() {
                if c == b' ' {
                    flush(&mut b, &mut word, &mut word_w, &mut space, &mut space_w);
                    add(&mut space, si, at, at + 1);
                    space_w += 1;
                } else {
                    add(&mut word, si, at, at + 1);
                    word_w += 1;
                }
            }
            continue;
        }
        for (at, g) in text.grapheme_indices(true) {
            let gw = g.width();
            if g.chars().all(char::is_whitespace) {
                flush(&mut b, &mut word, &mut word_w, &mut space, &mut space_w);
                add(&mut space, si, at, at + g.len());
                space_w += gw;
            } else {
                add(&mut word, si, at, at + g.len());
                word_w += gw;
            }
        }
    }
    flush(&mut b, &mut word, &mut word_w, &mut space, &mut space_w);
    b.finish();
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::Modifier;

    fn texts(lines: &[Line<'_>]) -> Vec<String> {
        lines.iter().map(std::string::ToString::to_string).collect()
    }

    fn wrap(line: &StyledLine, width: u16) -> Vec<String> {
        let mut out = Vec::new();
        wrap_into(line, width, &mut out);
        texts(&out)
    }

    #[test]
    fn words_wrap_and_prefixes_repeat() {
        let mut l = StyledLine::simple("  ", "the quick brown fox jumps", Style::new());
        l.first_prefix = vec![Span::raw("- ")];
        assert_eq!(wrap(&l, 12), vec!["- the quick", "  brown fox", "  jumps"]);
    }

    #[test]
    fn long_words_break_and_styles_survive() {
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let l = StyledLine {
            spans: vec![Span::raw("ab "), Span::styled("cdefghij", bold)],
            ..StyledLine::default()
        };
        let mut out = Vec::new();
        wrap_into(&l, 4, &mut out);
        assert_eq!(texts(&out), vec!["ab", "cdef", "ghij"]);
        assert_eq!(out[1].spans[0].style, bold);
    }

    #[test]
    fn wide_and_combining_characters() {
        let l = StyledLine::simple("", "日本語のテキスト", Style::new());
        assert_eq!(wrap(&l, 5), vec!["日本", "語の", "テキ", "スト"]);
        // e + combining acute stays one cell.
        let l = StyledLine::simple("", "e\u{301}e\u{301}e\u{301}", Style::new());
        assert_eq!(wrap(&l, 2), vec!["e\u{301}e\u{301}", "e\u{301}"]);
    }

    #[test]
    fn code_keeps_spaces_and_rules_fill() {
        let l = StyledLine {
            spans: vec![Span::raw("    let x = 1;")],
            mode: WrapMode::Char,
            ..StyledLine::default()
        };
        assert_eq!(wrap(&l, 8), vec!["    let ", "x = 1;"]);
        let r = StyledLine {
            spans: vec![Span::raw("─")],
            mode: WrapMode::Rule,
            ..StyledLine::default()
        };
        assert_eq!(wrap(&r, 5), vec!["─────"]);
    }

    proptest::proptest! {
        #[test]
        fn any_text_wraps_within_the_width(text in "\\PC{0,80}", width in 1u16..30) {
            let l = StyledLine::simple("  ", text, Style::new());
            let mut out = Vec::new();
            wrap_into(&l, width, &mut out);
            for line in &out {
                // Only a single grapheme wider than the whole line may pass the edge (the
                // buffer clips it), and then it stands alone, without the prefix.
                let lone = line.spans.iter().map(|s| s.content.graphemes(true).count()).sum::<usize>() == 1;
                proptest::prop_assert!(line.width() <= usize::from(width) || lone, "{line:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn ascii_byte_by_byte_wraps_as_graphemes_do(
            parts in proptest::collection::vec("[ a-z.,]{0,30}", 1..4),
            width in 1u16..30,
        ) {
            let bold = Style::new().add_modifier(Modifier::BOLD);
            let mut l = StyledLine::simple("  ", "", Style::new());
            l.spans = parts
                .iter()
                .enumerate()
                .map(|(i, p)| Span::styled(p.clone(), if i % 2 == 0 { bold } else { Style::new() }))
                .collect();
            let rows = |ascii: bool| {
                let mut w = Wrapped::default();
                let mut store = LineStore::default();
                let i = store.push(l.clone());
                wrap_words(&mut w, idx(i), &l, usize::from(width), ascii);
                w.rows(&store).map(|r| format!("{r:?}")).collect::<Vec<_>>()
            };
            proptest::prop_assert_eq!(rows(true), rows(false));
        }
    }

    fn table() -> StyledLine {
        let cell = |s: &str| vec![Span::raw(s.to_string())];
        StyledLine {
            spans: Vec::new(),
            mode: WrapMode::Table(Arc::new(TableBlock {
                rows: vec![
                    vec![cell("name"), cell("what it does")],
                    vec![
                        cell("GCRA"),
                        cell("one timestamp per key, no background drip"),
                    ],
                    vec![cell("sliding log"), cell("exact but one entry per request")],
                ],
                head_rows: 1,
                border: Style::new(),
            })),
            ..StyledLine::default()
        }
    }

    #[test]
    fn a_table_that_fits_keeps_its_natural_widths() {
        assert_eq!(
            wrap(&table(), 80),
            vec![
                "name        │ what it does",
                "────────────┼──────────────────────────────────────────",
                "GCRA        │ one timestamp per key, no background drip",
                "sliding log │ exact but one entry per request",
            ]
        );
    }

    #[test]
    fn a_wide_table_wraps_inside_its_columns_and_stays_aligned() {
        let lines = wrap(&table(), 36);
        assert_eq!(
            lines,
            vec![
                "name        │ what it does",
                "────────────┼───────────────────────",
                "GCRA        │ one timestamp per key,",
                "            │ no background drip",
                "sliding log │ exact but one entry",
                "            │ per request",
            ]
        );
        for l in &lines {
            assert!(l.chars().count() <= 36, "{l}");
        }
        // Far too narrow for columns: rows wrap like text, nothing is lost.
        let narrow = wrap(&table(), 10).join(" ");
        assert!(
            narrow.contains("GCRA") && narrow.contains("request"),
            "{narrow}"
        );
    }

    #[test]
    fn columns_share_the_room_fairly() {
        assert_eq!(fit_columns(&[4, 40, 30], 40), vec![4, 18, 18]);
        assert_eq!(fit_columns(&[4, 5], 40), vec![4, 5]);
        assert_eq!(fit_columns(&[10, 10, 10], 9), vec![3, 3, 3]);
    }

    #[test]
    fn degenerate_widths_never_loop() {
        let l = StyledLine::simple("    ", "日本 words here", Style::new());
        for w in 0..4 {
            let out = wrap(&l, w);
            assert!(!out.is_empty());
        }
        assert_eq!(wrap(&StyledLine::blank(), 10), vec![""]);
    }
}
