//! `backchat loadtest`: every retry policy against a quota, side by side (RETRY.md §7).
//!
//! K closed-loop users send N requests each against a rate-limited server, under each policy;
//! the report compares makespan with the lower bound, wasted 429s, give-ups, latency,
//! fairness and countdown accuracy. Two engines run the same users and policies:
//!
//! - **simulated** (default): an in-process server on tokio's paused clock, exact and fast;
//! - **e2e**: real time, loopback HTTP to the real mock with its minute shrunk
//!   (`--time-scale`), optionally spread over several processes (`--processes`); or a real
//!   endpoint (`--base-url`, with an explicit confirmation).
//!
//! A file per idea: `scenario.rs` (the TOML scenarios), `workload.rs` (requests and sizes),
//! `policies.rs` (the peers and the backchat engine's wiring), `users.rs` (the closed loop),
//! `sim.rs` (the simulated server), `e2e.rs` (the mock end to end), `processes.rs` (workers),
//! `metrics.rs`, `report.rs`, `progress.rs`. docs/loadtest.md is the user's guide.

pub mod e2e;
pub mod metrics;
pub mod policies;
pub mod processes;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod users;
pub mod workload;

use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Parser;

use self::metrics::{Metrics, RunRecord};
use self::policies::PolicyId;
use self::progress::Progress;
use self::report::{PolicyReport, Report, SCHEMA_VERSION, SeedRun};
use self::scenario::{Scenario, SizeDist, parse_fraction};
use self::users::RunPlan;
use crate::exit::{FAILED as EXIT_FAILED, USAGE as EXIT_USAGE};
use crate::secret::ApiKey;

/// Which engine runs the users.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// In-process simulated server on a paused clock: exact, seconds for 20 seeds.
    #[default]
    Sim,
    /// Real time over loopback HTTP against the mock, its minute shrunk by --time-scale.
    E2e,
}

/// Load-test options, boxed so that `cli::Command` stays small (they are read through
/// `Deref` as [`LoadtestOptions`]).
#[derive(clap::Args, Debug, Clone)]
pub struct LoadtestArgs {
    /// The flags.
    #[command(flatten)]
    pub options: Box<LoadtestOptions>,
}

impl std::ops::Deref for LoadtestArgs {
    type Target = LoadtestOptions;

    fn deref(&self) -> &LoadtestOptions {
        &self.options
    }
}

impl std::ops::DerefMut for LoadtestArgs {
    fn deref_mut(&mut self) -> &mut LoadtestOptions {
        &mut self.options
    }
}

