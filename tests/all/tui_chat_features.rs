//! The chat features people expect of a terminal client (edit and resend, copy, search,
//! models, resume, export, attachments, and the small things): a state test for each (keys
//! in, effects out, no terminal) and a snapshot of what it looks like.

use backchat::api::{Message, MessagesRequest, StreamFailure, Usage};
use backchat::retry::TurnEvent;
use backchat::tui::harness::Harness;
use backchat::tui::{Effect, TurnId};
use crossterm::event::{KeyCode, KeyModifiers};
use insta::assert_snapshot;

/// The runs started by these effects: (id, turn index, request).
fn started(effects: &[Effect]) -> Vec<(TurnId, usize, MessagesRequest)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::StartTurn {
                id,
                turn_index,
                request,
            } => Some((*id, *turn_index, request.clone())),
            _ => None,
        })
        .collect()
}

/// The one run these effects start.
fn only(effects: &[Effect]) -> (TurnId, usize, MessagesRequest) {
    let s = started(effects);
    assert_eq!(s.len(), 1, "{effects:?}");
    s.into_iter().next().expect("one")
}

/// Stream `text` as run `id`'s reply and finish it.
fn reply(h: &mut Harness, id: TurnId, text: &str) -> Vec<Effect> {
    h.turn(
        id,
        TurnEvent::Started {
            request_id: None,
            model: "m".into(),
        },
    );
    h.turn(id, TurnEvent::TextDelta { text: text.into() });
    h.turn(
        id,
        TurnEvent::Finished {
            stop_reason: Some("end_turn".into()),
            usage: Usage::default(),
        },
    )
}

/// The texts of a request's messages, as `role: text`.
fn transcript_of(req: &MessagesRequest) -> Vec<String> {
    req.messages
        .iter()
        .map(|m: &Message| format!("{:?}: {}", m.role, m.joined_text()))
        .collect()
}

/// The screen with the cursor drawn as `▮`.
fn screen_with_cursor(h: &Harness) -> String {
    let (mut buf, cursor) = h.draw();
    if let Some(p) = cursor
        && let Some(cell) = buf.cell_mut((p.x, p.y))
    {
        cell.set_symbol("▮");
    }
    backchat::tui::harness::buffer_text(&buf)
}

/// The screen with a marker row under each row that has search highlights: `^` under the
/// current match (reversed), `~` under the others (yellow background).
fn screen_with_highlights(h: &Harness) -> String {
    let (buf, _) = h.draw();
    let text = backchat::tui::harness::buffer_text(&buf);
    let mut out = String::new();
    for (y, line) in text.lines().enumerate() {
        out.push_str(line);
        out.push('\n');
        let marks: String = (0..buf.area.width)
            .map(|x| {
                let cell = &buf[(x, y as u16)];
                if cell.modifier.contains(ratatui::style::Modifier::REVERSED) {
                    '^'
                } else if cell.bg == ratatui::style::Color::Yellow {
                    '~'
                } else {
                    ' '
                }
            })
            .collect();
        if marks.trim().chars().any(|c| c == '^' || c == '~') && y + 3 < text.lines().count() {
            out.push_str(marks.trim_end());
            out.push('\n');
        }
    }
    out
}

#[test]
fn ctrl_z_suspends_and_keeps_the_mouse_as_it_was() {
    let mut h = Harness::new(80, 24);
    h.type_str("a draft");
    let fx = h.key(KeyCode::Char('z'), KeyModifiers::CONTROL);
    assert_eq!(fx, vec![Effect::Suspend, Effect::SetMouseCapture(true)]);
    assert_eq!(h.app.composer.text(), "a draft", "the draft survives");
    h.key(KeyCode::F(2), KeyModifiers::NONE);
    let fx = h.key(KeyCode::Char('z'), KeyModifiers::CONTROL);
    assert_eq!(fx, vec![Effect::Suspend, Effect::SetMouseCapture(false)]);
}

