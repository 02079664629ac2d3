//! The shared limiter on a real Redis Cluster started by the test: three primaries (and, for
//! the failover test, a replica each) on free loopback ports, joined with
//! `redis-cli --cluster create`. Real clock; waits are hang guards, never timing assertions.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backchat::limiter::{
    Demand, GrantSource, Limiter, LimiterHealth, RedisLimiter, RedisLimiterConfig, Reservation,
};
use backchat::quota::ModelClass;
use backchat::secret::ApiKey;

/// A local cluster; every node is killed on drop.
struct Cluster {
    ports: Vec<u16>,
    nodes: Vec<Option<Child>>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// `primaries` primaries with `replicas` replicas each.
    fn start(primaries: usize, replicas: usize) -> Cluster {
        let dir = tempfile::tempdir().expect("a temp dir");
        let count = primaries * (1 + replicas);
        let mut cluster = Cluster {
            ports: Vec::new(),
            nodes: Vec::new(),
            dir,
        };
        for i in 0..count {
            let port = free_cluster_port();
            let node_dir = cluster.dir.path().join(i.to_string());
            std::fs::create_dir_all(&node_dir).expect("a node dir");
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&node_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server on PATH");
            cluster.ports.push(port);
            cluster.nodes.push(Some(child));
        }
        for &port in &cluster.ports {
            wait_for("a node answers PING", || cli(port, &["PING"]) == "PONG");
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &cluster.ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli --cluster create");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("All 16384 slots covered"),
            "cluster create failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for &port in &cluster.ports {
            wait_for("the cluster is ok on every node", || {
                cli(port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            });
        }
        if replicas > 0 {
            wait_for("every replica is in sync", || {
                cluster.ports.iter().all(|&p| {
                    let info = cli(p, &["INFO", "replication"]);
                    info.contains("role:master") || info.contains("master_link_status:up")
                })
            });
        }
        cluster
    }

    /// The seed list: every node's URL, comma-separated.
    fn url(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The port of the primary that serves `key`'s slot.
    fn primary_of(&self, key: &str) -> u16 {
        let alive = self
            .ports
            .iter()
            .zip(&self.nodes)
            .find_map(|(p, n)| n.as_ref().map(|_| *p))
            .expect("a live node");
        let slot: u16 = cli(alive, &["CLUSTER", "KEYSLOT", key])
            .parse()
            .expect("a slot number");
        let shards = cli(alive, &["CLUSTER", "SLOTS"]);
        // `redis-cli` prints CLUSTER SLOTS flat: start, end, then each node's ip, port, id.
        let lines: Vec<&str> = shards.lines().collect();
        let mut i = 0;
        while i + 4 < lines.len() {
            if let (Ok(start), Ok(end)) = (lines[i].parse::<u16>(), lines[i + 1].parse::<u16>())
                && lines[i + 2] == "127.0.0.1"
                && (start..=end).contains(&slot)
            {
                return lines[i + 3].parse().expect("a port");
            }
            i += 1;
        }
        panic!("no primary for slot {slot} in {shards}");
    }

    fn kill(&mut self, port: u16) {
        let i = self.ports.iter().position(|&p| p == port).expect("a node");
        if let Some(mut child) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().filter_map(Option::as_mut) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A free port for a cluster node: its cluster bus listens 10,000 higher, so the port must
/// be at most 55535 (redis-server refuses to start otherwise) and that one free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= 55_535 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// `redis-cli -p PORT ARGS…`, its output trimmed ("" when it fails).
fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config(url: String) -> RedisLimiterConfig {
    RedisLimiterConfig {
        call_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(2),
        retry_every: Duration::from_millis(200),
        ..RedisLimiterConfig::new(url)
    }
}

fn demand(model: &str) -> Demand {
    Demand {
        requests: 1.0,
        input_tokens: 100.0,
        output_tokens: 100.0,
        class: ModelClass::of(model),
        cache: None,
    }
}

async fn source_of(l: &RedisLimiter, model: &str) -> GrantSource {
    match l.reserve(demand(model), false).await {
        Reservation::Granted(g) => g.source,
        Reservation::AwaitFirstHeaders { .. } => panic!("expected a grant"),
    }
}

/// Keys and classes that land on different slots, so the test touches several primaries.
const MODELS: [&str; 3] = ["claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-3-5"];

#[tokio::test]
async fn the_script_runs_on_a_three_primary_cluster() {
    let cluster = Cluster::start(3, 0);
    let keys: Vec<ApiKey> = (0..6)
        .map(|i| ApiKey::new(format!("sk-cluster-{i}")).expect("non-empty"))
        .collect();
    let mut primaries = std::collections::BTreeSet::new();
    for k in &keys {
        let l = RedisLimiter::connect(config(cluster.url()), Some(k)).await;
        assert_eq!(l.health(), LimiterHealth::Shared);
        for model in MODELS {
            // No CROSSSLOT, no MOVED left unfollowed: the grant comes from the shared state.
            assert_eq!(source_of(&l, model).await, GrantSource::Shared, "{model}");
            let class = ModelClass::of(model);
            let tat = format!(
                "backchat:{{{}:{}}}:tat:requests",
                l.fingerprint(),
                class.as_str()
            );
            let primary = cluster.primary_of(&tat);
            primaries.insert(primary);
            l.flush().await;
            let scope = format!("backchat:{{{}:{}}}:*", l.fingerprint(), class.as_str());
            assert!(
                !cli(primary, &["KEYS", &scope]).is_empty(),
                "{scope} on {primary}"
            );
        }
        assert_eq!(l.health(), LimiterHealth::Shared);
    }
    assert!(primaries.len() > 1, "every scope fell on one primary");
}

#[tokio::test]
async fn a_single_cluster_node_url_says_to_list_the_nodes() {
    let cluster = Cluster::start(3, 0);
    let k = ApiKey::new("sk-cluster-single").expect("non-empty");
    let probe = RedisLimiter::new(config(cluster.url()), Some(&k));
    let class = ModelClass::of(MODELS[0]);
    let tat = format!(
        "backchat:{{{}:{}}}:tat:requests",
        probe.fingerprint(),
        class.as_str()
    );
    let owner = cluster.primary_of(&tat);
    let other = cluster
        .ports
        .iter()
        .copied()
        .find(|&p| p != owner)
        .expect("another node");
    let l = RedisLimiter::connect(config(format!("redis://127.0.0.1:{other}")), Some(&k)).await;
    // The node answers, so the trouble shows at the first script call: a MOVED.
    assert_eq!(source_of(&l, MODELS[0]).await, GrantSource::Local);
    match l.health() {
        LimiterHealth::Degraded(msg) => assert!(msg.contains("cluster node"), "{msg}"),
        other => panic!("expected degraded, got {other:?}"),
    }
}

#[tokio::test]
async fn the_client_follows_a_failover() {
    let mut cluster = Cluster::start(3, 1);
    let k = ApiKey::new("sk-cluster-failover").expect("non-empty");
    let l = RedisLimiter::connect(config(cluster.url()), Some(&k)).await;
    assert_eq!(source_of(&l, MODELS[0]).await, GrantSource::Shared);
    let class = ModelClass::of(MODELS[0]);
    let tat = format!(
        "backchat:{{{}:{}}}:tat:requests",
        l.fingerprint(),
        class.as_str()
    );
    let primary = cluster.primary_of(&tat);
    cluster.kill(primary);
    let killed = Instant::now();
    // Nothing hangs: every reservation is answered, locally while the slot has no primary,
    // then from the promoted replica.
    let mut rejoined = None;
    while killed.elapsed() < Duration::from_secs(20) {
        let asked = Instant::now();
        let source = source_of(&l, MODELS[0]).await;
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "a reservation hung"
        );
        if source == GrantSource::Shared && l.health() == LimiterHealth::Shared {
            rejoined = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rejoined = rejoined.expect("the limiter rejoined the cluster after the failover");
    eprintln!("rejoined {rejoined:?} after the primary was killed");
    let promoted = cluster.primary_of(&tat);
    assert_ne!(promoted, primary);
    l.flush().await;
    let scope = format!("backchat:{{{}:{}}}:*", l.fingerprint(), class.as_str());
    assert!(
        !cli(promoted, &["KEYS", &scope]).is_empty(),
        "{scope} on {promoted}"
    );
}
