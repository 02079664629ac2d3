//! Snapshots of every state a person can see, drawn into a fixed-size buffer at a
//! fixed `now`. Widgets (status bar, quota gauges) are also snapshotted on their own, so a
//! change in one place does not churn everything. Where colour carries meaning, the cell
//! styles are asserted too.

use std::time::Duration;

use backchat::api::{ApiError, StreamFailure, TransportError, Usage};
use backchat::quota::{Bucket, BucketQuota, QuotaSnapshot};
use backchat::retry::policy::advice_for;
use backchat::retry::{DelaySource, FailureKind, TurnEvent, TurnFailure, WaitCause};
use backchat::tui::harness::{Harness, buffer_text, find};
use backchat::tui::theme::Theme;
use backchat::tui::view::{quota_panel, status_bar};
use backchat::tui::{Effect, TurnId};
use crossterm::event::KeyCode;
use insta::assert_snapshot;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier};
use tokio::time::Instant;

fn id_of(effects: &[Effect]) -> TurnId {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::StartTurn { id, .. } => Some(*id),
            _ => None,
        })
        .expect("a turn started")
}

fn bucket(remaining: u64, limit: u64, reset: Option<Instant>) -> Option<BucketQuota> {
    Some(BucketQuota {
        limit: Some(limit),
        remaining: Some(remaining),
        reset,
    })
}

/// Requests 3/5, input 12k/20k, output 4k/8k, resetting in 12 s, read at `at`.
fn quota(at: Instant) -> QuotaSnapshot {
    let reset = Some(at + Duration::from_secs(12));
    QuotaSnapshot {
        read_at: at,
        requests: bucket(3, 5, reset),
        input_tokens: bucket(12_000, 20_000, reset),
        output_tokens: bucket(4_000, 8_000, reset),
        tokens: None,
    }
}

fn low_quota(at: Instant) -> QuotaSnapshot {
    QuotaSnapshot {
        read_at: at,
        requests: bucket(0, 5, Some(at + Duration::from_millis(8_300))),
        input_tokens: bucket(1_000, 20_000, Some(at + Duration::from_secs(41))),
        output_tokens: bucket(7_000, 8_000, Some(at + Duration::from_secs(3))),
        tokens: None,
    }
}

fn failure(kind: FailureKind, message: String, api: Option<ApiError>) -> TurnEvent {
    TurnEvent::Failed(TurnFailure {
        kind,
        message,
        api,
        transport: None,
        resets_at: None,
        attempts: 1,
    })
}

fn api_error(status: u16, kind: &str, message: &str) -> ApiError {
    ApiError::from_response(
        status,
        http::HeaderMap::new(),
        format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"{message}"}},"request_id":"req_011CTest"}}"#)
            .as_bytes(),
    )
}

fn retry_429(h: &Harness, attempt: u32, secs: f64) -> TurnEvent {
    let delay = Duration::from_secs_f64(secs);
    TurnEvent::RetryScheduled {
        attempt,
        max_attempts: 9,
        delay,
        until: h.now + delay,
        cause: WaitCause::RateLimit,
        status: Some(429),
        error_type: Some("rate_limit_error".into()),
        source: DelaySource::RetryAfter,
        message: "429 rate_limit_error".into(),
        request_id: None,
    }
}

const REPLY: &str = "## Backoff with jitter\n\nWhen the server says **slow down**, wait *longer* each time:\n\n- start small\n- double the delay\n- add `random` jitter\n\n```rust\nfn delay(attempt: u32) -> f64 {\n\tlet base = 0.5 * 2f64.powi(attempt as i32);\n    base * rand::random::<f64>()\n}\n```\n\nThat way many clients do not ret";

#[test]
fn empty() {
    let h = Harness::new(80, 16);
    assert_snapshot!(h.terminal().backend());
}

#[test]
fn draft_multiline() {
    let mut h = Harness::new(80, 16);
    h.type_str("first line\nsecond line with 日本語 and e\u{301}\nthird");
    let (buf, cursor) = h.draw();
    assert_snapshot!(buffer_text(&buf));
    // The cursor sits after "third" on the composer's third row: 2 cells of prompt + 5.
    let cursor = cursor.expect("cursor");
    assert_eq!(cursor.x, 7);
}

