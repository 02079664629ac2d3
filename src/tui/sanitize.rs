//! Text from outside (model replies, pastes) is neutralised before it reaches the screen.
//!
//! A terminal obeys bytes, not intentions: an ESC in a reply could recolour the screen, move
//! the cursor, or write the clipboard through OSC 52; a bare `\r` overwrites the line; a tab
//! is zero cells wide to ratatui (ratatui#876). So control characters become visible pictures
//! (ESC shows as `␛`, NUL as `␀`), C1 controls become `�`, bidirectional overrides (the
//! "Trojan Source" characters) are dropped, and tabs are expanded to spaces.

use std::borrow::Cow;

use unicode_width::UnicodeWidthChar;

/// Tab stops every this many columns.
pub const TAB_WIDTH: usize = 4;

/// What one character becomes.
enum Fix {
    Keep,
    Drop,
    Tab,
    Replace(char),
}

fn fix(c: char) -> Fix {
    match c {
        '\n' => Fix::Keep,
        '\t' => Fix::Tab,
        // `\r\n` is a newline; a bare `\r` would overwrite the line: drop both.
        '\r' => Fix::Drop,
        '\u{7f}' => Fix::Replace('\u{2421}'),
        c if (c as u32) < 0x20 => {
            // Control Pictures: U+2400 + the code (ESC → ␛).
            Fix::Replace(char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'))
        }
        '\u{80}'..='\u{9f}' => Fix::Replace('\u{fffd}'),
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => Fix::Drop,
        _ => Fix::Keep,
    }
}

fn is_clean(s: &str) -> bool {
    s.chars().all(|c| {
        let u = c as u32;
        (u >= 0x20 || c == '\n')
            && !(0x7f..=0x9f).contains(&u)
            && !(0x202a..=0x202e).contains(&u)
            && !(0x2066..=0x2069).contains(&u)
    })
}

/// Neutralise `text`. `start_col` is the display column the text starts at (for tab stops).
/// Borrows when there is nothing to change, which is the common case.
pub fn sanitize(text: &str, start_col: usize) -> Cow<'_, str> {
    if is_clean(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut col = start_col;
    for c in text.chars() {
        match fix(c) {
            Fix::Keep => {
                out.push(c);
                if c == '\n' {
                    col = 0;
                } else {
                    col += c.width().unwrap_or(0);
                }
            }
            Fix::Drop => {}
            Fix::Tab => {
                let n = TAB_WIDTH - col % TAB_WIDTH;
                out.extend(std::iter::repeat_n(' ', n));
                col += n;
            }
            Fix::Replace(r) => {
                out.push(r);
                col += r.width().unwrap_or(1);
            }
        }
    }
    Cow::Owned(out)
}

/// True when the text holds nothing a terminal would interpret.
pub fn is_safe(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c != '\n' && (c.is_control() || c == '\u{1b}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_controls_become_visible() {
        let s = sanitize("red \u{1b}[31mtext\u{1b}]52;c;aGk=\u{7} done", 0);
        assert!(is_safe(&s), "{s:?}");
        assert_eq!(s, "red ␛[31mtext␛]52;c;aGk=␇ done");
        assert_eq!(sanitize("a\r\nb\rc", 0), "a\nbc");
        assert_eq!(sanitize("x\u{85}y\u{202e}z", 0), "x\u{fffd}yz");
    }

    #[test]
    fn tabs_expand_to_stops() {
        assert_eq!(sanitize("\tx", 0), "    x");
        assert_eq!(sanitize("ab\tx\n\ty", 0), "ab  x\n    y");
        assert_eq!(sanitize("\tx", 2), "  x");
        assert_eq!(
            sanitize("日\tx", 0),
            "日  x",
            "wide chars count two columns"
        );
    }

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(
            sanitize("plain text\nline two", 0),
            Cow::Borrowed(_)
        ));
    }
}
