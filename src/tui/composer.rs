//! The multi-line editor under the transcript.
//!
//! Our own, because tui-textarea does not support ratatui 0.30. The text is a list of lines;
//! the cursor is a (line, byte offset) pair that always sits on a grapheme boundary, so that
//! wide characters and combining marks move and delete as one. Up and Down move by wrapped
//! row (at the width of the last frame), as the text looks on screen; Up on the first row
//! recalls earlier prompts, Down on the last goes forward again and finally back to the draft.

use std::cell::Cell;

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::sanitize::sanitize;

/// An editing operation (the keymap turns keys into these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EditOp {
    /// Type a character.
    Insert(char),
    /// Split the line at the cursor.
    Newline,
    /// Delete the grapheme before the cursor (joins lines at the start of one).
    Backspace,
    /// Delete the grapheme under the cursor.
    Delete,
    /// One grapheme left.
    Left,
    /// One grapheme right.
    Right,
    /// One wrapped row up, or the previous prompt from the first row.
    Up,
    /// One wrapped row down, or the next prompt from the last row while recalling.
    Down,
    /// Start of the line.
    Home,
    /// End of the line.
    End,
    /// Start of the previous word.
    WordLeft,
    /// End of the next word.
    WordRight,
    /// Delete from the start of the line to the cursor (Ctrl+U).
    DeleteToStart,
    /// Delete from the cursor to the end of the line (Ctrl+K).
    DeleteToEnd,
    /// Delete the word before the cursor (Ctrl+W).
    DeleteWordBack,
}

/// Prompts kept for recall.
const HISTORY_LIMIT: usize = 500;

/// The editor's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Composer {
    lines: Vec<String>,
    row: usize,
    col: usize,
    history: Vec<String>,
    recall: Option<usize>,
    draft: Option<String>,
    /// The text width of the last frame (0: not drawn yet), so that Up and Down move by the
    /// rows the person sees. Set while rendering, hence a `Cell`.
    width: Cell<u16>,
}

impl Default for Composer {
    fn default() -> Self {
        Composer {
            lines: vec![String::new()],
            row: 0,
            col: 0,
            history: Vec::new(),
            recall: None,
            draft: None,
            width: Cell::new(0),
        }
    }
}

/// One visual (wrapped) row of the composer: a byte range of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VisualRow {
    /// The line.
    pub line: usize,
    /// Byte range start.
    pub start: usize,
    /// Byte range end.
    pub end: usize,
}

fn is_word(g: &str) -> bool {
    g.chars().any(|c| c.is_alphanumeric() || c == '_')
}

impl Composer {
    /// The text, lines joined with `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// True when there is no text at all.
    pub fn is_empty(&self) -> bool {
        self.lines.len() == 1 && self.lines[0].is_empty()
    }

    /// True while the text is a recalled prompt, not yet edited (Up on an empty composer).
    pub fn is_recalling(&self) -> bool {
        self.recall.is_some()
    }

    /// The lines.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The cursor: (line, byte offset).
    pub fn cursor(&self) -> (usize, usize) {
        (self.row, self.col)
    }

    /// Remember the width the text was wrapped to (the view calls this every frame).
    pub fn set_width(&self, width: u16) {
        self.width.set(width);
    }

    /// The wrap width Up and Down use: the last frame's, or no wrapping before the first.
    fn wrap_width(&self) -> u16 {
        match self.width.get() {
            0 => u16::MAX,
            w => w,
        }
    }

    /// Move the cursor to visual row `target` of `rows`, at display column `want` or the
    /// nearest before it. A row that wraps ends just before its last boundary, so the cursor
    /// stays on the row it was sent to.
    fn move_to_visual(&mut self, rows: &[VisualRow], target: usize, want: u16) {
        let Some(r) = rows.get(target) else { return };
        let line = &self.lines[r.line];
        let wraps = r.end < line.len();
        let mut col = r.end;
        let mut w = 0usize;
        let mut last_start = r.start;
        for (i, g) in line[r.start..r.end].grapheme_indices(true) {
            let gw = g.width();
            if w + gw > usize::from(want) {
                col = r.start + i;
                break;
            }
            last_start = r.start + i;
            w += gw;
        }
        if wraps && col == r.end {
            col = last_start;
        }
        self.row = r.line;
        self.col = col;
    }

    /// Replace the text; the cursor goes to its end.
    pub fn set_text(&mut self, text: &str) {
        let clean = sanitize(text, 0);
        self.lines = clean.split('\n').map(str::to_string).collect();
        if self.lines.is_empty() {
            self.lines.push(String::new());
        }
        self.row = self.lines.len() - 1;
        self.col = self.lines[self.row].len();
    }

