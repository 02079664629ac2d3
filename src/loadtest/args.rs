//! The flags of `backchat loadtest`, and what they say: the scenario with the overrides
//! applied, the seeds. Checking them against each other is `setup.rs`'s job.

use std::path::PathBuf;

use clap::Parser;

use super::scenario::{Scenario, SizeDist};
use super::workload;
use crate::config::FilesArgs;
use crate::util::parse_fraction;

/// Which engine runs the users.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// In-process simulated server on a paused clock: exact, seconds for 20 seeds.
    #[default]
    Sim,
    /// Real time over loopback HTTP against the mock, its minute shrunk by --time-scale.
    E2e,
}

/// The flags of `backchat loadtest`.
///
/// The target flags (`--base-url`, `--model`, `--shared-limiter`) are the load test's own:
/// only the flag counts, never the environment or the config file, so that a run is never
/// pointed at a real endpoint (or a shared Redis) by a variable left set. The API key and the
/// log level do come from the configuration (`--config`, `--log-level`).
#[derive(clap::Args, Debug, Clone)]
pub struct LoadtestArgs {
    /// Scenario: A, B, C, D, outage (built in), or a TOML file. The flags below override it.
    #[arg(
        long,
        value_name = "NAME|FILE",
        default_value = "A",
        help_heading = "Scenario"
    )]
    pub scenario: String,
    /// K: users.
    #[arg(short = 'k', long, value_name = "K", help_heading = "Scenario")]
    pub users: Option<usize>,
    /// N: requests per user.
    #[arg(short = 'n', long, value_name = "N", help_heading = "Scenario")]
    pub requests: Option<usize>,
    /// S: input tokens per request.
    #[arg(
        short = 's',
        long,
        value_name = "S",
        conflicts_with = "size_lognormal",
        help_heading = "Scenario"
    )]
    pub input_tokens: Option<u64>,
    /// Draw S from a log-normal distribution: `MU,SIGMA` of the underlying normal.
    #[arg(long, value_name = "MU,SIGMA", help_heading = "Scenario")]
    pub size_lognormal: Option<String>,
    /// Output tokens per reply.
    #[arg(long, value_name = "TOKENS", help_heading = "Scenario")]
    pub output_tokens: Option<u32>,
    /// R: requests per minute.
    #[arg(long, value_name = "R", help_heading = "Scenario")]
    pub rpm: Option<u64>,
    /// T: input tokens per minute.
    #[arg(long, value_name = "T", help_heading = "Scenario")]
    pub itpm: Option<u64>,
    /// O: output tokens per minute (charged as replies stream); unset: not modelled.
    #[arg(long, value_name = "O", help_heading = "Scenario")]
    pub otpm: Option<u64>,
    /// f: bucket capacity as a fraction of the limit, e.g. `1`, `1/6`, `1/60`, `0.25`.
    #[arg(long, value_name = "F", value_parser = parse_fraction, help_heading = "Scenario")]
    pub capacity_fraction: Option<f64>,
    /// D: how long an admitted request streams, in seconds.
    #[arg(long, value_name = "SECONDS", help_heading = "Scenario")]
    pub stream_secs: Option<f64>,
    /// Round-trip time in seconds.
    #[arg(long, value_name = "SECONDS", help_heading = "Scenario")]
    pub rtt_secs: Option<f64>,
    /// How long a user waits before resubmitting a request its policy gave up on.
    #[arg(long, value_name = "SECONDS", help_heading = "Scenario")]
    pub resubmit_delay_secs: Option<f64>,
    /// A 529 window `START,END` in seconds from the start (repeatable; replaces the
    /// scenario's windows).
    #[arg(long, value_name = "START,END", help_heading = "Scenario")]
    pub overload_window: Vec<String>,
    /// Probability of a 529 for any request.
    #[arg(long, value_name = "P", help_heading = "Scenario")]
    pub overload_probability: Option<f64>,

    /// Policy: a name, a comma-separated list, or `all` (naive, tenacity-seed, node-seed,
    /// anthropic-sdk, full-jitter-3, full-jitter, decorrelated-3, decorrelated,
    /// retry-after-jitter, backchat).
    #[arg(long, value_name = "NAME", default_value = "all", help_heading = "Run")]
    pub policy: String,
    /// `sim`: simulated server, paused clock. `e2e`: loopback HTTP to the mock, real time.
    #[arg(long, value_enum, default_value_t = Engine::Sim, help_heading = "Run")]
    pub engine: Engine,
    /// Seeds to run and average: `0..19` (inclusive), `7`, or `1,4,9`. Default: 0..19
    /// simulated, 0 end to end.
    #[arg(long, value_name = "RANGE", help_heading = "Run")]
    pub seeds: Option<String>,
    /// End to end: shrink the mock's minute (and every policy's constants) by this factor.
    #[arg(
        long,
        value_name = "FACTOR",
        default_value_t = 10.0,
        help_heading = "Run"
    )]
    pub time_scale: f64,
    /// End to end: spread the users over this many OS processes sharing one mock and one key.
    /// They coordinate only through `--shared-limiter redis://…` (backchat policy), which end
    /// to end makes the backchat row pace through Redis.
    #[arg(long, value_name = "P", default_value_t = 1, help_heading = "Run")]
    pub processes: usize,
    /// End to end, with `--processes`: split the processes into this many groups ("machines"),
    /// each reaching the one mock (one quota) through its own loopback front end.
    #[arg(long, value_name = "M", default_value_t = 1, help_heading = "Run")]
    pub machines: usize,
    /// End to end: send every policy's requests through `backchat proxy` in front of the mock
    /// (P proxies, requests spread round-robin; with `--shared-limiter` the proxies share the
    /// key's quota through it, without it each paces alone). The policies become the proxy's
    /// clients.
    #[arg(long, value_name = "P", num_args = 0..=1, default_missing_value = "1", help_heading = "Run")]
    pub via_proxy: Option<usize>,
    /// The backchat policy's `--max-wait` in model time (e.g. `600`, `10m`): the longest single
    /// wait (a pacing slot or a server's `retry-after`) a turn sleeps before giving up with
    /// "wait too long". Default: the chat's, 2 min. Users sharing one key at its limits queue
    /// for about K × (one request's share of the binding limit): raise it when that is
    /// longer, as such a team would. The turn's 15-minute deadline still applies.
    #[arg(long, value_name = "DURATION", value_parser = parse_max_wait, help_heading = "Run")]
    pub max_wait: Option<std::time::Duration>,
    /// With `--shared-limiter`: run the backchat policy twice, pacing each process on its own
    /// and through the shared limiter, and show both rows (`backchat`, `backchat+shared`).
    #[arg(long, help_heading = "Run")]
    pub compare_unshared: bool,

    /// Print the report as JSON (schema in docs/loadtest.md).
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// Also write every run's raw records (each request's times and counts) to FILE, one
    /// JSON object per run and line.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub records: Option<PathBuf>,

    /// Send real requests to this endpoint (the key from the configuration) instead of a
    /// simulated server or the mock. Only this flag selects it, never ANTHROPIC_BASE_URL.
    #[arg(long, value_name = "URL", value_parser = parse_base_url, help_heading = "Target")]
    pub base_url: Option<String>,
    /// Required with --base-url: the load test sends real requests on your key.
    #[arg(long, help_heading = "Target")]
    pub i_understand_this_spends_real_quota: bool,
    /// The model the requests name (and the shared limiter's scope).
    #[arg(
        long,
        default_value = workload::DEFAULT_MODEL,
        value_parser = clap::builder::NonEmptyStringValueParser::new(),
        help_heading = "Target"
    )]
    pub model: String,
    /// Pace the backchat policy through Redis (`redis://HOST:PORT/DB`), shared by every
    /// process of the run; end to end only.
    #[arg(long, value_name = "URL", help_heading = "Target")]
    pub shared_limiter: Option<String>,

    /// Where the API key and the log level come from.
    #[command(flatten)]
    pub files: FilesArgs,

    /// Internal: run as a worker of `--processes` with this JSON spec.
    #[arg(long, hide = true, value_name = "JSON")]
    pub worker_spec: Option<String>,
}

