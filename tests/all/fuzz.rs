//! Property tests over arbitrary input for the parsers that read what others wrote: the
//! rate-limit headers (`quota::parse_quota`) and the config file (`config::file::parse`).
//! The SSE decoder and the session loader have theirs next to their code
//! (`src/api/sse.rs`, `src/chat/session_format.rs`). Each runs 10,000 cases.

use std::path::Path;

use backchat::quota::parse_quota;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

const NAMES: &[&str] = &["requests", "tokens", "input-tokens", "output-tokens"];
const PARTS: &[&str] = &["limit", "remaining", "reset"];

/// Header values as a hostile server might send them: numbers, dates, garbage bytes.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        Just(b"2026-12-01T02:03:04Z".to_vec()),
        Just(b"2026-12-01T02:03:04.123456789+14:00".to_vec()),
        Just(b"9999-99-99T99:99:99Z".to_vec()),
        Just(b"18446744073709551616".to_vec()),
        Just(b"-0".to_vec()),
        "[ -~]{0,40}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// Never panics, whatever the values; a value that is not a number is not a number.
    #[test]
    fn rate_limit_headers_never_panic(
        entries in proptest::collection::vec((0..NAMES.len(), 0..PARTS.len(), value()), 0..12)
    ) {
        let mut headers = HeaderMap::new();
        for (n, p, v) in entries {
            let name = format!("anthropic-ratelimit-{}-{}", NAMES[n], PARTS[p]);
            if let Ok(v) = HeaderValue::from_bytes(&v) {
                headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), v);
            }
        }
        let now = tokio::time::Instant::now();
        let _ = parse_quota(&headers, now);
    }

    /// Any text as a config file: a value or an error naming a line, never a panic.
    #[test]
    fn config_files_never_panic(text in prop_oneof![
        "[ -~\n]{0,200}",
        "((model|max_tokens|api_key|api_key_cmd|base_url|theme|log_level) = (\"[ -~]{0,20}\"|[0-9]{1,25}|true|\\[\\]|\\{\\})\n){0,6}(\\[(retry|mock)\\]\n((max_wait|deadline|rpm|itpm) = (\"[0-9a-z]{0,8}\"|-?[0-9]{1,22}|1e400)\n){0,4}){0,2}",
        any::<String>(),
    ]) {
        match backchat::config::file::parse(Path::new("/fuzz/config.toml"), &text) {
            Ok(_) => {}
            Err(e) => {
                let shown = e.to_string();
                prop_assert!(shown.contains("/fuzz/config.toml"), "{}", shown);
            }
        }
    }
}

/// Found by the `session_loader` fuzz target: a superseded mark with bytes that are not UTF-8
/// was applied without a word, while a damaged turn or header line is reported as repaired.
#[test]
fn a_superseded_mark_with_damaged_bytes_is_reported() {
    use backchat::chat::session_format::decode;
    let turn = |n: u64| {
        format!(r#"{{"v":1,"type":"turn","n":{n},"user":"u","reply":"r","end":"complete"}}"#)
    };
    let mut bytes = Vec::new();
    bytes.extend_from_slice(turn(1).as_bytes());
    bytes.extend_from_slice(b"\n{\"type\":\"superseded\",\"v\":1,\"n\":1,\"ts\":\"\xcb\xcbt\"}\n");
    bytes.extend_from_slice(turn(2).as_bytes());
    bytes.push(b'\n');
    let d = decode(&bytes);
    assert_eq!(d.turns.len(), 2);
    assert!(d.turns[0].1.superseded, "the mark still applies");
    assert_eq!(d.issues.len(), 1, "{:?}", d.issues);
    assert_eq!(d.issues[0].line, 2);
    assert!(!d.issues[0].skipped);
    assert!(d.issues[0].reason.contains("UTF-8"), "{}", d.issues[0]);
}
