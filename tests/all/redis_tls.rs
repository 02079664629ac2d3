//! The shared limiter over TLS (`rediss://`) against a real redis-server with a TLS port.
//! The certificates (a CA, a server certificate for 127.0.0.1 and one for another host) are
//! made by the `openssl` command in a temporary directory for each test: no private key is
//! kept in the repository.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backchat::limiter::{
    Demand, GrantSource, Limiter, LimiterHealth, RedisLimiter, RedisLimiterConfig, Reservation,
};
use backchat::quota::ModelClass;
use backchat::secret::ApiKey;

/// A CA and two server certificates signed by it, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("a temp dir");
        let pki = Pki { dir };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        pki.server("server", "IP:127.0.0.1,DNS:localhost");
        pki.server("other", "DNS:other.example");
        pki
    }

    /// A key and a certificate `NAME.key`/`NAME.pem` for the subject alternative names `san`.
    fn server(&self, name: &str, san: &str) {
        let ext = self.dir.path().join(format!("{name}.ext"));
        std::fs::write(&ext, format!("subjectAltName={san}\n")).expect("write ext");
        self.openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("the openssl command (it makes the test certificates)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

/// A redis-server with a plain port and a TLS port presenting `cert`; killed on drop.
struct TlsRedis {
    plain: u16,
    tls: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    fn start(pki: &Pki, cert: &str) -> TlsRedis {
        let mut last = String::new();
        for _ in 0..5 {
            let (plain, tls) = (free_port(), free_port());
            let dir = tempfile::tempdir().expect("a temp dir");
            let child = Command::new("redis-server")
                .args(["--port", &plain.to_string(), "--tls-port", &tls.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--tls-cert-file")
                .arg(pki.path(&format!("{cert}.pem")))
                .arg("--tls-key-file")
                .arg(pki.path(&format!("{cert}.key")))
                .arg("--tls-ca-cert-file")
                .arg(pki.path("ca.pem"))
                .args(["--tls-auth-clients", "no"])
                // An ACL user whose password must never show up in a message.
                .args(["--user", "alice", "on", ">s3cret-pw", "~*", "&*", "+@all"])
                .arg("--dir")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (with TLS support) on PATH");
            let mut server = TlsRedis {
                plain,
                tls,
                child,
                _dir: dir,
            };
            if server.wait_ready() {
                return server;
            }
            last = format!("ports {plain}/{tls} did not open");
        }
        panic!("could not start a TLS redis-server: {last}");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let up = |port| {
                TcpStream::connect_timeout(
                    &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                    Duration::from_millis(100),
                )
                .is_ok()
            };
            if up(self.plain) && up(self.tls) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn config(url: String, ca: Option<&Path>) -> RedisLimiterConfig {
    RedisLimiterConfig {
        ca_file: ca.map(Path::to_path_buf),
        // A TLS handshake on a loaded 2-core machine can take a while; these tests are about
        // what happens, not how fast.
        connect_timeout: Duration::from_secs(2),
        call_timeout: Duration::from_secs(1),
        ..RedisLimiterConfig::new(url)
    }
}

fn demand() -> Demand {
    Demand {
        requests: 1.0,
        input_tokens: 100.0,
        output_tokens: 100.0,
        class: ModelClass::of("claude-sonnet-4-5"),
        cache: None,
    }
}

fn key() -> ApiKey {
    ApiKey::new("sk-tls-test").expect("non-empty")
}

/// The message of a degraded limiter (panics on a healthy one).
fn degraded(l: &RedisLimiter) -> String {
    match l.health() {
        LimiterHealth::Degraded(msg) => msg,
        other => panic!("expected a degraded limiter, got {other:?}"),
    }
}

#[tokio::test]
async fn rediss_with_the_ca_file_shares_and_never_shows_the_password() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, "server");
    let url = format!("rediss://alice:s3cret-pw@127.0.0.1:{}/0", server.tls);
    let l = RedisLimiter::connect(config(url, Some(&pki.path("ca.pem"))), Some(&key())).await;
    assert_eq!(l.health(), LimiterHealth::Shared);
    assert_eq!(l.target(), format!("rediss://127.0.0.1:{}/0", server.tls));
    assert!(!format!("{l:?}").contains("s3cret"));
    match l.reserve(demand(), false).await {
        Reservation::Granted(g) => assert_eq!(g.source, GrantSource::Shared),
        Reservation::AwaitFirstHeaders { .. } => panic!("expected a grant"),
    }
}

#[tokio::test]
async fn a_wrong_password_is_an_error_without_the_password() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, "server");
    let url = format!("rediss://alice:wrong-pw@127.0.0.1:{}/0", server.tls);
    let l = RedisLimiter::connect(config(url, Some(&pki.path("ca.pem"))), Some(&key())).await;
    let msg = degraded(&l);
    assert!(!msg.contains("wrong-pw"), "{msg}");
    assert!(
        msg.contains(&format!("rediss://127.0.0.1:{}/0", server.tls)),
        "{msg}"
    );
}

#[tokio::test]
async fn an_untrusted_certificate_says_so() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, "server");
    // The system's roots alone do not know the test CA.
    let url = format!("rediss://127.0.0.1:{}/0", server.tls);
    let l = RedisLimiter::connect(config(url, None), Some(&key())).await;
    let msg = degraded(&l);
    assert!(msg.contains("not signed by a trusted CA"), "{msg}");
    // Failing open: the turn is paced locally.
    match l.reserve(demand(), false).await {
        Reservation::Granted(g) => assert_eq!(g.source, GrantSource::Local),
        Reservation::AwaitFirstHeaders { .. } => panic!("expected a grant"),
    }
}

#[tokio::test]
async fn a_certificate_for_another_host_says_so() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, "other");
    let url = format!("rediss://127.0.0.1:{}/0", server.tls);
    let l = RedisLimiter::connect(config(url, Some(&pki.path("ca.pem"))), Some(&key())).await;
    let msg = degraded(&l);
    assert!(msg.contains("for another host name"), "{msg}");
}

#[tokio::test]
async fn tls_to_a_plain_port_says_so() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, "server");
    let url = format!("rediss://127.0.0.1:{}/0", server.plain);
    let l = RedisLimiter::connect(config(url, Some(&pki.path("ca.pem"))), Some(&key())).await;
    let msg = degraded(&l);
    assert!(msg.contains("a plain port? use redis://"), "{msg}");
}

#[tokio::test]
async fn plain_redis_to_a_tls_port_fails_open() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, "server");
    let url = format!("redis://127.0.0.1:{}/0", server.tls);
    let l = RedisLimiter::connect(config(url, None), Some(&key())).await;
    let msg = degraded(&l);
    assert!(msg.contains("use rediss://"), "{msg}");
}

#[tokio::test]
async fn a_missing_ca_file_is_named() {
    let url = "rediss://127.0.0.1:1/0".to_string();
    let l = RedisLimiter::connect(
        config(url, Some(Path::new("/nonexistent/ca.pem"))),
        Some(&key()),
    )
    .await;
    let msg = degraded(&l);
    assert!(
        msg.contains("shared_limiter_ca /nonexistent/ca.pem"),
        "{msg}"
    );
}
