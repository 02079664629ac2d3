//! The rate-limit header parser (`quota::parse_quota`): never panics, whatever the values.
//! The input is a list of `[name, length, value…]` entries: `name` picks one of the
//! `anthropic-ratelimit-*` or `x-ratelimit-*` headers, `length` (mod 48) the value's length.
#![no_main]

use backchat::quota::parse_quota;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

const ANTHROPIC: &[&str] = &["requests", "tokens", "input-tokens", "output-tokens"];
const OPENAI: &[&str] = &["requests", "tokens"];
const PARTS: &[&str] = &["limit", "remaining", "reset"];

fn name(pick: u8) -> String {
    let pick = usize::from(pick);
    let part = PARTS[pick % PARTS.len()];
    let bucket = pick / PARTS.len() % (ANTHROPIC.len() + OPENAI.len());
    match ANTHROPIC.get(bucket) {
        Some(b) => format!("anthropic-ratelimit-{b}-{part}"),
        None => format!("x-ratelimit-{part}-{}", OPENAI[bucket - ANTHROPIC.len()]),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    let mut rest = data;
    while let [pick, len, tail @ ..] = rest {
        let (value, next) = tail.split_at(usize::from(len % 48).min(tail.len()));
        rest = next;
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name(*pick).as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(n, v);
        }
    }
    let _ = parse_quota(&headers, tokio::time::Instant::now());
});