#[test]
fn streaming_markdown_with_code() {
    let mut h = Harness::new(90, 32);
    let id = id_of(&h.submit("How should a client back off?"));
    h.turn(
        id,
        TurnEvent::Sending {
            attempt: 1,
            max_attempts: 9,
        },
    );
    h.turn(id, TurnEvent::Quota(quota(h.now)));
    h.turn(
        id,
        TurnEvent::Started {
            request_id: Some("req_1".into()),
            model: "claude-sonnet-4-6".into(),
        },
    );
    for chunk in REPLY.split_inclusive(' ') {
        h.turn(
            id,
            TurnEvent::TextDelta {
                text: chunk.to_string(),
            },
        );
    }
    h.advance(Duration::from_millis(1500));
    assert_snapshot!(h.terminal().backend());
}

#[test]
fn pacing() {
    let mut h = Harness::new(100, 12);
    let id = id_of(&h.submit("hello"));
    h.turn(id, TurnEvent::Quota(low_quota(h.now)));
    h.turn(
        id,
        TurnEvent::Pacing {
            delay: Duration::from_millis(2100),
            until: h.now + Duration::from_millis(2100),
            bucket: Bucket::InputTokens,
            source: DelaySource::Pacer,
        },
    );
    assert_snapshot!(h.terminal().backend());
}

#[test]
fn retry_countdown() {
    let mut h = Harness::new(100, 12);
    let id = id_of(&h.submit("hello"));
    h.turn(
        id,
        TurnEvent::Sending {
            attempt: 1,
            max_attempts: 9,
        },
    );
    h.turn(id, TurnEvent::Quota(low_quota(h.now)));
    let ev = retry_429(&h, 2, 4.2);
    h.turn(id, ev);
    assert_snapshot!(h.terminal().backend());
    // The countdown is in the warning colour, and bold.
    let (buf, _) = h.draw();
    let (x, y) = find(&buf, "retry 2/9 in 4.2s").expect("countdown on screen");
    let cell = buf.cell((x, y)).expect("cell");
    assert_eq!(cell.fg, Color::Yellow);
    assert!(cell.modifier.contains(Modifier::BOLD));
    // 1.5 s later it reads 2.7s.
    h.advance(Duration::from_millis(1500));
    assert!(
        h.screen()
            .contains("retry 2/9 in 2.7s — 429 rate limit (retry-after)")
    );
}

fn error_screen(message: String, kind: FailureKind, api: Option<ApiError>) -> Harness {
    let mut h = Harness::new(100, 14);
    let id = id_of(&h.submit("hello"));
    h.turn(id, failure(kind, message, api));
    h
}

#[test]
fn error_401_tells_to_set_the_key() {
    let api = api_error(401, "authentication_error", "invalid x-api-key");
    let h = error_screen(
        advice_for(401, &api),
        FailureKind::Authentication,
        Some(api),
    );
    let screen = h.screen();
    assert!(screen.contains("ANTHROPIC_API_KEY"), "{screen}");
    // Retrying with the same key cannot help: no retry hint.
    assert!(!screen.contains("Ctrl+R to retry"), "{screen}");
    assert_snapshot!(h.terminal().backend());
    // Errors are red; the status bar says "error" in red too.
    let (buf, _) = h.draw();
    let (x, y) = find(&buf, "✗ error").expect("error line");
    assert_eq!(buf.cell((x, y)).expect("cell").fg, Color::LightRed);
}

#[test]
fn error_spend_cap() {
    let api = api_error(
        429,
        "rate_limit_error",
        "You have reached your specified API usage limits.",
    );
    let message = format!(
        "Your organization's monthly spend limit is reached, so retrying will not help ({}). Access resumes at 00:00 UTC on the first day of next month, or raise the limit in the Claude Console.",
        api.summary()
    );
    let h = error_screen(message, FailureKind::SpendCap, Some(api));
    assert_snapshot!(h.terminal().backend());
}

