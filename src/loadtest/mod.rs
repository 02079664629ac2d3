//! `backchat loadtest` (in progress).

/// Load-test options.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadtestArgs {}
