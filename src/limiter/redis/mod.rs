//! One key, many processes: pacing shared through Redis (`--shared-limiter redis://…`).
//!
//! Every backchat process that uses the same API key keeps its model of the server's buckets
//! in Redis instead of in memory, so the processes queue behind each other instead of each
//! finding the limit on its own (docs/retries.md, docs/shared-limiter.md). The semantics are
//! the local limiter's ([`LocalLimiter`](super::LocalLimiter)), moved into one Lua script
//! that runs atomically on the server's clock (`script.lua`):
//!
//! - **Reserve.** One GCRA timestamp (TAT) per dimension; a reservation advances every known
//!   dimension at once and gets a start time at which *all* of them, and the shared
//!   blocked-until, allow it. Waiters get distinct future slots (FIFO). A start time more than
//!   `max_ahead` away reserves nothing anywhere ("too far"): the driver turns it into a
//!   "wait too long" failure without having taken anyone's slot.
//! - **Release** gives the units back (the TAT moves back, never before now). Reservations
//!   already handed out keep their start times; the freed units go to the next reservation.
//! - **Settle** trues up: the over-estimate is given back, an under-estimate charged.
//! - **Observe** stores the limit and the learned capacity per dimension, and lowers the
//!   shared level to the server's `remaining` when that is lower (±500 for token counts). The
//!   capacity is learned in Rust, by [`crate::quota::learn_capacity`]; the script only
//!   stores it.
//! - **A 429** sets `blocked_until = max(blocked_until, until)` for everyone, and moves the
//!   named bucket's TAT on by as much as that extends the block: the server had less than
//!   the model, and behind a queue of reservations nothing else would tell the model so
//!   (`script.lua`, 'block').
//! - **Before any limit is known** one request (from any process) goes first and the others
//!   may wait up to [`PROBE_WAIT`](super::PROBE_WAIT) for its headers.
//! - **The server's minute** is 60 s, except against a time-scaled mock (`backchat loadtest
//!   --time-scale F`): [`RedisLimiterConfig::time_scaled`] shrinks it, and the probe wait, and
//!   the script is told the minute with every call so that its refill rates
//!   (`limit / minute`) match the server's.
//!
//! State is scoped by a fingerprint of the API key and the model class the demand, the
//! headers or the 429 belong to: `backchat:{<fingerprint>:<class>}:…` ([`scope`]; the braces
//! are a Redis Cluster hash tag), with TTLs of about twice the full-refill time.
//!
//! **Deployments.** `rediss://` is TLS (rustls, system roots plus an optional CA file), and a
//! comma-separated list of URLs is a Redis Cluster reached through the crate's cluster client
//! (`config.rs`, `link.rs`). A reservation carries its expiry on Redis's clock, so a frozen
//! server that runs it after its caller gave up reserves nothing (`script.lua`).
//!
//! **Fail open.** A [`LocalLimiter`](super::LocalLimiter) shadows everything (it is fed the
//! same reservations, observations and 429s). A call that Redis does not answer within the
//! call timeout (50 ms) is answered from it at once; when Redis refuses the connection,
//! answers with an error or stays silent for `down_after` (1 s), the whole process paces
//! from it and [`Limiter::health`](super::Limiter::health) says `Degraded`. The connection
//! task (`link.rs`) then retries every few seconds and health returns to `Shared`. Calls
//! queued together go to Redis as one pipeline, so concurrent turns share round trips.
//!
//! Files: `config.rs` (settings and the URL), `link.rs` (the connection task), `limiter.rs`
//! (the [`Limiter`](super::Limiter) implementation), `scope.rs` (key names), `script.rs` and
//! `script.lua` (the script and its calling convention).

mod config;
mod limiter;
mod link;
pub mod scope;
mod script;

pub use self::config::{
    CALL_TIMEOUT, CONNECT_TIMEOUT, DOWN_AFTER, MAX_AHEAD, RETRY_EVERY, RedisLimiterConfig,
    display_target, node_urls,
};
pub use self::limiter::RedisLimiter;
