//! What `backchat proxy` costs a stream that needs no retry: time to first byte and
//! throughput through the proxy against the same fast upstream direct. The upstream is an
//! in-process axum server that answers at once: a short SSE stream (first byte) and 8 MiB in
//! 16 KiB chunks (throughput). The goals: ≤ 1 ms more at p50 to first byte, ≥ 95% of direct
//! throughput. Pacing is off (there are no rate-limit headers to pace by), as it would be
//! for an upstream that sets none; with pacing on the first request waits for no one either.
//!
//! `cargo bench --bench proxy -- --warm-up-time 1 --measurement-time 5`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a bench may fail by panicking"
)]

use std::time::Duration;

use axum::body::{Body, Bytes};
use backchat::proxy::{ProxyConfig, ProxyServer};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;

const BIG: usize = 8 << 20;
const CHUNK: usize = 16 << 10;

/// The upstream. The proxy forwards only the API's paths, so the big body of the throughput
/// half is served as a `GET /v1/models/big` reply (passed through like any reply).
async fn upstream() -> String {
    let app = axum::Router::new()
        .route(
            "/v1/messages",
            axum::routing::post(|| async {
                axum::response::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from(
                        "event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
                    ))
                    .unwrap()
            }),
        )
        .route(
            "/v1/models/big",
            axum::routing::get(|| async {
                let chunk = Bytes::from(vec![b'x'; CHUNK]);
                let stream = futures::stream::iter(
                    (0..BIG / CHUNK).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                );
                axum::response::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(stream))
                    .unwrap()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

async fn first_byte(client: &reqwest::Client, base: &str) {
    let response = client
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", "sk-ant-bench")
        .header("anthropic-version", "2023-06-01")
        .body(r#"{"model":"claude-sonnet-4-6","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    while body.next().await.is_some() {}
}

async fn whole(client: &reqwest::Client, base: &str) {
    let response = client
        .get(format!("{base}/v1/models/big"))
        .header("x-api-key", "sk-ant-bench")
        .send()
        .await
        .unwrap();
    let mut n = 0;
    let mut body = response.bytes_stream();
    while let Some(c) = body.next().await {
        n += c.unwrap().len();
    }
    assert_eq!(n, BIG);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (direct, proxy) = rt.block_on(async {
        let direct = upstream().await;
        let mut config = ProxyConfig::new(direct.clone());
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.pacing = false;
        let proxy = ProxyServer::start(config).await.unwrap();
        (direct, proxy)
    });
    let via = proxy.base_url();
    let client = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_mins(1))
        .build()
        .unwrap();

    let mut g = c.benchmark_group("first_byte");
    g.bench_function("direct", |b| {
        b.iter(|| rt.block_on(first_byte(&client, &direct)));
    });
    g.bench_function("proxy", |b| {
        b.iter(|| rt.block_on(first_byte(&client, &via)));
    });
    g.finish();

    let mut g = c.benchmark_group("throughput_8MiB");
    g.throughput(Throughput::Bytes(BIG as u64));
    g.sample_size(20);
    g.bench_function("direct", |b| {
        b.iter(|| rt.block_on(whole(&client, &direct)));
    });
    g.bench_function("proxy", |b| b.iter(|| rt.block_on(whole(&client, &via))));
    g.finish();
    drop(proxy);
}

criterion_group!(benches, bench);
criterion_main!(benches);
