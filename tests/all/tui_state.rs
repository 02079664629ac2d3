//! State tests without a terminal: a key or message in, effects out. `update` does no IO and
//! returns the work as data, so the tests check the effects instead of running them. The
//! clock is the harness's: no sleeps.

use std::time::Duration;

use backchat::api::{StreamFailure, Usage};
use backchat::chat::ReplyState;
use backchat::quota::Bucket;
use backchat::retry::{DelaySource, TurnEvent, WaitCause};
use backchat::tui::app::Scroll;
use backchat::tui::harness::Harness;
use backchat::tui::{Effect, TurnId};
use crossterm::event::{KeyCode, KeyModifiers, MouseEvent, MouseEventKind};

fn started(effects: &[Effect]) -> Vec<(TurnId, usize, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::StartTurn {
                id,
                turn_index,
                request,
            } => Some((
                *id,
                *turn_index,
                request
                    .messages
                    .last()
                    .map(backchat::api::Message::joined_text)
                    .unwrap_or_default(),
            )),
            _ => None,
        })
        .collect()
}

fn only_id(effects: &[Effect]) -> TurnId {
    let s = started(effects);
    assert_eq!(s.len(), 1, "{effects:?}");
    s[0].0
}

#[test]
fn enter_with_text_starts_a_turn_and_empty_enter_does_nothing() {
    let mut h = Harness::new(80, 24);
    assert!(h.press(KeyCode::Enter).is_empty());
    h.type_str("hello");
    let fx = h.press(KeyCode::Enter);
    let s = started(&fx);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].1, 0);
    assert_eq!(s[0].2, "hello");
    assert!(h.app.composer.is_empty());
    assert_eq!(h.app.conversation.turns[0].state, ReplyState::Pending);
    // The request is valid API input: one user message, the configured model.
    match &fx[0] {
        Effect::StartTurn { request, .. } => {
            assert_eq!(request.messages.len(), 1);
            assert_eq!(request.model, h.app.config.model);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn newline_keys_never_send() {
    let mut h = Harness::new(80, 24);
    h.type_str("a");
    for m in [KeyModifiers::SHIFT, KeyModifiers::ALT] {
        assert!(h.key(KeyCode::Enter, m).is_empty());
    }
    assert!(h.key(KeyCode::Char('j'), KeyModifiers::CONTROL).is_empty());
    h.type_str("b");
    assert_eq!(h.app.composer.text(), "a\n\n\nb");
}

#[test]
fn esc_while_waiting_cancels_and_keeps_the_partial_text() {
    let mut h = Harness::new(80, 24);
    let id = only_id(&h.submit("tell me a story"));
    h.turn(
        id,
        TurnEvent::Started {
            request_id: None,
            model: "m".into(),
        },
    );
    h.turn(
        id,
        TurnEvent::TextDelta {
            text: "Once upon a time".into(),
        },
    );
    let fx = h.press(KeyCode::Esc);
    assert!(
        fx.contains(&Effect::CancelTurn { id, turn_index: 0 }),
        "{fx:?}"
    );
    // The ended turn travels with the effect, partial text and all, to be saved.
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::TurnEnded { turn_index: 0, turn }
            if turn.assistant == "Once upon a time" && turn.state == ReplyState::Cancelled
    )));
    let t = &h.app.conversation.turns[0];
    assert_eq!(t.assistant, "Once upon a time");
    assert_eq!(t.state, ReplyState::Cancelled);
    // Late events of the cancelled run are ignored.
    h.turn(
        id,
        TurnEvent::TextDelta {
            text: " more".into(),
        },
    );
    assert_eq!(h.app.conversation.turns[0].assistant, "Once upon a time");
    assert!(!h.app.is_busy());
}

#[test]
fn esc_during_a_retry_wait_cancels_the_wait() {
    let mut h = Harness::new(80, 24);
    let id = only_id(&h.submit("hi"));
    let until = h.now + Duration::from_secs(30);
    h.turn(
        id,
        TurnEvent::RetryScheduled {
            attempt: 2,
            max_attempts: 9,
            delay: Duration::from_secs(30),
            until,
            cause: WaitCause::RateLimit,
            status: Some(429),
            error_type: Some("rate_limit_error".into()),
            source: DelaySource::RetryAfter,
            message: "429".into(),
            request_id: None,
        },
    );
    let fx = h.press(KeyCode::Esc);
    assert!(fx.contains(&Effect::CancelTurn { id, turn_index: 0 }));
}

