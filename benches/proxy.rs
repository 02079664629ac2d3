//! What `backchat proxy` costs a stream that needs no retry, against the same fast upstream
//! direct. The upstream is an in-process axum server that answers at once. Goals: ≤ 1 ms more
//! at p50 to first byte, ≥ 95% of direct throughput. Pacing is off (the upstream sends no
//! rate-limit headers to pace by).
//!
//! - `first_byte`: a short SSE reply; time until its first chunk.
//! - `paced_sse_32MiB`: the throughput goal. A `POST /v1/messages` stream (the proxy's real
//!   load: usage read from it on the way) of 32 MiB of SSE events that upstream sends at
//!   64 KiB a millisecond, ~62 MiB/s for half a second: thousands of times faster than any
//!   reply of the API. Through the proxy it must arrive (nearly) as fast as direct.
//! - `sse_8MiB` and `raw_8MiB`: the same stream, and a raw 8 MiB body (`GET /v1/models/big`,
//!   not scanned), sent as fast as the machine can. Every hop is then CPU on the same few
//!   cores, so through any HTTP proxy it is slower than direct by the cost of one more
//!   receive and send. `relay` is that hop alone: a bare forwarder on the same HTTP stack
//!   (reqwest in, axum out, no proxy logic). `proxy` against `relay` is what the proxy's own
//!   work costs.
//!
//! `cargo bench --bench proxy -- --warm-up-time 1 --measurement-time 5`; medians in
//! `target/criterion/{group}/{case}/new/estimates.json`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a bench may fail by panicking"
)]

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use backchat::proxy::{ProxyConfig, ProxyServer};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;

const BIG: usize = 8 << 20;
const CHUNK: usize = 16 << 10;
/// What the paced upstream sends each millisecond.
const PACED_CHUNK: usize = 64 << 10;
/// The paced stream: half a second of it, so that the rate it measures is the sustained one
/// (on a busy machine, the last chunk's trip through one more process would otherwise weigh
/// as much as the rate).
const PACED: usize = 32 << 20;

/// An SSE reply of at least `size` bytes, shaped like the API's: `message_start`, many small
/// `content_block_delta`s, then `message_delta` with the usage and `message_stop`.
fn sse(size: usize) -> Bytes {
    let mut out = String::with_capacity(size + 1024);
    out.push_str(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\
         \"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-6\",\"content\":[],\
         \"stop_reason\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n\
         event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\
         \"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    );
    let mut n = 0u64;
    while out.len() < size {
        n += 1;
        out.push_str(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\
             \"delta\":{{\"type\":\"text_delta\",\"text\":\"token {n} of a long reply, \"}}}}\n\n"
        ));
    }
    out.push_str(&format!(
        "event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
         event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\
         \"end_turn\"}},\"usage\":{{\"output_tokens\":{n}}}}}\n\n\
         event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
    ));
    Bytes::from(out)
}

/// `body` in `chunk`-byte pieces (slices of one buffer: no copy), one every `every` if set.
fn chunked(body: Bytes, chunk: usize, every: Option<Duration>) -> Body {
    let pieces: Vec<Bytes> = (0..body.len())
        .step_by(chunk)
        .map(|at| body.slice(at..(at + chunk).min(body.len())))
        .collect();
    match every {
        None => Body::from_stream(futures::stream::iter(
            pieces.into_iter().map(Ok::<_, std::io::Error>),
        )),
        Some(every) => {
            // Behind schedule (a busy machine), it catches up at once: the rate is the rate.
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            Body::from_stream(futures::stream::unfold(
                (pieces.into_iter(), tick),
                |(mut pieces, mut tick)| async move {
                    let p = pieces.next()?;
                    tick.tick().await;
                    Some((Ok::<_, std::io::Error>(p), (pieces, tick)))
                },
            ))
        }
    }
}