    /// Empty the editor (history stays).
    pub fn clear(&mut self) {
        self.lines = vec![String::new()];
        self.row = 0;
        self.col = 0;
        self.recall = None;
        self.draft = None;
    }

    /// Remember a sent prompt for recall.
    pub fn push_history(&mut self, text: &str) {
        if self.history.last().map(String::as_str) != Some(text) {
            self.history.push(text.to_string());
            if self.history.len() > HISTORY_LIMIT {
                self.history.remove(0);
            }
        }
        self.recall = None;
        self.draft = None;
    }

    /// The prompts remembered, oldest first.
    pub fn history(&self) -> &[String] {
        &self.history
    }

    /// Insert text at the cursor (a paste: newlines split lines, control characters are
    /// neutralised, tabs expanded).
    pub fn insert_str(&mut self, text: &str) {
        self.recall = None;
        let line = &self.lines[self.row];
        let col_w = line[..self.col].width();
        let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
        let clean = sanitize(&normalized, col_w);
        let tail = self.lines[self.row].split_off(self.col);
        let mut parts = clean.split('\n');
        if let Some(first) = parts.next() {
            self.lines[self.row].push_str(first);
        }
        for part in parts {
            self.row += 1;
            self.lines.insert(self.row, part.to_string());
        }
        self.col = self.lines[self.row].len();
        self.lines[self.row].push_str(&tail);
    }

    fn prev_boundary(&self) -> usize {
        let line = &self.lines[self.row];
        line[..self.col]
            .grapheme_indices(true)
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self) -> usize {
        let line = &self.lines[self.row];
        line[self.col..]
            .graphemes(true)
            .next()
            .map_or(line.len(), |g| self.col + g.len())
    }

    fn word_left(&mut self) {
        if self.col == 0 {
            if self.row > 0 {
                self.row -= 1;
                self.col = self.lines[self.row].len();
            }
            return;
        }
        let line = &self.lines[self.row];
        let gs: Vec<(usize, &str)> = line[..self.col].grapheme_indices(true).collect();
        let mut i = gs.len();
        while i > 0 && !is_word(gs[i - 1].1) {
            i -= 1;
        }
        while i > 0 && is_word(gs[i - 1].1) {
            i -= 1;
        }
        self.col = gs.get(i).map_or(0, |(b, _)| *b);
    }

    fn word_right(&mut self) {
        let line = &self.lines[self.row];
        if self.col >= line.len() {
            if self.row + 1 < self.lines.len() {
                self.row += 1;
                self.col = 0;
            }
            return;
        }
        let mut col = self.col;
        let mut seen_word = false;
        for g in line[self.col..].graphemes(true) {
            if is_word(g) {
                seen_word = true;
            } else if seen_word {
                break;
            }
            col += g.len();
        }
        self.col = col;
    }

    fn recall_previous(&mut self) {
        if self.history.is_empty() {
            return;
        }
        let pos = match self.recall {
            None => {
                self.draft = Some(self.text());
                self.history.len() - 1
            }
            Some(0) => return,
            Some(p) => p - 1,
        };
        let text = self.history[pos].clone();
        self.set_text(&text);
        self.recall = Some(pos);
    }

    fn recall_next(&mut self) {
        let Some(pos) = self.recall else {
            return;
        };
        if pos + 1 < self.history.len() {
            let text = self.history[pos + 1].clone();
            self.set_text(&text);
            self.recall = Some(pos + 1);
        } else {
            let draft = self.draft.take().unwrap_or_default();
            self.set_text(&draft);
            self.recall = None;
        }
    }

