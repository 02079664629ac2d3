//! Scenarios (docs/loadtest.md, *Scenarios*): the workload, the server's limits and its overload, as TOML.
//!
//! The named scenarios live in `assets/loadtest/` and are compiled in, so `--scenario A`
//! works from any directory; anything else is read as a path. Every key is optional: a
//! missing one keeps the value of scenario A's common settings (R = 50, T = 30,000, f = 1,
//! RTT = 0.1 s). Flags override the file (`LoadtestArgs::scenario`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::quota::TokenBucket;
use crate::util::parse_fraction;

/// The scenarios compiled into the binary: (name, TOML text).
pub const BUILT_IN: [(&str, &str); 5] = [
    ("A", include_str!("../../assets/loadtest/A.toml")),
    ("B", include_str!("../../assets/loadtest/B.toml")),
    ("C", include_str!("../../assets/loadtest/C.toml")),
    ("D", include_str!("../../assets/loadtest/D.toml")),
    ("outage", include_str!("../../assets/loadtest/outage.toml")),
];

/// The smallest request the workload can build: a user message costs 7 tokens of overhead
/// (`tokens::PER_REQUEST_OVERHEAD` + `PER_MESSAGE_OVERHEAD`) plus at least one of text.
pub const MIN_INPUT_TOKENS: u64 = 8;

/// How many input tokens each request has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SizeDist {
    /// Every request has `tokens`.
    Fixed {
        /// Input tokens per request.
        tokens: u64,
    },
    /// `exp(N(mu, sigma))`, rounded, kept within [8, the input bucket's capacity].
    Lognormal {
        /// Mean of the underlying normal.
        mu: f64,
        /// Standard deviation of the underlying normal.
        sigma: f64,
    },
}

/// 529 `overloaded_error` without `retry-after` (docs/loadtest.md, *Server*, overload variants).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Overload {
    /// Windows `[start, end)` in seconds from the start of the run: every request gets 529.
    pub windows: Vec<[f64; 2]>,
    /// Probability that any other request gets 529.
    pub probability: f64,
}

impl Overload {
    /// True when nothing is ever overloaded.
    pub fn is_none(&self) -> bool {
        self.windows.is_empty() && self.probability <= 0.0
    }
}

/// Everything one load-test run needs to know about the workload and the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// `A`, or the file's path.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// K: closed-loop users.
    pub users: usize,
    /// N: requests per user, one after another.
    pub requests: usize,
    /// S: input tokens per request.
    pub size: SizeDist,
    /// Output tokens of every reply (charged to OTPM when it is modelled).
    pub output_tokens: u32,
    /// R: requests per minute.
    pub rpm: u64,
    /// T: input tokens per minute.
    pub itpm: u64,
    /// O: output tokens per minute; `None` leaves output unlimited (not modelled).
    pub otpm: Option<u64>,
    /// f: bucket capacity as a fraction of the per-minute limit.
    pub capacity_fraction: f64,
    /// D: how long an admitted request streams, in seconds.
    pub stream_s: f64,
    /// Round-trip time in seconds (half each way).
    pub rtt_s: f64,
    /// How long a user waits before resubmitting a request its policy gave up on.
    pub resubmit_delay_s: f64,
    /// 529 windows and probability.
    pub overload: Overload,
}

impl Default for Scenario {
    /// Scenario A's values.
    fn default() -> Self {
        Scenario {
            name: "A".into(),
            description: String::new(),
            users: 4,
            requests: 10,
            size: SizeDist::Fixed { tokens: 3000 },
            output_tokens: 100,
            rpm: 50,
            itpm: 30_000,
            otpm: None,
            capacity_fraction: 1.0,
            stream_s: 10.0,
            rtt_s: 0.1,
            resubmit_delay_s: 0.0,
            overload: Overload::default(),
        }
    }
}

/// A scenario that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Neither a built-in name nor a readable file.
    #[error(
        "no scenario `{name}`: not one of A, B, C, D, outage, and not a readable file ({source})"
    )]
    NotFound {
        /// What was asked for.
        name: String,
        /// Why the file could not be read.
        source: std::io::Error,
    },
    /// Malformed TOML, an unknown key or a bad value.
    #[error("{origin}: {message}")]
    Parse {
        /// The file.
        origin: String,
        /// toml's message, with the line.
        message: String,
    },
    /// A value that parses but makes no sense.
    #[error("{0}")]
    Invalid(String),
}

