//! SSE decoding cost per event, whatever the chunking: one 18 MB body of 100,000 events
//! decoded as one chunk, in 64 KiB chunks and in 100-byte chunks. The targets are at most
//! 2 µs per event and at most 1.5× between the largest and the smallest chunks.
//!
//! `cargo bench --bench sse -- --warm-up-time 1 --measurement-time 5`
//!
//! Criterion reports the time per body and MB/s; the µs per event is that time divided by
//! [`EVENTS`], and is printed once per chunk size before the measurements.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a bench may fail by panicking"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use backchat::api::sse::decode_stream;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;

/// Events in the body (text deltas, plus the envelope of a real reply).
const EVENTS: usize = 100_000;

/// A reply of [`EVENTS`] text deltas of about 180 bytes each on the wire: 18 MB.
fn body() -> Vec<u8> {
    let mut s = String::with_capacity(EVENTS * 190);
    s.push_str("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n");
    for i in 0..EVENTS - 2 {
        s.push_str("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"");
        s.push_str(&format!(
            "word {i:06} of a long reply, with some more text here"
        ));
        s.push_str("\"}}\n\n");
    }
    s.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    s.into_bytes()
}

fn chunks(body: &[u8], size: usize) -> Vec<Bytes> {
    body.chunks(size).map(Bytes::copy_from_slice).collect()
}

fn decode(rt: &tokio::runtime::Runtime, chunks: Vec<Bytes>) -> usize {
    rt.block_on(async move {
        let s = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        decode_stream(s, Duration::from_mins(1))
            .fold(0usize, |n, ev| async move {
                assert!(ev.is_ok());
                n + 1
            })
            .await
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let body = body();
    let mut group = c.benchmark_group("sse_18MB");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.sample_size(10);
    for (name, size) in [
        ("1_chunk", body.len()),
        ("64KiB_chunks", 64 << 10),
        ("100B_chunks", 100),
    ] {
        let parts = chunks(&body, size);
        // One timed run outside criterion for the per-event figure.
        let t = Instant::now();
        let n = decode(&rt, parts.clone());
        let e = t.elapsed();
        assert_eq!(n, EVENTS);
        println!(
            "sse {name}: {} bytes, {n} events, {:.3} µs/event, {:.0} MB/s",
            body.len(),
            e.as_secs_f64() * 1e6 / n as f64,
            body.len() as f64 / e.as_secs_f64() / 1e6
        );
        group.bench_function(name, |b| {
            b.iter_batched(
                || parts.clone(),
                |p| black_box(decode(&rt, p)),
                criterion::BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
