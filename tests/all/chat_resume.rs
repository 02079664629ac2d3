//! Resuming a reply that broke off, against the mock with a scripted mid-stream drop: the
//! continuation joins the partial text, and the result equals the reply that was never cut.
//! Both ways are tested: prefill (older models) and asking in a user turn (Claude 4.6+,
//! which the mock, like the API, refuses a prefill for).

use backchat::api::{Message, MessagesRequest, Role};
use backchat::chat::resume::{ResumeMode, continuation_turn};
use backchat::chat::{Conversation, ReplyState, Turn, apply_event};
use backchat::config::Config;
use backchat::mock::{MockConfig, MockServer, ScriptStep};
use futures::StreamExt;

/// Run `request` on `server` and fold its events into `turn`.
async fn run(server: &MockServer, request: MessagesRequest, mut turn: Turn) -> Turn {
    let driver = crate::support::mock::driver(server);
    let mut events = std::pin::pin!(driver.run(request));
    while let Some(e) = events.next().await {
        apply_event(&mut turn, &e);
    }
    turn
}

fn config(model: &str) -> Config {
    Config {
        model: model.into(),
        ..Config::default()
    }
}

async fn resume_joins_seamlessly(model: &str, want: ResumeMode) {
    let prompt = "Tell me about rate limits.";
    let cfg = config(model);
    // The reply as it would be, never cut.
    let whole = MockServer::start(crate::support::mock::quick_mock())
        .await
        .expect("mock");
    let mut c = Conversation {
        turns: vec![Turn::new(prompt, model)],
    };
    let uncut = run(&whole, c.request_for(0, &cfg, None), c.turns[0].clone()).await;
    assert!(matches!(uncut.state, ReplyState::Complete { .. }));
    assert!(uncut.assistant.len() > 200, "a reply long enough to cut");

    // The same reply, dropped mid-stream.
    let cutting = MockServer::start(MockConfig {
        script: vec![ScriptStep::Drop { after_tokens: 30 }],
        ..crate::support::mock::quick_mock()
    })
    .await
    .expect("mock");
    let cut = run(&cutting, c.request_for(0, &cfg, None), c.turns[0].clone()).await;
    assert!(
        matches!(cut.state, ReplyState::Interrupted { .. }),
        "{cut:?}"
    );
    assert!(!cut.assistant.is_empty());
    assert!(cut.assistant.len() < uncut.assistant.len());
    c.turns[0] = cut;

    // Continue it.
    let (request, mode) = c.continue_request(0, &cfg);
    assert_eq!(mode, want);
    let next = continuation_turn(&c.turns[0], model);
    let done = run(&cutting, request, next).await;
    assert!(
        matches!(done.state, ReplyState::Complete { .. }),
        "{done:?}"
    );
    assert_eq!(done.assistant, uncut.assistant, "the reply reads as one");
}

#[tokio::test]
async fn continue_by_prefill_equals_the_uninterrupted_reply() {
    resume_joins_seamlessly("claude-sonnet-4-5", ResumeMode::Prefill).await;
}

#[tokio::test]
async fn continue_by_asking_equals_the_uninterrupted_reply() {
    resume_joins_seamlessly("claude-opus-4-6", ResumeMode::Ask).await;
}

#[tokio::test]
async fn the_mock_refuses_a_prefill_where_the_api_does() {
    let server = MockServer::start(crate::support::mock::quick_mock())
        .await
        .expect("mock");
    let request = |model: &str| {
        MessagesRequest::new(
            model,
            100,
            vec![
                Message::text(Role::User, "hi"),
                Message::text(Role::Assistant, "Hello"),
            ],
        )
    };
    let refused = run(&server, request("claude-opus-4-6"), Turn::new("hi", "m")).await;
    match &refused.state {
        ReplyState::Failed { message, .. } => {
            assert!(
                message.contains("does not support assistant message prefill"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let taken = run(&server, request("claude-sonnet-4-5"), Turn::new("hi", "m")).await;
    assert!(
        matches!(taken.state, ReplyState::Complete { .. }),
        "{taken:?}"
    );
}
