//! The notice on the rule between the transcript and the composer (a command's answer, an
//! error, a hint), laid out for the terminal's width.
//!
//! A notice may be longer than the screen is wide (`/cost`, an error quoting the server), and
//! it may have lines of its own (`\n`). It is word-wrapped into as many rows as it needs, up to
//! a cap, so it reads completely at 80 columns instead of being cut at the edge. The first
//! row keeps room for the session's name at its right end, which a notice no longer covers.
//! [`rows`] is the one place that decides the rows, so the layout (how tall the rule is) and
//! the drawing agree.

use ratatui::style::Style;
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::super::app::{App, DEMO_HINT};
use super::super::msg::NoticeKind;

/// Most rows a notice takes, however narrow the terminal.
pub const MAX_ROWS: u16 = 8;

/// Drawn before a notice's first row (`─ `) and before every other row (two spaces).
pub const PREFIX: usize = 2;

/// What the rule shows when no search or resume prompt takes it: the notice, or else the demo
/// hint, or else the mouse hint while the quota panel holds the mouse; and its style.
pub fn current(app: &App) -> Option<(String, Style)> {
    let theme = app.theme;
    match &app.notice {
        Some(n) => Some((
            n.text.clone(),
            match n.kind {
                NoticeKind::Info => Style::new(),
                NoticeKind::Warn => theme.warn(),
                NoticeKind::Error => theme.error(),
            },
        )),
        None if app.demo => Some((DEMO_HINT.to_string(), theme.warn())),
        None if app.quota_open && !app.mouse_captured => Some((
            "mouse released: select with the mouse · F2 to scroll".to_string(),
            theme.dim(),
        )),
        None => None,
    }
}

/// The session's name as the rule's right end shows it (` session NAME ─`), when a rule of
/// `width` columns has room for it.
pub fn session_label(app: &App, width: u16) -> Option<String> {
    let name = app.session_name.as_ref()?;
    let label = format!(" session {} ─", crate::util::clip(name, 40));
    let w = label.width();
    (w + 20 < usize::from(width)).then_some(label)
}

/// The notice's rows for a rule of `width` columns, at most `max_rows` of them (the last one
/// ending in `…` when some were left out); empty when the rule shows no notice. The first row
/// leaves room for the session's name.
pub fn rows(app: &App, width: u16, max_rows: u16) -> Vec<String> {
    if app.resume_choice.is_some() || app.search.is_some() {
        return Vec::new();
    }
    let Some((text, _)) = current(app) else {
        return Vec::new();
    };
    let width = usize::from(width);
    // `─ ` before, one cell after (the rule shows through it, as it always did).
    let rest = width.saturating_sub(PREFIX + 1).max(1);
    let first = match session_label(app, u16::try_from(width).unwrap_or(u16::MAX)) {
        // One more cell of rule between the text and the name.
        Some(label) => rest.saturating_sub(label.width() + 1).max(1),
        None => rest,
    };
    let mut out = wrap(&text, first, rest);
    let max = usize::from(max_rows.max(1));
    if out.len() > max {
        out.truncate(max);
        if let Some(last) = out.last_mut() {
            let room = if max == 1 { first } else { rest };
            *last = with_ellipsis(last, room);
        }
    }
    out
}

/// `line` with `…` at its end, shortened to fit `room` cells.
fn with_ellipsis(line: &str, room: usize) -> String {
    let mut kept = String::new();
    let mut w = 0;
    for g in line.graphemes(true) {
        if w + g.width() + 1 > room {
            break;
        }
        kept.push_str(g);
        w += g.width();
    }
    let mut s = kept.trim_end().to_string();
    s.push('…');
    s
}

/// Word-wrap `text` into rows of at most `first` cells (the first row) and `rest` cells (the
/// others). A `\n` starts a new row. Runs of spaces inside a row are kept (completion lists
/// separate their entries with two); a row never starts with the space it broke at. A word
/// wider than a row is broken between graphemes.
pub fn wrap(text: &str, first: usize, rest: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let room = |out: &Vec<String>| if out.is_empty() { first } else { rest }.max(1);
    for logical in text.split('\n') {
        let mut row = String::new();
        let mut w = 0usize;
        // Spaces seen since the last word, written only if another word follows on the row.
        let mut pending = 0usize;
        let mut started = false;
        for word in logical.split(' ') {
            if started {
                pending += 1;
            }
            started = true;
            if word.is_empty() {
                continue;
            }
            let ww = word.width();
            if w > 0 && w + pending + ww > room(&out) {
                out.push(std::mem::take(&mut row));
                w = 0;
            }
            if w > 0 {
                row.push_str(&" ".repeat(pending));
                w += pending;
            }
            pending = 0;
            if ww <= room(&out) - w {
                row.push_str(word);
                w += ww;
                continue;
            }
            // Too wide for any row: break it where the row ends.
            for g in word.graphemes(true) {
                let gw = g.width();
                if w > 0 && w + gw > room(&out) {
                    out.push(std::mem::take(&mut row));
                    w = 0;
                }
                row.push_str(g);
                w += gw;
            }
        }
        out.push(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_wrap_to_the_widths_and_newlines_break() {
        assert_eq!(wrap("one two three", 7, 7), vec!["one two", "three"]);
        assert_eq!(wrap("one two three", 3, 9), vec!["one", "two three"]);
        assert_eq!(wrap("a\nb c", 10, 10), vec!["a", "b c"]);
        assert_eq!(wrap("fits", 10, 10), vec!["fits"]);
        assert_eq!(wrap("", 10, 10), vec![""]);
    }

    #[test]
    fn inner_runs_of_spaces_stay_and_no_row_starts_with_one() {
        assert_eq!(wrap("a.rs  b.rs  c.rs", 10, 10), vec!["a.rs  b.rs", "c.rs"]);
        assert_eq!(wrap("ab  cd", 2, 2), vec!["ab", "cd"]);
    }

    #[test]
    fn a_word_wider_than_a_row_is_broken() {
        assert_eq!(wrap("abcdefgh", 3, 3), vec!["abc", "def", "gh"]);
        assert_eq!(wrap("x abcdef", 4, 4), vec!["x", "abcd", "ef"]);
        // Wide characters never straddle the edge.
        assert_eq!(wrap("東福寺東", 5, 5), vec!["東福", "寺東"]);
    }

    #[test]
    fn every_row_fits() {
        let text = "cost: $0.12 this session (6 turns) · this turn $0.02\ninput: 60 uncached $0.0002, 19.5k written 5m $0.07, 81k read $0.02";
        for width in 1..40 {
            for row in wrap(text, width, width) {
                assert!(row.width() <= width, "{width}: {row:?}");
            }
        }
    }

    #[test]
    fn a_cut_row_ends_in_an_ellipsis_that_fits() {
        assert_eq!(with_ellipsis("one two three", 8), "one two…");
        assert_eq!(with_ellipsis("abc", 10), "abc…");
    }
}
