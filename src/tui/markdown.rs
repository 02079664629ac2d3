//! Markdown to styled lines: headings, emphasis, lists, quotes, tables, links, and fenced code
//! highlighted with syntect.
//!
//! The output is width-independent ([`StyledLine`]s); the transcript wraps it once per width.
//! Streaming is incremental: a reply is cut into chunks at top-level block boundaries (a
//! non-indented line after a blank line, outside a code fence). A finished chunk never renders
//! differently however much text follows it, so [`MdStream`] renders each chunk once and only
//! re-renders the unfinished tail as text arrives. A chunk longer than [`PIECE`] (a paragraph
//! or a code block of megabytes) is cut into pieces as well ([`next_cut`]), each rendered on
//! its own, so that the unfinished tail, and the work of a frame, stays small; each piece
//! starts a new row, and a code block goes on across its pieces. Finished replies are cut and
//! rendered the same way, so nothing jumps when the stream ends, and a piece can be rendered
//! again on its own from a few bytes of state ([`MdState`]).

use std::sync::OnceLock;

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use syntect::easy::HighlightLines;
use syntect::highlighting::{Theme as SyntectTheme, ThemeSet};
use syntect::parsing::SyntaxSet;
use unicode_width::UnicodeWidthStr;

use super::sanitize::sanitize;
use super::theme::Theme;
use super::wrap::{StyledLine, TableBlock, WrapMode};

/// The syntax definitions and the colour theme, loaded once, on first use (loading takes
/// tens of milliseconds, so it is not done at startup).
fn syntect_assets() -> &'static (SyntaxSet, SyntectTheme, SyntectTheme) {
    static ASSETS: OnceLock<(SyntaxSet, SyntectTheme, SyntectTheme)> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let syntaxes = SyntaxSet::load_defaults_newlines();
        let mut themes = ThemeSet::load_defaults();
        let dark = themes
            .themes
            .remove("base16-ocean.dark")
            .unwrap_or_default();
        let light = themes.themes.remove("InspiredGitHub").unwrap_or_default();
        (syntaxes, dark, light)
    })
}

/// Highlight `code` as `lang`; `None` when the language is unknown (or colour is off).
fn highlight(lang: &str, code: &str, light: bool) -> Option<Vec<Vec<Span<'static>>>> {
    let (syntaxes, dark, light_theme) = syntect_assets();
    let theme = if light { light_theme } else { dark };
    let syntax = syntaxes.find_syntax_by_token(lang)?;
    let mut h = HighlightLines::new(syntax, theme);
    let mut out = Vec::new();
    for line in code.split('\n') {
        // The "newlines" syntax set expects each line to end with its newline.
        let with_nl = format!("{line}\n");
        let regions = h.highlight_line(&with_nl, syntaxes).ok()?;
        let mut spans = Vec::new();
        for (style, text) in regions {
            let text = text.trim_end_matches('\n');
            if text.is_empty() {
                continue;
            }
            let fg = style.foreground;
            spans.push(Span::styled(
                text.to_string(),
                Style::new().fg(Color::Rgb(fg.r, fg.g, fg.b)),
            ));
        }
        out.push(spans);
    }
    Some(out)
}

/// Byte offsets in `text`, after `from`, where a new top-level block starts: a line that is
/// not indented and not blank, after a blank line, outside a code fence. `from` must be 0 or
/// such a boundary. The last line counts once its first character has arrived.
pub fn boundaries(text: &str, from: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let Some(rest) = text.get(from..) else {
        return out;
    };
    let mut fence: Option<(char, usize)> = None;
    let mut prev_blank = false;
    let mut pos = from;
    for line in rest.split_inclusive('\n') {
        let complete = line.ends_with('\n');
        let content = line.trim_end_matches(['\n', '\r']);
        let starts_block = content.chars().next().is_some_and(|c| !c.is_whitespace());
        if fence.is_none() && prev_blank && starts_block && pos > from {
            out.push(pos);
        }
        if !complete {
            break;
        }
        let trimmed = content.trim_start();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        if let Some(m) = marker {
            let n = trimmed.chars().take_while(|c| *c == m).count();
            match fence {
                Some((fm, fnum)) if fm == m && n >= fnum && trimmed[n..].trim().is_empty() => {
                    fence = None;
                }
                None if n >= 3 => fence = Some((m, n)),
                _ => {}
            }
        }
        prev_blank = content.trim().is_empty();
        pos += line.len();
    }
    out
}

const OPTIONS: Options = Options::ENABLE_STRIKETHROUGH
    .union(Options::ENABLE_TABLES)
    .union(Options::ENABLE_TASKLISTS);

/// Render one chunk of markdown (already sanitized) into `out`, every line indented by
/// `indent`. Code blocks are numbered from 1 (see [`render_chunk_from`]).
pub fn render_chunk(text: &str, theme: Theme, indent: &'static str, out: &mut Vec<StyledLine>) {
    let mut codes = 0;
    render_chunk_from(text, theme, indent, out, &mut codes);
}