/// The file format: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    description: Option<String>,
    users: Option<usize>,
    requests: Option<usize>,
    input_tokens: Option<u64>,
    size_lognormal: Option<LognormalFile>,
    output_tokens: Option<u32>,
    rpm: Option<u64>,
    itpm: Option<u64>,
    otpm: Option<u64>,
    capacity_fraction: Option<Fraction>,
    stream_s: Option<f64>,
    rtt_s: Option<f64>,
    resubmit_delay_s: Option<f64>,
    overload: Option<OverloadFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LognormalFile {
    mu: f64,
    sigma: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverloadFile {
    #[serde(default)]
    windows: Vec<[f64; 2]>,
    #[serde(default)]
    probability: f64,
}

/// A fraction written as a number (`0.5`) or as text (`"1/6"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Fraction {
    Number(f64),
    Text(String),
}

impl Scenario {
    /// A built-in scenario by name (case-insensitive), else a TOML file at that path.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        if let Some((name, text)) = BUILT_IN
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name_or_path))
        {
            return Scenario::parse(text, name);
        }
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::NotFound {
            name: name_or_path.to_string(),
            source,
        })?;
        Scenario::parse(&text, name_or_path)
    }

    /// Parse a scenario's TOML; `name` names it in the report and in errors.
    pub fn parse(text: &str, name: &str) -> Result<Scenario, ScenarioError> {
        let file: ScenarioFile = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            origin: name.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let d = Scenario::default();
        let capacity_fraction = match file.capacity_fraction {
            None => Ok(d.capacity_fraction),
            Some(Fraction::Number(f)) => parse_fraction(&f.to_string()),
            Some(Fraction::Text(t)) => parse_fraction(&t),
        }
        .map_err(|m| ScenarioError::Invalid(format!("{name}: capacity_fraction: {m}")))?;
        let size = match (file.size_lognormal, file.input_tokens) {
            (Some(l), _) => SizeDist::Lognormal {
                mu: l.mu,
                sigma: l.sigma,
            },
            (None, Some(tokens)) => SizeDist::Fixed { tokens },
            (None, None) => d.size,
        };
        let overload = file.overload.map_or(d.overload, |o| Overload {
            windows: o.windows,
            probability: o.probability,
        });
        let s = Scenario {
            name: name.to_string(),
            description: file.description.unwrap_or_default(),
            users: file.users.unwrap_or(d.users),
            requests: file.requests.unwrap_or(d.requests),
            size,
            output_tokens: file.output_tokens.unwrap_or(d.output_tokens),
            rpm: file.rpm.unwrap_or(d.rpm),
            itpm: file.itpm.unwrap_or(d.itpm),
            otpm: file.otpm.or(d.otpm),
            capacity_fraction,
            stream_s: file.stream_s.unwrap_or(d.stream_s),
            rtt_s: file.rtt_s.unwrap_or(d.rtt_s),
            resubmit_delay_s: file.resubmit_delay_s.unwrap_or(d.resubmit_delay_s),
            overload,
        };
        s.validate()
            .map_err(|m| ScenarioError::Invalid(format!("{name}: {m}")))?;
        Ok(s)
    }

    /// Check values that make no sense.
    pub fn validate(&self) -> Result<(), String> {
        let finite_non_negative = |what: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("{what} must be a finite number ≥ 0"))
            }
        };
        if self.users == 0 || self.requests == 0 {
            return Err("users and requests must be at least 1".into());
        }
        if self.rpm == 0 || self.itpm == 0 || self.otpm == Some(0) {
            return Err("rpm, itpm and otpm must be at least 1".into());
        }
        if !(self.capacity_fraction.is_finite()
            && self.capacity_fraction > 0.0
            && self.capacity_fraction <= 1.0)
        {
            return Err("capacity_fraction must be in (0, 1]".into());
        }
        if self.output_tokens == 0 {
            return Err("output_tokens must be at least 1".into());
        }
        finite_non_negative("stream_s", self.stream_s)?;
        finite_non_negative("rtt_s", self.rtt_s)?;
        finite_non_negative("resubmit_delay_s", self.resubmit_delay_s)?;
        let p = self.overload.probability;
        if !(0.0..1.0).contains(&p) {
            return Err("overload.probability must be in [0, 1)".into());
        }
        for [start, end] in &self.overload.windows {
            if !(start.is_finite() && end.is_finite() && *start >= 0.0 && end > start) {
                return Err(format!(
                    "overload window [{start}, {end}] must have 0 ≤ start < end"
                ));
            }
        }
        let capacity = self.input_capacity();
        match self.size {
            SizeDist::Fixed { tokens } => {
                if tokens < MIN_INPUT_TOKENS {
                    return Err(format!(
                        "input_tokens must be at least {MIN_INPUT_TOKENS} (the overhead of one message)"
                    ));
                }
                if tokens as f64 > capacity {
                    return Err(format!(
                        "a request of {tokens} input tokens can never fit an input bucket of {capacity:.0} \
                         (itpm × capacity_fraction): the server would refuse it for ever"
                    ));
                }
            }
            SizeDist::Lognormal { mu, sigma } => {
                if !(mu.is_finite() && sigma.is_finite() && sigma > 0.0) {
                    return Err("size_lognormal needs a finite mu and a sigma > 0".into());
                }
            }
        }
        Ok(())
    }

    /// Total requests, M = K·N.
    pub fn total_requests(&self) -> usize {
        self.users * self.requests
    }

    /// The server's request bucket capacity (the same arithmetic as the mock's).
    pub fn request_capacity(&self) -> f64 {
        bucket_capacity(self.rpm, self.capacity_fraction).max(1.0)
    }

    /// The server's input-token bucket capacity.
    pub fn input_capacity(&self) -> f64 {
        bucket_capacity(self.itpm, self.capacity_fraction)
    }

    /// The server's output-token bucket capacity, when OTPM is modelled.
    pub fn output_capacity(&self) -> Option<f64> {
        self.otpm
            .map(|o| bucket_capacity(o, self.capacity_fraction).max(1.0))
    }

    /// One line for people: "K=4 × N=10, S=3000; 50 RPM, 30,000 ITPM, f=1; D=10 s, RTT=0.1 s".
    pub fn summary(&self) -> String {
        let size = match &self.size {
            SizeDist::Fixed { tokens } => format!("S={tokens}"),
            SizeDist::Lognormal { mu, sigma } => format!("S~LogNormal({mu}, {sigma})"),
        };
        let mut s = format!(
            "K={} users × N={} requests, {size} input tokens; {} RPM, {} ITPM",
            self.users,
            self.requests,
            crate::util::thousands(self.rpm),
            crate::util::thousands(self.itpm),
        );
        if let Some(o) = self.otpm {
            s.push_str(&format!(
                ", {} OTPM ({} output tokens/reply)",
                crate::util::thousands(o),
                self.output_tokens
            ));
        }
        s.push_str(&format!(
            ", capacity ×{}; D={} s, RTT={} s",
            fraction_text(self.capacity_fraction),
            self.stream_s,
            self.rtt_s
        ));
        for [a, b] in &self.overload.windows {
            s.push_str(&format!("; 529 during [{a}, {b}) s"));
        }
        if self.overload.probability > 0.0 {
            s.push_str(&format!("; 529 with p={}", self.overload.probability));
        }
        if self.resubmit_delay_s > 0.0 {
            s.push_str(&format!(
                "; users resubmit after {} s",
                self.resubmit_delay_s
            ));
        }
        s
    }
}

