//! `backchat proxy`: a local HTTP proxy in front of the Messages API that gives any client
//! (an SDK, a script, an editor) backchat's engine: pre-stream 429s, 529s and 5xx retried
//! under the chat's policy while the client waits, pacing from the headers per key
//! fingerprint and model class, a quota shared through Redis, and bytes passed through
//! untouched once a reply starts. docs/proxy.md is the user's guide.
//!
//! - `args.rs`: the flags; `server.rs`: settings, the bind rule, state, router;
//! - `forward.rs`: the handler (retries, pass-through, give-ups);
//! - `inspect.rs`: reading model, estimate and usage from the bytes going by;
//! - `metrics.rs`: counters and `GET /metrics`; `events.rs`: the event stream and log lines;
//! - `run.rs`: the command (start, the log or the terminal view, Ctrl+C).

mod args;
mod events;
mod forward;
mod inspect;
mod metrics;
mod run;
mod server;

pub use args::{DEFAULT_LISTEN, ProxyArgs, TOKEN_ENV};
pub use events::{ProxyEvent, ProxyEventKind, RequestLabel, RequestLog, log_to_stderr};
pub use forward::{ATTEMPTS_HEADER, GAVE_UP_HEADER, WAITED_HEADER};
pub use inspect::{RequestFacts, UsageScanner};
pub use metrics::{METRIC_NAMES, Metrics, Totals};
pub use run::{banner, proxy_config, run, serve_headless, start};
pub use server::{ProxyConfig, ProxyError, ProxyServer, TOKEN_HEADER};
