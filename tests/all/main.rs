//! The in-process tests, gathered into one binary: they drive the library (the mock, the
//! driver, the limiters, the TUI state and views, config resolution) over loopback HTTP and a
//! paused tokio clock, so they need no process of their own. Tests that run the real binary as
//! a child live in `tests/binary/`; the real-time end-to-end tests keep their own binaries
//! (`tests/loadtest_e2e.rs`, `tests/shared_limiter_loadtest.rs`, `tests/tui_e2e.rs`) so that
//! nothing else competes with their timing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test may fail by panicking"
)]

#[path = "../support/mod.rs"]
mod support;

mod cache;
mod chat_attach;
mod chat_resume;
mod config_example;
mod config_resolve;
mod driver_mock;
mod fuzz;
mod layering;
mod loadtest_conversation;
mod loadtest_conversation_peers;
mod loadtest_max_wait;
mod loadtest_sim;
mod mock_api;
mod pacer_queue;
mod redis_cluster;
mod redis_frozen;
mod redis_link;
mod redis_tls;
mod sessions_store;
mod shared_limiter;
mod tui_chat_features;
mod tui_cost;
mod tui_large;
mod tui_notice;
mod tui_snapshots;
mod tui_state;
