//! Server-supplied text made safe for a terminal.
//!
//! A terminal obeys bytes, not intentions: reply text carrying `ESC ] 52 ; c ; …` writes the
//! clipboard, `ESC ] 0 ;` sets the window title, `ESC [ 2 J` clears the screen, a C1 `CSI`
//! (U+009B) does the same in one character, and OSC 8 makes a link whose target differs from
//! its text. Model output can be steered by what the model reads (a pasted file, a web page),
//! so this is a way in. [`terminal_safe`] neutralises every such byte: C0 controls except
//! `\n` and `\t`, DEL and C1 controls become visible pictures (ESC shows as `␛`), a bare
//! `\r` (which overwrites the line) and the bidirectional overrides ("Trojan Source") are
//! dropped. What is left of an escape sequence after its ESC is plain text.
//!
//! The function is stateless, one character at a time, so it gives the same output however
//! a stream is split into deltas: an ESC at the end of one delta and `]52;…` at the start of
//! the next are neutralised just the same.
//!
//! Only text bound for a terminal goes through here: a pipe or a file gets the bytes as sent.

use std::borrow::Cow;

/// What one character becomes.
enum Fix {
    Keep,
    Drop,
    Replace(char),
}

fn fix(c: char) -> Fix {
    match c {
        '\n' | '\t' => Fix::Keep,
        // `\r\n` still ends the line with its `\n`; a bare `\r` would overwrite the line.
        '\r' => Fix::Drop,
        '\u{7f}' => Fix::Replace('\u{2421}'),
        // Control Pictures: U+2400 + the code (ESC → ␛, NUL → ␀).
        c if (c as u32) < 0x20 => {
            Fix::Replace(char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'))
        }
        '\u{80}'..='\u{9f}' => Fix::Replace('\u{fffd}'),
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => Fix::Drop,
        _ => Fix::Keep,
    }
}

fn is_clean(c: char) -> bool {
    matches!(fix(c), Fix::Keep)
}

/// `text` with every control character and escape sequence neutralised, and how many bytes
/// of the input were replaced or dropped. Borrows when there is nothing to change.
pub fn terminal_safe(text: &str) -> (Cow<'_, str>, usize) {
    let Some(first) = text.find(|c: char| !is_clean(c)) else {
        return (Cow::Borrowed(text), 0);
    };
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(&text[..first]);
    let mut stripped = 0;
    for c in text[first..].chars() {
        match fix(c) {
            Fix::Keep => out.push(c),
            Fix::Drop => stripped += c.len_utf8(),
            Fix::Replace(r) => {
                stripped += c.len_utf8();
                out.push(r);
            }
        }
    }
    (Cow::Owned(out), stripped)
}

/// [`terminal_safe`] when `on` (the output is a terminal), the text unchanged otherwise.
pub fn for_terminal(text: &str, on: bool) -> (Cow<'_, str>, usize) {
    if on {
        terminal_safe(text)
    } else {
        (Cow::Borrowed(text), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escape_sequences_are_neutralised() {
        let osc52 = "copy \u{1b}]52;c;ZWNobyBwd25lZA==\u{7}done";
        let (s, n) = terminal_safe(osc52);
        assert!(!s.contains('\u{1b}') && !s.contains('\u{7}'), "{s}");
        assert_eq!(n, 2);
        assert_eq!(s, "copy \u{241b}]52;c;ZWNobyBwd25lZA==\u{2407}done");
        for hostile in [
            "\u{1b}]0;title\u{7}",
            "\u{1b}[2J",
            "\u{9b}2J",
            "\u{9d}8;;http://evil\u{9c}x",
            "\u{1b}]8;;http://evil\u{1b}\\text\u{1b}]8;;\u{1b}\\",
            "over\rwrite",
            "\u{202e}txt.exe",
        ] {
            let (s, n) = terminal_safe(hostile);
            assert!(n > 0, "{hostile:?}");
            assert!(
                s.chars().all(|c| c == '\n' || c == '\t' || !c.is_control()),
                "{s:?}"
            );
        }
    }

    #[test]
    fn newlines_tabs_and_text_pass_and_borrow() {
        let t = "line 1\n\tindented — Grüße 世界 🦀\r\n";
        let (s, n) = terminal_safe(t);
        assert_eq!(s, "line 1\n\tindented — Grüße 世界 🦀\n");
        assert_eq!(n, 1);
        assert!(matches!(terminal_safe("plain").0, Cow::Borrowed(_)));
        assert_eq!(
            for_terminal("\u{1b}[2J", false),
            (Cow::Borrowed("\u{1b}[2J"), 0)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// No control survives, and splitting the text anywhere changes nothing.
        #[test]
        fn safe_and_split_independent(s in "\\PC*|[\\x00-\\x1f\\x7f-\\x9f a-z\\]\\[;]*", cut in any::<prop::sample::Index>()) {
            let (whole, n) = terminal_safe(&s);
            prop_assert!(whole.chars().all(|c| c == '\n' || c == '\t' || !c.is_control()));
            let mut at = cut.index(s.len() + 1);
            while !s.is_char_boundary(at) { at -= 1; }
            let (a, na) = terminal_safe(&s[..at]);
            let (b, nb) = terminal_safe(&s[at..]);
            prop_assert_eq!(format!("{a}{b}"), whole.into_owned());
            prop_assert_eq!(na + nb, n);
        }
    }
}
