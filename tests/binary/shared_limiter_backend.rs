//! The shared limiter wired into the backend: chosen from `shared_limiter`, failing open at
//! start-up, and pacing real turns from two "processes" (two backends, two connections) that
//! share one key against one mock API.

use std::time::Duration;

use crate::support::redis::RedisServer;
use backchat::api::{Message, MessagesRequest, Role};
use backchat::backend::Backend;
use backchat::config::Config;
use backchat::limiter::LimiterHealth;
use backchat::mock::{MockConfig, MockLimits, MockServer};
use backchat::retry::TurnEvent;
use backchat::secret::ApiKey;
use futures::StreamExt;

const HANG: Duration = Duration::from_secs(30);
const KEY: &str = "sk-ant-test-backend-0123456789";

fn config(base_url: Option<String>, shared: Option<String>) -> Config {
    Config {
        base_url,
        api_key: ApiKey::new(KEY),
        shared_limiter: shared,
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_degrades_at_start_without_failing() {
    // A port nothing listens on (taken, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a port");
    let cfg = config(None, Some(format!("redis://127.0.0.1:{port}/0")));
    let backend = tokio::time::timeout(HANG, Backend::start(&cfg, Some(MockConfig::default())))
        .await
        .expect("start-up never hangs")
        .expect("starts");
    let health = backend.driver.limiter().map(|l| l.health());
    match health {
        Some(LimiterHealth::Degraded(message)) => {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert!(message.ends_with("; pacing locally"), "{message}");
        }
        other => panic!("expected a degraded limiter, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_shared_limiter_means_the_local_pacer_and_no_pacing_means_none() {
    let backend = Backend::start(&config(None, None), Some(MockConfig::default()))
        .await
        .expect("starts");
    assert_eq!(
        backend.driver.limiter().map(|l| l.health()),
        Some(LimiterHealth::Local)
    );
    let off = Config {
        pacing: false,
        ..config(None, Some("redis://127.0.0.1:1/0".to_string()))
    };
    let backend = Backend::start(&off, Some(MockConfig::default()))
        .await
        .expect("starts");
    assert!(backend.driver.limiter().is_none(), "--no-pacing wins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_keys_quota_through_redis() {
    let redis = RedisServer::start();
    // 120 RPM enforced as a 2-request bucket (one request every 0.5 s), fast replies.
    let mock = MockServer::start(MockConfig {
        limits: MockLimits {
            rpm: 120,
            itpm: 1_000_000,
            otpm: 1_000_000,
            capacity_fraction: 1.0 / 60.0,
        },
        token_rate: 5_000.0,
        first_token_latency: Duration::ZERO,
        seed: Some(1),
        ..MockConfig::default()
    })
    .await
    .expect("the mock starts");
    let cfg = config(Some(mock.base_url()), Some(redis.url()));
    let p1 = Backend::start(&cfg, None).await.expect("process 1");
    let p2 = Backend::start(&cfg, None).await.expect("process 2");
    for p in [&p1, &p2] {
        assert_eq!(
            p.driver.limiter().map(|l| l.health()),
            Some(LimiterHealth::Shared)
        );
    }

    let mut turns = Vec::new();
    for i in 0..6 {
        let driver = if i % 2 == 0 {
            p1.driver.clone()
        } else {
            p2.driver.clone()
        };
        let model = cfg.model.clone();
        turns.push(tokio::spawn(async move {
            let request = MessagesRequest::new(
                model,
                64,
                vec![Message::text(Role::User, format!("turn {i}"))],
            );
            let mut events = driver.run(request);
            let mut last = None;
            while let Some(e) = events.next().await {
                last = Some(e);
            }
            last
        }));
    }
    for t in turns {
        let last = tokio::time::timeout(HANG, t)
            .await
            .expect("turns finish")
            .expect("task");
        assert!(
            matches!(last, Some(TurnEvent::Finished { .. })),
            "a turn did not finish: {last:?}"
        );
    }
    let stats = mock.control().stats();
    assert_eq!(stats.count(200), 6);
    assert_eq!(
        stats.count(429),
        0,
        "the shared limiter paced both processes: {:?}",
        stats.by_status
    );

    // The state lives under the key's fingerprint, never the key.
    let mut con = redis.conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut con)
        .await
        .expect("KEYS");
    let fp = ApiKey::new(KEY).expect("key").fingerprint();
    assert!(!keys.is_empty());
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("backchat:{{{fp}:"))),
        "{keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_prints_one_warning_line_when_redis_is_unreachable() {
    let mock = MockServer::start(MockConfig {
        token_rate: 5_000.0,
        first_token_latency: Duration::ZERO,
        ..MockConfig::default()
    })
    .await
    .expect("the mock starts");
    let home = tempfile::tempdir().expect("a temp home");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a port");
    let url = format!("redis://:hunter2@127.0.0.1:{port}/0");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_backchat"))
        .args(["-p", "hello", "--shared-limiter", &url])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_STATE_HOME", home.path().join("state"))
        .env("ANTHROPIC_BASE_URL", mock.base_url())
        .env("ANTHROPIC_API_KEY", KEY)
        .output();
    let output = tokio::time::timeout(HANG, output)
        .await
        .expect("the turn finishes")
        .expect("backchat runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!output.stdout.is_empty(), "the reply is printed");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("shared limiter unreachable"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].starts_with("backchat: warning: shared limiter unreachable: ")
            && warnings[0].ends_with("; pacing locally"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the password never shows: {stderr}"
    );
}
