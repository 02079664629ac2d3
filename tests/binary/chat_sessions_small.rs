//! Small session behaviours people file bugs about, through the real binary on the embedded
//! mock: `-p --no-session` saves nothing, and unnamed sessions started in the same second
//! (two processes at once) get different files.

use crate::support::home::{Home, texts};

fn session_files(home: &Home) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(home.sessions_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn no_session_saves_nothing() {
    let home = Home::new();
    let out = home.run(&["-p", "hello", "--no-session"], &[]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stdout.trim().is_empty(), "a reply was printed");
    assert!(
        session_files(&home).is_empty(),
        "{:?}",
        session_files(&home)
    );
    // Without the flag the same run is saved.
    let out = home.run(&["-p", "hello"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", texts(&out).1);
    assert_eq!(session_files(&home).len(), 1);
}

#[test]
fn no_session_is_refused_with_a_session_or_without_p() {
    let home = Home::new();
    for args in [
        &["-p", "x", "--no-session", "--continue"][..],
        &["-p", "x", "--no-session", "--session", "work"],
        &["--no-session"],
    ] {
        let out = home.run(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", texts(&out).1);
    }
}

#[test]
fn two_unnamed_sessions_started_together_get_different_files() {
    let home = Home::new();
    // Started at the same moment, both name their session after the same second.
    let children: Vec<_> = (0..2)
        .map(|i| {
            let mut c = home.command();
            c.args(["-p", &format!("prompt {i}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().expect("spawn")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("waits");
        assert_eq!(out.status.code(), Some(0), "{}", texts(&out).1);
    }
    let files = session_files(&home);
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        let text = std::fs::read_to_string(home.sessions_dir().join(f)).expect("reads");
        assert_eq!(
            text.lines()
                .filter(|l| l.contains("\"type\":\"turn\""))
                .count(),
            1,
            "each file holds its own one turn: {text}"
        );
    }
}

/// A session `name` whose only turn broke off after `keep` bytes of the mock's reply to
/// `prompt`; returns the whole reply.
fn broken_session(home: &Home, name: &str, prompt: &str, keep: usize) -> String {
    let whole = backchat::mock::choose_reply(None, prompt).text.to_string();
    let mut cut = keep.min(whole.len() - 1);
    while !whole.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut turn = backchat::chat::Turn::new(prompt, "claude-sonnet-4-6");
    turn.assistant = whole[..cut].to_string();
    turn.state = backchat::chat::ReplyState::Interrupted {
        reason: "the connection dropped mid-reply".into(),
    };
    let store = backchat::chat::SessionStore::new(home.sessions_dir());
    let mut s = store.create(name).expect("a new session");
    s.append_turn(&turn).expect("saved");
    whole
}

#[test]
fn continue_reply_finishes_the_broken_reply_in_both_ways() {
    for (model, name) in [
        ("claude-sonnet-4-6", "ask"),
        ("claude-sonnet-4-5", "prefill"),
    ] {
        let home = Home::new();
        let whole = broken_session(&home, name, "Tell me about token buckets.", 60);
        let out = home.run(
            &[
                "-p",
                "--continue-reply",
                "--session",
                name,
                "--model",
                model,
            ],
            &[],
        );
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(0), "{model}: {stderr}");
        assert_eq!(
            stdout.trim_end(),
            whole.trim_end(),
            "{model}: the whole reply"
        );
        let mut s = backchat::chat::SessionStore::new(home.sessions_dir())
            .open_existing(name)
            .expect("saved");
        let (conv, report) = s.load().expect("loads");
        assert!(report.is_clean());
        assert_eq!(conv.turns.len(), 2);
        assert!(conv.turns[0].superseded, "the broken turn is superseded");
        assert_eq!(conv.turns[1].assistant.trim_end(), whole.trim_end());
        // Nothing left to continue.
        let out = home.run(&["-p", "--continue-reply", "--session", name], &[]);
        assert_eq!(out.status.code(), Some(2), "{}", texts(&out).1);
        assert!(texts(&out).1.contains("not a reply that broke off"));
    }
}

#[test]
fn export_writes_a_session_as_markdown() {
    let home = Home::new();
    let mut turn = backchat::chat::Turn::new("What is GCRA?", "claude-sonnet-4-6");
    turn.thinking = "A short answer will do.".into();
    turn.assistant = "A rate limiter.".into();
    turn.state = backchat::chat::ReplyState::Complete {
        stop_reason: Some("end_turn".into()),
    };
    let store = backchat::chat::SessionStore::new(home.sessions_dir());
    store
        .create("notes")
        .expect("new")
        .append_turn(&turn)
        .expect("saved");

    let out = home.run(&["export", "notes"], &[]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.starts_with("---\nsession: notes\nmodel: claude-sonnet-4-6\ndate: 20"),
        "{stdout}"
    );
    assert!(stdout.contains("<details>\n<summary>Thinking</summary>\n\nA short answer will do."));
    assert!(stdout.ends_with("## Claude (claude-sonnet-4-6)\n\n<details>\n<summary>Thinking</summary>\n\nA short answer will do.\n\n</details>\n\nA rate limiter.\n"), "{stdout}");

    let file = home.root().join("notes.md");
    let out = home.run(
        &["export", "notes", "-o", file.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", texts(&out).1);
    assert_eq!(std::fs::read_to_string(&file).expect("written"), stdout);

    let out = home.run(&["export", "nope"], &[]);
    assert_eq!(out.status.code(), Some(2));
    // Only its own flags.
    let out = home.run(&["export", "notes", "--model", "x"], &[]);
    assert_eq!(out.status.code(), Some(2));
}
