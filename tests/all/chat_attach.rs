//! Attachments against the mock: text, image and PDF blocks are validated as the API does,
//! counted, and echoed by name and size (proof the bytes arrived); a bad block is refused
//! with the API's kind of message; attachments stored in a session are sent again, byte for
//! byte, when the conversation resumes.

use backchat::api::{Base64Source, ContentBlock, Message, MessagesRequest, Role};
use backchat::chat::attach::Attachment;
use backchat::chat::{Conversation, ReplyState, SessionStore, Turn, apply_event};
use backchat::config::Config;
use backchat::mock::MockServer;
use futures::StreamExt;

async fn run(server: &MockServer, request: MessagesRequest) -> Turn {
    let driver = crate::support::mock::driver(server);
    let mut turn = Turn::new("x", "m");
    let mut events = std::pin::pin!(driver.run(request));
    while let Some(e) = events.next().await {
        apply_event(&mut turn, &e);
    }
    turn
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend(w.to_be_bytes());
    png.extend(h.to_be_bytes());
    png.extend([8, 6, 0, 0, 0]);
    png
}

fn turn_with_files() -> Turn {
    let mut t = Turn::new("What are these?", "claude-sonnet-4-6");
    t.attachments = vec![
        Attachment::from_bytes("notes.txt", b"alpha\nbeta\n").expect("text"),
        Attachment::from_bytes("cat.png", &png(300, 200)).expect("png"),
        Attachment::from_bytes("paper.pdf", b"%PDF-1.4\n<</Type /Page>>\n%%EOF\n").expect("pdf"),
    ];
    t
}

#[tokio::test]
async fn the_mock_receives_each_file_and_says_so() {
    let server = MockServer::start(crate::support::mock::quick_mock())
        .await
        .expect("mock");
    let c = Conversation {
        turns: vec![turn_with_files()],
    };
    let request = c.request_for(0, &Config::default(), None);
    let estimate = request.estimated_input_tokens();
    let turn = run(&server, request).await;
    assert!(
        matches!(turn.state, ReplyState::Complete { .. }),
        "{turn:?}"
    );
    assert!(
        turn.assistant.starts_with(
            "Received notes.txt (11 bytes).\n\nReceived cat.png (29 bytes).\n\nReceived paper.pdf (31 bytes).\n\n"
        ),
        "{}",
        turn.assistant
    );
    // The mock counts the blocks as the client estimates them (80 tokens for 300×200). With
    // caching on (the default) part of the input is reported as written to the cache.
    let usage = turn.usage.expect("usage");
    let total = usage.input_tokens
        + usage.cache_creation_input_tokens.unwrap_or(0)
        + usage.cache_read_input_tokens.unwrap_or(0);
    assert_eq!(total, estimate);
}

#[tokio::test]
async fn bad_blocks_are_refused_as_the_api_does() {
    let server = MockServer::start(crate::support::mock::quick_mock())
        .await
        .expect("mock");
    let with = |block: ContentBlock| {
        MessagesRequest::new(
            "claude-sonnet-4-6",
            100,
            vec![Message {
                role: Role::User,
                content: vec![block, ContentBlock::text("hi")],
            }],
        )
    };
    let source = |media: &str, data: &str| Base64Source {
        kind: "base64".into(),
        media_type: media.into(),
        data: data.into(),
    };
    for (block, expect) in [
        (
            ContentBlock::Image {
                source: source("image/bmp", "AAAA"),
                cache_control: None,
            },
            "media_type",
        ),
        (
            ContentBlock::Image {
                source: source("image/png", "not base64!"),
                cache_control: None,
            },
            "not valid base64",
        ),
        (
            ContentBlock::Document {
                source: source("application/pdf", "AAAA"),
                title: None,
                cache_control: None,
            },
            "PDF specified was not valid",
        ),
    ] {
        let turn = run(&server, with(block)).await;
        match &turn.state {
            ReplyState::Failed { message, .. } => assert!(message.contains(expect), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_resumed_session_sends_the_same_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SessionStore::new(dir.path().join("sessions"));
    let mut t = turn_with_files();
    t.assistant = "Some files.".into();
    t.state = ReplyState::Complete { stop_reason: None };
    let before = Conversation {
        turns: vec![t.clone(), Turn::new("And now?", "m")],
    }
    .request_for(1, &Config::default(), None);
    let mut s = store.create("files").expect("new");
    s.append_turn(&t).expect("saved");
    let (mut loaded, report) = store
        .open_existing("files")
        .expect("exists")
        .load()
        .expect("loads");
    assert!(report.is_clean());
    loaded.turns.push(Turn::new("And now?", "m"));
    let after = loaded.request_for(1, &Config::default(), None);
    assert_eq!(
        serde_json::to_string(&after).expect("json"),
        serde_json::to_string(&before).expect("json"),
        "byte for byte"
    );
}