#[test]
fn up_and_down_move_by_wrapped_row_in_the_composer() {
    let mut h = Harness::new(40, 10);
    h.type_str("one two three four five six seven eight nine ten eleven twelve thirteen");
    // Draw once: the composer learns its width (38 cells of text).
    let _ = h.draw();
    let before = h.app.composer.cursor();
    h.press(KeyCode::Up);
    let after = h.app.composer.cursor();
    assert_eq!(after.0, 0, "same logical line");
    assert!(
        after.1 < before.1,
        "{before:?} -> {after:?}: moved up a row"
    );
    assert_eq!(
        h.app.composer.text(),
        "one two three four five six seven eight nine ten eleven twelve thirteen",
        "no history recall from the middle of the text"
    );
    assert_snapshot!("composer_up_moves_by_wrapped_row", screen_with_cursor(&h));
    h.press(KeyCode::Down);
    assert_eq!(h.app.composer.cursor(), before);
}

#[test]
fn edit_loads_the_last_prompt_and_sending_replaces_the_last_turn() {
    let mut h = Harness::new(60, 20);
    let (id, _, _) = only(&h.submit("What is a token bucket?"));
    reply(&mut h, id, "A bucket of tokens.");
    let (id, _, _) = only(&h.submit("And a leaky bucket?"));
    reply(&mut h, id, "It leaks.");

    assert!(h.submit("/edit").is_empty());
    assert_eq!(h.app.composer.text(), "And a leaky bucket?");
    assert_eq!(h.app.editing, Some(1));
    h.app.composer.set_text("And GCRA?");
    assert_snapshot!("edit_in_progress", h.screen());

    let fx = h.press(KeyCode::Enter);
    assert_eq!(fx[0], Effect::Edited { turn_index: 1 });
    let (id, index, request) = only(&fx);
    assert_eq!(index, 2);
    assert_eq!(
        transcript_of(&request),
        vec![
            "User: What is a token bucket?",
            "Assistant: A bucket of tokens.",
            "User: And GCRA?"
        ],
        "the replaced turn is no longer context"
    );
    assert!(h.app.conversation.turns[1].superseded);
    assert!(h.app.conversation.turns[1].superseded_by_edit);
    assert_eq!(h.app.editing, None);
    reply(&mut h, id, "A virtual scheduling algorithm.");
    assert_snapshot!("edit_resent", h.screen());
}

#[test]
fn up_then_ctrl_e_edits_and_esc_leaves_the_turn_alone() {
    let mut h = Harness::new(60, 20);
    let (id, _, _) = only(&h.submit("first prompt"));
    reply(&mut h, id, "ok");
    h.press(KeyCode::Up);
    assert!(h.app.composer.is_recalling());
    assert!(h.key(KeyCode::Char('e'), KeyModifiers::CONTROL).is_empty());
    assert_eq!(h.app.editing, Some(0));
    assert_eq!(h.app.composer.text(), "first prompt");
    // Ctrl+E is End again while editing text.
    h.press(KeyCode::Home);
    h.key(KeyCode::Char('e'), KeyModifiers::CONTROL);
    assert_eq!(h.app.composer.cursor(), (0, "first prompt".len()));
    h.press(KeyCode::Esc);
    assert_eq!(h.app.editing, None);
    assert!(h.app.composer.is_empty());
    // A plain send after that is a new turn, nothing superseded.
    let fx = h.submit("second");
    assert!(!fx.iter().any(|e| matches!(e, Effect::Edited { .. })));
    assert!(!h.app.conversation.turns[0].superseded);
}

#[test]
fn edit_waits_for_the_reply_in_flight() {
    let mut h = Harness::new(60, 20);
    let _ = only(&h.submit("slow one"));
    assert!(h.submit("/edit").is_empty());
    assert_eq!(h.app.editing, None);
    let notice = h.app.notice.clone().expect("a notice");
    assert!(notice.text.contains("Esc cancels it"), "{notice:?}");
}

const TWO_BLOCKS: &str = "Two ways:\n\n```rust\nfn a() {}\n```\n\nor in Python:\n\n```python\ndef b():\n    pass\n```\n\nEither works.";

