//! Each surface takes only the flags it uses: its `--help` lists them and no others, a flag
//! that does not apply is a usage error (exit 2 with clap's message, nothing run), and the
//! flags each surface does use still reach it. Through the real binary, plus an exhaustive
//! in-process sweep of every flag against every surface.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::support::home::{Answer, FakeApi, Home, texts};
use backchat::cli::Cli;
use backchat::mock::{FaultRates, MockConfig, MockServer};
use clap::Parser;

/// The chat's own flags (`-p` is `--print`).
const CHAT: [&str; 5] = [
    "--print",
    "--continue-reply",
    "--events",
    "--demo",
    "--mock",
];
const SESSION: [&str; 3] = ["--session", "--continue", "--no-session"];
const CONVERSATION: [&str; 6] = [
    "--model",
    "--system",
    "--max-tokens",
    "--thinking",
    "--cache",
    "--cache-ttl",
];
const CONNECTION: [&str; 3] = ["--base-url", "--header-timeout", "--raw"];
const RETRY: [&str; 6] = [
    "--max-retries",
    "--max-wait",
    "--deadline",
    "--no-pacing",
    "--shared-limiter",
    "--shared-limiter-ca",
];
const FILES: [&str; 2] = ["--config", "--log-level"];
const MOCK: [&str; 25] = [
    "--addr",
    "--scenario",
    "--seed",
    "--max-body-bytes",
    "--admin-endpoint",
    "--idle-timeout",
    "--tier",
    "--rpm",
    "--itpm",
    "--otpm",
    "--capacity-fraction",
    "--token-rate",
    "--retry-after-ms",
    "--time-scale",
    "--fault-overloaded",
    "--fault-server-error",
    "--fault-unavailable",
    "--unavailable-html",
    "--fault-midstream-error",
    "--fault-drop",
    "--fault-end-without-stop",
    "--fault-stall",
    "--fault-slow-first-byte",
    "--slow-first-byte-ms",
    "--fault-spend-cap",
];
/// The load test's own flags (it also takes the files group).
const LOADTEST: [&str; 30] = [
    "--scenario",
    "--users",
    "--requests",
    "--input-tokens",
    "--size-lognormal",
    "--output-tokens",
    "--rpm",
    "--itpm",
    "--otpm",
    "--capacity-fraction",
    "--stream-secs",
    "--rtt-secs",
    "--resubmit-delay-secs",
    "--overload-window",
    "--overload-probability",
    "--policy",
    "--engine",
    "--seeds",
    "--time-scale",
    "--processes",
    "--machines",
    "--via-proxy",
    "--max-wait",
    "--compare-unshared",
    "--json",
    "--records",
    "--base-url",
    "--i-understand-this-spends-real-quota",
    "--model",
    "--shared-limiter",
];

/// The proxy's own flags (it also takes the retry and files groups).
const PROXY: [&str; 5] = [
    "--listen",
    "--upstream",
    "--allow-remote",
    "--proxy-token",
    "--headless",
];

fn set(groups: &[&[&str]]) -> BTreeSet<String> {
    groups
        .iter()
        .flat_map(|g| g.iter().map(std::string::ToString::to_string))
        .chain(std::iter::once("--help".to_string()))
        .collect()
}

fn settings() -> BTreeSet<String> {
    set(&[&CONVERSATION, &CONNECTION, &RETRY, &FILES])
}

/// Each surface (its subcommand path) with the flags it must take, `--help` included.
fn surfaces() -> Vec<(Vec<&'static str>, BTreeSet<String>)> {
    let mut chat = set(&[&CHAT, &SESSION, &CONVERSATION, &CONNECTION, &RETRY, &FILES]);
    chat.insert("--version".into());
    vec![
        (vec![], chat),
        (vec!["mock"], set(&[&MOCK])),
        (vec!["loadtest"], set(&[&LOADTEST, &FILES])),
        (vec!["proxy"], set(&[&PROXY, &RETRY, &FILES])),
        (vec!["config", "path"], set(&[&["--config"]])),
        (vec!["config", "show"], settings()),
    ]
}

/// The long flags a help text lists: the first `--name` of each option line.
fn listed_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter_map(|line| {
            let t = line.trim_start();
            let t = match t.strip_prefix('-') {
                Some(rest) if !rest.starts_with('-') => rest.get(3..)?, // `-p, --print`
                _ => t,
            };
            let name = t.strip_prefix("--")?;
            let end = name
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(name.len());
            Some(format!("--{}", &name[..end]))
        })
        .collect()
}