/// The flags of `backchat loadtest`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadtestOptions {
    /// Scenario: A, B, C, D, outage (built in), or a TOML file. Flags override it.
    #[arg(long, value_name = "NAME|FILE", default_value = "A")]
    pub scenario: String,
    /// Policy: a name, a comma-separated list, or `all` (naive, tenacity-seed, node-seed,
    /// anthropic-sdk, full-jitter-3, full-jitter, decorrelated-3, decorrelated,
    /// retry-after-jitter, backchat).
    #[arg(long, value_name = "NAME", default_value = "all")]
    pub policy: String,
    /// `sim`: simulated server, paused clock. `e2e`: loopback HTTP to the mock, real time.
    #[arg(long, value_enum, default_value_t = Engine::Sim)]
    pub engine: Engine,
    /// Seeds to run and average: `0..19` (inclusive), `7`, or `1,4,9`. Default: 0..19
    /// simulated, 0 end to end.
    #[arg(long, value_name = "RANGE")]
    pub seeds: Option<String>,
    /// K: users.
    #[arg(short = 'k', long)]
    pub users: Option<usize>,
    /// N: requests per user.
    #[arg(short = 'n', long)]
    pub requests: Option<usize>,
    /// S: input tokens per request.
    #[arg(short = 's', long, conflicts_with = "size_lognormal")]
    pub input_tokens: Option<u64>,
    /// Draw S from a log-normal distribution: `MU,SIGMA` of the underlying normal.
    #[arg(long, value_name = "MU,SIGMA")]
    pub size_lognormal: Option<String>,
    /// Output tokens per reply.
    #[arg(long)]
    pub output_tokens: Option<u32>,
    /// R: requests per minute.
    #[arg(long)]
    pub rpm: Option<u64>,
    /// T: input tokens per minute.
    #[arg(long)]
    pub itpm: Option<u64>,
    /// O: output tokens per minute (charged as replies stream); unset: not modelled.
    #[arg(long)]
    pub otpm: Option<u64>,
    /// f: bucket capacity as a fraction of the limit, e.g. `1`, `1/6`, `1/60`.
    #[arg(long, value_name = "F", value_parser = parse_fraction)]
    pub capacity_fraction: Option<f64>,
    /// D: how long an admitted request streams, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub stream_secs: Option<f64>,
    /// Round-trip time in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub rtt_secs: Option<f64>,
    /// How long a user waits before resubmitting a request its policy gave up on.
    #[arg(long, value_name = "SECONDS")]
    pub resubmit_delay_secs: Option<f64>,
    /// A 529 window `START,END` in seconds from the start (repeatable; replaces the
    /// scenario's windows).
    #[arg(long, value_name = "START,END")]
    pub overload_window: Vec<String>,
    /// Probability of a 529 for any request.
    #[arg(long, value_name = "P")]
    pub overload_probability: Option<f64>,
    /// End to end: shrink the mock's minute (and every policy's constants) by this factor.
    #[arg(long, value_name = "FACTOR", default_value_t = 10.0)]
    pub time_scale: f64,
    /// End to end: spread the users over this many OS processes sharing one mock and one key.
    /// They coordinate only through the global `--shared-limiter redis://…` (backchat
    /// policy), which end to end makes the backchat row pace through Redis.
    #[arg(long, value_name = "P", default_value_t = 1)]
    pub processes: usize,
    /// With `--shared-limiter`: run the backchat policy twice, pacing each process on its own
    /// and through the shared limiter, and show both rows (`backchat`, `backchat+shared`).
    #[arg(long)]
    pub compare_unshared: bool,
    /// Print the report as JSON (schema in docs/loadtest.md).
    #[arg(long)]
    pub json: bool,
    /// Also write every run's raw records (each request's times and counts) to FILE, one
    /// JSON object per run and line.
    #[arg(long, value_name = "FILE")]
    pub records: Option<std::path::PathBuf>,
    /// Required with --base-url: the load test sends real requests on your key.
    #[arg(long)]
    pub i_understand_this_spends_real_quota: bool,
    /// Internal: run as a worker of `--processes` with this JSON spec.
    #[arg(long, hide = true, value_name = "JSON")]
    pub worker_spec: Option<String>,
    /// A real endpoint (from the global `--base-url`); set by `main`.
    #[arg(skip)]
    pub base_url: Option<String>,
    /// The key for a real endpoint (ANTHROPIC_API_KEY); set by `main`.
    #[arg(skip)]
    pub api_key: Option<ApiKey>,
    /// The global `--shared-limiter`; set by `main`, passed to workers.
    #[arg(skip)]
    pub shared_limiter: Option<String>,
    /// The global `--model`; set by `main`.
    #[arg(skip)]
    pub model: Option<String>,
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