#[test]
fn ctrl_c_twice_quits() {
    let mut h = Harness::new(80, 24);
    let id = only_id(&h.submit("hi"));
    let fx = h.key(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(fx.contains(&Effect::CancelTurn { id, turn_index: 0 }));
    assert!(!fx.contains(&Effect::Quit));
    // Idle now: the second one quits, however late.
    h.advance(Duration::from_secs(10));
    let fx = h.key(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(fx.contains(&Effect::Quit), "{fx:?}");
}

#[test]
fn ctrl_c_while_busy_again_later_cancels_rather_than_quits() {
    let mut h = Harness::new(80, 24);
    h.key(KeyCode::Char('c'), KeyModifiers::CONTROL);
    // Something else happens in between: the first press no longer counts.
    h.submit("hi");
    let fx = h.key(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(!fx.contains(&Effect::Quit));
    // A second press within 2 s quits.
    h.advance(Duration::from_millis(500));
    let fx = h.key(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(fx.contains(&Effect::Quit));
}

#[test]
fn ctrl_r_retries_a_failed_turn_with_the_same_prompt() {
    let mut h = Harness::new(80, 24);
    let id = only_id(&h.submit("what is 2+2?"));
    h.turn(
        id,
        TurnEvent::Failed(backchat::retry::TurnFailure {
            kind: backchat::retry::FailureKind::RetriesExhausted,
            message: "Gave up after 9 attempts".into(),
            api: None,
            transport: None,
            resets_at: None,
            attempts: 9,
        }),
    );
    let fx = h.key(KeyCode::Char('r'), KeyModifiers::CONTROL);
    let s = started(&fx);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].1, 1, "a new turn");
    assert_eq!(s[0].2, "what is 2+2?");
    assert!(h.app.conversation.turns[0].superseded);
    // The session is told, so a resumed conversation leaves the old turn out too.
    assert_eq!(fx[0], Effect::Superseded { turn_index: 0 });
    // The superseded turn is left out: the request holds the prompt once.
    match &fx[1] {
        Effect::StartTurn { request, .. } => assert_eq!(request.messages.len(), 1),
        other => panic!("{other:?}"),
    }
    // Nothing left to retry.
    assert!(started(&h.key(KeyCode::Char('r'), KeyModifiers::CONTROL)).is_empty());
}

#[test]
fn burst_starts_n_turns_each_with_its_own_prompt() {
    let mut h = Harness::new(80, 24);
    let fx = h.submit("/burst 3");
    let s = started(&fx);
    assert_eq!(s.len(), 3);
    assert_eq!(h.app.live.len(), 3);
    for (i, (_, idx, prompt)) in s.iter().enumerate() {
        assert_eq!(*idx, i);
        assert!(
            prompt.starts_with(&format!("[burst {}/3]", i + 1)),
            "{prompt}"
        );
    }
    let fx = h.submit("/burst 999");
    assert_eq!(started(&fx).len(), 50, "capped");
}

#[test]
fn commands_change_the_model_and_report_unknowns() {
    let mut h = Harness::new(80, 24);
    assert!(h.submit("/model x").is_empty());
    assert_eq!(h.app.config.model, "x");
    let fx = h.submit("hi");
    match &fx[0] {
        Effect::StartTurn { request, .. } => assert_eq!(request.model, "x"),
        other => panic!("{other:?}"),
    }
    h.submit("/system be terse");
    assert_eq!(h.app.config.system.as_deref(), Some("be terse"));
    h.submit("/nope");
    let n = h.app.notice.clone().expect("a notice");
    assert!(n.text.contains("unknown command /nope"), "{}", n.text);
    assert!(h.submit("/quit").contains(&Effect::Quit));
}

#[test]
fn up_on_the_first_line_recalls_earlier_prompts() {
    let mut h = Harness::new(80, 24);
    h.submit("first");
    h.submit("second");
    h.press(KeyCode::Up);
    assert_eq!(h.app.composer.text(), "second");
    h.press(KeyCode::Up);
    assert_eq!(h.app.composer.text(), "first");
    h.press(KeyCode::Down);
    assert_eq!(h.app.composer.text(), "second");
    h.press(KeyCode::Down);
    assert_eq!(h.app.composer.text(), "");
}

#[test]
fn paste_inserts_without_sending() {
    let mut h = Harness::new(80, 24);
    let fx = h.paste("line one\nline two\n");
    assert!(fx.is_empty());
    assert_eq!(h.app.composer.text(), "line one\nline two\n");
    assert!(h.app.conversation.turns.is_empty());
}

#[test]
fn typing_keeps_working_while_a_reply_streams() {
    let mut h = Harness::new(80, 24);
    let id = only_id(&h.submit("hi"));
    h.turn(
        id,
        TurnEvent::Started {
            request_id: None,
            model: "m".into(),
        },
    );
    h.type_str("next ");
    h.turn(
        id,
        TurnEvent::TextDelta {
            text: "Hello".into(),
        },
    );
    h.type_str("question");
    assert_eq!(h.app.composer.text(), "next question");
    // Sending while another turn streams starts a second one.
    assert_eq!(started(&h.press(KeyCode::Enter)).len(), 1);
    assert_eq!(h.app.live.len(), 2);
}

#[test]
fn finished_and_interrupted_turns_end_with_turn_ended() {
    let mut h = Harness::new(80, 24);
    let id = only_id(&h.submit("hi"));
    h.turn(
        id,
        TurnEvent::Started {
            request_id: Some("req_1".into()),
            model: "m".into(),
        },
    );
    h.turn(
        id,
        TurnEvent::TextDelta {
            text: "partial".into(),
        },
    );
    let fx = h.turn(
        id,
        TurnEvent::Interrupted {
            error: StreamFailure::Disconnected("reset by peer".into()),
            partial_kept: true,
        },
    );
    assert!(
        matches!(&fx[..], [Effect::TurnEnded { turn_index: 0, turn }] if matches!(turn.state, ReplyState::Interrupted { .. })),
        "{fx:?}"
    );
    assert!(matches!(
        h.app.conversation.turns[0].state,
        ReplyState::Interrupted { .. }
    ));
    let id = only_id(&h.submit("again"));
    let fx = h.turn(
        id,
        TurnEvent::Finished {
            stop_reason: Some("end_turn".into()),
            usage: Usage::default(),
        },
    );
    assert!(
        matches!(&fx[..], [Effect::TurnEnded { turn_index: 1, turn }] if turn.user == "again"),
        "{fx:?}"
    );
}

#[test]
fn status_countdown_is_never_negative() {
    let mut h = Harness::new(100, 20);
    let id = only_id(&h.submit("hi"));
    let until = h.now + Duration::from_millis(2100);
    h.turn(
        id,
        TurnEvent::Pacing {
            delay: Duration::from_millis(2100),
            until,
            bucket: Bucket::InputTokens,
            source: DelaySource::Pacer,
        },
    );
    assert!(h.screen().contains("pacing 2.1s (input tokens)"));
    h.advance(Duration::from_secs(5));
    let screen = h.screen();
    assert!(screen.contains("pacing 0.0s (input tokens)"), "{screen}");
    assert!(!screen.contains("pacing -"), "no negative countdown");
}

#[test]
fn follows_the_bottom_unless_scrolled_up() {
    let mut h = Harness::new(60, 12);
    let id = only_id(&h.submit("write a lot"));
    h.turn(
        id,
        TurnEvent::Started {
            request_id: None,
            model: "m".into(),
        },
    );
    for i in 0..40 {
        h.turn(
            id,
            TurnEvent::TextDelta {
                text: format!("line {i}\n\n"),
            },
        );
    }
    assert!(h.screen().contains("line 39"), "follows while streaming");
    h.press(KeyCode::PageUp);
    assert!(matches!(h.app.scroll, Scroll::At(_)));
    let before = h.screen();
    h.turn(
        id,
        TurnEvent::TextDelta {
            text: "line 40\n\n".into(),
        },
    );
    let after = h.screen();
    assert!(!after.contains("line 40"));
    // The view stays put (apart from the "more below" counter).
    let strip = |s: &str| s.lines().take(4).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&before), strip(&after));
    // The wheel down to the bottom follows again.
    for _ in 0..30 {
        h.send(backchat::tui::Msg::Mouse(MouseEvent {
            kind: MouseEventKind::ScrollDown,
            column: 0,
            row: 0,
            modifiers: KeyModifiers::NONE,
        }));
        h.screen();
    }
    assert_eq!(h.app.scroll, Scroll::Bottom);
    h.turn(
        id,
        TurnEvent::TextDelta {
            text: "line 41".into(),
        },
    );
    assert!(h.screen().contains("line 41"));
}

