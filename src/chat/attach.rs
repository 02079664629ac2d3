//! Attachments: a file read once, classified, checked against the API's limits, and kept
//! with its turn (in the session too), so that a resumed conversation sends the very same
//! bytes again and the prompt cache stays valid.
//!
//! Text goes in as a text block that names the file; PNG, JPEG, GIF and WebP as base64 image
//! blocks; PDF as a base64 document block. Anything else is refused with a message. Each
//! attachment's token cost is estimated as the API counts it (`crate::tokens`).

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::api::{Base64Source, ContentBlock};

/// The API's limit on a whole request body.
pub const MAX_REQUEST_BYTES: u64 = 32 * 1024 * 1024;
/// The API's limit on one image.
pub const MAX_IMAGE_BYTES: u64 = 5 * 1024 * 1024;
/// The API's limit on images in one request.
pub const MAX_IMAGES: usize = 100;
/// The API's limit on an image's width or height.
pub const MAX_IMAGE_SIDE: u32 = 8000;

/// What an attachment is sent as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A text block.
    Text,
    /// An image block.
    Image,
    /// A document (PDF) block.
    Document,
}

/// A file attached to a turn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The file's name (not its path).
    pub name: String,
    /// What it is sent as.
    pub kind: Kind,
    /// `text/plain`, `image/png`, `application/pdf`, …
    pub media_type: String,
    /// The file's size in bytes.
    pub bytes: u64,
    /// Text as it is; images and PDFs as base64.
    pub data: String,
    /// Estimated input tokens.
    pub tokens: u64,
}

impl Attachment {
    /// Classify and check `content`, the file `name`. An error says what is wrong and which
    /// limit applies.
    pub fn from_bytes(name: &str, content: &[u8]) -> Result<Attachment, String> {
        let bytes = content.len() as u64;
        let media = sniff(content);
        let (kind, media_type) = match media {
            Some(m @ ("image/png" | "image/jpeg" | "image/gif" | "image/webp")) => (Kind::Image, m),
            Some("application/pdf") => (Kind::Document, "application/pdf"),
            _ => match std::str::from_utf8(content) {
                Ok(text) if !text.contains('\u{0}') => (Kind::Text, "text/plain"),
                _ => {
                    return Err(format!(
                        "{name}: not text, an image (PNG, JPEG, GIF, WebP) or a PDF; binary files cannot be attached"
                    ));
                }
            },
        };
        if bytes > MAX_REQUEST_BYTES {
            return Err(format!(
                "{name}: {} is more than a request may carry (32 MB)",
                human_bytes(bytes)
            ));
        }
        let (data, tokens) = match kind {
            Kind::Text => {
                let text = String::from_utf8_lossy(content).into_owned();
                let tokens = crate::tokens::count_text(&text) + crate::tokens::count_text(name) + 4;
                (text, tokens)
            }
            Kind::Image => {
                if bytes > MAX_IMAGE_BYTES {
                    return Err(format!(
                        "{name}: {} is more than the API takes for one image (5 MB)",
                        human_bytes(bytes)
                    ));
                }
                if let Some((w, h)) = crate::tokens::image_size(content)
                    && (w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE)
                {
                    return Err(format!(
                        "{name}: {w}×{h} px is larger than the API takes ({MAX_IMAGE_SIDE} px a side)"
                    ));
                }
                (
                    base64::engine::general_purpose::STANDARD.encode(content),
                    crate::tokens::image_tokens(content),
                )
            }
            Kind::Document => (
                base64::engine::general_purpose::STANDARD.encode(content),
                crate::tokens::pdf_tokens(content),
            ),
        };
        Ok(Attachment {
            name: name.to_string(),
            kind,
            media_type: media_type.to_string(),
            bytes,
            data,
            tokens,
        })
    }