#[test]
fn error_wait_too_long() {
    let message = "The server asks to wait 45m00s (retry-after, rate limit), longer than --max-wait (5m00s). The quota frees up at 2026-11-27 19:30:05 UTC; try again then, or raise --max-wait.".to_string();
    let h = error_screen(message, FailureKind::WaitTooLong, None);
    assert_snapshot!(h.terminal().backend());
}

#[test]
fn error_retries_exhausted() {
    let api = api_error(529, "overloaded_error", "Overloaded");
    let message = format!(
        "Gave up after 9 attempts (--max-retries 8). Last error: {}",
        api.summary()
    );
    let h = error_screen(message, FailureKind::RetriesExhausted, Some(api));
    assert_snapshot!(h.terminal().backend());
}

#[test]
fn error_network() {
    let mut h = Harness::new(100, 14);
    let id = id_of(&h.submit("hello"));
    let t =
        TransportError::Connect("api.anthropic.com:443: Connection refused (os error 111)".into());
    h.turn(
        id,
        TurnEvent::Failed(TurnFailure {
            kind: FailureKind::RetriesExhausted,
            message: format!("Gave up after 3 attempts (--max-retries 2). Last error: {t}"),
            api: None,
            transport: Some(t),
            resets_at: None,
            attempts: 3,
        }),
    );
    assert_snapshot!(h.terminal().backend());
}

#[test]
fn interrupted_turn_keeps_its_text_and_reason() {
    let mut h = Harness::new(100, 16);
    let id = id_of(&h.submit("tell me about rate limits"));
    h.turn(
        id,
        TurnEvent::Started {
            request_id: None,
            model: "claude-sonnet-4-6".into(),
        },
    );
    h.turn(
        id,
        TurnEvent::TextDelta {
            text: "Rate limits protect the service. There are three buckets: requests, input tok"
                .into(),
        },
    );
    h.turn(
        id,
        TurnEvent::Interrupted {
            error: StreamFailure::Disconnected("connection reset by peer".into()),
            partial_kept: true,
        },
    );
    assert_snapshot!(h.terminal().backend());
}

#[test]
fn cancelled_turn() {
    let mut h = Harness::new(80, 12);
    let id = id_of(&h.submit("a long story please"));
    h.turn(
        id,
        TurnEvent::Started {
            request_id: None,
            model: "claude-sonnet-4-6".into(),
        },
    );
    h.turn(
        id,
        TurnEvent::TextDelta {
            text: "Once upon a time".into(),
        },
    );
    h.press(KeyCode::Esc);
    assert_snapshot!(h.terminal().backend());
}

#[test]
fn thinking_collapsed_and_expanded() {
    let mut h = Harness::new(80, 16);
    let id = id_of(&h.submit("think first"));
    h.turn(
        id,
        TurnEvent::Started {
            request_id: None,
            model: "claude-sonnet-4-6".into(),
        },
    );
    h.turn(
        id,
        TurnEvent::ThinkingDelta {
            text: "The user wants...\nLet me consider.\nOK.".into(),
        },
    );
    h.turn(
        id,
        TurnEvent::TextDelta {
            text: "Here is my answer.".into(),
        },
    );
    h.turn(
        id,
        TurnEvent::Finished {
            stop_reason: Some("end_turn".into()),
            usage: Usage::default(),
        },
    );
    let collapsed = h.screen();
    assert!(collapsed.contains("▸ thinking (3 lines)"));
    assert!(!collapsed.contains("Let me consider"));
    h.key(KeyCode::Char('o'), crossterm::event::KeyModifiers::CONTROL);
    assert_snapshot!(h.terminal().backend());
}

