//! Sessions through the real binary (`backchat -p`), against a scripted stand-in for the API:
//! history is sent as context, `--continue` picks the latest session, damage is reported on
//! stderr, and a `kill -9` mid-stream loses no finished turn.

use std::io::Read;
use std::time::Duration;

use crate::support::home::{Answer, FakeApi, Home, message_text, roles, texts, wait_until};
use backchat::chat::{ReplyState, SessionStore};

const KEY: (&str, &str) = ("ANTHROPIC_API_KEY", "sk-ant-test-sessions-0000");

fn ask(home: &Home, api: &FakeApi, extra: &[&str], prompt: &str) -> std::process::Output {
    let mut args = vec![
        "-p",
        prompt,
        "--base-url",
        api.url.as_str(),
        "--max-retries",
        "0",
    ];
    args.extend_from_slice(extra);
    home.run(&args, &[KEY])
}

#[test]
fn a_named_session_carries_its_history_and_continue_follows_it() {
    let home = Home::new();
    let api = FakeApi::start(|n| Answer::Reply(format!("reply {n}")));

    let out = ask(&home, &api, &["--session", "work"], "first");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout, "reply 0\n");
    assert!(
        stderr.is_empty(),
        "stderr is for notable events only: {stderr}"
    );

    let out = ask(&home, &api, &["--session", "work"], "second");
    assert_eq!(out.status.code(), Some(0), "{}", texts(&out).1);
    let out = ask(&home, &api, &["--continue"], "third");
    assert_eq!(out.status.code(), Some(0), "{}", texts(&out).1);

    let bodies = api.bodies();
    assert_eq!(roles(&bodies[0]), vec!["user"]);
    assert_eq!(roles(&bodies[1]), vec!["user", "assistant", "user"]);
    assert_eq!(message_text(&bodies[1], 1), "reply 0");
    assert_eq!(
        roles(&bodies[2]),
        vec!["user", "assistant", "user", "assistant", "user"]
    );
    assert_eq!(message_text(&bodies[2], 4), "third");

    let mut s = SessionStore::new(home.sessions_dir())
        .open_existing("work")
        .expect("saved");
    let (conv, report) = s.load().expect("loads");
    assert!(report.is_clean());
    let pairs: Vec<(&str, &str)> = conv
        .turns
        .iter()
        .map(|t| (t.user.as_str(), t.assistant.as_str()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("first", "reply 0"),
            ("second", "reply 1"),
            ("third", "reply 2")
        ]
    );
    assert_eq!(conv.turns[0].request_id.as_deref(), Some("req_test_ok"));
}

#[test]
fn a_plain_prompt_is_saved_so_that_continue_can_follow_up() {
    let home = Home::new();
    let api = FakeApi::start(|n| Answer::Reply(format!("reply {n}")));
    assert_eq!(ask(&home, &api, &[], "one-off").status.code(), Some(0));
    let out = ask(&home, &api, &["--continue"], "follow-up");
    assert_eq!(out.status.code(), Some(0), "{}", texts(&out).1);
    assert_eq!(roles(&api.bodies()[1]), vec!["user", "assistant", "user"]);
    let list = SessionStore::new(home.sessions_dir())
        .list()
        .expect("lists");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].turns, 2);
    assert_eq!(list[0].first_prompt.as_deref(), Some("one-off"));
}

