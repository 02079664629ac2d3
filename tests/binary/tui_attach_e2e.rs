//! The real binary in a pseudo-terminal on its embedded mock: attach a file with `/attach`,
//! see its chip with the token estimate, send a prompt, and read the mock's reply naming the
//! file and the size it received.

use portable_pty::CommandBuilder;

use crate::support::pty::Pty;

const BIN: &str = env!("CARGO_BIN_EXE_backchat");

#[test]
fn attach_a_file_and_the_mock_proves_it_received_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("notes.txt");
    let content = "The bucket refills at 50 requests per minute.\n".repeat(30);
    std::fs::write(&file, &content).expect("write");

    let mut cmd = CommandBuilder::new(BIN);
    cmd.env_remove("ANTHROPIC_API_KEY");
    cmd.env_remove("ANTHROPIC_BASE_URL");
    cmd.env("TERM", "xterm-256color");
    cmd.env("HOME", dir.path());
    cmd.env("XDG_CONFIG_HOME", dir.path().join("config"));
    cmd.env("XDG_DATA_HOME", dir.path().join("data"));
    cmd.env("XDG_STATE_HOME", dir.path().join("state"));
    let mut term = Pty::spawn(cmd, 30, 100);

    term.wait_for("the composer", |s| s.contains("Type a message"));
    term.send(format!("/attach {}", file.display()).as_bytes());
    term.send(b"\r");
    let chip = term.wait_for("the chip", |s| s.contains("📎 notes.txt"));
    let tokens = backchat::chat::attach::Attachment::from_bytes("notes.txt", content.as_bytes())
        .expect("text")
        .tokens;
    assert!(chip.contains(&format!("~{tokens} tokens")), "{chip}");

    term.send(b"What does the file say?");
    term.send(b"\r");
    let reply = term.wait_for("the mock's receipt", |s| {
        s.contains(&format!("Received notes.txt ({} bytes).", content.len()))
    });
    assert!(
        !reply.contains("📎 notes.txt · ~"),
        "the chip went with the prompt"
    );
    assert!(reply.contains("📎 notes.txt"), "the turn names its file");

    term.send(b"\x03");
    term.send(b"\x03");
    term.wait_exit();
}
