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

struct Builder<'a> {
    out: &'a mut Vec<Line<'static>>,
    line: &'a StyledLine,
    width: usize,
    cur: Vec<Span<'static>>,
    cur_w: usize,
    avail: usize,
    first: bool,
}

impl<'a> Builder<'a> {
    fn new(out: &'a mut Vec<Line<'static>>, line: &'a StyledLine, width: usize) -> Self {
        let mut b = Builder {
            out,
            line,
            width,
            cur: Vec::new(),
            cur_w: 0,
            avail: 1,
            first: true,
        };
        b.start(true);
        b
    }

    fn start(&mut self, first: bool) {
        self.first = first;
        let prefix = if first {
            &self.line.first_prefix
        } else {
            &self.line.prefix
        };
        let pw = spans_width(prefix);
        // A prefix that leaves no room for text is dropped rather than pushing text off-screen.
        if pw < self.width {
            self.cur.extend(prefix.iter().cloned());
            self.avail = self.width - pw;
        } else {
            self.avail = self.width.max(1);
        }
        self.cur_w = 0;
    }

    fn push(&mut self, text: &str, style: Style, w: usize) {
        if let Some(last) = self.cur.last_mut()
            && last.style == style
        {
            last.content.to_mut().push_str(text);
            self.cur_w += w;
            return;
        }
        self.cur.push(Span::styled(text.to_string(), style));
        self.cur_w += w;
    }

    fn newline(&mut self) {
        self.out.push(Line::from(std::mem::take(&mut self.cur)));
        self.start(false);
    }

    fn finish(mut self) {
        self.out.push(Line::from(std::mem::take(&mut self.cur)));
    }

    /// Push graphemes one by one, breaking whenever the next one does not fit.
    fn push_breaking(&mut self, text: &str, style: Style) {
        for g in text.graphemes(true) {
            let gw = g.width();
            if self.cur_w + gw > self.avail && self.cur_w > 0 {
                self.newline();
            }
            if gw > self.avail && self.cur_w == 0 {
                self.drop_prefix();
            }
            self.push(g, style, gw);
        }
    }

    /// A grapheme wider than the room beside the prefix gets the whole line instead.
    fn drop_prefix(&mut self) {
        self.cur.clear();
        self.avail = self.width.max(1);
    }
}

/// Wrap `line` to `width` cells, appending the visual lines to `out`; returns how many.
/// Always produces at least one line.
pub fn wrap_into(line: &StyledLine, width: u16, out: &mut Vec<Line<'static>>) -> usize {
    let width = usize::from(width).max(1);
    let before = out.len();
    let content_w = spans_width(&line.spans);
    let first_w = spans_width(&line.first_prefix);
    match &line.mode {
        WrapMode::Table(table) => wrap_table(line, table, width, out),
        WrapMode::Rule => {
            let mut b = Builder::new(out, line, width);
            if let Some(span) = line.spans.first() {
                let unit = if span.content.is_empty() {
                    "─"
                } else {
                    &*span.content
                };
                let uw = unit.width().max(1);
                let n = b.avail / uw;
                let text = unit.repeat(n);
                b.push(&text, span.style, n * uw);
            }
            b.finish();
        }
        // The common case: it fits.
        _ if first_w + content_w <= width => {
            let mut spans = line.first_prefix.clone();
            spans.extend(line.spans.iter().cloned());
            out.push(Line::from(spans));
        }
        WrapMode::Char => {
            let mut b = Builder::new(out, line, width);
            for span in &line.spans {
                b.push_breaking(&span.content, span.style);
            }
            b.finish();
        }
        WrapMode::Word => wrap_words(line, width, out),
    }
    out.len() - before
}

fn wrap_words(line: &StyledLine, width: usize, out: &mut Vec<Line<'static>>) {
    fn add(parts: &mut Vec<(Style, String)>, style: Style, g: &str) {
        match parts.last_mut() {
            Some((s, text)) if *s == style => text.push_str(g),
            _ => parts.push((style, g.to_string())),
        }
    }
    let mut b = Builder::new(out, line, width);
    let mut word: Vec<(Style, String)> = Vec::new();
    let mut word_w = 0usize;
    let mut space: Vec<(Style, String)> = Vec::new();
    let mut space_w = 0usize;

    let flush = |b: &mut Builder<'_>,
                 word: &mut Vec<(Style, String)>,
                 word_w: &mut usize,
                 space: &mut Vec<(Style, String)>,
                 space_w: &mut usize| {
        if word.is_empty() {
            return;
        }
        if b.cur_w + *space_w + *word_w <= b.avail {
            // Leading spaces of a continuation line are dropped; elsewhere they are kept.
            if b.cur_w > 0 || b.first {
                for (s, t) in space.drain(..) {
                    let w = t.width();
                    b.push(&t, s, w);
                }
            }
        } else if b.cur_w > 0 {
            b.newline();
        }
        space.clear();
        *space_w = 0;
        if b.cur_w + *word_w <= b.avail {
            for (s, t) in word.drain(..) {
                let w = t.width();
                b.push(&t, s, w);
            }
        } else {
            for (s, t) in word.drain(..) {
                b.push_breaking(&t, s);
            }
        }
        *word_w = 0;
    };

    for span in &line.spans {
        for g in span.content.graphemes(true) {
            let gw = g.width();
            if g.chars().all(char::is_whitespace) {
                flush(&mut b, &mut word, &mut word_w, &mut space, &mut space_w);
                add(&mut space, span.style, g);
                space_w += gw;
            } else {
                add(&mut word, span.style, g);
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