#[test]
fn help_opens_with_question_mark_on_an_empty_composer_and_closes_with_esc() {
    let mut h = Harness::new(80, 30);
    h.press(KeyCode::Char('?'));
    assert!(h.app.help_open);
    h.press(KeyCode::Esc);
    assert!(!h.app.help_open);
    h.type_str("why?");
    assert!(!h.app.help_open);
    assert_eq!(h.app.composer.text(), "why?");
    h.press(KeyCode::F(1));
    assert!(h.app.help_open);
}

#[test]
fn f2_releases_and_retakes_the_mouse() {
    let mut h = Harness::new(80, 24);
    assert_eq!(h.press(KeyCode::F(2)), vec![Effect::SetMouseCapture(false)]);
    assert_eq!(h.press(KeyCode::F(2)), vec![Effect::SetMouseCapture(true)]);
}

#[test]
fn clear_cancels_in_flight_turns_and_ignores_their_late_events() {
    let mut h = Harness::new(80, 24);
    let id = only_id(&h.submit("hi"));
    let fx = h.submit("/clear");
    assert!(fx.contains(&Effect::CancelTurn { id, turn_index: 0 }));
    assert!(h.app.conversation.turns.is_empty());
    h.turn(
        id,
        TurnEvent::TextDelta {
            text: "late".into(),
        },
    );
    assert!(h.app.conversation.turns.is_empty());
    // New turns get new ids, never reused.
    let id2 = only_id(&h.submit("again"));
    assert_ne!(id, id2);
}