#[test]
fn copy_takes_the_reply_its_last_code_block_or_the_nth() {
    let mut h = Harness::new(60, 24);
    let (id, _, _) = only(&h.submit("show me"));
    reply(&mut h, id, TWO_BLOCKS);
    assert_eq!(
        h.submit("/copy"),
        vec![Effect::CopyToClipboard(TWO_BLOCKS.into())]
    );
    assert_eq!(
        h.submit("/copy code"),
        vec![Effect::CopyToClipboard("def b():\n    pass".into())]
    );
    assert_eq!(
        h.submit("/copy code 1"),
        vec![Effect::CopyToClipboard("fn a() {}".into())]
    );
    assert!(h.submit("/copy code 3").is_empty());
    let notice = h.app.notice.clone().expect("a notice").text;
    assert_eq!(
        notice,
        "no code block [3]: the last reply has 2 code blocks"
    );
    // The numbers the commands use are on screen.
    let screen = h.screen();
    assert!(screen.contains("```rust [1]"), "{screen}");
    assert!(screen.contains("```python [2]"), "{screen}");
    assert_snapshot!("code_blocks_numbered", screen);
}

#[test]
fn a_streaming_reply_numbers_its_blocks_the_same_way() {
    let mut h = Harness::new(60, 24);
    let (id, _, _) = only(&h.submit("show me"));
    h.turn(
        id,
        TurnEvent::Started {
            request_id: None,
            model: "m".into(),
        },
    );
    // Fed in small pieces: blocks in finished chunks and in the tail count alike.
    for piece in TWO_BLOCKS.as_bytes().chunks(7) {
        let text = String::from_utf8(piece.to_vec()).expect("ascii");
        h.turn(id, TurnEvent::TextDelta { text });
        let _ = h.draw();
    }
    let screen = h.screen();
    assert!(screen.contains("```rust [1]"), "{screen}");
    assert!(screen.contains("```python [2]"), "{screen}");
}

/// Three finished turns that mention "bucket" four times and "token" three times.
fn bucket_talk(h: &mut Harness) {
    for (q, a) in [
        (
            "What is a token bucket?",
            "A bucket that fills with tokens.",
        ),
        ("And a leaky one?", "Nothing about it here."),
        ("Which bucket wins?", "The token bucket, for bursts."),
    ] {
        let (id, _, _) = only(&h.submit(q));
        reply(h, id, a);
    }
}

#[test]
fn find_highlights_matches_and_jumps_with_a_position() {
    let mut h = Harness::new(60, 24);
    bucket_talk(&mut h);
    let _ = h.draw();
    assert!(h.submit("/find BUCKET").is_empty());
    let s = h.app.search.clone().expect("search is open");
    assert_eq!(s.hits.len(), 4, "{s:?}");
    assert_eq!(s.position(), "4/4", "starts at the newest match");
    assert_snapshot!("search_with_highlights", screen_with_highlights(&h));
    // The current match is reversed, the others marked.
    let (buf, _) = h.draw();
    let styled = |m: ratatui::style::Modifier| {
        buf.content()
            .iter()
            .filter(|c| c.modifier.contains(m))
            .count()
    };
    assert_eq!(
        styled(ratatui::style::Modifier::REVERSED),
        "bucket".len(),
        "one current match"
    );
    h.press(KeyCode::Char('n'));
    assert_eq!(h.app.search.as_ref().unwrap().position(), "1/4", "wraps");
    h.press(KeyCode::Char('n'));
    assert_eq!(h.app.search.as_ref().unwrap().position(), "2/4");
    h.key(KeyCode::Enter, KeyModifiers::SHIFT);
    assert_eq!(h.app.search.as_ref().unwrap().position(), "1/4");
    h.press(KeyCode::Char('N'));
    assert_eq!(h.app.search.as_ref().unwrap().position(), "4/4");
    h.press(KeyCode::Enter);
    assert_eq!(h.app.search.as_ref().unwrap().position(), "1/4");
    h.press(KeyCode::Esc);
    assert!(h.app.search.is_none());
    assert!(!h.screen().contains("find:"));
}

