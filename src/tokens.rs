//! A local estimate of token counts.
//!
//! The real tokenizer is not public; about four characters per token is the usual rule of thumb
//! for English text. The client uses this to size its reservation before a request is sent and
//! corrects the estimate from the usage the server reports (see `limiter::local`). The mock uses
//! the same rule, so that on the mock the estimate is exact.

/// Tokens in a piece of text: `ceil(chars / 4)`, and at least one for non-empty text.
pub fn count_text(text: &str) -> u64 {
    let chars = text.chars().count() as u64;
    chars.div_ceil(4)
}

/// Most tokens one image costs: the API scales larger images down to about 1.15 megapixels,
/// which is about 1,600 tokens.
pub const IMAGE_MAX_TOKENS: u64 = 1_600;

/// Tokens one PDF page is counted as (the API charges 1,500–3,000 per page: its text plus
/// the page as an image).
pub const PDF_PAGE_TOKENS: u64 = 2_000;

/// Tokens an image costs: `width × height / 750`, at most [`IMAGE_MAX_TOKENS`]; an image
/// whose size cannot be read counts as the maximum.
pub fn image_tokens(bytes: &[u8]) -> u64 {
    match image_size(bytes) {
        Some((w, h)) => (u64::from(w) * u64::from(h))
            .div_ceil(750)
            .clamp(1, IMAGE_MAX_TOKENS),
        None => IMAGE_MAX_TOKENS,
    }
}

/// Tokens a PDF costs: [`PDF_PAGE_TOKENS`] per page (pages counted by their `/Type /Page`
/// objects), at least one page.
pub fn pdf_tokens(bytes: &[u8]) -> u64 {
    pdf_pages(bytes).max(1) * PDF_PAGE_TOKENS
}

/// Pages of a PDF, counted by `/Type /Page` (not `/Pages`) objects; 0 if none is found.
pub fn pdf_pages(bytes: &[u8]) -> u64 {
    let mut n = 0;
    for (i, w) in bytes.windows(10).enumerate() {
        if w == b"/Type/Page" || (w == b"/Type /Pag" && bytes.get(i + 10) == Some(&b'e')) {
            let after = if w == b"/Type/Page" { i + 10 } else { i + 11 };
            if bytes.get(after) != Some(&b's') {
                n += 1;
            }
        }
    }
    n
}

/// Width and height of a PNG, GIF, JPEG or WebP image, from its header.
pub fn image_size(b: &[u8]) -> Option<(u32, u32)> {
    let be16 = |i: usize| Some(u32::from(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?])));
    let le16 = |i: usize| Some(u32::from(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?])));
    let be32 = |i: usize| Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?));
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some((be32(16)?, be32(20)?));
    }
    if b.starts_with(b"GIF8") {
        return Some((le16(6)?, le16(8)?));
    }
    if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        return match b.get(12..16)? {
            b"VP8 " => Some((le16(26)? & 0x3fff, le16(28)? & 0x3fff)),
            b"VP8L" => {
                let v = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
                Some(((v & 0x3fff) + 1, ((v >> 14) & 0x3fff) + 1))
            }
            b"VP8X" => {
                let w = u32::from_le_bytes([*b.get(24)?, *b.get(25)?, *b.get(26)?, 0]) + 1;
                let h = u32::from_le_bytes([*b.get(27)?, *b.get(28)?, *b.get(29)?, 0]) + 1;
                Some((w, h))
            }
            _ => None,
        };
    }
    if b.starts_with(&[0xff, 0xd8]) {
        // Walk the segments to a start-of-frame marker (C0–CF except C4, C8, CC).
        let mut i = 2;
        while i + 9 < b.len() {
            if b[i] != 0xff {
                return None;
            }
            let marker = b[i + 1];
            let len = be16(i + 2)? as usize;
            if (0xc0..=0xcf).contains(&marker) && ![0xc4, 0xc8, 0xcc].contains(&marker) {
                return Some((be16(i + 7)?, be16(i + 5)?));
            }
            i += 2 + len;
        }
    }
    None
}

/// Fixed overhead the API charges for each message (role markers and separators).
pub const PER_MESSAGE_OVERHEAD: u64 = 4;

/// Fixed overhead of every request.
pub const PER_REQUEST_OVERHEAD: u64 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_four_chars_per_token() {
        assert_eq!(count_text(""), 0);
        assert_eq!(count_text("a"), 1);
        assert_eq!(count_text("abcd"), 1);
        assert_eq!(count_text("abcde"), 2);
        assert_eq!(count_text("ééééé"), 2, "counts characters, not bytes");
    }

    #[test]
    fn image_sizes_from_headers() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend(300u32.to_be_bytes());
        png.extend(200u32.to_be_bytes());
        assert_eq!(image_size(&png), Some((300, 200)));
        assert_eq!(image_tokens(&png), 80);
        let gif = b"GIF89a\x0a\x00\x05\x00";
        assert_eq!(image_size(gif), Some((10, 5)));
        let jpeg = [
            0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0xff, 0xc0, 0, 17, 8, 0, 50, 0, 100, 3, 0, 0,
        ];
        assert_eq!(image_size(&jpeg), Some((100, 50)));
        assert_eq!(image_tokens(b"not an image"), IMAGE_MAX_TOKENS);
        assert_eq!(
            pdf_pages(b"<</Type /Pages>> <</Type /Page>> <</Type/Page>>"),
            2
        );
    }
}