/// Capacity of a per-minute bucket, by the arithmetic the mock and the simulated server use.
fn bucket_capacity(limit: u64, fraction: f64) -> f64 {
    TokenBucket::per_minute(limit, fraction, tokio::time::Instant::now()).capacity()
}

/// `1`, `1/6`, `1/60` or `0.25`.
pub fn fraction_text(f: f64) -> String {
    if (f - 1.0).abs() < 1e-12 {
        return "1".into();
    }
    let inverse = 1.0 / f;
    if (inverse - inverse.round()).abs() < 1e-9 {
        format!("1/{}", inverse.round())
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_parse_and_match_the_documented_scenarios() {
        for (name, _) in BUILT_IN {
            let s = Scenario::load(name).expect(name);
            assert_eq!(s.name, name);
        }
        let a = Scenario::load("a").expect("case-insensitive");
        assert_eq!((a.users, a.requests), (4, 10));
        let c = Scenario::load("C").expect("C");
        assert!((c.capacity_fraction - 1.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn fractions() {
        assert_eq!(fraction_text(1.0 / 60.0), "1/60");
        assert_eq!(fraction_text(0.3), "0.3");
    }

    #[test]
    fn bad_files_name_the_problem() {
        let e = Scenario::parse("userz = 3", "t.toml").expect_err("unknown key");
        assert!(e.to_string().contains("userz"), "{e}");
        let e = Scenario::parse("input_tokens = 40000", "t.toml").expect_err("too big");
        assert!(e.to_string().contains("never fit"), "{e}");
        let e = Scenario::parse("[overload]\nwindows = [[5, 2]]", "t.toml").expect_err("window");
        assert!(e.to_string().contains("window"), "{e}");
    }
}
