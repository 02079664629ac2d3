//! The one support tree every test binary shares: `mock` (the real client driven against the
//! in-process mock), `redis` (a private redis-server per test), `home` (temporary XDG
//! directories, the real binary run in them, and a scripted stand-in for the API), `sdk` (the
//! official Python SDK's check scripts), `pty` (the real binary in a pseudo-terminal).
//!
//! Each binary uses only part of it, so unused helpers are expected.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support tree"
)]

pub mod home;
pub mod mock;
pub mod pty;
pub mod redis;
pub mod sdk;
