//! `--processes P`: P operating-system processes (K/P users each) against one mock, to show
//! what happens when processes share a key without coordinating (docs/loadtest.md, *Shared limiter*, P7c).
//!
//! The parent serves the mock in-process on a loopback port and starts P copies of its own
//! binary in a hidden worker mode (`backchat loadtest --worker-spec JSON`). Each worker runs
//! its users end to end, with its own pacer and retry budget, and prints its raw records as
//! JSON; the parent merges them. Times are aligned on the mock's start: the spec carries it as
//! a Unix time. The spec also carries the run's key (`e2e::run_key`, the same for every
//! worker) and the shared-limiter URL: with `--shared-limiter`, the backchat workers pace
//! through one Redis scope (docs/loadtest.md, *Shared limiter*, P7b) instead of each on its own.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::e2e::{self, E2eTransport};
use super::metrics::RunRecord;
use super::policies::PolicyId;
use super::scenario::Scenario;
use super::users::{RunPlan, TimeBase, run_users};
use crate::mock::MockServer;
use crate::secret::ApiKey;

/// Everything a worker process needs, passed as one JSON argument.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// The resolved scenario (all users; the worker runs `users`).
    pub scenario: Scenario,
    /// The policy's name.
    pub policy: String,
    /// The run's seed.
    pub seed: u64,
    /// Global ids of this worker's users.
    pub users: Range<usize>,
    /// The model named in requests.
    pub model: String,
    /// `--shared-limiter`, passed through.
    pub limiter_url: Option<String>,
    /// `--max-wait` (model seconds), passed through.
    pub max_wait_s: Option<f64>,
    /// The API key every worker sends to the mock (one per run, so that they share one quota
    /// there and one scope in the shared limiter).
    pub api_key: String,
    /// Model seconds per real second.
    pub time_scale: f64,
    /// The mock's base URL.
    pub mock_url: String,
    /// Model time 0 (the mock's start), as milliseconds since the Unix epoch.
    pub origin_unix_ms: u128,
}

/// Split `users` into `parts` contiguous ranges, as even as possible.
pub fn split(users: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, users.max(1));
    (0..parts)
        .map(|i| (users * i / parts)..(users * (i + 1) / parts))
        .collect()
}

fn unix_ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// The parent: one mock, `processes` workers, their records merged. With `machines` > 1 the
/// workers are split into that many groups, each reaching the mock through a front end of
/// its own ([`FrontEnd`]), as processes on separate hosts would reach one API.
pub async fn run(
    plan: &RunPlan,
    scale: f64,
    processes: usize,
    machines: usize,
) -> Result<RunRecord, String> {
    let config = e2e::mock_config(&plan.scenario, scale)?;
    let server = MockServer::start(config)
        .await
        .map_err(|e| format!("cannot start the mock: {e}"))?;
    let machines = machines.clamp(1, processes.max(1));
    let mut fronts = Vec::new();
    if machines > 1 {
        for _ in 0..machines {
            fronts.push(FrontEnd::start(server.addr()).await?);
        }
    }
    let origin_unix_ms = unix_ms(SystemTime::now());
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the backchat binary to start workers: {e}"))?;
    let api_key = e2e::run_key();
    let mut children = Vec::new();
    for (i, users) in split(plan.scenario.users, processes)
        .into_iter()
        .enumerate()
    {
        // Contiguous groups: machine m runs workers [m·P/M, (m+1)·P/M).
        let mock_url = match fronts.get(i * machines / processes.max(1)) {
            Some(front) => front.base_url(),
            None => server.base_url(),
        };
        let spec = WorkerSpec {
            scenario: plan.scenario.clone(),
            policy: plan.policy.name().to_string(),
            seed: plan.seed,
            users,
            model: plan.model.clone(),
            limiter_url: plan.limiter_url.clone(),
            max_wait_s: plan.max_wait_s,
            api_key: api_key.clone(),
            time_scale: scale,
            mock_url,
            origin_unix_ms,
        };
        let json = serde_json::to_string(&spec).map_err(|e| e.to_string())?;
        let child = tokio::process::Command::new(&exe)
            .args(["loadtest", "--worker-spec", &json])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            // A worker's own complaints go straight to the terminal.
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start a worker process: {e}"))?;
        children.push(child);
    }
    let outputs = futures::future::join_all(
        children
            .into_iter()
            .map(tokio::process::Child::wait_with_output),
    )
    .await;
    drop(fronts);
    server.shutdown().await;
    let mut record = RunRecord::default();
    for (i, out) in outputs.into_iter().enumerate() {
        let out = out.map_err(|e| format!("worker {i}: {e}"))?;
        if !out.status.success() {
            return Err(format!("worker {i} failed ({})", out.status));
        }
        let part: RunRecord = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("worker {i} printed something other than its records: {e}"))?;
        record.merge(part);
    }
    Ok(record)
}

/// One "machine"'s way to the mock: a loopback TCP listener that relays every connection to
/// the mock, byte for byte. The mock (and its quota) stays one; the workers behind different
/// front ends share nothing but it and the shared limiter. Dropping it stops accepting.
struct FrontEnd {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl FrontEnd {
    async fn start(target: std::net::SocketAddr) -> Result<FrontEnd, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot open a front end: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot open a front end: {e}"))?;
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(FrontEnd { addr, task })
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FrontEnd {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The worker: run this spec's users against the parent's mock, print the records as JSON.
pub async fn worker(spec_json: &str) -> Result<String, String> {
    let spec: WorkerSpec =
        serde_json::from_str(spec_json).map_err(|e| format!("bad worker spec: {e}"))?;
    let policy = PolicyId::parse_list(&spec.policy)?
        .first()
        .copied()
        .ok_or("the worker spec names no policy")?;
    // Model time 0 is the parent's mock start, however long this process took to start.
    let behind = SystemTime::now()
        .duration_since(UNIX_EPOCH + Duration::from_millis(spec.origin_unix_ms as u64))
        .unwrap_or(Duration::ZERO);
    let now = Instant::now();
    let origin = now.checked_sub(behind).unwrap_or(now);
    let plan = RunPlan {
        scenario: spec.scenario.clone(),
        policy,
        seed: spec.seed,
        users: spec.users.clone(),
        model: spec.model.clone(),
        limiter_url: spec.limiter_url.clone(),
        max_wait_s: spec.max_wait_s,
    };
    let key = ApiKey::new(&spec.api_key);
    let transport =
        E2eTransport::to_mock(&spec.mock_url, &spec.scenario, spec.time_scale, key.clone())?;
    let time = TimeBase {
        origin,
        scale: spec.time_scale,
    };
    let record = run_users(&plan, Arc::new(transport), key.as_ref(), time, None).await?;
    serde_json::to_string(&record).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_split_evenly() {
        assert_eq!(split(8, 3), vec![0..2, 2..5, 5..8]);
        assert_eq!(split(2, 4), vec![0..1, 1..2]);
        assert_eq!(split(4, 1), vec![0..4]);
    }
}