/// The upstream. The proxy forwards only the API's paths, so the raw body is served as a
/// `GET /v1/models/big` reply (passed through like any reply, its bytes not scanned).
async fn upstream() -> String {
    let big = sse(BIG);
    let paced = sse(PACED);
    let raw = Bytes::from(vec![b'x'; BIG]);
    let app = axum::Router::new()
        .route(
            "/v1/messages",
            axum::routing::post(move |uri: http::Uri| {
                let (big, paced) = (big.clone(), paced.clone());
                async move {
                    let body = match uri.query() {
                        Some("size=big") => chunked(big, CHUNK, None),
                        Some("size=paced") => {
                            chunked(paced, PACED_CHUNK, Some(Duration::from_millis(1)))
                        }
                        _ => Body::from(
                            "event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
                        ),
                    };
                    axum::response::Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(body)
                        .unwrap()
                }
            }),
        )
        .route(
            "/v1/models/big",
            axum::routing::get(move || {
                let raw = raw.clone();
                async move {
                    axum::response::Response::builder()
                        .header("content-type", "application/octet-stream")
                        .body(chunked(raw, CHUNK, None))
                        .unwrap()
                }
            }),
        );
    serve(app).await
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// The hop alone: every request forwarded to `upstream` and its reply streamed back chunk
/// by chunk, with nothing else (no retries, no pacing, no scanning, no timers).
async fn relay(upstream: String) -> String {
    let client = reqwest::Client::new();
    let app = axum::Router::new()
        .fallback(
            |State((client, upstream)): State<(reqwest::Client, String)>, request: Request| async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                let url = format!("{upstream}{}", parts.uri.path_and_query().unwrap());
                let mut headers = parts.headers;
                headers.remove(http::header::HOST);
                let reply = client
                    .request(parts.method, url)
                    .headers(headers)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let mut out = axum::response::Response::builder().status(reply.status());
                for (k, v) in reply.headers() {
                    if k != http::header::TRANSFER_ENCODING && k != http::header::CONNECTION {
                        out = out.header(k, v);
                    }
                }
                out.body(Body::from_stream(reply.bytes_stream())).unwrap()
            },
        )
        .with_state((client, upstream));
    serve(app).await
}

async fn first_byte(client: &reqwest::Client, base: &str) {
    let response = messages(client, base, None).await;
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    while body.next().await.is_some() {}
}

async fn messages(client: &reqwest::Client, base: &str, size: Option<&str>) -> reqwest::Response {
    let query = size.map_or_else(String::new, |s| format!("?size={s}"));
    client
        .post(format!("{base}/v1/messages{query}"))
        .header("x-api-key", "sk-ant-bench")
        .header("anthropic-version", "2023-06-01")
        .body(r#"{"model":"claude-sonnet-4-6","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .unwrap()
}

async fn drain(response: reqwest::Response) -> usize {
    assert!(response.status().is_success());
    let mut n = 0;
    let mut body = response.bytes_stream();
    while let Some(c) = body.next().await {
        n += c.unwrap().len();
    }
    n
}

async fn whole_sse(client: &reqwest::Client, base: &str, size: &str, at_least: usize) {
    let n = drain(messages(client, base, Some(size)).await).await;
    assert!(n >= at_least);
}

async fn whole_raw(client: &reqwest::Client, base: &str) {
    let response = client
        .get(format!("{base}/v1/models/big"))
        .header("x-api-key", "sk-ant-bench")
        .send()
        .await
        .unwrap();
    assert_eq!(drain(response).await, BIG);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // reqwest is built without a crypto provider (the proxy installs the same one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (direct, relayed, proxy) = rt.block_on(async {
        let direct = upstream().await;
        let relayed = relay(direct.clone()).await;
        let mut config = ProxyConfig::new(direct.clone());
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.pacing = false;
        let proxy = ProxyServer::start(config).await.unwrap();
        (direct, relayed, proxy)
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

    let mut g = c.benchmark_group("paced_sse_32MiB");
    g.throughput(Throughput::Bytes(PACED as u64));
    g.sample_size(10);
    for (name, base) in [("direct", &direct), ("proxy", &via)] {
        g.bench_function(name, |b| {
            b.iter(|| rt.block_on(whole_sse(&client, base, "paced", PACED)));
        });
    }
    g.finish();

    let mut g = c.benchmark_group("sse_8MiB");
    g.throughput(Throughput::Bytes(BIG as u64));
    g.sample_size(20);
    for (name, base) in [("direct", &direct), ("relay", &relayed), ("proxy", &via)] {
        g.bench_function(name, |b| {
            b.iter(|| rt.block_on(whole_sse(&client, base, "big", BIG)));
        });
    }
    g.finish();

    let mut g = c.benchmark_group("raw_8MiB");
    g.throughput(Throughput::Bytes(BIG as u64));
    g.sample_size(20);
    for (name, base) in [("direct", &direct), ("relay", &relayed), ("proxy", &via)] {
        g.bench_function(name, |b| b.iter(|| rt.block_on(whole_raw(&client, base))));
    }
    g.finish();
    drop(proxy);
}

criterion_group!(benches, bench);
criterion_main!(benches);
