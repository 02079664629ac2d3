//! `backchat loadtest`: every retry policy against a quota, side by side (docs/loadtest.md).
//!
//! K closed-loop users send N requests each against a rate-limited server, under each policy;
//! the report compares makespan with the lower bound, wasted 429s, give-ups, latency,
//! fairness and countdown accuracy. Two engines run the same users and policies:
//!
//! - **simulated** (default): an in-process server on tokio's paused clock, exact and fast;
//! - **e2e**: real time, loopback HTTP to the real mock with its minute shrunk
//!   (`--time-scale`), optionally spread over several processes (`--processes`); or a real
//!   endpoint (`--base-url`, with an explicit confirmation).
//!
//! A file per idea: `args.rs` (the flags), `setup.rs` (flags checked into rows, seeds and a
//! target), `run.rs` (running them and reporting), `scenario.rs` (the TOML scenarios),
//! `workload.rs` (requests and sizes), `policies.rs` (the peers and the backchat engine's
//! wiring), `users.rs` (the closed loop), `sim.rs` (the simulated server), `e2e.rs` (the mock
//! end to end), `processes.rs` (workers), `metrics.rs`, `report.rs`, `progress.rs`;
//! `conversation.rs` (the conversation scenarios E and F, backchat's rows) and
//! `conversation_peers.rs` (the peers' rows in them).
//! docs/loadtest.md is the user's guide.

mod args;
pub mod conversation;
pub mod conversation_peers;
pub mod e2e;
pub mod metrics;
pub mod policies;
pub mod processes;
pub mod progress;
pub mod report;
mod run;
pub mod scenario;
mod setup;
pub mod sim;
pub mod users;
pub mod workload;

pub use args::{Engine, LoadtestArgs, parse_args, parse_seeds};
pub use run::{run, simulate_one};
pub use setup::{Row, Setup};
