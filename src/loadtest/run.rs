//! Running a [`Setup`] and reporting on it: the command's entry point ([`run`]), each
//! engine's loop over rows and seeds, the report, and the raw records file.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::args::LoadtestArgs;
use super::metrics::{self, Metrics, RunRecord};
use super::policies::PolicyId;
use super::progress::Progress;
use super::report::{self, PolicyReport, Report, SCHEMA_VERSION, SeedRun};
use super::scenario::Scenario;
use super::setup::{Row, Setup, Target};
use super::users::RunPlan;
use super::{e2e, processes, sim, workload};
use crate::exit::{FAILED as EXIT_FAILED, USAGE as EXIT_USAGE};
use crate::secret::ApiKey;

/// `backchat loadtest`: run, print the table (or JSON), return the exit status. `api_key` is
/// the configured key, used only against a real endpoint (`--base-url`).
pub async fn run(args: LoadtestArgs, api_key: Option<ApiKey>) -> i32 {
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
    // The conversation scenarios (E, F) run the engine against the mock's prompt cache.
    if let Some(scn) = super::conversation::ConversationScenario::built_in(&args.scenario) {
        let json = args.json;
        let out = match scn {
            Ok(scn) => {
                tokio::task::spawn_blocking(move || super::conversation::run_cli(&scn, json))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r)
            }
            Err(e) => {
                eprintln!("backchat loadtest: {e}");
                return EXIT_USAGE;
            }
        };
        return match out {
            Ok(text) => {
                println!("{}", text.trim_end());
                0
            }
            Err(e) => {
                eprintln!("backchat loadtest: {e}");
                EXIT_FAILED
            }
        };
    }
    let setup = match Setup::from_args(&args, api_key) {
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

impl Setup {
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
            Target::Mock {
                scale,
                processes,
                machines,
                proxies,
            } => {
                self.run_mock(*scale, *processes, *machines, *proxies, &progress)
                    .await?
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
        machines: usize,
        proxies: usize,
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
                    let r =
                        processes::run(&self.plan(row, seed), scale, processes, machines).await?;
                    progress.advance(self.scenario.total_requests());
                    out.push((row, seed, r));
                }
            } else {
                let runs = self.rows.iter().map(|&row| async move {
                    let plan = self.plan(row, seed);
                    let proxy_limiter = self.limiter_url.as_deref();
                    e2e::run_via(&plan, scale, Some(progress), proxies, proxy_limiter)
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
            Target::Mock {
                scale,
                processes,
                proxies: 0,
                ..
            } => ("e2e", *scale, *processes),
            Target::Mock {
                scale,
                processes,
                proxies: 1,
                ..
            } => ("e2e via proxy", *scale, *processes),
            // Without a shared limiter each proxy paces alone: the header must not say they
            // share the quota.
            Target::Mock {
                scale, processes, ..
            } if self.limiter_url.is_some() => ("e2e via proxies", *scale, *processes),
            Target::Mock {
                scale, processes, ..
            } => ("e2e via unshared proxies", *scale, *processes),
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
        max_wait_s: None,
    };
    let (record, stats) = sim::simulate(&plan, None)?;
    Ok((metrics::metrics(&record, scenario), record, stats))
}
