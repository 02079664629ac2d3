//! The mock API over real loopback HTTP: event grammar, shapes, validation, auth, rate limits,
//! faults, scripts and scenarios. Timing runs on a paused tokio clock, so nothing sleeps.
//!
//! On a paused clock, tokio jumps to the next timer whenever the runtime is idle, even while
//! bytes are in flight on a socket. So these tests keep timers out of the way where timing
//! matters: the reqwest client keeps no idle pool (whose cleanup timer would make the clock
//! jump), and the rate-limit tests use a mock that generates instantly.
//!
//! One module per subject; `harness.rs` holds the shared helpers.

mod endpoints;
mod faults;
mod harness;
mod idle;
mod rate_limits;
mod replies;
mod scenarios;
mod validation;
