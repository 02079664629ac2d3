//! What a run measured (docs/loadtest.md, *Metrics*), from the raw records of its users: makespan against the
//! lower bound of §7.2, wasted 429s and attempts per success, give-ups, latency percentiles,
//! Jain's fairness over per-user finish times, and the accuracy of every announced countdown.
//!
//! Times are model seconds from the start of the run.

use serde::{Deserialize, Serialize};

use super::scenario::Scenario;

/// One request, from the moment its user submitted it until its reply ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The user (global id, across processes).
    pub user: usize,
    /// Input tokens.
    pub input_tokens: u64,
    /// When the user submitted it.
    pub submitted_s: f64,
    /// When the first 2xx response (the stream's first byte) arrived.
    pub first_byte_s: f64,
    /// When the reply ended.
    pub done_s: f64,
    /// Attempts sent, across resubmissions.
    pub attempts: u32,
    /// 429 responses.
    pub rate_limited: u32,
    /// 529 responses.
    pub overloaded: u32,
    /// Other failed attempts (other statuses, network errors, broken streams).
    pub other_failures: u32,
    /// Times the policy gave up and the user resubmitted.
    pub give_ups: u32,
    /// Give-ups whose last error was a rate limit (a 429, or the pacer refusing to wait).
    pub rate_limit_give_ups: u32,
}

/// How one process's shared limiter fared during a run (`--shared-limiter`): whether it ever
/// failed over to local pacing ([`crate::limiter::LimiterHealth::Degraded`]), when and why.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LimiterRecord {
    /// Shared through Redis when the users started.
    pub shared_at_start: bool,
    /// When it was first seen degraded (model seconds), if it was.
    pub degraded_at_s: Option<f64>,
    /// The limiter's own words the first time (`shared limiter unreachable: …; pacing locally`).
    pub degraded_reason: Option<String>,
    /// Shared again when the users were done (Redis came back).
    pub shared_at_end: bool,
}

/// Everything one run of one policy with one seed recorded (also what a worker process
/// prints, so the parent can merge the workers' records).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Every request of every user.
    pub requests: Vec<RequestRecord>,
    /// When each user finished its last request.
    pub user_finish_s: Vec<f64>,
    /// |announced wait − actual wait| for every countdown a policy showed; a countdown ends
    /// when the next attempt goes out or a new countdown replaces it.
    pub countdown_errors_s: Vec<f64>,
    /// |announced end − when the next attempt really went out| for every announced wait,
    /// whether or not a later countdown replaced it.
    pub send_vs_countdown_s: Vec<f64>,
    /// One per process that paced through a shared limiter (none without one).
    #[serde(default)]
    pub limiters: Vec<LimiterRecord>,
}

impl RunRecord {
    /// Add another process's records.
    pub fn merge(&mut self, other: RunRecord) {
        self.requests.extend(other.requests);
        self.user_finish_s.extend(other.user_finish_s);
        self.countdown_errors_s.extend(other.countdown_errors_s);
        self.send_vs_countdown_s.extend(other.send_vs_countdown_s);
        self.limiters.extend(other.limiters);
    }
}

/// The lower bound on the makespan (docs/loadtest.md, *Workload*):
///
/// `LB = max( max(0, (M − C_R)/r_R, (ΣS − C_T)/r_T) + D + RTT/2,  N·(D + RTT/2) )`,
///
/// with ΣS = M·S for fixed sizes. When OTPM is modelled a third term applies: all output must
/// be generated, and the last token reaches its user RTT/2 later:
/// `max(0, (ΣO − C_O)/r_O) + RTT/2`.
pub fn lower_bound(scenario: &Scenario, total_input: f64, total_output: f64) -> f64 {
    let m = scenario.total_requests() as f64;
    let n = scenario.requests as f64;
    let half = scenario.rtt_s / 2.0;
    let d = scenario.stream_s;
    let r_r = scenario.rpm as f64 / 60.0;
    let r_t = scenario.itpm as f64 / 60.0;
    let quota = 0f64
        .max((m - scenario.request_capacity()) / r_r)
        .max((total_input - scenario.input_capacity()) / r_t);
    let mut lb = (quota + d + half).max(n * (d + half));
    if let (Some(o), Some(c_o)) = (scenario.otpm, scenario.output_capacity()) {
        let r_o = o as f64 / 60.0;
        lb = lb.max(0f64.max((total_output - c_o) / r_o) + half);
    }
    lb
}

