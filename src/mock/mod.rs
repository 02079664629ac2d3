//! The embedded mock of the Anthropic Messages API: a real HTTP server (axum) on loopback
//! that speaks the protocol of docs/protocol.md, with per-key token buckets, the
//! `anthropic-ratelimit-*` headers, 429s with `retry-after`, injected faults and scripted
//! responses. It runs in-process (tests, and the client when no key is set) or standalone
//! (`backchat mock`). Everything runs on tokio's clock, so a test on a paused clock streams a
//! ten-second reply instantly. docs/mock.md is the user's guide.
//!
//! A file per idea:
//! - `server.rs`: [`MockServer`] (bind, serve, shut down), the shared state, [`MockControl`];
//! - `routes.rs`: routing, auth, the order of checks, the `/_mock/*` admin endpoints;
//! - `messages.rs`: the `POST /v1/messages` handler (script, faults, limits, the reply);
//! - `http.rs`: the API key, query and body helpers, JSON and error responses;
//! - `limits.rs`: the per-key buckets, admission and the rate-limit headers;
//! - `generate.rs`: the timed reply loop (streamed and whole);
//! - `sse.rs`: the JSON of events, messages and error envelopes;
//! - `replies.rs`: the canned replies (from `assets/replies/`) and chunking;
//! - `validate.rs`: request validation and the input-token count;
//! - `cache.rs`: the prompt cache (prefixes at breakpoints, TTLs, what ITPM is charged);
//! - `faults.rs`: outages, random faults and their error replies;
//! - `script.rs`: scripted steps; `config.rs` and `scenario.rs`: settings and files;
//! - `models.rs`: the models endpoints; `stats.rs`: counters; `args.rs`: `backchat mock`.

mod args;
pub(crate) mod cache;
mod config;
mod conn;
mod faults;
mod generate;
mod http;
pub(crate) mod limits;
mod messages;
mod models;
mod replies;
mod routes;
mod scenario;
mod script;
mod server;
mod sse;
mod stats;
mod validate;

pub use args::{MockArgs, run_standalone};
pub use config::{FaultRates, MockConfig, MockConfigError, MockLimits, Outage};
pub use models::model_ids;
pub use replies::{Reply, choose_reply, replies, thinking_text};
pub use script::{ScriptStep, default_error_type, default_message};
pub use server::{MockControl, MockServer, ORG_ID};
pub use stats::{MockStats, RequestRecord};
pub use validate::count_input_tokens;