/// `backchat PATH --help`: its stdout, after checking it exited 0.
fn help(home: &Home, path: &[&str]) -> String {
    let mut args = path.to_vec();
    args.push("--help");
    let out = home.run(&args, &[]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    stdout
}

#[test]
fn every_help_lists_its_own_flags_and_no_others() {
    let home = Home::new();
    for (path, expected) in surfaces() {
        let text = help(&home, &path);
        assert_eq!(
            listed_flags(&text),
            expected,
            "backchat {path:?} --help:\n{text}"
        );
    }
    // `config` alone is a group: its subcommands, no settings.
    let text = help(&home, &["config"]);
    assert_eq!(listed_flags(&text), set(&[]), "{text}");
    assert!(text.contains("path") && text.contains("show"), "{text}");
}

#[test]
fn help_texts_group_the_flags_under_headings() {
    let home = Home::new();
    for (name, path) in [
        ("chat", &[][..]),
        ("mock", &["mock"][..]),
        ("loadtest", &["loadtest"][..]),
        ("proxy", &["proxy"][..]),
        ("config_path", &["config", "path"][..]),
        ("config_show", &["config", "show"][..]),
    ] {
        insta::assert_snapshot!(format!("help_{name}"), help(&home, path));
    }
}

#[test]
fn no_surface_accepts_another_surfaces_flag() {
    let every: BTreeSet<String> = surfaces().into_iter().flat_map(|(_, f)| f).collect();
    for (path, own) in surfaces() {
        for flag in every.difference(&own) {
            let mut argv = vec!["backchat"];
            argv.extend(&path);
            argv.push(flag);
            let e = Cli::try_parse_from(&argv).expect_err(&format!("{argv:?} must be refused"));
            assert_eq!(e.exit_code(), 2, "{argv:?}: {e}");
        }
    }
}

#[test]
fn an_inapplicable_flag_exits_2_with_a_message() {
    let home = Home::new();
    let api = FakeApi::start(|_| Answer::Reply("never".into()));
    for (args, message) in [
        (
            vec!["mock", "--session", "foo"],
            "unexpected argument '--session'",
        ),
        (
            vec!["mock", "--config", "x.toml"],
            "unexpected argument '--config'",
        ),
        (
            vec!["loadtest", "--max-retries", "0"],
            "unexpected argument '--max-retries'",
        ),
        (
            vec!["loadtest", "--no-pacing"],
            "unexpected argument '--no-pacing'",
        ),
        (
            vec!["config", "path", "--model", "x"],
            "unexpected argument '--model'",
        ),
        (
            vec!["proxy", "--model", "x"],
            "unexpected argument '--model'",
        ),
        (
            vec!["proxy", "--base-url", "http://127.0.0.1:9"],
            "unexpected argument '--base-url'",
        ),
        (
            vec!["config", "show", "--continue"],
            "unexpected argument '--continue'",
        ),
        (
            vec!["--model", "x", "mock"],
            "the subcommand 'mock' cannot be used with '--model <MODEL>'",
        ),
        (
            vec!["--shared-limiter", "redis://127.0.0.1:6379/0", "loadtest"],
            "the subcommand 'loadtest' cannot be used with '--shared-limiter <URL>'",
        ),
        (
            vec!["--events", "-", "--base-url", api.url.as_str()],
            "required arguments were not provided",
        ),
        (
            vec!["--demo", "--base-url", api.url.as_str()],
            "'--demo' cannot be used with '--base-url <URL>'",
        ),
    ] {
        let out = home.run(&args, &[("ANTHROPIC_API_KEY", "sk-ant-cli-test")]);
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
    assert!(api.bodies().is_empty(), "nothing ran");
}

#[test]
fn config_show_reports_every_flag_it_takes_as_the_source() {
    let home = Home::new();
    let file = home.root().join("elsewhere.toml");
    std::fs::write(&file, "theme = \"light\"\n").expect("write");
    let file_arg = file.display().to_string();
    let out = home.run(
        &[
            "config",
            "show",
            "--model",
            "m",
            "--system",
            "s",
            "--max-tokens",
            "7",
            "--thinking",
            "2048",
            "--base-url",
            "http://127.0.0.1:9",
            "--max-retries",
            "3",
            "--max-wait",
            "90s",
            "--deadline",
            "5m",
            "--no-pacing",
            "--shared-limiter",
            "redis://127.0.0.1:6379/0",
            "--log-level",
            "debug",
            "--config",
            &file_arg,
        ],
        &[],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("# config file: {file_arg}")),
        "{stdout}"
    );
    for (line_start, flag) in [
        ("model = \"m\"", "--model"),
        ("system = \"s\"", "--system"),
        ("max_tokens = 7", "--max-tokens"),
        ("thinking = 2048", "--thinking"),
        ("base_url = \"http://127.0.0.1:9\"", "--base-url"),
        ("max_retries = 3", "--max-retries"),
        ("max_wait = 90", "--max-wait"),
        ("deadline = 300", "--deadline"),
        ("pacing = false", "--no-pacing"),
        (
            "shared_limiter = \"redis://127.0.0.1:6379/0\"",
            "--shared-limiter",
        ),
        ("log_level = \"debug\"", "--log-level"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("no `{line_start}` in\n{stdout}"));
        assert!(line.ends_with(&format!("# flag {flag}")), "{line}");
    }
    let theme = stdout
        .lines()
        .find(|l| l.starts_with("theme = \"light\""))
        .unwrap_or_else(|| panic!("the file named by --config was read:\n{stdout}"));
    assert!(theme.ends_with(&format!("# file {file_arg}:1")), "{theme}");
}

/// `backchat -p` against an in-process mock that answers every request with a 529: one
/// attempt with `--max-retries 0`, two with `--max-retries 1`; either way exit 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_mode_takes_max_retries() {
    let server = MockServer::start(MockConfig {
        faults: FaultRates {
            overloaded: 1.0,
            ..FaultRates::default()
        },
        ..MockConfig::default()
    })
    .await
    .expect("the mock starts");
    let url = server.base_url();
    let home = Home::new();
    for (retries, attempts) in [("0", 1), ("1", 2)] {
        let before = server.control().stats().count(529);
        let args = [
            "-p",
            "hi",
            "--base-url",
            url.as_str(),
            "--max-retries",
            retries,
        ];
        let out = tokio::task::block_in_place(|| {
            home.run(&args, &[("ANTHROPIC_API_KEY", "sk-ant-cli-test")])
        });
        let (_, stderr) = texts(&out);
        assert_eq!(
            out.status.code(),
            Some(4),
            "--max-retries {retries}: {stderr}"
        );
        let seen = server.control().stats().count(529) - before;
        assert_eq!(seen, attempts, "--max-retries {retries}: {stderr}");
    }
    server.shutdown().await;
}