    /// Read the file at `path` and make an attachment of it.
    pub fn read(path: &std::path::Path) -> Result<Attachment, String> {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{}: not a file", path.display()));
        }
        if meta.len() > MAX_REQUEST_BYTES {
            return Err(format!(
                "{name}: {} is more than a request may carry (32 MB)",
                human_bytes(meta.len())
            ));
        }
        let content = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Attachment::from_bytes(&name, &content)
    }

    /// The blocks it is sent as: a label naming it (so the model, and the mock, know which
    /// file it is), then the file.
    pub fn blocks(&self) -> Vec<ContentBlock> {
        let label = format!(
            "[attachment: {} ({}, {} bytes)]",
            self.name, self.media_type, self.bytes
        );
        let source = || Base64Source {
            kind: "base64".into(),
            media_type: self.media_type.clone(),
            data: self.data.clone(),
        };
        match self.kind {
            Kind::Text => vec![ContentBlock::text(format!("{label}\n{}", self.data))],
            Kind::Image => vec![
                ContentBlock::text(label),
                ContentBlock::Image {
                    source: source(),
                    cache_control: None,
                },
            ],
            Kind::Document => vec![
                ContentBlock::text(label),
                ContentBlock::Document {
                    source: source(),
                    title: Some(self.name.clone()),
                    cache_control: None,
                },
            ],
        }
    }

    /// The chip the composer shows: `📎 notes.txt · ~1.2k tokens`.
    pub fn chip(&self) -> String {
        format!("📎 {} · ~{} tokens", self.name, compact(self.tokens))
    }
}

/// Check a set of attachments against the per-request limits (size and image count) and,
/// when known, the input-token bucket's capacity.
pub fn check_all(items: &[Attachment], input_capacity: Option<u64>) -> Result<(), String> {
    let images = items.iter().filter(|a| a.kind == Kind::Image).count();
    if images > MAX_IMAGES {
        return Err(format!(
            "{images} images: the API takes at most {MAX_IMAGES} in one request"
        ));
    }
    // Base64 grows the bytes by a third.
    let size: u64 = items.iter().map(|a| a.data.len() as u64).sum();
    if size > MAX_REQUEST_BYTES {
        return Err(format!(
            "the attachments make a {} request; the API takes at most 32 MB",
            human_bytes(size)
        ));
    }
    let tokens: u64 = items.iter().map(|a| a.tokens).sum();
    if let Some(cap) = input_capacity
        && tokens > cap
    {
        return Err(format!(
            "the attachments come to ~{} input tokens, more than the input-token bucket holds ({}/min): this request could never be sent",
            compact(tokens),
            compact(cap)
        ));
    }
    Ok(())
}

/// The media type from the first bytes, for the formats the API takes.
fn sniff(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        Some("image/webp")
    } else if b.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else {
        None
    }
}

fn compact(n: u64) -> String {
    if n >= 10_000 {
        format!("{}k", n / 1000)
    } else if n >= 1000 {
        format!("{:.1}k", n as f64 / 1000.0)
    } else {
        n.to_string()
    }
}

fn human_bytes(n: u64) -> String {
    if n >= 1024 * 1024 {
        format!("{:.1} MB", n as f64 / 1024.0 / 1024.0)
    } else if n >= 1024 {
        format!("{:.1} KB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_classified_and_limited() {
        let t = Attachment::from_bytes("notes.txt", b"hello world").expect("text");
        assert_eq!((t.kind, t.media_type.as_str()), (Kind::Text, "text/plain"));
        assert_eq!(t.blocks().len(), 1);
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend(750u32.to_be_bytes());
        png.extend(100u32.to_be_bytes());
        let i = Attachment::from_bytes("cat.png", &png).expect("image");
        assert_eq!((i.kind, i.tokens), (Kind::Image, 100));
        assert!(matches!(i.blocks()[1], ContentBlock::Image { .. }));
        let d = Attachment::from_bytes("a.pdf", b"%PDF-1.4 <</Type /Page>>").expect("pdf");
        assert_eq!((d.kind, d.tokens), (Kind::Document, 2000));
        let e = Attachment::from_bytes("a.out", b"\x7fELF\0\0\x01").expect_err("binary");
        assert!(e.contains("binary files cannot be attached"), "{e}");
        let big = vec![0u8; (MAX_IMAGE_BYTES + 1) as usize];
        let mut big_png = png.clone();
        big_png.extend(big);
        let e = Attachment::from_bytes("big.png", &big_png).expect_err("too big");
        assert!(e.contains("(5 MB)"), "{e}");
        let e = check_all(&[t.clone(), i.clone()], Some(50)).expect_err("over capacity");
        assert!(e.contains("more than the input-token bucket holds"), "{e}");
        assert!(check_all(&[t, i], None).is_ok());
        assert_eq!(d.chip(), "📎 a.pdf · ~2.0k tokens");
    }
}
