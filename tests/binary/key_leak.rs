//! The key never leaks: a scripted run with a known fake key through every path that writes
//! something (network error, 401 whose message echoes the key, `--events`, `--session`,
//! `--log-level trace`, `config show`, a panic, a key from `api_key_cmd`), then every log,
//! session and event file, and every stdout and stderr, is searched for it.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::home::{Answer, FakeApi, Home, texts};

const KEY: &str = "sk-ant-test-LEAKCHECK-0123456789";

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    drop(l);
    url
}

#[test]
fn the_key_appears_nowhere() {
    let home = Home::new();
    let env = [("ANTHROPIC_API_KEY", KEY)];
    let events = home.root().join("events.jsonl");
    let events_arg = events.to_str().expect("utf-8").to_string();
    let mut outputs: Vec<(&str, Output)> = Vec::new();

    // 1. Network error path, with every output on.
    let dead = closed_port();
    let out = home.run(
        &[
            "-p",
            "first prompt",
            "--base-url",
            &dead,
            "--max-retries",
            "1",
            "--events",
            &events_arg,
            "--session",
            "leak",
            "--log-level",
            "trace",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(4), "{}", texts(&out).1);
    outputs.push(("network error", out));

    // 2. A 401 whose message echoes the key back.
    let api = FakeApi::start(|_| Answer::Unauthorized);
    let out = home.run(
        &[
            "-p",
            "second prompt",
            "--base-url",
            &api.url,
            "--events",
            &events_arg,
            "--session",
            "leak",
            "--log-level",
            "trace",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(3), "{}", texts(&out).1);
    assert!(
        texts(&out).1.contains("[REDACTED]"),
        "the echo was redacted: {}",
        texts(&out).1
    );
    outputs.push(("401", out));
    assert_eq!(
        api.received.lock().expect("not poisoned")[0]
            .api_key
            .as_deref(),
        Some(KEY),
        "the key really was sent, so the test means something"
    );

    // 3. Events on stderr, and `--continue`.
    let out = home.run(
        &[
            "-p",
            "third prompt",
            "--base-url",
            &api.url,
            "--events",
            "-",
            "--continue",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(texts(&out).1.contains("\"event\":\"failed\""));
    outputs.push(("events on stderr", out));

    // 4. config show.
    let out = home.run(&["config", "show", "--log-level", "trace"], &env);
    assert_eq!(out.status.code(), Some(0));
    assert!(texts(&out).0.contains("redacted"));
    outputs.push(("config show", out));

    // 5. A panic whose message holds the key.
    let out = home.run(
        &["-p", "boom", "--base-url", &dead, "--log-level", "trace"],
        &[("ANTHROPIC_API_KEY", KEY), ("BACKCHAT_TEST_PANIC", "1")],
    );
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(101), "{stderr}");
    assert!(
        stderr.contains("deliberate panic; the key is [REDACTED]"),
        "{stderr}"
    );
    outputs.push(("panic", out));

    // 6. The key from api_key_cmd (the key file lives outside the searched home).
    let vault = tempfile::tempdir().expect("temp dir");
    let key_file = vault.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).expect("write");
    home.write_config(&format!("api_key_cmd = \"cat '{}'\"\n", key_file.display()));
    let out = home.run(
        &[
            "-p",
            "from the vault",
            "--base-url",
            &api.url,
            "--session",
            "vault",
            "--log-level",
            "trace",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", texts(&out).1);
    outputs.push(("api_key_cmd", out));
    let out = home.run(&["config", "show"], &[]);
    assert!(
        texts(&out).0.contains("api_key_cmd (file"),
        "{}",
        texts(&out).0
    );
    outputs.push(("config show with api_key_cmd", out));
    std::fs::remove_file(home.config_file()).expect("remove");

    // Everything was exercised...
    let log = std::fs::read_to_string(home.log_file()).expect("a log");
    assert!(
        log.contains("TRACE") && log.contains("turn failed"),
        "{log}"
    );
    let session = std::fs::read_to_string(home.session_file("leak")).expect("a session");
    assert!(session.contains("first prompt") && session.contains("third prompt"));
    let events_text = std::fs::read_to_string(&events).expect("events");
    // The 401's echo reached each of them, redacted: the filters were needed, and worked.
    for (what, text) in [
        ("log", &log),
        ("session", &session),
        ("events", &events_text),
    ] {
        assert!(
            text.contains("[REDACTED]"),
            "{what} shows the redacted echo:\n{text}"
        );
    }

    // ...and the key is nowhere.
    for (what, out) in &outputs {
        let (stdout, stderr) = texts(out);
        assert!(
            !stdout.contains(KEY),
            "{what}: stdout has the key:\n{stdout}"
        );
        assert!(
            !stderr.contains(KEY),
            "{what}: stderr has the key:\n{stderr}"
        );
        assert!(
            !stderr.contains("LEAKCHECK"),
            "{what}: stderr has part of the key"
        );
    }
    let mut files = Vec::new();
    files_under(home.root(), &mut files);
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        let bytes = std::fs::read(&f).expect("readable");
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("LEAKCHECK"), "{} has the key", f.display());
    }
}
