//! Sessions through the library: save → load → request round trips, corrupt files, names,
//! listing, renaming, and several writers on one file.

use backchat::api::Role;
use backchat::chat::conversation::INTERRUPTED_MARKER;
use backchat::chat::{ReplyState, SessionError, SessionStore, Turn};
use backchat::config::Config;

fn turn(user: &str, reply: &str, state: ReplyState) -> Turn {
    let mut t = Turn::new(user, "claude-test");
    t.assistant = reply.into();
    t.state = state;
    t
}

fn complete(user: &str, reply: &str) -> Turn {
    turn(
        user,
        reply,
        ReplyState::Complete {
            stop_reason: Some("end_turn".into()),
        },
    )
}

fn store() -> (tempfile::TempDir, SessionStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SessionStore::new(dir.path().join("sessions"));
    (dir, store)
}

#[test]
fn a_resumed_conversation_is_valid_api_input() {
    let (_dir, store) = store();
    let mut s = store.open("round-trip").expect("valid name");
    assert!(!s.exists(), "nothing is written before the first turn");
    let turns = [
        complete("hi", "Hello!"),
        turn(
            "tell me a story",
            "Once upon a time",
            ReplyState::Interrupted {
                reason: "the connection dropped mid-reply".into(),
            },
        ),
        turn(
            "are you there?",
            "",
            ReplyState::failed("529 overloaded_error"),
        ),
        // An "answer" with no text: must never come back as an empty assistant turn.
        turn("hello?", "", ReplyState::Complete { stop_reason: None }),
        turn("still?", "", ReplyState::Cancelled),
    ];
    for t in &turns {
        s.append_turn(t).expect("saved");
    }

    let mut again = store.open("round-trip").expect("valid name");
    let (mut conv, report) = again.load().expect("readable");
    assert!(report.is_clean(), "{:?}", report.issues);
    assert_eq!(report.turns, 5);
    assert_eq!(
        report.header.as_ref().map(|h| h.name.as_str()),
        Some("round-trip")
    );
    assert_eq!(conv.turns[0], turns[0]);
    assert_eq!(conv.turns[1], turns[1]);
    assert_eq!(conv.turns[2], turns[2]);
    assert!(
        matches!(conv.turns[3].state, ReplyState::Failed { .. }),
        "an empty reply is stored as a failure: {:?}",
        conv.turns[3].state
    );
    assert_eq!(conv.turns[3].user, "hello?", "the prompt is kept");

    conv.turns.push(Turn::new("what now?", "claude-test"));
    let req = conv.request_for(5, &Config::default(), None);
    let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        vec![
            Role::User,
            Role::Assistant,
            Role::User,
            Role::Assistant,
            Role::User
        ]
    );
    for m in &req.messages {
        assert!(
            !m.joined_text().trim().is_empty(),
            "no empty message: {m:?}"
        );
    }
    assert_eq!(
        req.messages[3].joined_text(),
        format!("Once upon a time\n\n{INTERRUPTED_MARKER}")
    );
    assert_eq!(
        req.messages[4].joined_text(),
        "still?\n\nwhat now?",
        "failed turns stay in the file but are not context; a cancelled one gives its prompt"
    );
}