#[test]
fn the_key_never_reaches_the_app() {
    let mut config = backchat::tui::harness::test_config();
    config.api_key = backchat::secret::ApiKey::new("sk-ant-secret-key");
    let app = backchat::tui::App::new(
        config,
        false,
        false,
        backchat::tui::theme::Theme::default(),
        tokio::time::Instant::now(),
    );
    assert!(app.config.api_key.is_none());
}

#[test]
fn only_the_turn_ctrl_r_would_retry_shows_the_hint() {
    let mut h = Harness::new(80, 40);
    for prompt in ["one", "two"] {
        let id = only_id(&h.submit(prompt));
        h.turn(
            id,
            TurnEvent::Interrupted {
                error: StreamFailure::EndedEarly,
                partial_kept: false,
            },
        );
        let _ = h.draw();
    }
    assert_eq!(h.screen().matches("Ctrl+R to retry").count(), 1);
    h.key(KeyCode::Char('r'), KeyModifiers::CONTROL);
    let screen = h.screen();
    assert!(screen.contains("superseded by a retry"), "{screen}");
    // The first one is now the target again.
    assert_eq!(screen.matches("Ctrl+R to retry").count(), 1);
    assert_eq!(h.app.retry_target(), Some(0));
}

fn session_info(
    name: &str,
    turns: usize,
    ago_secs: u64,
    h: &Harness,
) -> backchat::chat::SessionInfo {
    backchat::chat::SessionInfo {
        name: name.into(),
        path: std::path::PathBuf::from(format!("/tmp/{name}.jsonl")),
        modified: backchat::clock::wall_at(h.now) - Duration::from_secs(ago_secs),
        turns,
        first_prompt: Some(format!("first prompt of {name}")),
    }
}