#[test]
fn ctrl_f_searches_as_you_type() {
    let mut h = Harness::new(60, 24);
    bucket_talk(&mut h);
    let _ = h.draw();
    h.key(KeyCode::Char('f'), KeyModifiers::CONTROL);
    for c in "token".chars() {
        h.press(KeyCode::Char(c));
    }
    let s = h.app.search.clone().expect("open");
    assert!(s.editing);
    assert_eq!(s.position(), "3/3");
    assert!(
        h.app.composer.is_empty(),
        "the query is not typed into the composer"
    );
    let (buf, cursor) = h.draw();
    let rule = backchat::tui::harness::find(&buf, "find: token").expect("the search line");
    assert_eq!(
        cursor.map(|p| (p.x, p.y)),
        Some((rule.0 + "find: token".len() as u16, rule.1))
    );
    // Enter keeps the match shown, n then moves on.
    h.press(KeyCode::Enter);
    assert_eq!(h.app.search.as_ref().unwrap().position(), "3/3");
    h.press(KeyCode::Char('n'));
    assert_eq!(h.app.search.as_ref().unwrap().position(), "1/3");
    h.press(KeyCode::Char('/'));
    h.press(KeyCode::Backspace);
    h.press(KeyCode::Backspace);
    h.press(KeyCode::Backspace);
    h.press(KeyCode::Backspace);
    assert_eq!(h.app.search.as_ref().unwrap().query, "t");
    h.press(KeyCode::Char('x'));
    assert_eq!(h.app.search.as_ref().unwrap().position(), "0/0");
}

fn model(id: &str, name: &str, date: &str) -> backchat::api::ModelInfo {
    backchat::api::ModelInfo {
        id: id.into(),
        display_name: name.into(),
        created_at: format!("{date}T00:00:00Z"),
    }
}

fn some_models() -> Vec<backchat::api::ModelInfo> {
    vec![
        model("claude-opus-5-5", "Claude Opus 5.5", "2026-10-14"),
        model("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-10-14"),
        model("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17"),
        model("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-15"),
    ]
}

#[test]
fn model_without_a_name_fetches_the_list_once_and_opens_a_picker() {
    let mut h = Harness::new(80, 20);
    assert_eq!(h.submit("/model"), vec![Effect::ListModels]);
    assert!(h.screen().contains("fetching the model list"));
    h.send(backchat::tui::Msg::Models(Ok(some_models())));
    let p = h.app.model_picker.clone().expect("the picker opens");
    assert_eq!(p.selected, 2, "on the model in use");
    assert_snapshot!("model_picker", h.screen());
    h.press(KeyCode::Up);
    h.press(KeyCode::Enter);
    assert_eq!(h.app.config.model, "claude-sonnet-5-5");
    assert!(h.app.model_picker.is_none());
    // The status bar shows the display name.
    let screen = h.screen();
    assert!(screen.contains("Claude Sonnet 5.5"), "{screen}");
    // Cached for the session: no second fetch.
    assert!(h.submit("/model").is_empty());
    assert!(h.app.model_picker.is_some());
    h.press(KeyCode::Esc);
    assert!(h.app.model_picker.is_none());
}

#[test]
fn model_names_complete_on_tab() {
    let mut h = Harness::new(80, 20);
    h.type_str("/model claude-h");
    // Not fetched yet: Tab fetches, and completes when the list arrives.
    assert_eq!(h.press(KeyCode::Tab), vec![Effect::ListModels]);
    h.send(backchat::tui::Msg::Models(Ok(some_models())));
    assert_eq!(h.app.composer.text(), "/model claude-haiku-4-5");
    h.app.composer.set_text("/model claude-s");
    h.press(KeyCode::Tab);
    assert_eq!(h.app.composer.text(), "/model claude-sonnet-");
    let notice = h.app.notice.clone().expect("the candidates").text;
    assert_eq!(notice, "claude-sonnet-5-5  claude-sonnet-4-6");
    // Elsewhere Tab is a tab.
    h.app.composer.set_text("x");
    h.press(KeyCode::Tab);
    assert_eq!(h.app.composer.text(), "x   ", "a tab, expanded to its stop");
}