/// Parse load-test flags on their own (for tests and tools): `["--scenario", "B", …]`.
pub fn parse_args<I, T>(flags: I) -> Result<LoadtestArgs, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: LoadtestArgs,
    }
    let all = std::iter::once(std::ffi::OsString::from("loadtest"))
        .chain(flags.into_iter().map(Into::into));
    Wrapper::try_parse_from(all).map(|w| w.args)
}

/// `0..19` (inclusive), `0..=19`, `7` or `1,4,9`.
pub fn parse_seeds(text: &str) -> Result<Vec<u64>, String> {
    let t = text.trim();
    let bad = || format!("`{text}` is not a seed range (use 0..19, 7 or 1,4,9)");
    if let Some((a, b)) = t.split_once("..") {
        let b = b.strip_prefix('=').unwrap_or(b);
        let a: u64 = a.trim().parse().map_err(|_| bad())?;
        let b: u64 = b.trim().parse().map_err(|_| bad())?;
        if b < a || b - a > 10_000 {
            return Err(bad());
        }
        return Ok((a..=b).collect());
    }
    t.split(',')
        .map(|s| s.trim().parse::<u64>().map_err(|_| bad()))
        .collect()
}

/// A duration as the chat's `--max-wait` takes it (`120`, `90s`, `10m`), more than zero.
fn parse_max_wait(text: &str) -> Result<std::time::Duration, String> {
    match crate::clock::parse_duration(text)? {
        d if d.is_zero() => Err(format!("`{text}`: a wait of zero would refuse every slot")),
        d => Ok(d),
    }
}