#[test]
fn sessions_picker_lists_moves_and_opens() {
    let mut h = Harness::new(100, 24);
    h.send(backchat::tui::Msg::SessionOpened {
        name: "today".into(),
        turns: Vec::new(),
        issues: Vec::new(),
    });
    assert_eq!(h.submit("/sessions"), vec![Effect::ListSessions]);
    // Nothing saved yet: a notice, no picker.
    h.send(backchat::tui::Msg::SessionList(Vec::new()));
    assert!(h.app.picker.is_none());
    assert!(
        h.app
            .notice
            .as_ref()
            .is_some_and(|n| n.text.contains("no saved sessions"))
    );

    let items = vec![
        session_info("today", 2, 30, &h),
        session_info("yesterday", 12, 90_000, &h),
    ];
    h.send(backchat::tui::Msg::SessionList(items));
    let p = h.app.picker.as_ref().expect("picker open");
    assert_eq!(p.selected, 0, "the current session is selected");
    // Typing does not reach the composer while the picker is open.
    h.press(KeyCode::Down);
    h.press(KeyCode::Down);
    assert_eq!(
        h.app.picker.as_ref().map(|p| p.selected),
        Some(1),
        "stops at the last"
    );
    assert!(h.app.composer.is_empty());
    let fx = h.press(KeyCode::Enter);
    assert_eq!(fx, vec![Effect::OpenSession("yesterday".into())]);
    assert!(h.app.picker.is_none());

    // The loop answers with the session's turns.
    let mut t = backchat::chat::Turn::new("old question", "m");
    t.assistant = "old answer".into();
    t.state = ReplyState::Complete { stop_reason: None };
    h.send(backchat::tui::Msg::SessionOpened {
        name: "yesterday".into(),
        turns: vec![t],
        issues: vec!["line 3: not JSON".into()],
    });
    assert_eq!(h.app.session_name.as_deref(), Some("yesterday"));
    assert_eq!(h.app.conversation.turns.len(), 1);
    let notice = h.app.notice.as_ref().expect("notice");
    assert!(notice.text.contains("line 3: not JSON"), "{}", notice.text);
    assert!(h.screen().contains("old answer"));
}

#[test]
fn escape_closes_the_picker_without_opening() {
    let mut h = Harness::new(100, 24);
    let items = vec![session_info("a", 1, 10, &h)];
    h.send(backchat::tui::Msg::SessionList(items));
    assert!(h.press(KeyCode::Esc).is_empty());
    assert!(h.app.picker.is_none());
}

#[test]
fn clear_starts_a_new_session_and_rename_asks_the_loop() {
    let mut h = Harness::new(100, 24);
    let id = only_id(&h.submit("hello"));
    let fx = h.submit("/clear");
    assert!(fx.contains(&Effect::CancelTurn { id, turn_index: 0 }));
    assert_eq!(fx.last(), Some(&Effect::NewSession), "{fx:?}");
    assert!(h.app.conversation.turns.is_empty());
    assert_eq!(h.submit("/new"), vec![Effect::NewSession]);
    assert_eq!(
        h.submit("/rename trip notes"),
        vec![Effect::RenameSession("trip notes".into())]
    );
    h.send(backchat::tui::Msg::SessionRenamed("trip notes".into()));
    assert_eq!(h.app.session_name.as_deref(), Some("trip notes"));
    assert!(h.screen().contains("session trip notes"));
}

#[test]
fn help_scrolls_on_a_small_terminal() {
    let mut h = Harness::new(60, 12);
    h.press(KeyCode::F(1));
    let top = h.screen();
    assert!(top.contains("↓ more"), "{top}");
    assert!(!top.contains("/quit"));
    h.press(KeyCode::End);
    let bottom = h.screen();
    assert!(
        bottom.contains("↑ more") && !bottom.contains("↓"),
        "{bottom}"
    );
    assert!(bottom.contains("The status bar shows"), "{bottom}");
    h.press(KeyCode::Esc);
    assert!(!h.app.help_open);
    // Opening it again starts at the top.
    h.press(KeyCode::F(1));
    assert!(h.screen().contains("↓ more"));
}