#[test]
fn a_failed_model_list_says_why_and_keeps_the_model() {
    let mut h = Harness::new(80, 20);
    h.submit("/model");
    h.send(backchat::tui::Msg::Models(Err(
        "401 authentication_error: invalid x-api-key".into(),
    )));
    assert!(h.app.model_picker.is_none());
    let notice = h.app.notice.clone().expect("a notice").text;
    assert!(
        notice.starts_with("cannot list the models: 401"),
        "{notice}"
    );
    assert_eq!(h.app.config.model, backchat::config::DEFAULT_MODEL);
}

#[tokio::test]
async fn the_model_list_comes_from_the_mock_and_holds_the_default_model() {
    let server = backchat::mock::MockServer::start(backchat::mock::MockConfig::default())
        .await
        .expect("mock");
    let http = backchat::api::HttpTransport::new(backchat::api::HttpTransportConfig::new(
        server.base_url(),
        backchat::secret::ApiKey::new("sk-test"),
    ))
    .expect("client");
    let models = http.list_models().await.expect("listed");
    assert!(models.len() >= 5, "{models:?}");
    assert!(models.iter().all(|m| !m.display_name.is_empty()));
    assert!(
        models
            .iter()
            .any(|m| m.id == backchat::config::DEFAULT_MODEL),
        "the default model is a current one"
    );
}
/// Stream `text` as run `id`'s reply, then break the stream.
fn reply_broken(h: &mut Harness, id: TurnId, text: &str) -> Vec<Effect> {
    h.turn(
        id,
        TurnEvent::Started {
            request_id: None,
            model: "m".into(),
        },
    );
    h.turn(id, TurnEvent::TextDelta { text: text.into() });
    h.turn(
        id,
        TurnEvent::Interrupted {
            error: StreamFailure::EndedEarly,
            partial_kept: true,
        },
    )
}

#[test]
fn ctrl_r_on_a_broken_reply_offers_retry_or_continue() {
    let mut h = Harness::new(72, 20);
    let (id, _, _) = only(&h.submit("Tell me a story."));
    reply_broken(&mut h, id, "Once upon a time there was a ");
    let screen = h.screen();
    assert!(screen.contains("Ctrl+R to retry or continue"), "{screen}");
    assert!(h.key(KeyCode::Char('r'), KeyModifiers::CONTROL).is_empty());
    assert_eq!(h.app.resume_choice, Some(0));
    assert_snapshot!("resume_choice", h.screen());
    // Esc: neither.
    h.press(KeyCode::Esc);
    assert_eq!(h.app.resume_choice, None);
    // c: continue. The default model takes no prefill: the request asks to continue.
    h.key(KeyCode::Char('r'), KeyModifiers::CONTROL);
    let fx = h.press(KeyCode::Char('c'));
    assert_eq!(fx[0], Effect::Superseded { turn_index: 0 });
    let (id, index, request) = only(&fx);
    assert_eq!(index, 1);
    assert_eq!(
        transcript_of(&request),
        vec![
            "User: Tell me a story.".to_string(),
            "Assistant: Once upon a time there was a".to_string(),
            format!("User: {}", backchat::chat::resume::CONTINUE_PROMPT),
        ]
    );
    assert_eq!(
        h.app.conversation.turns[1].assistant,
        "Once upon a time there was a"
    );
    reply(&mut h, id, " dragon.");
    assert_eq!(
        h.app.conversation.turns[1].assistant, "Once upon a time there was a dragon.",
        "the continuation joins the partial text"
    );
    assert_snapshot!("resume_continued", h.screen());
}

#[test]
fn r_in_the_choice_retries_from_scratch_and_an_old_model_prefills() {
    let mut h = Harness::new(72, 20);
    h.submit("/model claude-sonnet-4-5");
    let (id, _, _) = only(&h.submit("Tell me a story."));
    reply_broken(&mut h, id, "Once upon");
    h.key(KeyCode::Char('r'), KeyModifiers::CONTROL);
    let fx = h.press(KeyCode::Char('r'));
    let (_, _, request) = only(&fx);
    assert_eq!(transcript_of(&request), vec!["User: Tell me a story."]);
    assert!(h.app.conversation.turns[1].assistant.is_empty());
    // Break that one too, and continue it: a prefill this time.
    let id = started(&fx)[0].0;
    reply_broken(&mut h, id, "Long ago ");
    let (_, _, request) = only(&h.submit("/continue"));
    assert_eq!(
        transcript_of(&request),
        vec!["User: Tell me a story.", "Assistant: Long ago"]
    );
}