    /// Apply an editing operation.
    pub fn apply(&mut self, op: EditOp) {
        if !matches!(op, EditOp::Up | EditOp::Down) {
            // Editing a recalled prompt makes it the draft.
            if !matches!(
                op,
                EditOp::Left
                    | EditOp::Right
                    | EditOp::Home
                    | EditOp::End
                    | EditOp::WordLeft
                    | EditOp::WordRight
            ) {
                self.recall = None;
                self.draft = None;
            }
        }
        match op {
            EditOp::Insert('\n') | EditOp::Newline => {
                let tail = self.lines[self.row].split_off(self.col);
                self.row += 1;
                self.lines.insert(self.row, tail);
                self.col = 0;
            }
            EditOp::Insert(c) => {
                let mut buf = [0u8; 4];
                self.insert_str(c.encode_utf8(&mut buf));
            }
            EditOp::Backspace => {
                if self.col > 0 {
                    let start = self.prev_boundary();
                    self.lines[self.row].replace_range(start..self.col, "");
                    self.col = start;
                } else if self.row > 0 {
                    let line = self.lines.remove(self.row);
                    self.row -= 1;
                    self.col = self.lines[self.row].len();
                    self.lines[self.row].push_str(&line);
                }
            }
            EditOp::Delete => {
                if self.col < self.lines[self.row].len() {
                    let end = self.next_boundary();
                    self.lines[self.row].replace_range(self.col..end, "");
                } else if self.row + 1 < self.lines.len() {
                    let next = self.lines.remove(self.row + 1);
                    self.lines[self.row].push_str(&next);
                }
            }
            EditOp::Left => {
                if self.col > 0 {
                    self.col = self.prev_boundary();
                } else if self.row > 0 {
                    self.row -= 1;
                    self.col = self.lines[self.row].len();
                }
            }
            EditOp::Right => {
                if self.col < self.lines[self.row].len() {
                    self.col = self.next_boundary();
                } else if self.row + 1 < self.lines.len() {
                    self.row += 1;
                    self.col = 0;
                }
            }
            EditOp::Up => {
                let (rows, (vr, vc)) = self.layout(self.wrap_width());
                if vr == 0 {
                    self.recall_previous();
                } else {
                    self.move_to_visual(&rows, vr - 1, vc);
                }
            }
            EditOp::Down => {
                let (rows, (vr, vc)) = self.layout(self.wrap_width());
                if vr + 1 < rows.len() {
                    self.move_to_visual(&rows, vr + 1, vc);
                } else {
                    self.recall_next();
                }
            }
            EditOp::Home => self.col = 0,
            EditOp::End => self.col = self.lines[self.row].len(),
            EditOp::WordLeft => self.word_left(),
            EditOp::WordRight => self.word_right(),
            EditOp::DeleteToStart => {
                self.lines[self.row].replace_range(..self.col, "");
                self.col = 0;
            }
            EditOp::DeleteToEnd => {
                let col = self.col;
                self.lines[self.row].truncate(col);
            }
            EditOp::DeleteWordBack => {
                if self.col == 0 {
                    self.apply(EditOp::Backspace);
                } else {
                    let end = self.col;
                    self.word_left();
                    let start = self.col;
                    self.lines[self.row].replace_range(start..end, "");
                }
            }
        }
    }

