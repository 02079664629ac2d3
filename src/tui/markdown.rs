//! Markdown to styled lines: headings, emphasis, lists, quotes, tables, links, and fenced code
//! highlighted with syntect.
//!
//! The output is width-independent ([`StyledLine`]s); the transcript wraps it once per width.
//! Streaming is incremental: a reply is cut into chunks at top-level block boundaries (a
//! non-indented line after a blank line, outside a code fence). A finished chunk never renders
//! differently however much text follows it, so [`MdStream`] renders each chunk once and only
//! re-renders the unfinished tail as text arrives. Finished replies are rendered the same way,
//! so nothing jumps when the stream ends.

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
pub fn render_chunk(text: &str, theme: Theme, indent: &str, out: &mut Vec<StyledLine>) {
    let mut codes = 0;
    render_chunk_from(text, theme, indent, out, &mut codes);
}

/// [`render_chunk`], numbering code blocks after the `codes` the reply had before this chunk
/// (and counting this chunk's into it). The number shows on the opening fence, so that
/// `/copy code N` can name a block.
pub fn render_chunk_from(
    text: &str,
    theme: Theme,
    indent: &str,
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

/// Render a whole document: the same chunks, joined the same way, as [`MdStream`] does.
pub fn render_document(text: &str, theme: Theme, indent: &str) -> Vec<StyledLine> {
    let mut s = MdStream::default();
    s.advance(text, theme, indent);
    let mut lines = s.stable;
    lines.extend(s_tail(
        text,
        s.end,
        !lines.is_empty(),
        theme,
        indent,
        s.codes,
    ));
    lines
}

fn s_tail(
    text: &str,
    end: usize,
    after_stable: bool,
    theme: Theme,
    indent: &str,
    codes: usize,
) -> Vec<StyledLine> {
    let mut out = Vec::new();
    let tail = text.get(end..).unwrap_or("");
    if tail.trim().is_empty() {
        return out;
    }
    if after_stable {
        out.push(StyledLine::blank());
    }
    let mut codes = codes;
    render_chunk_from(tail, theme, indent, &mut out, &mut codes);
    out
}

/// A reply rendered incrementally: the finished chunks, and where they end.
#[derive(Clone, Debug, Default)]
pub struct MdStream {
    /// Byte offset in the text where the finished chunks end.
    pub end: usize,
    /// Lines of the finished chunks (filled by [`MdStream::advance`]; a caller that keeps
    /// them elsewhere uses [`MdStream::advance_into`], and this stays empty).
    pub stable: Vec<StyledLine>,
    /// Code blocks in the finished chunks (the tail's are numbered after them).
    pub codes: usize,
    /// Whether the finished chunks produced any line (the next one is set apart by a blank).
    emitted: bool,
}

impl MdStream {
    /// Render the chunks of `text` that finished since the last call. Returns the index in
    /// [`MdStream::stable`] where the new lines start.
    pub fn advance(&mut self, text: &str, theme: Theme, indent: &str) -> usize {
        let first_new = self.stable.len();
        let mut stable = std::mem::take(&mut self.stable);
        self.advance_into(text, theme, indent, &mut stable);
        self.stable = stable;
        first_new
    }

    /// [`MdStream::advance`], appending the new lines to `out` instead of keeping them.
    pub fn advance_into(
        &mut self,
        text: &str,
        theme: Theme,
        indent: &str,
        out: &mut Vec<StyledLine>,
    ) {
        self.advance_each(text, theme, indent, |lines| out.append(lines));
    }

    /// [`MdStream::advance`], handing each finished chunk's lines to `take` as it is
    /// rendered (from a buffer it may empty), so that a caller storing them otherwise never
    /// holds more than one chunk as [`StyledLine`]s: a whole reply rendered at once, when a
    /// long one is resumed, costs many times its text that way.
    pub fn advance_each(
        &mut self,
        text: &str,
        theme: Theme,
        indent: &str,
        mut take: impl FnMut(&mut Vec<StyledLine>),
    ) {
        let mut out = Vec::new();
        for b in boundaries(text, self.end) {
            let chunk = text.get(self.end..b).unwrap_or("");
            if !chunk.trim().is_empty() {
                out.clear();
                if self.emitted {
                    out.push(StyledLine::blank());
                }
                let before = out.len();
                render_chunk_from(chunk, theme, indent, &mut out, &mut self.codes);
                self.emitted |= out.len() > before;
                take(&mut out);
            }
            self.end = b;
        }
    }

    /// The lines of the unfinished tail (including the blank line that separates it).
    pub fn tail(&self, text: &str, theme: Theme, indent: &str) -> Vec<StyledLine> {
        s_tail(text, self.end, self.emitted, theme, indent, self.codes)
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
    indent: String,
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
}

impl<'a> Renderer<'a> {
    fn new(theme: Theme, indent: &str, out: &'a mut Vec<StyledLine>) -> Self {
        Renderer {
            theme,
            indent: indent.to_string(),
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
            first.push(Span::raw(self.indent.clone()));
            cont.push(Span::raw(self.indent.clone()));
        }
        for c in &mut self.containers {
            match c {
                Container::Quote => {
                    first.push(Span::styled("│ ", dim));
                    cont.push(Span::styled("│ ", dim));
                }
                Container::Item { marker, width } => {
                    let pad = " ".repeat(*width);
                    match marker.take() {
                        Some(m) => first.push(Span::styled(m, dim.remove_modifier(Modifier::DIM))),
                        None => first.push(Span::raw(pad.clone())),
                    }
                    cont.push(Span::raw(pad));
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
                prefix.push(Span::raw(self.indent.clone()));
            }
            for c in &self.containers {
                match c {
                    Container::Quote => prefix.push(Span::styled("│", self.theme.dim())),
                    Container::Item { width, .. } => prefix.push(Span::raw(" ".repeat(*width))),
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
        self.codes += 1;
        self.emit(
            vec![
                Span::styled(format!("```{}", code.lang), dim),
                Span::styled(format!(" [{}]", self.codes), self.theme.code_number()),
            ],
            WrapMode::Char,
        );
        let highlighted = if self.theme.color && !code.lang.is_empty() {
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
}
