//! Tests of the real `backchat` binary, run as a child process: the command line and its
//! help, config errors, headless mode and its exit codes, sessions across runs (and a kill -9),
//! the shared limiter from the binary, key hygiene in every file written, and the official
//! Python SDK against `backchat mock`. The process boundary is the point of each of them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test may fail by panicking"
)]

#[path = "../support/mod.rs"]
mod support;

mod chat_sessions_small;
mod cli_surfaces;
mod config_cli;
mod headless_cache;
mod headless_e2e;
mod hostile;
mod key_leak;
mod proxy;
mod proxy_sdk;
mod python_sdk;
mod sessions_headless;
mod sessions_kill9;
mod shared_limiter_backend;
mod tui_attach_e2e;
mod tui_cancel_e2e;