    /// Wrap the text to `width` cells. Returns the visual rows and the cursor's (row,
    /// column) among them. A cursor at the end of a full row moves to a fresh row, so it is
    /// always inside the area.
    pub fn layout(&self, width: u16) -> (Vec<VisualRow>, (usize, u16)) {
        let width = usize::from(width).max(1);
        let mut rows = Vec::new();
        let mut cursor = (0usize, 0u16);
        for (li, line) in self.lines.iter().enumerate() {
            let mut start = 0;
            let mut w = 0;
            for (i, g) in line.grapheme_indices(true) {
                let gw = g.width();
                if w + gw > width && w > 0 {
                    rows.push(VisualRow {
                        line: li,
                        start,
                        end: i,
                    });
                    start = i;
                    w = 0;
                }
                if li == self.row && i == self.col {
                    cursor = (rows.len(), w as u16);
                }
                w += gw;
            }
            if li == self.row && self.col >= line.len() {
                if w >= width {
                    rows.push(VisualRow {
                        line: li,
                        start,
                        end: line.len(),
                    });
                    start = line.len();
                    w = 0;
                }
                cursor = (rows.len(), w as u16);
            }
            rows.push(VisualRow {
                line: li,
                start,
                end: line.len(),
            });
        }
        (rows, cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(s: &str) -> Composer {
        let mut c = Composer::default();
        for ch in s.chars() {
            c.apply(EditOp::Insert(ch));
        }
        c
    }

    #[test]
    fn typing_newlines_and_backspace() {
        let mut c = typed("ab");
        c.apply(EditOp::Newline);
        c.apply(EditOp::Insert('c'));
        assert_eq!(c.text(), "ab\nc");
        c.apply(EditOp::Home);
        c.apply(EditOp::Backspace);
        assert_eq!(c.text(), "abc");
        assert_eq!(c.cursor(), (0, 2));
    }

    #[test]
    fn wide_and_combining_graphemes_move_as_one() {
        let mut c = typed("e\u{301}日x");
        c.apply(EditOp::Left);
        c.apply(EditOp::Left);
        assert_eq!(c.cursor(), (0, 3), "before 日");
        c.apply(EditOp::Backspace);
        assert_eq!(c.text(), "日x", "the accent went with its e");
        let (_, cur) = c.layout(10);
        assert_eq!(cur, (0, 0));
        c.apply(EditOp::Right);
        let (_, cur) = c.layout(10);
        assert_eq!(cur, (0, 2), "日 is two cells");
    }

    #[test]
    fn words_and_kills() {
        let mut c = typed("hello big world");
        c.apply(EditOp::WordLeft);
        assert_eq!(c.cursor(), (0, 10));
        c.apply(EditOp::DeleteWordBack);
        assert_eq!(c.text(), "hello world");
        c.apply(EditOp::WordRight);
        assert_eq!(c.cursor(), (0, 11));
        c.apply(EditOp::DeleteToStart);
        assert_eq!(c.text(), "");
        let mut c = typed("abc def");
        c.apply(EditOp::Home);
        c.apply(EditOp::WordRight);
        c.apply(EditOp::DeleteToEnd);
        assert_eq!(c.text(), "abc");
    }

    #[test]
    fn history_recall_up_and_down() {
        let mut c = Composer::default();
        c.push_history("first");
        c.push_history("second\nline");
        c.set_text("draft");
        c.apply(EditOp::Up);
        assert_eq!(c.text(), "second\nline");
        // The cursor is on the last line: Up moves within the text first.
        c.apply(EditOp::Up);
        assert_eq!(c.text(), "second\nline");
        c.apply(EditOp::Up);
        assert_eq!(c.text(), "first");
        c.apply(EditOp::Down);
        assert_eq!(c.text(), "second\nline");
        c.apply(EditOp::Down);
        assert_eq!(c.text(), "draft");
    }

    #[test]
    fn up_and_down_move_by_wrapped_row() {
        let mut c = Composer::default();
        c.push_history("older prompt");
        c.set_text("abcdefghij\nxy");
        // Wrapped at 4: "abcd" "efgh" "ij" "xy"; the cursor is at the end of "xy".
        c.set_width(4);
        c.apply(EditOp::Up);
        assert_eq!(c.cursor(), (0, 10), "end of the row \"ij\"");
        c.apply(EditOp::Up);
        assert_eq!(c.cursor(), (0, 6), "column 2 of \"efgh\"");
        c.apply(EditOp::Up);
        assert_eq!(c.cursor(), (0, 2), "column 2 of \"abcd\"");
        c.apply(EditOp::Down);
        c.apply(EditOp::Down);
        c.apply(EditOp::Down);
        assert_eq!(c.cursor(), (1, 2), "column 2 of \"xy\"");
        // From column 3 of "abcd", Down stays on "efgh" even past its end.
        c.set_text("abcdefg");
        c.apply(EditOp::Home);
        c.apply(EditOp::End);
        let (_, cur) = c.layout(4);
        assert_eq!(cur, (1, 3));
        c.apply(EditOp::Up);
        assert_eq!(c.cursor(), (0, 3), "column 3 of \"abcd\", not the next row");
        c.apply(EditOp::Up);
        assert_eq!(c.text(), "older prompt", "Up on the first row recalls");
    }

    #[test]
    fn paste_is_sanitized_and_splits_lines() {
        let mut c = typed("> ");
        c.insert_str("a\r\n\tb\u{1b}[2J");
        assert_eq!(c.text(), "> a\n    b␛[2J");
        assert_eq!(c.cursor(), (1, "    b␛[2J".len()));
    }

    proptest::proptest! {
        #[test]
        fn any_edit_sequence_keeps_the_cursor_valid(
            text in "\\PC{0,30}",
            ops in proptest::collection::vec(0u8..16, 0..40),
            width in 1u16..12,
        ) {
            let mut c = Composer::default();
            c.insert_str(&text);
            for op in ops {
                let op = match op {
                    0 => EditOp::Backspace, 1 => EditOp::Delete, 2 => EditOp::Left,
                    3 => EditOp::Right, 4 => EditOp::Up, 5 => EditOp::Down, 6 => EditOp::Home,
                    7 => EditOp::End, 8 => EditOp::WordLeft, 9 => EditOp::WordRight,
                    10 => EditOp::DeleteToStart, 11 => EditOp::DeleteToEnd,
                    12 => EditOp::DeleteWordBack, 13 => EditOp::Newline,
                    14 => EditOp::Insert('日'), _ => EditOp::Insert('e'),
                };
                c.apply(op);
                let (row, col) = c.cursor();
                proptest::prop_assert!(row < c.lines().len());
                proptest::prop_assert!(c.lines()[row].is_char_boundary(col));
                let (rows, (vr, vc)) = c.layout(width);
                proptest::prop_assert!(vr < rows.len());
                proptest::prop_assert!(vc <= width);
            }
        }
    }

    #[test]
    fn layout_keeps_the_cursor_inside() {
        let c = typed("abcd");
        let (rows, cur) = c.layout(4);
        assert_eq!(rows.len(), 2);
        assert_eq!(cur, (1, 0));
        let c = typed("日本語");
        let (rows, cur) = c.layout(3);
        assert_eq!(
            rows.iter().map(|r| (r.start, r.end)).collect::<Vec<_>>(),
            vec![(0, 3), (3, 6), (6, 9)]
        );
        assert_eq!(cur, (2, 2));
    }
}
