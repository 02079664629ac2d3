//! Rendered lines kept compactly: one string for all their text, and a few bytes per span.
//!
//! A [`StyledLine`] costs three `Vec`s and a `String` per span (about 300 bytes before its
//! text), so a markdown reply of short lines (code, lists) took 20-odd times its size once
//! rendered. Here a line is 8 bytes, a span 6 (where its text ends, and its style as an index
//! into the few styles in use), and the text is stored once, end to end, in segments of at
//! most [`SEGMENT`] bytes (so that none grows by doubling to twice what it holds). A span
//! longer than that (a paragraph of megabytes with no line break) is moved in as a segment of
//! its own rather than copied. The transcript keeps its turns' lines this way;
//! [`super::wrap::Wrapped`] rows point into them.

use ratatui::style::Style;
use ratatui::text::Span;

use super::wrap::StyledLine;

/// Where a line's spans start, and how many of them are its two prefixes.
#[derive(Clone, Copy, Debug)]
struct LineRec {
    /// Index of the line's first span (its `first_prefix`, then `prefix`, then content).
    span_start: u32,
    n_first: u16,
    n_prefix: u16,
}

/// The most text gathered in one segment; longer spans get a segment of their own.
pub const SEGMENT: usize = 64 << 10;

/// Lines stored compactly. Lines are appended, never changed; [`LineStore::clear`] empties it.
#[derive(Clone, Debug, Default)]
pub struct LineStore {
    /// The text of every span, end to end, cut into segments: `(offset of its first byte in
    /// the whole, its text)`.
    segments: Vec<(u32, String)>,
    /// Bytes of text in all segments.
    len: usize,
    /// Where each span's text ends in the whole (it starts where the previous one ended; a
    /// span never straddles two segments).
    ends: Vec<u32>,
    /// Each span's style, as an index into `styles`.
    style_of: Vec<u16>,
    lines: Vec<LineRec>,
    /// The styles in use (a few dozen at most: a theme's, and a code block's colours).
    styles: Vec<Style>,
}