/// A session with a burst of three: one paced, one hit by a 429 and a 529 then done, one
/// still waiting; the panel shows gauges, lanes and the log.
fn burst_session(width: u16, height: u16) -> Harness {
    let mut h = Harness::new(width, height);
    h.press(KeyCode::F(3));
    let fx = h.submit("/burst 3");
    let ids: Vec<TurnId> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::StartTurn { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    h.turn(
        a,
        TurnEvent::Sending {
            attempt: 1,
            max_attempts: 9,
        },
    );
    h.turn(
        b,
        TurnEvent::Sending {
            attempt: 1,
            max_attempts: 9,
        },
    );
    h.turn(
        c,
        TurnEvent::Pacing {
            delay: Duration::from_millis(1800),
            until: h.now + Duration::from_millis(1800),
            bucket: Bucket::Requests,
            source: DelaySource::Pacer,
        },
    );
    h.advance(Duration::from_millis(300));
    h.turn(a, TurnEvent::Quota(quota(h.now)));
    h.turn(
        a,
        TurnEvent::Started {
            request_id: None,
            model: "claude-sonnet-4-6".into(),
        },
    );
    let ev = retry_429(&h, 2, 2.4);
    h.turn(b, ev);
    h.advance(Duration::from_millis(900));
    h.turn(
        a,
        TurnEvent::TextDelta {
            text: "Hello!".into(),
        },
    );
    h.turn(
        a,
        TurnEvent::Finished {
            stop_reason: Some("end_turn".into()),
            usage: Usage {
                input_tokens: 12,
                output_tokens: 3,
                ..Usage::default()
            },
        },
    );
    h.advance(Duration::from_millis(600));
    h.turn(
        c,
        TurnEvent::Sending {
            attempt: 1,
            max_attempts: 9,
        },
    );
    h.advance(Duration::from_millis(200));
    h.turn(
        c,
        TurnEvent::RetryScheduled {
            attempt: 2,
            max_attempts: 9,
            delay: Duration::from_millis(3100),
            until: h.now + Duration::from_millis(3100),
            cause: WaitCause::Overloaded,
            status: Some(529),
            error_type: Some("overloaded_error".into()),
            source: DelaySource::Backoff,
            message: "529".into(),
            request_id: None,
        },
    );
    h.advance(Duration::from_secs(1));
    h.turn(
        b,
        TurnEvent::Sending {
            attempt: 2,
            max_attempts: 9,
        },
    );
    h.advance(Duration::from_millis(300));
    h.turn(b, TurnEvent::Quota(low_quota(h.now)));
    h.turn(
        b,
        TurnEvent::Started {
            request_id: None,
            model: "claude-sonnet-4-6".into(),
        },
    );
    h.turn(
        b,
        TurnEvent::TextDelta {
            text: "Hi there.".into(),
        },
    );
    h.turn(
        b,
        TurnEvent::Finished {
            stop_reason: Some("end_turn".into()),
            usage: Usage {
                input_tokens: 12,
                output_tokens: 4,
                ..Usage::default()
            },
        },
    );
    h.advance(Duration::from_millis(200));
    h
}

#[test]
fn quota_panel_with_timeline() {
    let h = burst_session(130, 34);
    assert_snapshot!(h.terminal().backend());
}

#[test]
fn quota_panel_below_on_a_narrow_tall_terminal() {
    let h = burst_session(80, 40);
    assert_snapshot!(h.terminal().backend());
}

#[test]
fn help() {
    let mut h = Harness::new(100, 32);
    h.press(KeyCode::F(1));
    assert_snapshot!(h.terminal().backend());
}

#[test]
fn demo_starts_with_a_prompt_and_a_hint() {
    let h = Harness::with(110, 24, Theme::default(), true);
    assert_snapshot!(h.terminal().backend());
}

#[test]
fn small_40x10_is_usable() {
    let mut h = Harness::new(40, 10);
    h.press(KeyCode::F(3));
    let id = id_of(&h.submit("hello"));
    h.turn(id, TurnEvent::Quota(quota(h.now)));
    let ev = retry_429(&h, 2, 4.2);
    h.turn(id, ev);
    h.type_str("next");
    assert_snapshot!(h.terminal().backend());
}

#[test]
fn too_small_30x8() {
    let h = Harness::new(30, 8);
    assert_snapshot!(h.terminal().backend());
}

#[test]
fn tiny_sizes_never_panic() {
    for (w, hgt) in [
        (0, 0),
        (1, 1),
        (5, 2),
        (39, 10),
        (40, 9),
        (40, 10),
        (200, 3),
    ] {
        let mut h = burst_session(w, hgt);
        h.type_str("日本語 text\nmore");
        let _ = h.draw();
        h.press(KeyCode::F(1));
        let _ = h.draw();
    }
}

// ---- widgets on their own ----

fn status_line(h: &Harness, width: u16) -> (String, Buffer) {
    let area = Rect::new(0, 0, width, 1);
    let mut buf = Buffer::empty(area);
    status_bar::render(&h.app, area, &mut buf, h.now);
    (buffer_text(&buf), buf)
}

#[test]
fn status_bar_states() {
    let mut h = Harness::new(120, 10);
    let mut out = String::new();
    let mut row = |label: &str, h: &Harness, w: u16| {
        out.push_str(&format!("{label:>18}: {}", status_line(h, w).0));
    };
    row("idle, unknown", &h, 120);
    let id = id_of(&h.submit("hi"));
    h.turn(
        id,
        TurnEvent::Sending {
            attempt: 1,
            max_attempts: 9,
        },
    );
    row("sending", &h, 120);
    h.turn(id, TurnEvent::Quota(quota(h.now)));
    h.advance(Duration::from_secs(3));
    h.turn(
        id,
        TurnEvent::Pacing {
            delay: Duration::from_millis(2100),
            until: h.now + Duration::from_millis(2100),
            bucket: Bucket::InputTokens,
            source: DelaySource::Pacer,
        },
    );
    row("pacing", &h, 120);
    let ev = retry_429(&h, 2, 4.2);
    h.turn(id, ev);
    row("retry", &h, 120);
    h.turn(
        id,
        TurnEvent::Started {
            request_id: None,
            model: "claude-sonnet-4-6".into(),
        },
    );
    h.turn(
        id,
        TurnEvent::TextDelta {
            text: "x".repeat(1248),
        },
    );
    row("streaming", &h, 120);
    h.turn(id, TurnEvent::Quota(low_quota(h.now)));
    row("low quota", &h, 120);
    h.advance(Duration::from_secs(15));
    row("stale", &h, 120);
    row("narrow 60", &h, 60);
    row("narrow 40", &h, 40);
    h.turn(
        id,
        TurnEvent::Interrupted {
            error: StreamFailure::EndedEarly,
            partial_kept: true,
        },
    );
    row("interrupted", &h, 120);
    assert_snapshot!(out);
}

#[test]
fn status_bar_colours_and_no_color() {
    let mut h = Harness::new(120, 10);
    let id = id_of(&h.submit("hi"));
    h.turn(id, TurnEvent::Quota(low_quota(h.now)));
    let ev = retry_429(&h, 2, 4.2);
    h.turn(id, ev);
    let (_, buf) = status_line(&h, 120);
    let (x, y) = find(&buf, "retry 2/9").expect("state");
    assert_eq!(buf.cell((x, y)).expect("cell").fg, Color::Yellow);
    // Requests 0/5 left: error colour.
    let (x, y) = find(&buf, "0/5").expect("requests");
    assert_eq!(buf.cell((x, y)).expect("cell").fg, Color::LightRed);
    // Input 1k/20k (5%): warning colour.
    let (x, y) = find(&buf, "1k/20k").expect("input");
    assert_eq!(buf.cell((x, y)).expect("cell").fg, Color::Yellow);

    // NO_COLOR: no foreground or background anywhere on screen; meaning kept by bold and
    // reverse.
    let mut m = Harness::with(120, 14, Theme::monochrome(), false);
    m.press(KeyCode::F(3));
    let id = id_of(&m.submit("hi"));
    m.turn(id, TurnEvent::Quota(low_quota(m.now)));
    let ev = retry_429(&m, 2, 4.2);
    m.turn(id, ev);
    let (buf, _) = m.draw();
    for cell in buf.content() {
        assert_eq!(cell.fg, Color::Reset, "no colour with NO_COLOR");
        assert_eq!(cell.bg, Color::Reset, "no colour with NO_COLOR");
    }
    let (x, y) = find(&buf, "retry 2/9").expect("state");
    assert!(
        buf.cell((x, y))
            .expect("cell")
            .modifier
            .contains(Modifier::BOLD)
    );
    let (x, y) = find(&buf, "0/5").expect("requests");
    assert!(
        buf.cell((x, y))
            .expect("cell")
            .modifier
            .contains(Modifier::REVERSED)
    );
}

fn gauges(q: Option<&QuotaSnapshot>, now: Instant) -> String {
    let area = Rect::new(0, 0, 44, quota_panel::GAUGE_ROWS);
    let mut buf = Buffer::empty(area);
    quota_panel::render_gauges(q, area, &mut buf, now, Theme::default());
    buffer_text(&buf)
}

#[test]
fn quota_gauges_low_unknown_stale() {
    let t = Instant::now();
    let q = low_quota(t);
    let mut out = String::new();
    out.push_str("-- low, 2s after reading --\n");
    out.push_str(&gauges(Some(&q), t + Duration::from_secs(2)));
    out.push_str("-- unknown --\n");
    out.push_str(&gauges(None, t));
    out.push_str("-- stale: 50s later, resets passed --\n");
    out.push_str(&gauges(Some(&q), t + Duration::from_secs(50)));
    assert_snapshot!(out);
}

#[test]
fn model_text_cannot_reach_the_terminal() {
    let mut h = Harness::new(80, 12);
    let id = id_of(&h.submit("hi"));
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
            text: "evil \u{1b}]52;c;aGk=\u{7} \u{1b}[2J\r\ttab".into(),
        },
    );
    let (buf, _) = h.draw();
    for cell in buf.content() {
        assert!(
            !cell.symbol().chars().any(char::is_control),
            "control character in a cell: {:?}",
            cell.symbol()
        );
    }
    // ESC and BEL show as pictures; the tab became spaces to the next stop of 4.
    let screen = h.screen();
    assert!(screen.contains("  evil ␛]52;c;aGk=␇ ␛[2J  tab"), "{screen}");
}

