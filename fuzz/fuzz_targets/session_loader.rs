//! The session loader (`chat::session_format::decode`): never panics on any bytes, and a
//! corrupt line between good ones costs that line only, and is reported (a line that is not
//! a turn is reported unless it is blank, a header or a superseded mark). The input is
//! `[counts, junk line…]`: the first byte gives how many good turn lines come before (bits
//! 0–1) and after (bits 2–3) the junk line (its newlines become spaces).
#![no_main]

use backchat::chat::session_format::decode;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const GOOD: &str = r#"{"v":1,"type":"turn","n":1,"user":"u","reply":"r","end":"complete"}"#;

fuzz_target!(|data: &[u8]| {
    let _ = decode(data);
    let [counts, junk @ ..] = data else {
        return;
    };
    let before = usize::from(counts & 3);
    let after = usize::from((counts >> 2) & 3);
    let junk: Vec<u8> = junk
        .iter()
        .map(|&b| if b == b'\n' { b' ' } else { b })
        .collect();
    let mut bytes = Vec::new();
    for _ in 0..before {
        bytes.extend_from_slice(GOOD.as_bytes());
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(&junk);
    bytes.push(b'\n');
    for _ in 0..after {
        bytes.extend_from_slice(GOOD.as_bytes());
        bytes.push(b'\n');
    }
    let d = decode(&bytes);
    let junk_line = before + 1;
    let junk_turns = usize::from(d.turns.len() > before + after);
    assert_eq!(d.turns.len(), before + after + junk_turns, "{:?}", d.issues);
    for i in &d.issues {
        assert_eq!(i.line, junk_line, "{:?}", d.issues);
    }
    // Blank lines (any Unicode whitespace) are not records, and are skipped silently; a
    // second header is harmless, and a superseded mark for one of the good turns is a valid
    // record: neither is reported.
    let blank = String::from_utf8_lossy(&junk).trim().is_empty();
    let kind = serde_json::from_slice::<Value>(&junk)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned));
    let quiet = matches!(kind.as_deref(), Some("header" | "superseded"));
    if !blank && junk_turns == 0 && !quiet {
        assert!(!d.issues.is_empty(), "a skipped line is reported");
    }
});
