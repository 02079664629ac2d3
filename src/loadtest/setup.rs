//! From flags to runs: [`Setup`] checks the flags against each other (before anything runs,
//! so a usage error never costs a half-finished run), picks the target and lays out the
//! report's rows; [`Setup::plan`] is one (row, seed) run.

use super::args::{Engine, LoadtestArgs};
use super::e2e;
use super::policies::{self, PolicyId};
use super::scenario::Scenario;
use super::users::RunPlan;
use crate::secret::ApiKey;

/// Where the users send their requests.
#[derive(Clone, Debug)]
pub(super) enum Target {
    /// The in-process simulated server on a paused clock.
    Simulated,
    /// The mock over loopback HTTP, its minute shrunk by `scale`, the users spread over
    /// `processes` OS processes.
    Mock {
        scale: f64,
        processes: usize,
        machines: usize,
        /// Proxies in front of the mock (0: the users talk to it directly).
        proxies: usize,
    },
    /// A real endpoint (`--base-url`), on the configured key.
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

/// A load test, checked and ready to run (`run.rs` runs it).
#[derive(Clone, Debug)]
pub struct Setup {
    pub(super) scenario: Scenario,
    pub(super) rows: Vec<Row>,
    pub(super) seeds: Vec<u64>,
    pub(super) target: Target,
    pub(super) model: String,
    pub(super) limiter_url: Option<String>,
    pub(super) max_wait_s: Option<f64>,
}

impl Setup {
    /// Check the flags and resolve the scenario. `api_key` is the configured key, sent only
    /// to a real endpoint (`--base-url`); the mock and the simulation use their own.
    pub fn from_args(args: &LoadtestArgs, api_key: Option<ApiKey>) -> Result<Setup, String> {
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
            if args.via_proxy.is_some() {
                return Err("--via-proxy works only against the embedded mock".into());
            }
            Target::Endpoint {
                base_url: base_url.clone(),
                key: api_key,
            }
        } else {
            match args.engine {
                Engine::Sim if args.processes > 1 => {
                    return Err(
                        "--processes needs real processes and real time: add --engine e2e".into(),
                    );
                }
                Engine::Sim if args.via_proxy.is_some() => {
                    return Err(
                        "--via-proxy needs real HTTP and real time: add --engine e2e".into(),
                    );
                }
                Engine::Sim => Target::Simulated,
                Engine::E2e => {
                    e2e::mock_config(&scenario, args.time_scale)?;
                    let proxies = args.via_proxy.unwrap_or(0);
                    if proxies > 0 && args.processes > 1 {
                        return Err("--via-proxy runs in one process: drop --processes".into());
                    }
                    Target::Mock {
                        scale: args.time_scale,
                        processes: args.processes,
                        machines: args.machines.clamp(1, args.processes.max(1)),
                        proxies,
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
            if args.via_proxy.is_none() && !policies.contains(&PolicyId::Backchat) {
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
            // Through proxies, the proxies pace through the shared limiter, not the policies.
            rows: rows(
                &policies,
                args.shared_limiter.is_some() && args.via_proxy.is_none(),
                args.compare_unshared,
            ),
            seeds,
            target,
            model: args.model.clone(),
            limiter_url: args.shared_limiter.clone(),
            max_wait_s: args.max_wait.map(|d| d.as_secs_f64()),
        })
    }

    /// The run of `row` with `seed`: every user, the row's policy and limiter.
    pub(super) fn plan(&self, row: Row, seed: u64) -> RunPlan {
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
            max_wait_s: self.max_wait_s,
        }
    }

    /// The rows of the report, in order.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }
}