#[test]
fn a_damaged_file_gives_everything_readable_and_says_what_was_skipped() {
    let (_dir, store) = store();
    std::fs::create_dir_all(store.dir()).expect("mkdir");
    let mut bytes: Vec<u8> = Vec::new();
    let mut line = |b: &[u8]| {
        bytes.extend_from_slice(b);
        bytes.push(b'\n');
    };
    line(br#"{"type":"header","v":1,"app":"backchat","created":"2026-01-01T00:00:00Z","name":"bad","model":"m"}"#); // 1
    line(br#"{"type":"turn","v":1,"n":1,"user":"one","reply":"first","end":"complete"}"#); // 2
    line(b"this is not json at all"); // 3
    line(br#"{"type":"turn","v":1,"n":2,"user":5,"reply":"x","end":"complete"}"#); // 4: wrong type
    line(br#"{"type":"turn","v":1,"n":3,"user":"three","reply":"","end":"complete"}"#); // 5: empty reply
    line(b"\xff\xfe\x00garbage\x80"); // 6: not UTF-8
    line(b"{\"type\":\"turn\",\"v\":1,\"n\":4,\"user\":\"caf\xe9\",\"reply\":\"ok\",\"end\":\"complete\"}"); // 7: a bad byte inside a string
    line(br#"{"type":"bookmark","v":2,"at":3}"#); // 8: from a newer version
    line(br#"{"type":"turn","v":1,"n":5,"user":"five","reply":"fifth","end":"complete","extra":{"new":true}}"#); // 9
    bytes.extend_from_slice(br#"{"type":"turn","v":1,"n":6,"user":"six","rep"#); // 10: truncated
    std::fs::write(store.path_of("bad"), &bytes).expect("write");

    let mut s = store.open("bad").expect("valid");
    let (conv, report) = s.load().expect("loads");
    let users: Vec<&str> = conv.turns.iter().map(|t| t.user.as_str()).collect();
    assert_eq!(users, vec!["one", "three", "caf\u{FFFD}", "five"]);
    assert!(matches!(conv.turns[1].state, ReplyState::Failed { .. }));
    assert_eq!(conv.turns[1].assistant, "");

    let skipped: Vec<usize> = report
        .issues
        .iter()
        .filter(|i| i.skipped)
        .map(|i| i.line)
        .collect();
    assert_eq!(skipped, vec![3, 4, 6, 8, 10], "{:#?}", report.issues);
    let repaired: Vec<usize> = report
        .issues
        .iter()
        .filter(|i| !i.skipped)
        .map(|i| i.line)
        .collect();
    assert_eq!(repaired, vec![5, 7], "{:#?}", report.issues);
    let why = |line: usize| {
        report
            .issues
            .iter()
            .find(|i| i.line == line)
            .map(|i| i.reason.clone())
            .unwrap_or_default()
    };
    assert!(why(3).contains("not valid JSON"), "{}", why(3));
    assert!(why(4).contains("bad field"), "{}", why(4));
    assert!(why(5).contains("empty reply"), "{}", why(5));
    assert!(why(6).contains("UTF-8"), "{}", why(6));
    assert!(why(8).contains("unknown record type"), "{}", why(8));
    assert!(why(10).contains("truncated"), "{}", why(10));
    let shown = report.lines("bad");
    assert!(
        shown[0].starts_with("session \"bad\": line 3 skipped: "),
        "{shown:?}"
    );

    // The next turn is appended whole, after the cut-off line, and numbered after the rest.
    s.append_turn(&complete("seven", "seventh")).expect("saved");
    let (conv, report) = store.open("bad").expect("valid").load().expect("loads");
    assert_eq!(conv.turns.last().map(|t| t.user.as_str()), Some("seven"));
    assert_eq!(conv.turns.len(), 5);
    assert!(report.issues.iter().any(|i| i.line == 10 && i.skipped));
    let text = std::fs::read(store.path_of("bad")).expect("read");
    let last = text
        .split(|b| *b == b'\n')
        .rfind(|l| !l.is_empty())
        .expect("a last line");
    let v: serde_json::Value = serde_json::from_slice(last).expect("the new line is whole JSON");
    assert_eq!(v["n"], 6);
}

#[test]
fn names_are_checked() {
    let (_dir, store) = store();
    for bad in [
        "",
        "../escape",
        "a/b",
        "a\\b",
        "..",
        ".hidden",
        " padded",
        "tab\there",
        "what?",
        &"x".repeat(101),
    ] {
        match store.open(bad) {
            Err(SessionError::InvalidName { .. }) => {}
            other => panic!("{bad:?} should be refused, got {other:?}"),
        }
    }
    let e = store.open("../x").expect_err("refused").to_string();
    assert!(e.contains("invalid session name \"../x\""), "{e}");
    for good in [
        "work",
        "2026-11-27T19-29-15",
        "notes v2",
        "日本語",
        &"x".repeat(100),
    ] {
        store.open(good).expect("a fine name");
    }
}

#[test]
fn list_latest_rename_and_supersede() {
    let (_dir, store) = store();
    assert!(store.list().expect("an absent dir is empty").is_empty());
    assert!(store.latest().expect("ok").is_none());

    let mut a = store.create("alpha").expect("new");
    a.append_turn(&complete("first question\nsecond line", "answer"))
        .expect("saved");
    a.append_turn(&complete("again", "answer 2"))
        .expect("saved");
    let mut b = store.new_unnamed();
    b.append_turn(&complete("b's prompt", "b's answer"))
        .expect("saved");
    let other = store.new_unnamed();
    assert_ne!(other.name(), b.name(), "generated names do not collide");

    // Make the order certain whatever the file system's timestamp resolution.
    let old = std::time::SystemTime::now() - std::time::Duration::from_mins(1);
    std::fs::File::options()
        .append(true)
        .open(store.path_of("alpha"))
        .and_then(|f| f.set_modified(old))
        .expect("set mtime");

    let list = store.list().expect("lists");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].name, b.name());
    assert_eq!(list[1].name, "alpha");
    assert_eq!(list[1].turns, 2);
    assert_eq!(list[1].first_prompt.as_deref(), Some("first question"));
    assert_eq!(
        store.latest().expect("ok").map(|s| s.name().to_string()),
        Some(b.name().to_string())
    );

    assert!(matches!(
        store.create("alpha"),
        Err(SessionError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.rename("alpha", b.name()),
        Err(SessionError::AlreadyExists(_))
    ));
    store.rename("alpha", "renamed").expect("renamed");
    assert!(!store.path_of("alpha").exists());
    assert!(matches!(
        store.rename("alpha", "x"),
        Err(SessionError::NotFound(_))
    ));

    // A session handle follows its own rename, and marks a retried turn.
    let mut r = store.open_existing("renamed").expect("exists");
    r.rename("final").expect("renamed");
    let (conv, _) = r.load().expect("loads");
    assert_eq!(conv.turns.len(), 2);
    r.mark_superseded(0).expect("marked");
    r.append_turn(&complete("first question", "better answer"))
        .expect("saved");
    let (conv, report) = store.open("final").expect("ok").load().expect("loads");
    assert!(report.is_clean(), "{:?}", report.issues);
    assert!(conv.turns[0].superseded);
    assert!(!conv.turns[1].superseded);
    assert!(matches!(
        r.mark_superseded(99),
        Err(SessionError::NoSuchTurn(99))
    ));
}

#[test]
fn two_writers_on_one_session_keep_every_line_whole_and_numbered() {
    let (_dir, store) = store();
    let mut threads = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        threads.push(std::thread::spawn(move || {
            let mut s = store.open("shared").expect("valid");
            for i in 0..10 {
                s.append_turn(&complete(&format!("w{w} q{i}"), &format!("w{w} a{i}")))
                    .expect("saved");
            }
        }));
    }
    for t in threads {
        t.join().expect("writer finished");
    }
    let text = std::fs::read_to_string(store.path_of("shared")).expect("read");
    let headers = text.lines().filter(|l| l.contains("\"header\"")).count();
    assert_eq!(headers, 1, "{text}");
    let (conv, report) = store.open("shared").expect("ok").load().expect("loads");
    assert!(report.is_clean(), "{:?}", report.issues);
    assert_eq!(conv.turns.len(), 40);
    let mut ns: Vec<u64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["n"].as_u64())
        .collect();
    ns.sort_unstable();
    assert_eq!(
        ns,
        (1..=40).collect::<Vec<u64>>(),
        "turn numbers are unique"
    );
}

#[cfg(unix)]
#[test]
fn session_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, store) = store();
    let mut s = store.open("private").expect("valid");
    s.append_turn(&complete("q", "a")).expect("saved");
    let mode = std::fs::metadata(s.path())
        .expect("exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}