/// Which way is worse, for the "worst seed" column.
#[derive(Clone, Copy)]
enum Worse {
    High,
    Low,
}

fn worst(direction: Worse, values: impl Iterator<Item = f64>) -> f64 {
    match direction {
        Worse::High => values.fold(f64::NEG_INFINITY, f64::max),
        Worse::Low => values.fold(f64::INFINITY, f64::min),
    }
}

macro_rules! metrics_struct {
    ($( $(#[doc = $doc:literal])* $name:ident : $worse:ident ),* $(,)?) => {
        /// The metrics of one run (or their mean, or their worst, over seeds). Every value is
        /// a number, so that means and worst values are taken field by field; the names are
        /// the JSON keys (docs/loadtest.md).
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        pub struct Metrics {
            $( $(#[doc = $doc])* pub $name: f64, )*
        }

        impl Metrics {
            /// The JSON keys, in order.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($name)),*];

            /// Field-by-field mean.
            pub fn mean(all: &[Metrics]) -> Metrics {
                let n = all.len().max(1) as f64;
                Metrics { $( $name: all.iter().map(|m| m.$name).sum::<f64>() / n, )* }
            }

            /// Field-by-field worst value (highest, or lowest for fairness).
            pub fn worst(all: &[Metrics]) -> Metrics {
                if all.is_empty() {
                    return Metrics::default();
                }
                Metrics { $( $name: worst(Worse::$worse, all.iter().map(|m| m.$name)), )* }
            }
        }
    };
}

metrics_struct! {
    /// When the last request finished.
    makespan_s: High,
    /// The lower bound (docs/loadtest.md, *Lower bound*).
    lower_bound_s: High,
    /// makespan ÷ lower bound.
    ratio: High,
    /// Requests completed (M).
    successes: Low,
    /// 429 responses in all.
    rate_limited: High,
    /// 429 responses per completed request.
    rate_limited_per_success: High,
    /// 529 responses per completed request.
    overloaded_per_success: High,
    /// Attempts sent per completed request.
    attempts_per_success: High,
    /// Give-ups (each one resubmitted by its user).
    give_ups: High,
    /// Give-ups whose last error was a rate limit.
    rate_limit_give_ups: High,
    /// Give-ups per request.
    give_ups_per_request: High,
    /// Submitted → reply done, median.
    latency_p50_s: High,
    /// Submitted → reply done, 99th percentile.
    latency_p99_s: High,
    /// Submitted → reply done, maximum.
    latency_max_s: High,
    /// Submitted → first byte, median.
    first_byte_p50_s: High,
    /// Submitted → first byte, 99th percentile.
    first_byte_p99_s: High,
    /// Submitted → first byte, maximum.
    first_byte_max_s: High,
    /// Jain's index over per-user finish times, (Σx)²/(K·Σx²).
    jain: Low,
    /// Latest ÷ earliest per-user finish time.
    finish_max_min: High,
    /// Waits announced.
    countdown_waits: High,
    /// Mean |announced − actual| wait.
    countdown_error_mean_s: High,
    /// Largest |announced − actual| wait.
    countdown_error_max_s: High,
    /// Largest |announced end − next attempt sent|, even across a replaced countdown.
    send_vs_countdown_max_s: High,
    /// Processes that paced through a shared limiter (`--shared-limiter`; 0 without).
    shared_limiter_processes: Low,
    /// Of those, the ones whose shared limiter failed over to local pacing during the run.
    shared_limiter_degraded: High,
}

/// Nearest-rank percentile (`p` in 0–100) of unsorted values; 0 for none.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

/// Jain's fairness index, (Σx)²/(n·Σx²); 1 for no values or all zero.
pub fn jain(values: &[f64]) -> f64 {
    let sum: f64 = values.iter().sum();
    let squares: f64 = values.iter().map(|x| x * x).sum();
    if values.is_empty() || squares <= 0.0 {
        1.0
    } else {
        sum * sum / (values.len() as f64 * squares)
    }
}

/// The metrics of one run.
pub fn metrics(run: &RunRecord, scenario: &Scenario) -> Metrics {
    let reqs = &run.requests;
    let total_input: f64 = reqs.iter().map(|r| r.input_tokens as f64).sum();
    let total_output = reqs.len() as f64 * f64::from(scenario.output_tokens);
    let lb = lower_bound(scenario, total_input, total_output);
    let makespan = reqs.iter().map(|r| r.done_s).fold(0.0, f64::max);
    let ok = reqs.len().max(1) as f64;
    let sum = |f: fn(&RequestRecord) -> u32| reqs.iter().map(|r| f64::from(f(r))).sum::<f64>();
    let latency: Vec<f64> = reqs.iter().map(|r| r.done_s - r.submitted_s).collect();
    let first_byte: Vec<f64> = reqs
        .iter()
        .map(|r| r.first_byte_s - r.submitted_s)
        .collect();
    let finish = &run.user_finish_s;
    let (lo, hi) = finish
        .iter()
        .fold((f64::INFINITY, 0f64), |(l, h), x| (l.min(*x), h.max(*x)));
    let errors = &run.countdown_errors_s;
    let give_ups = sum(|r| r.give_ups);
    Metrics {
        makespan_s: makespan,
        lower_bound_s: lb,
        ratio: if lb > 0.0 { makespan / lb } else { 1.0 },
        successes: reqs.len() as f64,
        rate_limited: sum(|r| r.rate_limited),
        rate_limited_per_success: sum(|r| r.rate_limited) / ok,
        overloaded_per_success: sum(|r| r.overloaded) / ok,
        attempts_per_success: sum(|r| r.attempts) / ok,
        give_ups,
        rate_limit_give_ups: sum(|r| r.rate_limit_give_ups),
        give_ups_per_request: give_ups / ok,
        latency_p50_s: percentile(&latency, 50.0),
        latency_p99_s: percentile(&latency, 99.0),
        latency_max_s: percentile(&latency, 100.0),
        first_byte_p50_s: percentile(&first_byte, 50.0),
        first_byte_p99_s: percentile(&first_byte, 99.0),
        first_byte_max_s: percentile(&first_byte, 100.0),
        jain: jain(finish),
        finish_max_min: if lo > 0.0 && lo.is_finite() {
            hi / lo
        } else {
            1.0
        },
        countdown_waits: errors.len() as f64,
        countdown_error_mean_s: if errors.is_empty() {
            0.0
        } else {
            errors.iter().sum::<f64>() / errors.len() as f64
        },
        countdown_error_max_s: errors.iter().copied().fold(0.0, f64::max),
        send_vs_countdown_max_s: run.send_vs_countdown_s.iter().copied().fold(0.0, f64::max),
        shared_limiter_processes: run.limiters.len() as f64,
        shared_limiter_degraded: run
            .limiters
            .iter()
            .filter(|l| l.degraded_at_s.is_some())
            .count() as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_fairness() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
        assert!((jain(&[5.0, 5.0, 5.0]) - 1.0).abs() < 1e-12);
        assert!((jain(&[1.0, 0.0]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn mean_and_worst_go_field_by_field() {
        let a = Metrics {
            ratio: 1.0,
            jain: 1.0,
            ..Metrics::default()
        };
        let b = Metrics {
            ratio: 1.2,
            jain: 0.9,
            ..Metrics::default()
        };
        let all = [a, b];
        assert!((Metrics::mean(&all).ratio - 1.1).abs() < 1e-12);
        assert_eq!(Metrics::worst(&all).ratio, 1.2);
        assert_eq!(Metrics::worst(&all).jain, 0.9);
        assert_eq!(Metrics::FIELDS[0], "makespan_s");
    }
}