#[test]
fn a_failed_turn_stays_in_the_session_but_is_not_context_later() {
    let home = Home::new();
    // Nothing listens on this port: the turn fails before any reply.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let out = home.run(
        &[
            "-p",
            "lost?",
            "--session",
            "f",
            "--base-url",
            &dead,
            "--max-retries",
            "0",
        ],
        &[KEY],
    );
    assert_eq!(out.status.code(), Some(4), "{}", texts(&out).1);

    let api = FakeApi::start(|_| Answer::Reply("found".into()));
    let out = ask(&home, &api, &["--session", "f"], "retry");
    assert_eq!(out.status.code(), Some(0), "{}", texts(&out).1);
    let body = &api.bodies()[0];
    assert_eq!(roles(body), vec!["user"]);
    // The turn that never got a reply is kept for the record, not resent.
    assert_eq!(message_text(body, 0), "retry");
    let (conv, _) = SessionStore::new(home.sessions_dir())
        .open_existing("f")
        .expect("saved")
        .load()
        .expect("loads");
    assert!(matches!(conv.turns[0].state, ReplyState::Failed { .. }));
    assert_eq!(conv.turns[0].user, "lost?");
}

#[test]
fn damage_is_reported_on_stderr_and_the_rest_is_used() {
    let home = Home::new();
    std::fs::create_dir_all(home.sessions_dir()).expect("mkdir");
    std::fs::write(
        home.session_file("hurt"),
        concat!(
            r#"{"type":"turn","v":1,"n":1,"user":"kept","reply":"yes","end":"complete"}"#,
            "\n{oops\n",
            r#"{"type":"turn","v":1,"n":2,"user":"cut"#
        ),
    )
    .expect("write");
    let api = FakeApi::start(|_| Answer::Reply("ok".into()));
    let out = ask(&home, &api, &["--session", "hurt"], "next");
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("backchat: session \"hurt\": line 2 skipped: not valid JSON"),
        "{stderr}"
    );
    assert!(
        stderr.contains("session \"hurt\": line 3 skipped: truncated"),
        "{stderr}"
    );
    assert_eq!(roles(&api.bodies()[0]), vec!["user", "assistant", "user"]);
}

#[test]
fn bad_session_choices_are_usage_errors() {
    let home = Home::new();
    let api = FakeApi::start(|_| Answer::Reply("never".into()));
    let out = ask(&home, &api, &["--session", "../etc/passwd"], "x");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        texts(&out)
            .1
            .contains("invalid session name \"../etc/passwd\""),
        "{}",
        texts(&out).1
    );
    let out = ask(&home, &api, &["--continue"], "x");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        texts(&out).1.contains("no session to continue"),
        "{}",
        texts(&out).1
    );
    assert!(api.bodies().is_empty(), "nothing was sent");
}

#[test]
fn kill_9_mid_stream_loses_no_finished_turn() {
    let home = Home::new();
    let api = FakeApi::start(|n| match n {
        2 => Answer::Hang("a partial repl".into()),
        n => Answer::Reply(format!("reply {n}")),
    });
    for prompt in ["one", "two"] {
        let out = ask(&home, &api, &["--session", "k"], prompt);
        assert_eq!(out.status.code(), Some(0), "{}", texts(&out).1);
    }

    let mut child = home
        .command()
        .args(["-p", "three", "--session", "k", "--base-url", &api.url])
        .env(KEY.0, KEY.1)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let mut stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        if let Ok(n) = stdout.read(&mut buf) {
            let _ = tx.send(n);
        }
    });
    let got = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the reply started streaming");
    assert!(got > 0);
    child.kill().expect("SIGKILL");
    let _ = child.wait();

    let store = SessionStore::new(home.sessions_dir());
    let (conv, report) = store.open("k").expect("ok").load().expect("loads");
    assert!(report.is_clean(), "{:?}", report.issues);
    let users: Vec<&str> = conv.turns.iter().map(|t| t.user.as_str()).collect();
    assert_eq!(users, vec!["one", "two"], "both finished turns survive");

    let out = ask(&home, &api, &["--continue"], "four");
    assert_eq!(out.status.code(), Some(0), "{}", texts(&out).1);
    assert!(wait_until(Duration::from_secs(5), || api.bodies().len() == 4));
    let body = &api.bodies()[3];
    assert_eq!(
        roles(body),
        vec!["user", "assistant", "user", "assistant", "user"]
    );
    assert_eq!(message_text(body, 4), "four");
}
