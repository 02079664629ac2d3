//! backchat: a terminal chat client for Claude that behaves well when the API says "slow down".
//!
//! The library holds everything; `main.rs` only parses the command line and picks a surface.
//! The seam between the network and everything above it is [`retry::TurnEvent`]: the turn
//! driver yields them, and the TUI, the headless printer, the event log and the load test
//! consume them.
#![deny(clippy::unwrap_used)]

pub mod api;
pub mod backend;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cost;
pub mod exit;
pub mod headless;
pub mod limiter;
pub mod loadtest;
pub mod logging;
pub mod mock;
pub mod proxy;
pub mod quota;
pub mod retry;
pub mod sanitize;
pub mod secret;
pub mod tokens;
pub mod tui;
pub mod util;
