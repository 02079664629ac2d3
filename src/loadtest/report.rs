//! The comparison: a table for people on stdout, or `--json` for machines. The JSON schema is
//! documented in docs/loadtest.md and versioned by `schema_version`: keys are only ever added
//! within a version; renaming or removing one bumps it.

use serde::{Deserialize, Serialize};

use super::metrics::{LimiterRecord, Metrics};
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
    /// The shared limiter this row paced through (`redis://HOST:PORT/DB`, no password), or
    /// null.
    pub shared_limiter: Option<String>,
    /// Remarks on the runs, one line each: a shared limiter that failed over to local pacing
    /// (when, in how many processes, why).
    pub notes: Vec<String>,
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
            shared_limiter: None,
            notes: Vec::new(),
        }
    }

    /// The row's name in the table: `+shared` when it paced through the shared limiter.
    pub fn label(&self) -> String {
        match self.shared_limiter {
            Some(_) => format!("{}+shared", self.policy),
            None => self.policy.clone(),
        }
    }
}

/// A line on one run's shared limiters when any of them failed over to local pacing: how
/// many processes, from when, and the first one's reason. `None` when all stayed shared.
pub fn limiter_note(seed: u64, limiters: &[LimiterRecord]) -> Option<String> {
    let degraded: Vec<&LimiterRecord> = limiters
        .iter()
        .filter(|l| l.degraded_at_s.is_some())
        .collect();
    let first = degraded.iter().min_by(|a, b| {
        a.degraded_at_s
            .unwrap_or(0.0)
            .total_cmp(&b.degraded_at_s.unwrap_or(0.0))
    })?;
    let back = degraded.iter().filter(|l| l.shared_at_end).count();
    let when = if first.shared_at_start {
        format!("first at {:.1} s", first.degraded_at_s.unwrap_or(0.0))
    } else {
        "unreachable from the start".to_string()
    };
    Some(format!(
        "seed {seed}: the shared limiter failed over to local pacing in {} of {} processes \
         ({when}{}): {}",
        degraded.len(),
        limiters.len(),
        if back > 0 {
            format!("; shared again at the end in {back}")
        } else {
            String::new()
        },
        first
            .degraded_reason
            .as_deref()
            .unwrap_or("no reason given"),
    ))
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
        "e2e via proxy" | "e2e via proxies" | "e2e via unshared proxies" => format!(
            "end to end over loopback HTTP, time ×{}, every policy a client of {}",
            report.time_scale,
            match report.engine.as_str() {
                "e2e via proxy" => "backchat proxy",
                "e2e via proxies" => "backchat proxies sharing the quota through Redis",
                _ => "backchat proxies, each pacing on its own (no --shared-limiter)",
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
            p.label(),
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
    for p in report
        .policies
        .iter()
        .filter(|p| p.shared_limiter.is_some())
    {
        let target = p.shared_limiter.as_deref().unwrap_or_default();
        out.push_str(&format!(
            "{}: every process paced through the shared limiter {target}",
            p.label()
        ));
        if p.notes.is_empty() {
            out.push_str(" (it stayed shared throughout).\n");
        } else {
            out.push_str(":\n");
            for note in &p.notes {
                out.push_str(&format!("  {note}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_says_whether_proxies_share_the_quota() {
        let header = |engine: &str| {
            let report = Report {
                schema_version: SCHEMA_VERSION,
                tool: "backchat loadtest".into(),
                engine: engine.into(),
                time_scale: 10.0,
                processes: 1,
                scenario: crate::loadtest::scenario::Scenario::load("A").expect("built in"),
                seeds: vec![0],
                policies: Vec::new(),
            };
            table(&report)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("e2e via proxy").contains("a client of backchat proxy;"));
        assert!(header("e2e via proxies").contains("sharing the quota through Redis"));
        let alone = header("e2e via unshared proxies");
        assert!(alone.contains("each pacing on its own"), "{alone}");
        assert!(!alone.contains("sharing"), "{alone}");
    }

    #[test]
    fn a_fail_over_is_one_note_line() {
        let ok = LimiterRecord {
            shared_at_start: true,
            shared_at_end: true,
            ..LimiterRecord::default()
        };
        assert_eq!(limiter_note(0, &[ok.clone(), ok.clone()]), None);
        assert_eq!(limiter_note(0, &[]), None);
        let gone = |at: f64, reason: &str| LimiterRecord {
            shared_at_start: true,
            degraded_at_s: Some(at),
            degraded_reason: Some(reason.to_string()),
            shared_at_end: false,
        };
        let note =
            limiter_note(3, &[gone(90.0, "later"), gone(41.25, "first"), ok]).expect("degraded");
        assert_eq!(
            note,
            "seed 3: the shared limiter failed over to local pacing in 2 of 3 processes \
             (first at 41.2 s): first"
        );
        let down = LimiterRecord {
            shared_at_start: false,
            ..gone(0.1, "refused")
        };
        let note = limiter_note(0, &[down]).expect("degraded");
        assert!(
            note.contains("1 of 1 processes (unreachable from the start): refused"),
            "{note}"
        );
    }
}