impl LoadtestOptions {
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

/// `backchat loadtest`: run, print the table (or JSON), return the exit status.
pub async fn run(args: LoadtestArgs) -> i32 {
    if let Some(spec) = &args.worker_spec {
        return match processes::worker(spec).await {
            Ok(json) => {
                println!("{json}");
                0
            }
            Err(e) => {
                eprintln!("backchat loadtest worker: {e}");
                EXIT_FAILED
            }
        };
    }
    let setup = match Setup::from_args(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("backchat loadtest: {e}");
            return EXIT_USAGE;
        }
    };
    match setup.run().await {
        Ok((report, records)) => {
            if let Some(path) = &args.records
                && let Err(e) = write_records(path, &records)
            {
                eprintln!("backchat loadtest: cannot write {}: {e}", path.display());
                return EXIT_FAILED;
            }
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("backchat loadtest: {e}");
                        return EXIT_FAILED;
                    }
                }
            } else {
                print!("{}", report::table(&report));
            }
            0
        }
        Err(e) => {
            eprintln!("backchat loadtest: {e}");
            EXIT_FAILED
        }
    }
}

/// Where the users send their requests.
#[derive(Clone, Debug)]
enum Target {
    Simulated,
    Mock {
        scale: f64,
        processes: usize,
    },
    Endpoint {
        base_url: String,
        key: Option<ApiKey>,
    },
}

/// One row of the report: a policy, and whether it paced through the shared limiter (only
/// the backchat policy can).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Row {
    /// The policy.
    pub policy: PolicyId,
    /// Paced through `--shared-limiter`.
    pub shared: bool,
}

impl Row {
    /// The row's name in the table: the policy's, `+shared` when it used the shared limiter.
    pub fn label(self) -> String {
        if self.shared {
            format!("{}+shared", self.policy.name())
        } else {
            self.policy.name().to_string()
        }
    }

    /// The row's rule.
    pub fn description(self) -> &'static str {
        if self.shared {
            PolicyId::SHARED_DESCRIPTION
        } else {
            self.policy.description()
        }
    }
}

/// The report's rows: each policy once; with a shared limiter the backchat row uses it, and
/// with `compare` backchat runs twice, on its own first.
fn rows(policies: &[PolicyId], shared: bool, compare: bool) -> Vec<Row> {
    let mut out = Vec::new();
    for &policy in policies {
        let can_share = shared && policy == PolicyId::Backchat;
        if !can_share || compare {
            out.push(Row {
                policy,
                shared: false,
            });
        }
        if can_share {
            out.push(Row {
                policy,
                shared: true,
            });
        }
    }
    out
}

/// A load test, checked and ready to run.
#[derive(Clone, Debug)]
pub struct Setup {
    scenario: Scenario,
    rows: Vec<Row>,
    seeds: Vec<u64>,
    target: Target,
    model: String,
    limiter_url: Option<String>,
}