/// [`render_chunk`], numbering code blocks after the `codes` the reply had before this chunk
/// (and counting this chunk's into it). The number shows on the opening fence, so that
/// `/copy code N` can name a block.
pub fn render_chunk_from(
    text: &str,
    theme: Theme,
    indent: &'static str,
    out: &mut Vec<StyledLine>,
    codes: &mut usize,
) {
    // Neutralised here, chunk by chunk, so that streaming never re-scans the whole reply.
    let clean = sanitize(text, 0);
    let mut r = Renderer::new(theme, indent, out);
    r.codes = *codes;
    for event in Parser::new_ext(&clean, OPTIONS) {
        r.event(event);
    }
    r.flush();
    *codes = r.codes;
}

/// The code blocks of a reply, in order, as written (not sanitized: this is what `/copy
/// code` puts on the clipboard). Parsed chunk by chunk, as the transcript renders it, so the
/// N-th block here is the one numbered N on screen.
pub fn code_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut ends = boundaries(text, 0);
    ends.push(text.len());
    for end in ends {
        let chunk = text.get(start..end).unwrap_or("");
        start = end;
        let mut current: Option<String> = None;
        for event in Parser::new_ext(chunk, OPTIONS) {
            match event {
                Event::Start(Tag::CodeBlock(_)) => current = Some(String::new()),
                Event::Text(t) => {
                    if let Some(c) = &mut current {
                        c.push_str(&t);
                    }
                }
                Event::End(TagEnd::CodeBlock) => {
                    if let Some(c) = current.take() {
                        out.push(c.strip_suffix('\n').unwrap_or(&c).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Render a whole document: the same pieces, joined the same way, as [`MdStream`] does.
pub fn render_document(text: &str, theme: Theme, indent: &'static str) -> Vec<StyledLine> {
    let mut s = MdStream::default();
    s.advance(text, theme, indent);
    let mut lines = s.stable;
    render_rest(text, s.end, &s.state, theme, indent, &mut lines);
    lines
}

/// A block longer than this is laid out in pieces (see [`next_cut`]), so that no piece of a
/// reply costs more than about this much to render again, however long the block.
pub const PIECE: usize = 64 << 10;

/// What the scanner and the renderer must know to go on from the start of a piece without
/// looking back: a few bytes, kept for every unit of a transcript.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MdState {
    /// Code blocks rendered before (the next one is numbered `codes + 1`).
    pub codes: u32,
    /// Inside a code fence whose opening line starts at this byte offset (the piece goes on
    /// with the block's code).
    pub fence: Option<u32>,
    flags: u8,
}

/// A piece before this one produced lines (the next block is set apart by a blank line).
const EMITTED: u8 = 1;
/// The piece continues a block cut because it was long (no blank line before it, unless
/// the text has one).
const CONT: u8 = 2;
/// The line before the piece was blank.
const PREV_BLANK: u8 = 4;
/// The piece starts in the middle of a line.
const MID_LINE: u8 = 8;

impl MdState {
    fn has(self, f: u8) -> bool {
        self.flags & f != 0
    }

    fn with(mut self, f: u8, on: bool) -> MdState {
        if on {
            self.flags |= f;
        } else {
            self.flags &= !f;
        }
        self
    }
}

/// The fence marker (character and count) that `line` starts with, if it does.
fn fence_marker(line: &str) -> Option<(char, usize)> {
    let trimmed = line.trim_start();
    let m = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
    Some((m, trimmed.chars().take_while(|c| *c == m).count()))
}

/// The line of `text` that starts at `at`, without its line break.
fn line_at(text: &str, at: usize) -> &str {
    let rest = text.get(at..).unwrap_or("");
    let line = rest.split('\n').next().unwrap_or("");
    line.trim_end_matches('\r')
}

/// Where a piece that starts at `s` is cut in the middle of a line: it has no line start
/// in `s + PIECE ..= s + 2 × PIECE`, and `text` goes past that. At the first word in that
/// window (a letter after a space: a piece that starts with one is a paragraph's text), or
/// else at the first character boundary after it.
fn mid_line_cut(text: &str, s: usize, piece: usize) -> usize {
    let lo = s + piece;
    let hi = s + 2 * piece;
    let lo = (lo..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    let mut prev_space = false;
    for (i, c) in text.get(lo..).unwrap_or("").char_indices() {
        let q = lo + i;
        if i > 0 && prev_space && c.is_alphabetic() && q <= hi {
            return q;
        }
        if q >= hi {
            return q;
        }
        prev_space = c.is_whitespace();
    }
    text.len()
}

/// The cut that ends the piece of `text` starting at `s` in state `st`, and the state at
/// the cut; `None` while the text so far does not decide it (the piece is unfinished).
///
/// A piece ends where a new top-level block starts (a line that is not indented and not
/// blank, after a blank line, outside a code fence): the chunks of [`boundaries`]. A chunk
/// longer than [`PIECE`] is cut into pieces as well: at the first line start at least
/// `PIECE` bytes in, or, when there is none up to `2 × PIECE`, in that line
/// ([`mid_line_cut`]). A cut found in a text stays a cut however the text grows, so a reply
/// is cut the same way while it streams as when it is read whole.
pub fn next_cut(text: &str, s: usize, st: &MdState) -> Option<(usize, MdState)> {
    cut_with(text, s, st, PIECE)
}

/// [`next_cut`] with pieces of `piece` bytes.
fn cut_with(text: &str, s: usize, st: &MdState, piece_len: usize) -> Option<(usize, MdState)> {
    let rest = text.get(s..)?;
    let mut fence_at = st.fence.map(|o| o as usize);
    let mut fence = fence_at.and_then(|o| fence_marker(line_at(text, o)));
    let mut prev_blank = st.has(PREV_BLANK);
    let mut pos = s;
    let piece = |end: usize, fence_at: Option<usize>, prev_blank: bool, mid: bool| {
        let next = MdState {
            fence: fence_at.map(|o| u32::try_from(o).unwrap_or(u32::MAX)),
            ..*st
        };
        Some((
            end,
            next.with(CONT, true)
                .with(PREV_BLANK, prev_blank)
                .with(MID_LINE, mid),
        ))
    };
    // The fence when the line looked at began: a cut in that line is made in that state,
    // whether or not the line is complete yet.
    let mut line_fence = fence_at;
    for line in rest.split_inclusive('\n') {
        let complete = line.ends_with('\n');
        let content = line.trim_end_matches(['\n', '\r']);
        if pos > s {
            if pos > s + 2 * piece_len {
                // No line start in the window: the long line before this one is cut.
                return piece(mid_line_cut(text, s, piece_len), line_fence, false, true);
            }
            let starts_block = content.chars().next().is_some_and(|c| !c.is_whitespace());
            if fence.is_none() && prev_blank && starts_block {
                let next = MdState { fence: None, ..*st };
                return Some((
                    pos,
                    next.with(CONT, false)
                        .with(PREV_BLANK, true)
                        .with(MID_LINE, false),
                ));
            }
            if pos >= s + piece_len {
                if fence.is_none() && prev_blank && content.is_empty() && !complete {
                    // The line may yet start a block: then this is a chunk's end.
                    return None;
                }
                return piece(pos, fence_at, prev_blank, false);
            }
        }
        line_fence = fence_at;
        if !complete {
            break;
        }
        if pos == s && st.has(MID_LINE) {
            // The end of a line cut in the middle: neither a fence nor blank.
            prev_blank = false;
        } else {
            if let Some((m, n)) = fence_marker(content) {
                let after = content.trim_start().get(n..).unwrap_or("");
                match fence {
                    Some((fm, fnum)) if fm == m && n >= fnum && after.trim().is_empty() => {
                        fence = None;
                        fence_at = None;
                    }
                    None if n >= 3 => {
                        fence = Some((m, n));
                        fence_at = Some(pos);
                    }
                    _ => {}
                }
            }
            prev_blank = content.trim().is_empty();
        }
        pos += line.len();
    }
    if text.len() > s + 2 * piece_len {
        return piece(mid_line_cut(text, s, piece_len), line_fence, false, true);
    }
    None
}

/// Where a piece of plain text (a prompt, thinking) that starts at `s` is cut: at the first
/// line start at least [`PIECE`] bytes in, or in a longer line as [`next_cut`] does; `None`
/// when the rest is one piece. Lines are laid out one by one, so a cut at a line start
/// changes nothing on screen.
pub fn plain_cut(text: &str, s: usize) -> Option<usize> {
    plain_cut_with(text, s, PIECE)
}

fn plain_cut_with(text: &str, s: usize, piece: usize) -> Option<usize> {
    let rest = text.get(s..)?;
    let mut pos = s;
    for line in rest.split_inclusive('\n') {
        if pos > s + 2 * piece {
            break;
        }
        if pos > s && pos >= s + piece {
            return Some(pos);
        }
        pos += line.len();
    }
    (text.len() > s + 2 * piece).then(|| mid_line_cut(text, s, piece))
}

/// Render the piece `text[range]` that starts in state `st` into `out`; returns the state
/// after it, given `next`, the state [`next_cut`] gave at its end (`None` for the rest of the
/// text: a code block still open at its end is shown closed).
pub fn render_piece(
    text: &str,
    range: std::ops::Range<usize>,
    st: &MdState,
    next: Option<&MdState>,
    theme: Theme,
    indent: &'static str,
    out: &mut Vec<StyledLine>,
) -> MdState {
    let piece = text.get(range).unwrap_or("");
    let mut after = match next {
        Some(n) => MdState {
            codes: st.codes,
            flags: n.flags & !EMITTED | st.flags & EMITTED,
            ..*n
        },
        None => *st,
    };
    if st.fence.is_none() && piece.trim().is_empty() {
        return after;
    }
    let cont = st.has(CONT);
    if st.has(EMITTED) && (!cont || (st.fence.is_none() && st.has(PREV_BLANK))) {
        out.push(StyledLine::blank());
    }
    let before = out.len();
    // Neutralised here, piece by piece, so that streaming never re-scans the whole reply.
    let clean = sanitize(piece, 0);
    let mut r = Renderer::new(theme, indent, out);
    r.codes = st.codes as usize;
    match st.fence {
        Some(open) => {
            // The code block goes on: parsed after its opening line, which is not drawn again.
            let opener = sanitize(line_at(text, open as usize), 0);
            let source = format!("{opener}\n{clean}");
            r.continued_code = true;
            for event in Parser::new_ext(&source, OPTIONS) {
                r.event(event);
            }
        }
        None => {
            for event in Parser::new_ext(&clean, OPTIONS) {
                r.event(event);
            }
        }
    }
    r.flush();
    let codes = r.codes;
    let last_close = r.last_close;
    if next.is_some_and(|n| n.fence.is_some()) && last_close.is_some_and(|i| i + 1 == out.len()) {
        // The block goes on in the next piece: no closing fence yet.
        out.pop();
    }
    after.codes = u32::try_from(codes).unwrap_or(u32::MAX);
    after.with(EMITTED, st.has(EMITTED) || out.len() > before)
}

/// Render the piece of `text` that starts at `at` in state `st` into `out`, if [`next_cut`]
/// can tell where it ends; returns that end and the state there. `None` (nothing rendered):
/// the rest of the text is unfinished (see [`render_rest`]).
pub fn step(
    text: &str,
    at: usize,
    st: &MdState,
    theme: Theme,
    indent: &'static str,
    out: &mut Vec<StyledLine>,
) -> Option<(usize, MdState)> {
    let (end, next) = next_cut(text, at, st)?;
    let after = render_piece(text, at..end, st, Some(&next), theme, indent, out);
    Some((end, after))
}

/// Render the rest of `text` from `at` (a reply's unfinished tail) into `out`.
pub fn render_rest(
    text: &str,
    at: usize,
    st: &MdState,
    theme: Theme,
    indent: &'static str,
    out: &mut Vec<StyledLine>,
) {
    render_piece(text, at..text.len(), st, None, theme, indent, out);
}

/// A reply rendered incrementally: the finished pieces, and where they end.
#[derive(Clone, Debug, Default)]
pub struct MdStream {
    /// Byte offset in the text where the finished pieces end.
    pub end: usize,
    /// The state there.
    pub state: MdState,
    /// Lines of the finished pieces (filled by [`MdStream::advance`]).
    pub stable: Vec<StyledLine>,
}

impl MdStream {
    /// Render the pieces of `text` that finished since the last call. Returns the index in
    /// [`MdStream::stable`] where the new lines start.
    pub fn advance(&mut self, text: &str, theme: Theme, indent: &'static str) -> usize {
        let first_new = self.stable.len();
        while let Some((end, st)) =
            step(text, self.end, &self.state, theme, indent, &mut self.stable)
        {
            self.end = end;
            self.state = st;
        }
        first_new
    }

    /// The lines of the unfinished tail (including the blank line that separates it).
    pub fn tail(&self, text: &str, theme: Theme, indent: &'static str) -> Vec<StyledLine> {
        let mut out = Vec::new();
        render_rest(text, self.end, &self.state, theme, indent, &mut out);
        out
    }
}

/// `n` spaces (borrowed, for the few a list's indentation takes: every line has them).
fn spaces(n: usize) -> Span<'static> {
    const SPACES: &str = "                ";
    match SPACES.get(..n) {
        Some(s) => Span::raw(s),
        None => Span::raw(" ".repeat(n)),
    }
}

enum Container {
    Quote,
    Item {
        marker: Option<String>,
        width: usize,
    },
}

struct CodeBlock {
    lang: String,
    text: String,
}

#[derive(Default)]
struct Table {
    rows: Vec<Vec<Vec<Span<'static>>>>,
    head_rows: usize,
    in_head: bool,
}

struct Renderer<'a> {
    theme: Theme,
    indent: &'static str,
    out: &'a mut Vec<StyledLine>,
    inline: Vec<Span<'static>>,
    styles: Vec<Style>,
    containers: Vec<Container>,
    lists: Vec<Option<u64>>,
    code: Option<CodeBlock>,
    links: Vec<String>,
    table: Option<Table>,
    need_blank: bool,
    /// Code blocks rendered so far in this reply (the next one is `codes + 1`).
    codes: usize,
    /// The first code block continues one begun in an earlier piece: no opening line, and
    /// no new number.
    continued_code: bool,
    /// Where the last closing fence line went in `out`.
    last_close: Option<usize>,
}

impl<'a> Renderer<'a> {
    fn new(theme: Theme, indent: &'static str, out: &'a mut Vec<StyledLine>) -> Self {
        Renderer {
            theme,
            indent,
            out,
            inline: Vec::new(),
            styles: Vec::new(),
            containers: Vec::new(),
            lists: Vec::new(),
            code: None,
            links: Vec::new(),
            table: None,
            need_blank: false,
            codes: 0,
            continued_code: false,
            last_close: None,
        }
    }

    fn style(&self) -> Style {
        self.styles
            .iter()
            .fold(Style::new(), |acc, s| acc.patch(*s))
    }

    fn push_style(&mut self, s: Style) {
        self.styles.push(s);
    }

    fn pop_style(&mut self) {
        self.styles.pop();
    }

    fn prefixes(&mut self) -> (Vec<Span<'static>>, Vec<Span<'static>>) {
        let dim = self.theme.dim();
        let mut first = Vec::new();
        let mut cont = Vec::new();
        if !self.indent.is_empty() {
            first.push(Span::raw(self.indent));
            cont.push(Span::raw(self.indent));
        }
        for c in &mut self.containers {
            match c {
                Container::Quote => {
                    first.push(Span::styled("│ ", dim));
                    cont.push(Span::styled("│ ", dim));
                }
                Container::Item { marker, width } => {
                    match marker.take() {
                        Some(m) => first.push(Span::styled(m, dim.remove_modifier(Modifier::DIM))),
                        None => first.push(spaces(*width)),
                    }
                    cont.push(spaces(*width));
                }
            }
        }
        (first, cont)
    }

    fn blank_if_needed(&mut self) {
        if self.need_blank && !self.out.is_empty() {
            // Quote bars continue through the gap; list markers do not.
            let mut prefix = Vec::new();
            if !self.indent.is_empty() {
                prefix.push(Span::raw(self.indent));
            }
            for c in &self.containers {
                match c {
                    Container::Quote => prefix.push(Span::styled("│", self.theme.dim())),
                    Container::Item { width, .. } => prefix.push(spaces(*width)),
                }
            }
            let only_spaces = prefix.iter().all(|s| s.content.trim().is_empty());
            self.out.push(StyledLine {
                first_prefix: if only_spaces { Vec::new() } else { prefix },
                ..StyledLine::default()
            });
        }
        self.need_blank = false;
    }

    fn emit(&mut self, spans: Vec<Span<'static>>, mode: WrapMode) {
        self.blank_if_needed();
        let (first_prefix, prefix) = self.prefixes();
        self.out.push(StyledLine {
            first_prefix,
            prefix,
            spans,
            mode,
        });
    }

    /// End the current inline line, if any.
    fn flush(&mut self) {
        if !self.inline.is_empty() {
            let spans = std::mem::take(&mut self.inline);
            self.emit(spans, WrapMode::Word);
        }
    }

    fn text(&mut self, text: &str) {
        if let Some(code) = &mut self.code {
            code.text.push_str(text);
            return;
        }
        let style = self.style();
        let mut parts = text.split('\n').peekable();
        while let Some(part) = parts.next() {
            if !part.is_empty() {
                self.push_span(Span::styled(part.to_string(), style));
            }
            if parts.peek().is_some() {
                self.line_break();
            }
        }
    }

    fn push_span(&mut self, span: Span<'static>) {
        if let Some(t) = &mut self.table {
            if let Some(cell) = t.rows.last_mut().and_then(|r| r.last_mut()) {
                cell.push(span);
            }
            return;
        }
        self.inline.push(span);
    }

    fn line_break(&mut self) {
        if self.table.is_some() {
            self.push_span(Span::raw(" "));
            return;
        }
        let spans = std::mem::take(&mut self.inline);
        self.emit(spans, WrapMode::Word);
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => self.text(&t),
            Event::Code(t) => {
                let style = self.style().patch(self.theme.inline_code());
                if self.theme.color {
                    self.push_span(Span::styled(t.to_string(), style));
                } else {
                    self.push_span(Span::styled(format!("`{t}`"), style));
                }
            }
            Event::InlineMath(t) | Event::DisplayMath(t) => self.text(&t),
            Event::Html(t) | Event::InlineHtml(t) => self.text(&t),
            Event::FootnoteReference(t) => self.text(&format!("[^{t}]")),
            Event::SoftBreak => self.text(" "),
            Event::HardBreak => self.line_break(),
            Event::Rule => {
                self.flush();
                self.emit(vec![Span::styled("─", self.theme.dim())], WrapMode::Rule);
                self.need_blank = true;
            }
            Event::TaskListMarker(done) => {
                self.push_span(Span::raw(if done { "[x] " } else { "[ ] " }));
            }
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph => self.flush(),
            Tag::Heading { level, .. } => {
                self.flush();
                let n = heading_level(level);
                let style = self.theme.heading(n);
                self.push_style(style);
                self.push_span(Span::styled(
                    format!("{} ", "#".repeat(usize::from(n))),
                    style
                        .add_modifier(Modifier::DIM)
                        .remove_modifier(Modifier::UNDERLINED),
                ));
            }
            Tag::BlockQuote(_) => {
                self.flush();
                self.blank_if_needed();
                self.containers.push(Container::Quote);
            }
            Tag::CodeBlock(kind) => {
                self.flush();
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => {
                        info.split([' ', ',', '{']).next().unwrap_or("").to_string()
                    }
                    CodeBlockKind::Indented => String::new(),
                };
                self.code = Some(CodeBlock {
                    lang,
                    text: String::new(),
                });
            }
            Tag::HtmlBlock => self.flush(),
            Tag::List(start) => {
                self.flush();
                if self.lists.is_empty() {
                    self.blank_if_needed();
                }
                self.lists.push(start);
            }
            Tag::Item => {
                self.flush();
                let depth = self.lists.len();
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let m = format!("{n}. ");
                        *n += 1;
                        m
                    }
                    _ => match depth {
                        0 | 1 => "• ".to_string(),
                        2 => "◦ ".to_string(),
                        _ => "▪ ".to_string(),
                    },
                };
                let width = marker.width();
                self.containers.push(Container::Item {
                    marker: Some(marker),
                    width,
                });
            }
            Tag::FootnoteDefinition(name) => {
                self.flush();
                self.text(&format!("[^{name}]: "));
            }
            Tag::Table(_) => {
                self.flush();
                self.table = Some(Table::default());
            }
            Tag::TableHead => {
                if let Some(t) = &mut self.table {
                    t.in_head = true;
                    t.rows.push(Vec::new());
                }
            }
            Tag::TableRow => {
                if let Some(t) = &mut self.table {
                    t.rows.push(Vec::new());
                }
            }
            Tag::TableCell => {
                if let Some(t) = &mut self.table
                    && let Some(r) = t.rows.last_mut()
                {
                    r.push(Vec::new());
                }
            }
            Tag::Emphasis => self.push_style(Style::new().add_modifier(Modifier::ITALIC)),
            Tag::Strong => self.push_style(Style::new().add_modifier(Modifier::BOLD)),
            Tag::Strikethrough => {
                self.push_style(Style::new().add_modifier(Modifier::CROSSED_OUT));
            }
            Tag::Link { dest_url, .. } => {
                self.push_style(self.theme.link());
                self.links.push(dest_url.to_string());
            }
            Tag::Image { dest_url, .. } => {
                self.links.push(dest_url.to_string());
                self.text("[image: ");
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => {
                self.flush();
                self.need_blank = true;
            }
            TagEnd::Heading(_) => {
                self.pop_style();
                self.flush();
                self.need_blank = true;
            }
            TagEnd::BlockQuote(_) => {
                self.flush();
                self.containers.pop();
                self.need_blank = true;
            }
            TagEnd::CodeBlock => self.end_code(),
            TagEnd::HtmlBlock => {
                self.flush();
                self.need_blank = true;
            }
            TagEnd::List(_) => {
                self.flush();
                self.lists.pop();
                if self.lists.is_empty() {
                    self.need_blank = true;
                }
            }
            TagEnd::Item => {
                self.flush();
                self.containers.pop();
            }
            TagEnd::FootnoteDefinition => {
                self.flush();
                self.need_blank = true;
            }
            TagEnd::TableHead => {
                if let Some(t) = &mut self.table {
                    t.in_head = false;
                    t.head_rows = t.rows.len();
                }
            }
            TagEnd::Table => self.end_table(),
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => self.pop_style(),
            TagEnd::Link => {
                self.pop_style();
                let url = self.links.pop().unwrap_or_default();
                let shown: String = self
                    .inline
                    .iter()
                    .rev()
                    .take(1)
                    .map(|s| s.content.to_string())
                    .collect();
                if !url.is_empty() && !shown.ends_with(&url) && !url.starts_with('#') {
                    self.push_span(Span::styled(format!(" ({url})"), self.theme.dim()));
                }
            }
            TagEnd::Image => {
                self.links.pop();
                self.text("]");
            }
            _ => {}
        }
    }

    fn end_code(&mut self) {
        let Some(code) = self.code.take() else {
            return;
        };
        let dim = self.theme.dim();
        let body = code.text.strip_suffix('\n').unwrap_or(&code.text);
        let continued = std::mem::take(&mut self.continued_code);
        if !continued {
            self.codes += 1;
            self.emit(
                vec![
                    Span::styled(format!("```{}", code.lang), dim),
                    Span::styled(format!(" [{}]", self.codes), self.theme.code_number()),
                ],
                WrapMode::Char,
            );
        }
        let highlighted = if continued && code.text.is_empty() {
            // Cut just before its closing fence: no line left.
            Some(Vec::new())
        } else if self.theme.color && !code.lang.is_empty() {
            highlight(&code.lang, body, self.theme.light)
        } else {
            None
        };
        match highlighted {
            Some(lines) => {
                for spans in lines {
                    self.emit(spans, WrapMode::Char);
                }
            }
            None => {
                for line in body.split('\n') {
                    self.emit(vec![Span::raw(line.to_string())], WrapMode::Char);
                }
            }
        }
        self.emit(vec![Span::styled("```", dim)], WrapMode::Char);
        self.last_close = Some(self.out.len() - 1);
        self.need_blank = true;
    }

    fn end_table(&mut self) {
        let Some(table) = self.table.take() else {
            return;
        };
        // Laid out when it is wrapped, for the width it gets (`WrapMode::Table`).
        let rows = table
            .rows
            .into_iter()
            .enumerate()
            .map(|(ri, row)| {
                let head = ri < table.head_rows;
                row.into_iter()
                    .map(|cell| {
                        cell.into_iter()
                            .map(|s| {
                                if head {
                                    let st = s.style.add_modifier(Modifier::BOLD);
                                    s.style(st)
                                } else {
                                    s
                                }
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let block = TableBlock {
            rows,
            head_rows: table.head_rows,
            border: self.theme.dim(),
        };
        self.emit(Vec::new(), WrapMode::Table(std::sync::Arc::new(block)));
        self.need_blank = true;
    }
}

fn heading_level(l: HeadingLevel) -> u8 {
    match l {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::wrap::wrap_into;

    fn plain(lines: &[StyledLine]) -> Vec<String> {
        let mut out = Vec::new();
        for l in lines {
            wrap_into(l, 200, &mut out);
        }
        out.iter().map(std::string::ToString::to_string).collect()
    }

    #[test]
    fn blocks_render() {
        let md = "# Title\n\nSome *em* and **strong** text.\n\n- one\n- two\n  1. nested\n\n> quoted\n\n```rust\nfn main() {}\n```\n";
        let lines = render_document(md, Theme::default(), "");
        assert_eq!(
            plain(&lines),
            vec![
                "# Title",
                "",
                "Some em and strong text.",
                "",
                "• one",
                "• two",
                "  1. nested",
                "",
                "│ quoted",
                "",
                "```rust [1]",
                "fn main() {}",
                "```",
            ]
        );
        // The code is highlighted: more than one colour on the line.
        let code = &lines[11];
        assert!(code.spans.iter().any(|s| s.style.fg.is_some()));
    }

    #[test]
    fn code_blocks_are_numbered_across_chunks_and_extracted_raw() {
        let md = "```\na\n```\n\ntext\n\n```sh\nb\x1b[2J\n```\n";
        let blocks = code_blocks(md);
        assert_eq!(blocks, vec!["a".to_string(), "b\x1b[2J".to_string()]);
        let shown = plain(&render_document(md, Theme::default(), ""));
        assert!(shown.contains(&"``` [1]".to_string()), "{shown:?}");
        assert!(shown.contains(&"```sh [2]".to_string()), "{shown:?}");
    }

    #[test]
    fn boundaries_skip_fences_and_indented_lines() {
        let t = "a\n\nb\n\n```\nx\n\ny\n```\n\n  c\n\nd";
        let b = boundaries(t, 0);
        let starts: Vec<&str> = b.iter().map(|&i| &t[i..=i]).collect();
        assert_eq!(starts, vec!["b", "`", "d"]);
        // A boundary found in a prefix stays a boundary as text grows.
        for cut in 0..t.len() {
            for x in boundaries(&t[..cut], 0) {
                assert!(b.contains(&x), "{cut}: {x}");
            }
        }
    }

    #[test]
    fn streaming_matches_the_finished_rendering() {
        let t =
            "Intro para.\n\n## Head\n\n1. a\n2. b\n\n```python\nprint(1)\n\nprint(2)\n```\n\nEnd.";
        let full = render_document(t, Theme::default(), "  ");
        let mut s = MdStream::default();
        for cut in (0..=t.len()).filter(|c| t.is_char_boundary(*c)) {
            s.advance(&t[..cut], Theme::default(), "  ");
        }
        let mut lines = s.stable.clone();
        lines.extend(s.tail(t, Theme::default(), "  "));
        assert_eq!(plain(&lines), plain(&full));
    }

    proptest::proptest! {
        #[test]
        fn any_text_renders_without_panicking(text in "[\\PC\n`*#>|_\\-\\[\\]() ]{0,120}") {
            let lines = render_document(&text, Theme::default(), "  ");
            let mut s = MdStream::default();
            for cut in (0..=text.len()).filter(|c| text.is_char_boundary(*c)) {
                s.advance(&text[..cut], Theme::default(), "  ");
            }
            let mut streamed = s.stable.clone();
            streamed.extend(s.tail(&text, Theme::default(), "  "));
            proptest::prop_assert_eq!(plain(&streamed), plain(&lines));
        }
    }

    #[test]
    fn tables_and_links() {
        let t = "| a | bb |\n|---|---|\n| ccc | d |\n\nsee [docs](https://x.y/z)";
        let lines = render_document(t, Theme::monochrome(), "");
        assert_eq!(
            plain(&lines),
            vec![
                "a   │ bb",
                "────┼───",
                "ccc │ d",
                "",
                "see docs (https://x.y/z)"
            ]
        );
    }

    /// The cuts of `text` with pieces of `piece` bytes, and the unfinished rest's start.
    fn cuts(text: &str, piece: usize) -> (Vec<(usize, MdState)>, usize) {
        let mut out = Vec::new();
        let (mut at, mut st) = (0, MdState::default());
        while let Some((end, next)) = cut_with(text, at, &st, piece) {
            assert!(end > at, "a cut moves on");
            out.push((end, next));
            (at, st) = (end, next);
        }
        (out, at)
    }

    /// `text` rendered as it streams in `stride`-byte steps, pieces of `piece` bytes, and
    /// as read whole.
    fn streamed_and_whole(text: &str, piece: usize, stride: usize) -> (Vec<String>, Vec<String>) {
        let render = |upto: &[usize]| {
            let mut lines = Vec::new();
            let (mut at, mut st) = (0, MdState::default());
            for &len in upto {
                let t = &text[..len];
                while let Some((end, next)) = cut_with(t, at, &st, piece) {
                    let theme = Theme::default();
                    st = render_piece(t, at..end, &st, Some(&next), theme, "  ", &mut lines);
                    at = end;
                }
            }
            render_rest(text, at, &st, Theme::default(), "  ", &mut lines);
            plain(&lines)
        };
        let mut steps: Vec<usize> = (0..=text.len())
            .step_by(stride.max(1))
            .filter(|c| text.is_char_boundary(*c))
            .collect();
        steps.push(text.len());
        (render(&steps), render(&[text.len()]))
    }

    proptest::proptest! {
        #[test]
        fn cuts_found_in_a_prefix_stay_cuts(
            text in "([a-z]{1,6}|[ \n]|\n\n|```|~~~|> |# |- |\t){0,80}",
            piece in 4usize..40,
        ) {
            let (full, rest) = cuts(&text, piece);
            for len in (0..=text.len()).filter(|c| text.is_char_boundary(*c)) {
                let (part, _) = cuts(&text[..len], piece);
                proptest::prop_assert_eq!(&full[..part.len()], &part[..], "prefix {}", len);
            }
            // No piece, and no unfinished rest, is much longer than two pieces.
            let mut at = 0;
            for (end, _) in &full {
                proptest::prop_assert!(end - at <= 2 * piece + 3, "{at}..{end}");
                at = *end;
            }
            proptest::prop_assert!(text.len() - rest <= 2 * piece + 3);
        }

        #[test]
        fn small_pieces_stream_as_they_read_whole(
            text in "([a-z]{1,6}|[ \n]|\n\n|```rust\n|```\n|> |# |- |1\\. |\\*\\*|`){0,60}",
            piece in 4usize..40,
            stride in 1usize..30,
        ) {
            let (streamed, whole) = streamed_and_whole(&text, piece, stride);
            proptest::prop_assert_eq!(streamed, whole);
        }
    }

    /// A reply with blocks longer than a piece: a paragraph of many lines, a code block, a
    /// paragraph with no line break, then short blocks.
    fn long_blocks() -> String {
        let mut t = String::from("Intro.\n\n");
        for i in 0..3000 {
            t.push_str(&format!(
                "line {i} of a long paragraph with **bold** words\n"
            ));
        }
        t.push_str("\n```rust\n");
        for i in 0..4000 {
            t.push_str(&format!("let x{i} = {i}; // code\n"));
        }
        t.push_str("```\n\n");
        t.push_str(&"word ".repeat(60_000));
        t.push_str("\n\n- a\n- b\n\nEnd.");
        t
    }

    #[test]
    fn long_blocks_are_cut_in_pieces_and_lose_nothing() {
        let t = long_blocks();
        let (cuts, _) = cuts(&t, PIECE);
        assert!(cuts.len() >= 8, "{} cuts", cuts.len());
        let (streamed, whole) = streamed_and_whole(&t, PIECE, 7919);
        assert_eq!(streamed, whole);
        // Every line of the paragraph, in order.
        let joined = whole.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
        let mut from = 0;
        for i in (0..3000).step_by(97) {
            let at = joined[from..]
                .find(&format!("line {i} of"))
                .unwrap_or_else(|| panic!("line {i}"));
            from += at;
        }
        // The code block: one opening line and number, each code line once, one closing.
        let open = whole
            .iter()
            .position(|l| l == "  ```rust [1]")
            .expect("opening");
        for i in 0..4000 {
            assert_eq!(whole[open + 1 + i], format!("  let x{i} = {i}; // code"));
        }
        assert_eq!(whole[open + 4001], "  ```");
        assert_eq!(whole.iter().filter(|l| l.contains("```")).count(), 2);
        // The line of words: all of them, however it was cut.
        let words: usize = whole
            .iter()
            .map(|l| l.split_whitespace().filter(|w| *w == "word").count())
            .sum();
        assert_eq!(words, 60_000);
        assert!(whole.iter().any(|l| l == "  • a"));
        assert_eq!(whole.last().map(String::as_str), Some("  End."));
    }
}