#[test]
fn export_writes_the_conversation_as_markdown() {
    let mut h = Harness::new(60, 20);
    let (id, _, _) = only(&h.submit("show me"));
    reply(&mut h, id, TWO_BLOCKS);
    let (id, _, _) = only(&h.submit("and then?"));
    reply_broken(&mut h, id, "Then we");
    let fx = h.submit("/export");
    let [
        Effect::WriteFile {
            path,
            text,
            overwrite,
        },
    ] = &fx[..]
    else {
        panic!("{fx:?}");
    };
    assert_eq!(
        path, "conversation.md",
        "named after the session (none here)"
    );
    assert!(!overwrite, "a default name never replaces a file");
    // The date is the export's: cut it out of the snapshot.
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("date: "))
        .flat_map(|l| [l, "\n"])
        .collect();
    assert_snapshot!("export_markdown", text);
    let fx = h.submit("/export out.md");
    assert!(
        matches!(&fx[..], [Effect::WriteFile { path, overwrite: true, .. }] if path == "out.md")
    );
}

#[test]
fn a_resumed_session_can_be_edited_with_up_then_ctrl_e() {
    let mut h = Harness::new(60, 20);
    let mut t = backchat::chat::Turn::new("an old prompt", "m");
    t.assistant = "an old answer".into();
    t.state = backchat::chat::ReplyState::Complete { stop_reason: None };
    h.load(vec![t]);
    h.press(KeyCode::Up);
    assert_eq!(h.app.composer.text(), "an old prompt");
    h.key(KeyCode::Char('e'), KeyModifiers::CONTROL);
    assert_eq!(h.app.editing, Some(0));
}

fn tiny_png(w: u32, h: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend(w.to_be_bytes());
    png.extend(h.to_be_bytes());
    png.extend([8, 6, 0, 0, 0]);
    png
}