impl Setup {
    /// Check the flags and resolve the scenario.
    pub fn from_args(args: &LoadtestArgs) -> Result<Setup, String> {
        let scenario = args.scenario()?;
        let policies = PolicyId::parse_list(&args.policy)?;
        let seeds = args.seeds()?;
        if seeds.is_empty() {
            return Err("name at least one seed".into());
        }
        if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
            return Err("--time-scale must be a positive factor".into());
        }
        if args.processes == 0 {
            return Err("--processes must be at least 1".into());
        }
        let target = if let Some(base_url) = &args.base_url {
            if !args.i_understand_this_spends_real_quota {
                return Err(format!(
                    "--base-url {base_url} sends {} real requests on your key. Add \
                     --i-understand-this-spends-real-quota to go ahead.",
                    scenario.total_requests()
                        * rows(
                            &policies,
                            args.shared_limiter.is_some(),
                            args.compare_unshared
                        )
                        .len()
                        * seeds.len()
                ));
            }
            if args.processes > 1 {
                return Err("--processes works only against the embedded mock".into());
            }
            Target::Endpoint {
                base_url: base_url.clone(),
                key: args.api_key.clone(),
            }
        } else {
            match args.engine {
                Engine::Sim if args.processes > 1 => {
                    return Err(
                        "--processes needs real processes and real time: add --engine e2e".into(),
                    );
                }
                Engine::Sim => Target::Simulated,
                Engine::E2e => {
                    e2e::mock_config(&scenario, args.time_scale)?;
                    Target::Mock {
                        scale: args.time_scale,
                        processes: args.processes,
                    }
                }
            }
        };
        if let Some(url) = &args.shared_limiter {
            // Fail before the run, not in every worker in the middle of it.
            policies::check_shared_limiter_url(url)?;
            if matches!(target, Target::Simulated) {
                return Err(
                    "--shared-limiter paces through Redis in real time: add --engine e2e \
                     (with --processes P to share it between processes)"
                        .into(),
                );
            }
            if !policies.contains(&PolicyId::Backchat) {
                return Err(
                    "--shared-limiter is used by the backchat policy only: add it to --policy"
                        .into(),
                );
            }
        } else if args.compare_unshared {
            return Err(
                "--compare-unshared compares the backchat policy with and without the shared \
                 limiter: add --shared-limiter redis://HOST:PORT/DB"
                    .into(),
            );
        }
        Ok(Setup {
            scenario,
            rows: rows(
                &policies,
                args.shared_limiter.is_some(),
                args.compare_unshared,
            ),
            seeds,
            target,
            model: args
                .model
                .clone()
                .unwrap_or_else(|| workload::DEFAULT_MODEL.to_string()),
            limiter_url: args.shared_limiter.clone(),
        })
    }

    fn plan(&self, row: Row, seed: u64) -> RunPlan {
        RunPlan {
            scenario: self.scenario.clone(),
            policy: row.policy,
            seed,
            users: 0..self.scenario.users,
            model: self.model.clone(),
            limiter_url: if row.shared {
                self.limiter_url.clone()
            } else {
                None
            },
        }
    }

    /// The rows of the report, in order.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Run every row with every seed; the report and the raw records.
    pub async fn run(&self) -> Result<(Report, Vec<(Row, u64, RunRecord)>), String> {
        let total = self.scenario.total_requests() * self.rows.len() * self.seeds.len();
        let progress = std::sync::Arc::new(Progress::new(total));
        let records = match &self.target {
            Target::Simulated => {
                let setup = self.clone();
                let p = std::sync::Arc::clone(&progress);
                tokio::task::spawn_blocking(move || setup.simulate_all(&p))
                    .await
                    .map_err(|e| format!("the simulation stopped: {e}"))??
            }
            Target::Mock { scale, processes } => {
                self.run_mock(*scale, *processes, &progress).await?
            }
            Target::Endpoint { base_url, key } => {
                let mut out = Vec::new();
                for &row in &self.rows {
                    for &seed in &self.seeds {
                        progress.label(&format!("{}, seed {seed}", row.label()));
                        let plan = self.plan(row, seed);
                        let r = e2e::run_endpoint(&plan, base_url, key.clone(), Some(&progress))
                            .await?;
                        out.push((row, seed, r));
                    }
                }
                out
            }
        };
        progress.finish();
        Ok((self.report(&records), records))
    }

    /// The simulated engine: every (policy, seed) on its own paused clock, two at a time.
    pub fn simulate_all(&self, progress: &Progress) -> Result<Vec<(Row, u64, RunRecord)>, String> {
        let jobs: Vec<(Row, u64)> = self
            .rows
            .iter()
            .flat_map(|r| self.seeds.iter().map(move |s| (*r, *s)))
            .collect();
        let next = AtomicUsize::new(0);
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, 2);
        let results: Vec<Result<Vec<(usize, RunRecord)>, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&(row, seed)) = jobs.get(i) else {
                                return Ok(done);
                            };
                            progress.label(&format!("{}, seed {seed}", row.label()));
                            let (record, _) = sim::simulate(&self.plan(row, seed), Some(progress))?;
                            done.push((i, record));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("a simulation thread panicked".into()))
                })
                .collect()
        });
        let mut all = Vec::new();
        for r in results {
            all.extend(r?);
        }
        all.sort_by_key(|(i, _)| *i);
        Ok(all
            .into_iter()
            .map(|(i, r)| (jobs[i].0, jobs[i].1, r))
            .collect())
    }

    /// The end-to-end engine: rows side by side (each against its own mock and key), seeds
    /// one after the other; with `--processes`, one row at a time.
    async fn run_mock(
        &self,
        scale: f64,
        processes: usize,
        progress: &Progress,
    ) -> Result<Vec<(Row, u64, RunRecord)>, String> {
        let mut out = Vec::new();
        for &seed in &self.seeds {
            progress.label(&format!("seed {seed}"));
            if processes > 1 {
                for &row in &self.rows {
                    progress.label(&format!(
                        "{}, seed {seed}, {processes} processes",
                        row.label()
                    ));
                    let r = processes::run(&self.plan(row, seed), scale, processes).await?;
                    progress.advance(self.scenario.total_requests());
                    out.push((row, seed, r));
                }
            } else {
                let runs = self.rows.iter().map(|&row| async move {
                    let plan = self.plan(row, seed);
                    e2e::run(&plan, scale, Some(progress))
                        .await
                        .map(|r| (row, seed, r))
                });
                for r in futures::future::join_all(runs).await {
                    out.push(r?);
                }
            }
        }
        Ok(out)
    }

    fn report(&self, records: &[(Row, u64, RunRecord)]) -> Report {
        let policies = self
            .rows
            .iter()
            .map(|&row| {
                let mine = || records.iter().filter(move |(r, _, _)| *r == row);
                let runs: Vec<SeedRun> = mine()
                    .map(|(_, seed, r)| SeedRun {
                        seed: *seed,
                        metrics: metrics::metrics(r, &self.scenario),
                    })
                    .collect();
                let mut report = PolicyReport::new(row.policy.name(), row.description(), runs);
                if row.shared {
                    report.shared_limiter = self
                        .limiter_url
                        .as_deref()
                        .map(crate::limiter::redis::display_target);
                    report.notes = mine()
                        .filter_map(|(_, seed, r)| report::limiter_note(*seed, &r.limiters))
                        .collect();
                }
                report
            })
            .collect();
        let (engine, time_scale, processes) = match &self.target {
            Target::Simulated => ("simulated", 1.0, 1),
            Target::Mock { scale, processes } => ("e2e", *scale, *processes),
            Target::Endpoint { .. } => ("endpoint", 1.0, 1),
        };
        Report {
            schema_version: SCHEMA_VERSION,
            tool: format!("backchat loadtest {}", env!("CARGO_PKG_VERSION")),
            engine: engine.to_string(),
            time_scale,
            processes,
            scenario: self.scenario.clone(),
            seeds: self.seeds.clone(),
            policies,
        }
    }
}

/// One JSON object per run and line: `{"policy", "shared_limiter", "seed", "record"}`.
fn write_records(path: &std::path::Path, records: &[(Row, u64, RunRecord)]) -> std::io::Result<()> {
    let mut out = String::new();
    for (row, seed, record) in records {
        let line = serde_json::json!({
            "policy": row.policy.name(),
            "shared_limiter": row.shared,
            "seed": seed,
            "record": record,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    std::fs::write(path, out)
}

/// The metrics of one simulated run of `policy` on `scenario` with `seed` (for tests and
/// tools): the simulated engine without the report around it.
pub fn simulate_one(
    scenario: &Scenario,
    policy: PolicyId,
    seed: u64,
) -> Result<(Metrics, RunRecord, sim::SimStats), String> {
    let plan = RunPlan {
        scenario: scenario.clone(),
        policy,
        seed,
        users: 0..scenario.users,
        model: workload::DEFAULT_MODEL.to_string(),
        limiter_url: None,
    };
    let (record, stats) = sim::simulate(&plan, None)?;
    Ok((metrics::metrics(&record, scenario), record, stats))
}