/// An `http://` or `https://` URL, checked as the configuration checks `base_url`.
fn parse_base_url(text: &str) -> Result<String, String> {
    crate::config::value::http_url(crate::config::value::Raw::Str(text))
}

fn parse_pair(text: &str, what: &str) -> Result<(f64, f64), String> {
    let (a, b) = text
        .split_once(',')
        .ok_or_else(|| format!("{what}: `{text}` must be two numbers, `A,B`"))?;
    let a: f64 = a
        .trim()
        .parse()
        .map_err(|_| format!("{what}: `{a}` is not a number"))?;
    let b: f64 = b
        .trim()
        .parse()
        .map_err(|_| format!("{what}: `{b}` is not a number"))?;
    Ok((a, b))
}

impl LoadtestArgs {
    /// The scenario with the flags applied on top.
    pub fn scenario(&self) -> Result<Scenario, String> {
        let mut s = Scenario::load(&self.scenario).map_err(|e| e.to_string())?;
        if let Some(v) = self.users {
            s.users = v;
        }
        if let Some(v) = self.requests {
            s.requests = v;
        }
        if let Some(v) = self.input_tokens {
            s.size = SizeDist::Fixed { tokens: v };
        }
        if let Some(text) = &self.size_lognormal {
            let (mu, sigma) = parse_pair(text, "--size-lognormal")?;
            s.size = SizeDist::Lognormal { mu, sigma };
        }
        if let Some(v) = self.output_tokens {
            s.output_tokens = v;
        }
        if let Some(v) = self.rpm {
            s.rpm = v;
        }
        if let Some(v) = self.itpm {
            s.itpm = v;
        }
        if self.otpm.is_some() {
            s.otpm = self.otpm;
        }
        if let Some(v) = self.capacity_fraction {
            s.capacity_fraction = v;
        }
        if let Some(v) = self.stream_secs {
            s.stream_s = v;
        }
        if let Some(v) = self.rtt_secs {
            s.rtt_s = v;
        }
        if let Some(v) = self.resubmit_delay_secs {
            s.resubmit_delay_s = v;
        }
        if !self.overload_window.is_empty() {
            s.overload.windows = self
                .overload_window
                .iter()
                .map(|w| parse_pair(w, "--overload-window").map(|(a, b)| [a, b]))
                .collect::<Result<_, _>>()?;
        }
        if let Some(p) = self.overload_probability {
            s.overload.probability = p;
        }
        s.validate()
            .map_err(|m| format!("scenario {}: {m}", s.name))?;
        Ok(s)
    }

    /// The seeds: as given, else 0..19 simulated and 0 end to end.
    pub fn seeds(&self) -> Result<Vec<u64>, String> {
        match &self.seeds {
            Some(t) => parse_seeds(t),
            None if self.engine == Engine::Sim && self.base_url.is_none() => Ok((0..20).collect()),
            None => Ok(vec![0]),
        }
    }
}