/// A `u32` offset or count (the transcript never holds 4 GiB in one store).
fn idx(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl LineStore {
    /// Lines stored.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// True when no line is stored.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Forget every line.
    pub fn clear(&mut self) {
        self.segments.clear();
        self.len = 0;
        self.ends.clear();
        self.style_of.clear();
        self.lines.clear();
    }

    /// Give back the room that growing by doubling left unused.
    pub fn shrink_to_fit(&mut self) {
        if let Some((_, last)) = self.segments.last_mut() {
            last.shrink_to_fit();
        }
        self.segments.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.style_of.shrink_to_fit();
        self.lines.shrink_to_fit();
        self.styles.shrink_to_fit();
    }

    /// Bytes this store holds on the heap (its text, its spans and lines, room included).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.segments.capacity() * size_of::<(u32, String)>()
            + self
                .segments
                .iter()
                .map(|(_, s)| s.capacity())
                .sum::<usize>()
            + self.ends.capacity() * size_of::<u32>()
            + self.style_of.capacity() * size_of::<u16>()
            + self.lines.capacity() * size_of::<LineRec>()
            + self.styles.capacity() * size_of::<Style>()
    }

    /// Append `line` (its prefixes and spans; its wrap mode is the rows' business); returns
    /// its index.
    pub fn push(&mut self, line: StyledLine) -> usize {
        let span_start = idx(self.ends.len());
        let n_first = u16::try_from(line.first_prefix.len()).unwrap_or(u16::MAX);
        let n_prefix = u16::try_from(line.prefix.len()).unwrap_or(u16::MAX);
        for span in line
            .first_prefix
            .into_iter()
            .chain(line.prefix)
            .chain(line.spans)
        {
            let style = self.intern(span.style);
            self.style_of.push(style);
            self.push_text(span.content);
            self.ends.push(idx(self.len));
        }
        self.lines.push(LineRec {
            span_start,
            n_first,
            n_prefix,
        });
        self.lines.len() - 1
    }

    fn push_text(&mut self, text: std::borrow::Cow<'static, str>) {
        if text.is_empty() {
            return;
        }
        let offset = idx(self.len);
        self.len += text.len();
        if text.len() >= SEGMENT {
            // Moved in whole (an owned string is not copied).
            self.segments.push((offset, text.into_owned()));
            return;
        }
        match self.segments.last_mut() {
            Some((_, last)) if last.len() + text.len() <= SEGMENT => {
                // Grown by doubling, as a String is, but never past a segment: a segment
                // allocated whole at once would cost a turn of two lines 64 KiB.
                let need = last.len() + text.len();
                if last.capacity() < need {
                    let want = (last.capacity() * 2).max(need).min(SEGMENT);
                    last.reserve_exact(want - last.len());
                }
                last.push_str(&text);
                return;
            }
            _ => {}
        }
        if let Some((_, last)) = self.segments.last_mut() {
            // The previous one is full, or about to be passed over: give back its slack.
            last.shrink_to_fit();
        }
        let segment = text.into_owned();
        self.segments.push((offset, segment));
    }

    fn intern(&mut self, style: Style) -> u16 {
        // The last span's style first: runs of one style are the common case.
        if let Some(&last) = self.style_of.last()
            && self.styles.get(usize::from(last)) == Some(&style)
        {
            return last;
        }
        if let Some(i) = self.styles.iter().position(|s| *s == style) {
            return u16::try_from(i).unwrap_or(u16::MAX);
        }
        match u16::try_from(self.styles.len()) {
            Ok(i) if i < u16::MAX => {
                self.styles.push(style);
                i
            }
            // 65,535 distinct styles cannot happen (a theme has a few dozen, syntax
            // highlighting a few hundred colours); past them, text shows unstyled.
            _ => u16::MAX,
        }
    }

    /// The text and style of the span at global index `i`.
    fn part(&self, i: usize) -> Option<(&str, Style)> {
        let end = *self.ends.get(i)? as usize;
        let start = match i.checked_sub(1) {
            Some(p) => self.ends[p] as usize,
            None => 0,
        };
        let style = self
            .styles
            .get(usize::from(*self.style_of.get(i)?))
            .copied()
            .unwrap_or_default();
        if start == end {
            return Some(("", style));
        }
        let seg = self
            .segments
            .partition_point(|(off, _)| *off as usize <= start)
            .checked_sub(1)?;
        let (off, text) = &self.segments[seg];
        let off = *off as usize;
        Some((text.get(start - off..end - off).unwrap_or(""), style))
    }

    /// The span at global index `i`, borrowed.
    fn span(&self, i: usize) -> Option<Span<'_>> {
        self.part(i).map(|(text, style)| Span::styled(text, style))
    }

    /// The spans of line `line`'s `first_prefix` (`first`) or `prefix`.
    pub fn prefix(&self, line: usize, first: bool) -> impl Iterator<Item = Span<'_>> + '_ {
        let (from, n) = self.lines.get(line).map_or((0, 0), |l| {
            let s = l.span_start as usize;
            if first {
                (s, usize::from(l.n_first))
            } else {
                (s + usize::from(l.n_first), usize::from(l.n_prefix))
            }
        });
        (from..from + n).filter_map(|i| self.span(i))
    }

    /// The text and style of content span `span` of line `line` (0 is the first after the
    /// prefixes).
    pub fn content(&self, line: usize, span: usize) -> Option<(&str, Style)> {
        let l = self.lines.get(line)?;
        let first = l.span_start as usize + usize::from(l.n_first) + usize::from(l.n_prefix);
        let i = first + span;
        if i >= self.content_end(line) {
            return None;
        }
        self.part(i)
    }

    /// Every content span of line `line`.
    pub fn contents(&self, line: usize) -> impl Iterator<Item = Span<'_>> + '_ {
        let first = self.lines.get(line).map_or(0, |l| {
            l.span_start as usize + usize::from(l.n_first) + usize::from(l.n_prefix)
        });
        (first..self.content_end(line)).filter_map(|i| self.span(i))
    }

    /// One past the index of line `line`'s last span.
    fn content_end(&self, line: usize) -> usize {
        self.lines
            .get(line + 1)
            .map_or(self.ends.len(), |l| l.span_start as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::Modifier;

    #[test]
    fn lines_come_back_as_they_went_in() {
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let mut store = LineStore::default();
        let mut a = StyledLine::simple("  ", "hello", bold);
        a.first_prefix = vec![Span::raw("- ")];
        let b = StyledLine::blank();
        let c = StyledLine {
            spans: vec![
                Span::raw("x"),
                Span::styled("", bold),
                Span::styled("yz", bold),
            ],
            ..StyledLine::default()
        };
        for l in [a, b, c] {
            store.push(l);
        }
        assert_eq!(store.len(), 3);
        let texts = |it: &mut dyn Iterator<Item = Span<'_>>| {
            it.map(|s| (s.content.to_string(), s.style))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            texts(&mut store.prefix(0, true)),
            vec![("- ".into(), Style::new())]
        );
        assert_eq!(
            texts(&mut store.prefix(0, false)),
            vec![("  ".into(), Style::new())]
        );
        assert_eq!(texts(&mut store.contents(0)), vec![("hello".into(), bold)]);
        assert!(store.contents(1).next().is_none());
        assert_eq!(
            texts(&mut store.contents(2)),
            vec![
                ("x".into(), Style::new()),
                (String::new(), bold),
                ("yz".into(), bold)
            ]
        );
        assert_eq!(store.content(2, 2), Some(("yz", bold)));
        assert!(store.content(2, 3).is_none());
        assert_eq!(store.styles.len(), 2, "styles are interned");
    }

    #[test]
    fn long_text_spans_segments_and_big_spans_move_in() {
        let mut store = LineStore::default();
        let big = "b".repeat(SEGMENT * 3 + 5);
        let big_ptr = big.as_ptr();
        let mut n = 0;
        for i in 0..5000 {
            store.push(StyledLine::simple(
                "  ",
                format!("line {i} {}", "x".repeat(i % 50)),
                Style::new(),
            ));
            n += 1;
            if i == 2500 {
                store.push(StyledLine::simple("", big.clone(), Style::new()));
                n += 1;
            }
        }
        store.push(StyledLine::simple("", big, Style::new()));
        assert_eq!(store.len(), n + 1);
        assert!(
            store
                .segments
                .iter()
                .all(|(_, s)| s.len() <= SEGMENT || s.len() == SEGMENT * 3 + 5)
        );
        assert_eq!(
            store.segments.last().map(|(_, s)| s.as_ptr()),
            Some(big_ptr),
            "moved, not copied"
        );
        for i in (0..5000).step_by(7) {
            let line = if i > 2500 { i + 1 } else { i };
            let (text, _) = store.content(line, 0).expect("content");
            assert_eq!(text, format!("line {i} {}", "x".repeat(i % 50)));
            assert_eq!(
                store
                    .prefix(line, true)
                    .next()
                    .map(|s| s.content.to_string()),
                Some("  ".into())
            );
        }
        assert_eq!(
            store.content(2501, 0).map(|(t, _)| t.len()),
            Some(SEGMENT * 3 + 5)
        );
    }
}
