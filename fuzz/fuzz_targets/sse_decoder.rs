//! The SSE decoder (`api::sse::decode_stream_with`): never panics, and the same bytes split
//! at any points decode to the same events. The input is
//! `[limits, cuts, cut positions (2 bytes each)…, body…]`: the first byte picks the event and
//! reply caps (small ones reach the cap paths), the second how many cuts (0–7).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use backchat::api::StreamFailure;
use backchat::api::sse::{StreamLimits, decode_stream_with};
use backchat::api::types::StreamEvent;
use bytes::Bytes;
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

fn decode(chunks: Vec<Vec<u8>>, limits: StreamLimits) -> Vec<Result<StreamEvent, StreamFailure>> {
    let body = futures::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
    );
    runtime()
        .block_on(decode_stream_with(body, Duration::from_secs(60), limits).collect::<Vec<_>>())
}

fuzz_target!(|data: &[u8]| {
    let [pick, cuts, rest @ ..] = data else {
        return;
    };
    let limits = StreamLimits {
        max_event_bytes: [16, 64, 1024, backchat::api::sse::MAX_EVENT_BYTES][usize::from(pick & 3)],
        max_reply_bytes: [Some(1), Some(8), Some(64), None][usize::from((pick >> 2) & 3)],
    };
    let n = usize::from(cuts % 8).min(rest.len() / 2);
    let (positions, body) = rest.split_at(n * 2);
    let mut at: Vec<usize> = positions
        .chunks_exact(2)
        .map(|p| usize::from(u16::from_le_bytes([p[0], p[1]])) % (body.len() + 1))
        .collect();
    at.sort_unstable();
    let mut chunks = Vec::with_capacity(at.len() + 1);
    let mut prev = 0;
    for c in at {
        chunks.push(body[prev..c].to_vec());
        prev = c;
    }
    chunks.push(body[prev..].to_vec());
    let whole = decode(vec![body.to_vec()], limits);
    let split = decode(chunks.clone(), limits);
    assert_eq!(split, whole, "split at {chunks:?}");
});
