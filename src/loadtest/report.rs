//! The comparison: a table for people on stdout, or `--json` for machines. The JSON schema is
//! documented in docs/loadtest.md and versioned by `schema_version`: keys are only ever added
//! within a version; renaming or removing one bumps it.

use serde::{Deserialize, Serialize};

use super::metrics::Metrics;
use super::scenario::Scenario;

/// The JSON schema version.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a load test produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `backchat loadtest` and the version.
    pub tool: String,
    /// `simulated`, `e2e` (loopback HTTP to the mock) or `endpoint` (a real base URL).
    pub engine: String,
    /// Model seconds per real second (1 for the simulated engine and a real endpoint).
    pub time_scale: f64,
    /// OS processes the users were spread over.
    pub processes: usize,
    /// The resolved scenario.
    pub scenario: Scenario,
    /// The seeds run.
    pub seeds: Vec<u64>,
    /// One entry per policy, in the order asked for.
    pub policies: Vec<PolicyReport>,
}

/// One policy over all seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    /// Its name (`--policy`).
    pub policy: String,
    /// Its rule.
    pub description: String,
    /// The mean of each metric over the seeds.
    pub mean: Metrics,
    /// The worst value of each metric over the seeds.
    pub worst: Metrics,
    /// The seed with the worst makespan ratio.
    pub worst_seed: u64,
    /// Each seed's metrics.
    pub runs: Vec<SeedRun>,
}

/// One seed's metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedRun {
    /// The seed.
    pub seed: u64,
    /// What it measured.
    pub metrics: Metrics,
}

impl PolicyReport {
    /// Summarise a policy's runs.
    pub fn new(policy: &str, description: &str, runs: Vec<SeedRun>) -> PolicyReport {
        let all: Vec<Metrics> = runs.iter().map(|r| r.metrics.clone()).collect();
        let worst_seed = runs
            .iter()
            .fold(None::<&SeedRun>, |w, r| match w {
                Some(w) if w.metrics.ratio >= r.metrics.ratio => Some(w),
                _ => Some(r),
            })
            .map_or(0, |r| r.seed);
        PolicyReport {
            policy: policy.to_string(),
            description: description.to_string(),
            mean: Metrics::mean(&all),
            worst: Metrics::worst(&all),
            worst_seed,
            runs,
        }
    }
}

/// `0..19` → "0..19"; `[3]` → "3"; otherwise a list.
pub fn seeds_text(seeds: &[u64]) -> String {
    match seeds {
        [] => "none".into(),
        [one] => one.to_string(),
        [first, .., last] if seeds.windows(2).all(|w| w[1] == w[0] + 1) => {
            format!("{first}..{last}")
        }
        _ => seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// The table for people.
pub fn table(report: &Report) -> String {
    let s = &report.scenario;
    let mut out = String::new();
    let engine = match report.engine.as_str() {
        "e2e" => format!(
            "end to end over loopback HTTP, time ×{}{}",
            report.time_scale,
            if report.processes > 1 {
                format!(", {} processes", report.processes)
            } else {
                String::new()
            }
        ),
        "endpoint" => "a real endpoint, real time".to_string(),
        _ => "simulated, paused clock".to_string(),
    };
    let lb = report
        .policies
        .first()
        .map_or(0.0, |p| p.mean.lower_bound_s);
    out.push_str(&format!(
        "backchat loadtest: scenario {}{} ({engine}; seeds {}, {} each)\n",
        s.name,
        if s.description.is_empty() {
            String::new()
        } else {
            format!(" ({})", s.description)
        },
        seeds_text(&report.seeds),
        if report.seeds.len() > 1 {
            "mean"
        } else {
            "one run"
        },
    ));
    out.push_str(&format!("{}\nLB = {lb:.1} s\n\n", s.summary()));
    out.push_str(&format!(
        "{:<19}{:>6}{:>7}{:>8}{:>8}{:>9}{:>7}{:>8}{:>8}{:>8}{:>8}{:>7}{:>8}{:>8}\n",
        "policy",
        "ratio",
        "worst",
        "429/ok",
        "att/ok",
        "give-up",
        "(rl)",
        "p50 s",
        "p99 s",
        "max s",
        "fb p99",
        "Jain",
        "max/min",
        "cd err",
    ));
    for p in &report.policies {
        let m = &p.mean;
        out.push_str(&format!(
            "{:<19}{:>6.3}{:>7.3}{:>8.2}{:>8.2}{:>9.1}{:>7.1}{:>8.1}{:>8.1}{:>8.1}{:>8.1}{:>7.3}{:>8.2}{:>8.2}\n",
            p.policy,
            m.ratio,
            p.worst.ratio,
            m.rate_limited_per_success,
            m.attempts_per_success,
            m.give_ups,
            m.rate_limit_give_ups,
            m.latency_p50_s,
            m.latency_p99_s,
            m.latency_max_s,
            m.first_byte_p99_s,
            m.jain,
            m.finish_max_min,
            p.worst.countdown_error_max_s,
        ));
    }
    out.push_str(
        "\nratio = makespan ÷ LB (worst = worst seed); 429/ok, att/ok = 429s and attempts per completed request;\n\
         give-up = give-ups per run, resubmitted by the user ((rl) = after a rate limit); p50/p99/max = submitted → done;\n\
         fb = submitted → first byte; Jain and max/min over per-user finish times; cd err = largest |announced − actual| wait.\n",
    );
    out
}