#[test]
fn attach_shows_a_chip_with_its_token_estimate_and_goes_with_the_next_prompt() {
    use backchat::chat::attach::Attachment;
    let mut h = Harness::new(70, 16);
    assert_eq!(
        h.submit("/attach ~/notes.txt"),
        vec![Effect::ReadAttachment("~/notes.txt".into())]
    );
    let notes = Attachment::from_bytes("notes.txt", "line one\nline two\n".repeat(40).as_bytes())
        .expect("text");
    h.send(backchat::tui::Msg::Attached(Ok(Box::new(notes))));
    let cat = Attachment::from_bytes("cat.png", &tiny_png(600, 400)).expect("png");
    h.send(backchat::tui::Msg::Attached(Ok(Box::new(cat))));
    h.type_str("What do these say?");
    let screen = h.screen();
    assert!(screen.contains("📎 notes.txt · ~187 tokens"), "{screen}");
    assert!(screen.contains("📎 cat.png · ~320 tokens"), "{screen}");
    assert_snapshot!("attachment_chips", screen);

    let (_, _, request) = only(&h.press(KeyCode::Enter));
    let kinds: Vec<String> = request.messages[0]
        .content
        .iter()
        .map(|b| match b {
            backchat::api::ContentBlock::Text { text, .. } => {
                format!("text: {}", text.lines().next().unwrap_or(""))
            }
            backchat::api::ContentBlock::Image { source, .. } => {
                format!("image: {}", source.media_type)
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "text: [attachment: notes.txt (text/plain, 720 bytes)]",
            "text: [attachment: cat.png (image/png, 29 bytes)]",
            "image: image/png",
            "text: What do these say?",
        ]
    );
    assert!(h.app.attachments.is_empty(), "sent with this prompt only");
    assert_eq!(h.app.conversation.turns[0].attachments.len(), 2);
    let screen = h.screen();
    assert!(
        screen.contains("📎 notes.txt  📎 cat.png"),
        "named in the transcript: {screen}"
    );
    let fx = h.submit("/export");
    let [Effect::WriteFile { text, .. }] = &fx[..] else {
        panic!("{fx:?}")
    };
    assert!(
        text.contains(
            "*Attached: `notes.txt` (text/plain, 720 bytes), `cat.png` (image/png, 29 bytes)*"
        ),
        "{text}"
    );
}

#[test]
fn attachments_that_break_a_limit_are_refused_with_the_reason() {
    let mut h = Harness::new(70, 16);
    h.send(backchat::tui::Msg::Attached(Err(
        "a.out: not text, an image (PNG, JPEG, GIF, WebP) or a PDF; binary files cannot be attached"
            .into(),
    )));
    let notice = h.app.notice.clone().expect("a notice").text;
    assert!(notice.starts_with("cannot attach a.out"), "{notice}");
    // More tokens than the input bucket holds.
    let mut q = backchat::quota::QuotaSnapshot::empty(h.now);
    q.input_tokens = Some(backchat::quota::BucketQuota {
        limit: Some(100),
        remaining: Some(100),
        reset: None,
    });
    h.app.quota = Some(q);
    let big =
        backchat::chat::attach::Attachment::from_bytes("big.txt", "word ".repeat(200).as_bytes())
            .expect("text");
    h.send(backchat::tui::Msg::Attached(Ok(Box::new(big))));
    assert!(h.app.attachments.is_empty());
    let notice = h.app.notice.clone().expect("a notice").text;
    assert!(
        notice.contains("more than the input-token bucket holds"),
        "{notice}"
    );
}

#[test]
fn at_path_attaches_before_sending_and_tab_completes_paths() {
    use backchat::chat::attach::Attachment;
    use backchat::tui::Msg;
    let mut h = Harness::new(70, 16);
    h.type_str("Summarise @./no");
    assert_eq!(
        h.press(KeyCode::Tab),
        vec![Effect::CompletePath("./no".into())]
    );
    h.send(Msg::PathCompletions {
        partial: "./no".into(),
        matches: vec!["./notes.txt".into(), "./notes/".into()],
    });
    assert_eq!(h.app.composer.text(), "Summarise @./notes");
    h.send(Msg::PathCompletions {
        partial: "./notes".into(),
        matches: vec!["./notes.txt".into()],
    });
    assert_eq!(h.app.composer.text(), "Summarise @./notes.txt");

    let fx = h.press(KeyCode::Enter);
    assert_eq!(
        fx,
        vec![Effect::ReadForPrompt {
            prompt: "Summarise @./notes.txt".into(),
            paths: vec!["./notes.txt".into()],
        }]
    );
    // A file that cannot be attached gives the prompt back.
    let fx = h.send(Msg::PromptFiles {
        prompt: "Summarise @./notes.txt".into(),
        files: vec![Err("./notes.txt: No such file or directory".into())],
    });
    assert!(fx.is_empty());
    assert_eq!(h.app.composer.text(), "Summarise @./notes.txt");
    h.app.composer.clear();
    let notes = Attachment::from_bytes("notes.txt", b"a note").expect("text");
    let fx = h.send(Msg::PromptFiles {
        prompt: "Summarise @./notes.txt".into(),
        files: vec![Ok(Box::new(notes))],
    });
    let (_, _, request) = only(&fx);
    assert_eq!(
        transcript_of(&request),
        vec!["User: [attachment: notes.txt (text/plain, 6 bytes)]\na noteSummarise @./notes.txt"]
    );
    // `/attach` completes too; an @name without a dot or slash is just text.
    h.type_str("/attach ~/Doc");
    assert_eq!(
        h.press(KeyCode::Tab),
        vec![Effect::CompletePath("~/Doc".into())]
    );
    h.app.composer.set_text("thanks @alice");
    assert!(started(&h.press(KeyCode::Enter)).len() == 1);
}
