//! Exit codes, defined once for every surface.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done: the reply is complete, or the command did what it was asked |
//! | 1 | a command other than a chat turn could not complete (the load test, the mock), or a turn's output could not be written |
//! | 2 | bad usage or configuration: a flag, the config file, the key, a terminal that cannot start |
//! | 3 | the API answered with an error that retrying does not fix |
//! | 4 | gave up waiting: retries exhausted, a wait longer than `--max-wait`, the deadline passed |
//! | 5 | the stream broke after it had started (the partial reply stays printed) |
//! | 130 | cancelled (Ctrl+C, SIGINT) |

/// Done.
pub const OK: i32 = 0;
/// A command other than a chat turn could not complete.
pub const FAILED: i32 = 1;
/// Bad usage or configuration.
pub const USAGE: i32 = 2;
/// The API answered with an error that retrying does not fix.
pub const API_ERROR: i32 = 3;
/// Retries exhausted, a wait too long, or the deadline passed.
pub const GAVE_UP: i32 = 4;
/// The stream broke after it had started.
pub const INTERRUPTED: i32 = 5;
/// Cancelled.
pub const CANCELLED: i32 = 130;
