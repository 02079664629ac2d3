//! `/copy`: put text on the clipboard with OSC 52, which works over SSH and in tmux (with
//! `set-clipboard on`) without any clipboard library. crossterm writes the sequence (its
//! `osc52` feature does the base64).

use std::io::{self, Write};

use crossterm::clipboard::CopyToClipboard;

/// Ask the terminal to set the clipboard to `text`, and flush so it happens now rather
/// than with the next frame. An error is the writer's; whether the terminal honours the
/// request cannot be known.
pub fn copy(out: &mut impl Write, text: &str) -> io::Result<()> {
    crossterm::execute!(out, CopyToClipboard::to_clipboard_from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_osc_52_for_the_clipboard_with_base64_text() -> io::Result<()> {
        let mut out = Vec::new();
        copy(&mut out, "foobar")?;
        assert_eq!(out, b"\x1b]52;c;Zm9vYmFy\x1b\\");
        let mut out = Vec::new();
        copy(&mut out, "fo")?;
        assert_eq!(out, b"\x1b]52;c;Zm8=\x1b\\");
        Ok(())
    }
}