#[test]
fn session_picker() {
    let mut h = Harness::new(100, 14);
    h.send(backchat::tui::Msg::SessionOpened {
        name: "2026-11-27-1930".into(),
        turns: Vec::new(),
        issues: Vec::new(),
    });
    let wall = backchat::clock::wall_at(h.now);
    let info = |name: &str, turns, ago: u64, prompt: &str| backchat::chat::SessionInfo {
        name: name.into(),
        path: std::path::PathBuf::from(format!("/tmp/{name}.jsonl")),
        modified: wall - Duration::from_secs(ago),
        turns,
        first_prompt: Some(prompt.into()),
    };
    h.send(backchat::tui::Msg::SessionList(vec![
        info(
            "2026-11-27-1930",
            3,
            20,
            "How do I write a retry loop in Rust?",
        ),
        info(
            "trip-notes",
            14,
            7_200,
            "Plan three days in Kyoto in autumn",
        ),
        info(
            "sql",
            2,
            260_000,
            "Why is this query slow?\nSELECT * FROM orders",
        ),
    ]));
    h.press(KeyCode::Down);
    assert_snapshot!(h.terminal().backend());
}

#[test]
fn status_bar_shows_the_shared_limiter_and_its_outage() {
    use backchat::limiter::LimiterHealth;
    let mut h = Harness::new(120, 10);
    h.app.limiter = LimiterHealth::Shared;
    let (shared, _) = status_line(&h, 120);
    h.app.limiter = LimiterHealth::Degraded("shared limiter unreachable".into());
    let (down, buf) = status_line(&h, 120);
    let (narrow, _) = status_line(&h, 50);
    let (x, y) = find(&buf, "shared limiter down").expect("warning");
    assert_eq!(
        buf.cell((x, y)).expect("cell").fg,
        Color::Yellow,
        "a warning colour"
    );
    assert_snapshot!(format!("{shared}{down}{narrow}"));
}