/// `loadtest --base-url … --model …` sends that model to that endpoint, on the key the
/// configuration found (here `api_key_cmd` in the file named by the load test's `--config`).
#[test]
fn loadtest_takes_its_target_flags_and_the_key_from_the_config() {
    let home = Home::new();
    let api = FakeApi::start(|_| Answer::Reply("ok".into()));
    let file = home.root().join("loadtest.toml");
    std::fs::write(&file, "api_key_cmd = \"echo sk-ant-from-the-config\"\n").expect("write");
    let file_arg = file.display().to_string();
    let out = home.run(
        &[
            "loadtest",
            "--base-url",
            &api.url,
            "--i-understand-this-spends-real-quota",
            "--model",
            "claude-loadtest-model",
            "--config",
            &file_arg,
            "--policy",
            "naive",
            "-k",
            "1",
            "-n",
            "2",
            "--output-tokens",
            "4",
            "--json",
        ],
        &[],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(report["engine"], "endpoint", "{report}");
    let received = api.received.lock().expect("not poisoned").clone();
    assert_eq!(received.len(), 2, "{received:?}");
    for r in &received {
        assert_eq!(r.body["model"], "claude-loadtest-model", "{:?}", r.body);
        assert_eq!(r.api_key.as_deref(), Some("sk-ant-from-the-config"));
    }
}

/// `mock --capacity-fraction 1/6` is accepted, like the load test's (one parser for both).
#[test]
fn mock_takes_a_capacity_fraction_as_a_ratio() {
    let home = Home::new();
    let mut child = home
        .command()
        .args([
            "mock",
            "--addr",
            "127.0.0.1:0",
            "--capacity-fraction",
            "1/6",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the mock starts");
    let stderr = child.stderr.take().expect("stderr");
    let first = BufReader::new(stderr).lines().next();
    let _ = child.kill();
    let _ = child.wait();
    let line = first.expect("a line").expect("utf-8");
    assert!(
        line.contains("listening on") && line.contains("capacity ×0.167"),
        "{line}"
    );
    let out = home.run(&["mock", "--capacity-fraction", "7/6"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(texts(&out).1.contains("is not a fraction in (0, 1]"));
}
