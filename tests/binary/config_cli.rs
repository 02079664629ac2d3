//! `backchat config path|show`, config errors (exit 2 from every surface), warnings and the
//! log file, through the real binary.

use crate::support::home::{Answer, FakeApi, Home, set_mode, texts};

#[test]
fn config_path_prints_the_file_even_when_it_is_broken() {
    let home = Home::new();
    let out = home.run(&["config", "path"], &[]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout.trim(), home.config_file().display().to_string());
    assert!(stderr.contains("no file there yet"), "{stderr}");

    home.write_config("this is = = not toml\n");
    let out = home.run(&["config", "path"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        texts(&out).0.trim(),
        home.config_file().display().to_string()
    );

    let out = home.run(&["config", "path", "--config", "/some/where.toml"], &[]);
    assert_eq!(texts(&out).0.trim(), "/some/where.toml");
    let out = home.run(
        &["config", "path"],
        &[("BACKCHAT_CONFIG", "/from/env.toml")],
    );
    assert_eq!(texts(&out).0.trim(), "/from/env.toml");
}

#[test]
fn config_show_prints_values_and_sources() {
    let home = Home::new();
    home.write_config("model = \"from-file\"\ntheme = \"light\"\n");
    let out = home.run(
        &["config", "show", "--max-tokens", "99"],
        &[("BACKCHAT_LOG_LEVEL", "debug")],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let file = home.config_file().display().to_string();
    assert!(
        stdout.contains(&format!("# config file: {file}")),
        "{stdout}"
    );
    for (key, source) in [
        ("model = \"from-file\"", format!("# file {file}:1")),
        ("theme = \"light\"", format!("# file {file}:2")),
        ("max_tokens = 99", "# flag --max-tokens".to_string()),
        (
            "log_level = \"debug\"",
            "# env BACKCHAT_LOG_LEVEL".to_string(),
        ),
        ("max_retries = 8", "# default".to_string()),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no `{key}` in\n{stdout}"));
        assert!(line.ends_with(&source), "{line}");
    }
}

#[test]
fn config_errors_exit_2_from_every_surface() {
    let home = Home::new();
    home.write_config("model = \"m\"\n\nmax_tokens = \"lots\"\n");
    let expected = format!(
        "backchat: config error in {} line 3: max_tokens must be a positive integer, got \"lots\"",
        home.config_file().display()
    );
    let api = FakeApi::start(|_| Answer::Reply("never".into()));
    for args in [
        vec!["config", "show"],
        vec!["-p", "hi", "--base-url", api.url.as_str()],
        vec![],
        vec!["loadtest"],
    ] {
        let out = home.run(&args, &[]);
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim(), expected, "{args:?}");
    }
    let out = home.run(&["config", "show"], &[("BACKCHAT_MAX_WAIT", "forever")]);
    assert_eq!(out.status.code(), Some(2));
    let home = Home::new();
    let out = home.run(&["config", "show"], &[("BACKCHAT_MAX_WAIT", "forever")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        texts(&out)
            .1
            .starts_with("backchat: config error in environment variable BACKCHAT_MAX_WAIT: "),
        "{}",
        texts(&out).1
    );
    assert!(api.bodies().is_empty());
}

#[test]
fn a_key_in_a_readable_config_file_is_warned_about_on_stderr() {
    let home = Home::new();
    let p = home.write_config("api_key = \"sk-ant-world-readable-77\"\n");
    set_mode(&p, 0o644);
    let out = home.run(&["config", "show"], &[]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("run `chmod 600 {}`", p.display())),
        "{stderr}"
    );
    assert!(stderr.contains("discouraged"), "{stderr}");
    assert!(!stderr.contains("world-readable-77") && !stdout.contains("world-readable-77"));
}

#[test]
fn logs_go_to_the_state_dir_and_never_to_the_terminal() {
    let home = Home::new();
    let api = FakeApi::start(|_| Answer::Reply("logged".into()));
    let out = home.run(
        &["-p", "hi", "--base-url", &api.url, "--log-level", "debug"],
        &[("ANTHROPIC_API_KEY", "sk-ant-test-logging-1")],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout, "logged\n");
    assert!(
        stderr.is_empty(),
        "nothing but human lines on stderr: {stderr}"
    );
    let log = std::fs::read_to_string(home.log_file()).expect("a log file");
    let accepted = log
        .lines()
        .find(|l| l.contains("request accepted"))
        .unwrap_or_else(|| panic!("no request line in\n{log}"));
    for field in [
        "status=200",
        "request_id=\"req_test_ok\"",
        "attempt=1",
        "waited=",
    ] {
        assert!(accepted.contains(field), "{field} in {accepted}");
    }
    assert!(log.contains("turn finished"), "{log}");
    assert!(!log.contains("\u{1b}["), "no colour codes in the file");

    // Appended, not truncated.
    let before = log.lines().count();
    home.run(
        &["-p", "again", "--base-url", &api.url],
        &[("ANTHROPIC_API_KEY", "sk-ant-test-logging-1")],
    );
    let after = std::fs::read_to_string(home.log_file()).expect("a log file");
    assert!(after.lines().count() > before);

    // The default level (info) leaves out debug lines.
    let quiet = Home::new();
    quiet.run(
        &["-p", "hi", "--base-url", &api.url],
        &[("ANTHROPIC_API_KEY", "sk-ant-test-logging-1")],
    );
    let log = std::fs::read_to_string(quiet.log_file()).expect("a log file");
    assert!(
        log.contains("request accepted") && !log.contains("DEBUG"),
        "{log}"
    );
}

#[test]
fn an_unusable_log_file_is_reported_once_and_the_run_goes_on() {
    let home = Home::new();
    // A file where the state directory should be.
    std::fs::write(home.root().join("state"), "not a dir").expect("write");
    let api = FakeApi::start(|_| Answer::Reply("still works".into()));
    let out = home.run(
        &["-p", "hi", "--base-url", &api.url],
        &[("ANTHROPIC_API_KEY", "sk-ant-test-logging-2")],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout, "still works\n");
    assert_eq!(
        stderr.matches("continuing without a log").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("cannot open the log file"), "{stderr}");
}

#[test]
fn config_show_never_prints_a_redis_password() {
    let home = Home::new();
    let out = home.run(
        &[
            "config",
            "show",
            "--shared-limiter",
            "redis://:hunter2@127.0.0.1:6390/1",
        ],
        &[],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("shared_limiter = \"redis://127.0.0.1:6390/1\""),
        "{stdout}"
    );
}
