//! The turn driver against the real mock over loopback HTTP, on a paused tokio clock:
//! streaming, faults, and every retry rule (issues "Foundation" and "Retries").

use std::sync::Arc;
use std::time::Duration;

use crate::support::mock::*;
use backchat::api::StreamFailure;
use backchat::headless::print_turn;
use backchat::mock::{MockLimits, MockServer, ScriptStep, choose_reply};
use backchat::quota::Bucket;
use backchat::retry::{
    DelaySource, Driver, FailureKind, RetryBudget, RetryConfig, TurnEvent, WaitCause,
};
use futures::StreamExt;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_streamed_reply_arrives_intact_in_order_with_the_mocks_usage() {
    let server = MockServer::start(quick_mock()).await.expect("mock");
    let req = request("Explain rate limits");
    let events = collect(driver(&server).run(req.clone())).await;

    let expected = choose_reply(Some(3), "Explain rate limits");
    assert_eq!(text_of(&events), expected.text);

    let kinds: Vec<&str> = events
        .iter()
        .map(|(_, e)| match e {
            TurnEvent::Sending { .. } => "sending",
            TurnEvent::Quota(_) => "quota",
            TurnEvent::Started { .. } => "started",
            TurnEvent::TextDelta { .. } => "text",
            TurnEvent::Usage(_) => "usage",
            TurnEvent::Finished { .. } => "finished",
            _ => "other",
        })
        .collect();
    assert_eq!(&kinds[..4], &["sending", "quota", "started", "usage"]);
    assert_eq!(kinds.last(), Some(&"finished"));
    assert!(!kinds.contains(&"other"), "{kinds:?}");

    let stats = server.control().stats();
    match last(&events) {
        TurnEvent::Finished { stop_reason, usage } => {
            assert_eq!(stop_reason.as_deref(), Some("end_turn"));
            assert_eq!(usage.input_tokens, req.estimated_input_tokens());
            assert_eq!(usage.output_tokens, stats.output_tokens_charged);
        }
        other => panic!("{other:?}"),
    }
    let started = events.iter().find_map(|(_, e)| match e {
        TurnEvent::Started { request_id, model } => Some((request_id.clone(), model.clone())),
        _ => None,
    });
    let (rid, model) = started.expect("started");
    assert!(rid.expect("request-id").starts_with("req_"));
    assert_eq!(model, "claude-sonnet-4-6");
}

#[tokio::test(start_paused = true)]
async fn quota_headers_parse_into_the_mocks_numbers() {
    let server = MockServer::start(quick_mock()).await.expect("mock");
    let events = collect(driver(&server).run(request("hi"))).await;
    let q = events
        .iter()
        .find_map(|(_, e)| match e {
            TurnEvent::Quota(q) => Some(q.clone()),
            _ => None,
        })
        .expect("quota");
    let r = q.requests.expect("requests");
    assert_eq!((r.limit, r.remaining), (Some(50), Some(49)));
    let i = q.input_tokens.expect("input tokens");
    assert_eq!((i.limit, i.remaining), (Some(30_000), Some(30_000)));
    let o = q.output_tokens.expect("output tokens");
    assert_eq!(o.limit, Some(8_000));
    let t = q.tokens.expect("tokens");
    assert_eq!(t.limit, Some(38_000));
    // Requests: one used, refilling at 50/min, so full again in 1.2 s; the stamp has
    // second precision and is rounded up, so it reads between 1.2 s and 2.2 s ahead.
    let reset = r.reset.expect("reset") - q.read_at;
    assert!(
        reset >= Duration::from_millis(1150) && reset <= Duration::from_millis(2250),
        "{reset:?}"
    );
}

async fn interrupted_by(
    step: ScriptStep,
    idle: Option<Duration>,
) -> (Vec<(Instant, TurnEvent)>, MockServer) {
    let server = MockServer::start(quick_mock()).await.expect("mock");
    server.control().push_script([step]);
    let mut cfg = backchat::api::HttpTransportConfig::new(
        server.base_url(),
        backchat::secret::ApiKey::new("sk-test"),
    );
    cfg.pool_idle_timeout = None;
    if let Some(idle) = idle {
        cfg.idle_timeout = idle;
    }
    let driver = Driver::new(Arc::new(
        backchat::api::HttpTransport::new(cfg).expect("client"),
    ));
    let events = collect(driver.run(request("Tell me a story"))).await;
    (events, server)
}

#[tokio::test(start_paused = true)]
async fn a_mid_stream_error_keeps_the_partial_text_and_is_never_retried() {
    let (events, server) = interrupted_by(
        ScriptStep::MidStreamError {
            after_tokens: 30,
            error_type: "overloaded_error".into(),
        },
        None,
    )
    .await;
    let text = text_of(&events);
    assert!(!text.is_empty());
    assert!(
        choose_reply(Some(3), "Tell me a story")
            .text
            .starts_with(&text)
    );
    match last(&events) {
        TurnEvent::Interrupted {
            error: StreamFailure::Server(api),
            partial_kept,
        } => {
            assert_eq!(api.error_type, "overloaded_error");
            assert!(*partial_kept);
            assert!(
                api.request_id.is_some(),
                "the id comes from the response header"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        server.control().stats().messages_requests,
        1,
        "never retried"
    );
    assert!(
        !events
            .iter()
            .any(|(_, e)| matches!(e, TurnEvent::RetryScheduled { .. }))
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_connection_is_interrupted_with_the_text_kept() {
    let (events, server) = interrupted_by(ScriptStep::Drop { after_tokens: 25 }, None).await;
    assert!(!text_of(&events).is_empty());
    assert!(
        matches!(
            last(&events),
            TurnEvent::Interrupted {
                error: StreamFailure::Disconnected(_) | StreamFailure::EndedEarly,
                partial_kept: true
            }
        ),
        "{:?}",
        last(&events)
    );
    assert_eq!(server.control().stats().messages_requests, 1);
}

#[tokio::test(start_paused = true)]
async fn an_end_without_message_stop_is_interrupted() {
    let (events, _server) =
        interrupted_by(ScriptStep::EndWithoutStop { after_tokens: 20 }, None).await;
    assert!(
        matches!(
            last(&events),
            TurnEvent::Interrupted {
                error: StreamFailure::EndedEarly,
                partial_kept: true
            }
        ),
        "{:?}",
        last(&events)
    );
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_times_out_instead_of_hanging() {
    let (events, _server) = interrupted_by(
        ScriptStep::Stall { after_tokens: 20 },
        Some(Duration::from_secs(20)),
    )
    .await;
    match last(&events) {
        TurnEvent::Interrupted {
            error: StreamFailure::IdleTimeout(d),
            partial_kept: true,
        } => assert_eq!(*d, Duration::from_secs(20)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_byte_still_streams() {
    let (events, _server) = interrupted_by(
        ScriptStep::SlowFirstByte {
            delay: Duration::from_secs(8),
        },
        None,
    )
    .await;
    assert!(matches!(last(&events), TurnEvent::Finished { .. }));
    let sent = events[0].0;
    let started = events
        .iter()
        .find(|(_, e)| matches!(e, TurnEvent::Started { .. }))
        .expect("started")
        .0;
    assert!(started - sent >= Duration::from_secs(8));
}

#[tokio::test(start_paused = true)]
async fn rate_limited_twice_then_ok_waits_exactly_retry_after_plus_spread() {
    let server = MockServer::start(quick_mock()).await.expect("mock");
    server.control().push_script([
        ScriptStep::rate_limited("2"),
        ScriptStep::rate_limited("3"),
        ScriptStep::Ok,
    ]);
    let events = collect(driver(&server).run(request("hi"))).await;
    assert!(matches!(last(&events), TurnEvent::Finished { .. }));
    let waits = retry_waits(&events);
    assert_eq!(waits.len(), 2);
    let spread = RetryConfig::default().server_delay_spread;
    for ((ev, slept), secs) in waits.iter().zip([2u64, 3]) {
        match ev {
            TurnEvent::RetryScheduled {
                delay,
                source,
                status,
                cause,
                ..
            } => {
                let ra = Duration::from_secs(secs);
                assert!(*delay >= ra && *delay < ra + spread, "{delay:?}");
                assert_eq!(*source, DelaySource::RetryAfter);
                assert_eq!(*status, Some(429));
                assert_ne!(*cause, WaitCause::Overloaded);
                assert_eq!(slept, delay, "the wait is exactly the announced one");
            }
            other => panic!("{other:?}"),
        }
    }
    let stats = server.control().stats();
    assert_eq!(stats.messages_requests, 3);
    let requests = Vec::from(stats.requests);
    let gaps: Vec<Duration> = requests.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        gaps[0] >= Duration::from_secs(2) && gaps[1] >= Duration::from_secs(3),
        "{gaps:?}"
    );
}

fn first_retry(events: &[(Instant, TurnEvent)]) -> (Duration, DelaySource) {
    events
        .iter()
        .find_map(|(_, e)| match e {
            TurnEvent::RetryScheduled { delay, source, .. } => Some((*delay, *source)),
            _ => None,
        })
        .expect("a retry")
}

#[tokio::test(start_paused = true)]
async fn retry_after_ms_beats_retry_after_and_an_http_date_works() {
    let server = MockServer::start(quick_mock()).await.expect("mock");
    let date = httpdate::fmt_http_date(backchat::clock::wall_now() + Duration::from_secs(4));
    server.control().push_script([
        ScriptStep::rate_limited("9").with_retry_after_ms("1500"),
        ScriptStep::rate_limited(date),
        ScriptStep::Ok,
    ]);
    let events = collect(driver(&server).run(request("hi"))).await;
    assert!(matches!(last(&events), TurnEvent::Finished { .. }));
    let waits = retry_waits(&events);
    let spread = RetryConfig::default().server_delay_spread;
    match &waits[0].0 {
        TurnEvent::RetryScheduled { delay, source, .. } => {
            assert_eq!(*source, DelaySource::RetryAfterMs);
            assert!(
                *delay >= Duration::from_millis(1500)
                    && *delay < Duration::from_millis(1500) + spread
            );
        }
        other => panic!("{other:?}"),
    }
    match &waits[1].0 {
        TurnEvent::RetryScheduled { delay, source, .. } => {
            assert_eq!(*source, DelaySource::RetryAfter);
            // The date was 4 s ahead when written, 1.5 s have passed; second precision.
            assert!(
                *delay > Duration::from_millis(1400) && *delay < Duration::from_secs(3),
                "{delay:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_429_without_retry_after_waits_for_the_reset_header() {
    let server = MockServer::start(quick_mock()).await.expect("mock");
    let reset =
        backchat::clock::rfc3339_seconds(backchat::clock::wall_now() + Duration::from_secs(7));
    server.control().push_script([
        ScriptStep::error(429)
            .with_message("This request would exceed your organization's rate limit of 50 requests per minute.")
            .with_header("anthropic-ratelimit-requests-remaining", "0")
            .with_header("anthropic-ratelimit-requests-reset", reset),
        ScriptStep::Ok,
    ]);
    let events = collect(driver(&server).run(request("hi"))).await;
    assert!(matches!(last(&events), TurnEvent::Finished { .. }));
    let (delay, source) = first_retry(&events);
    assert_eq!(source, DelaySource::ResetHeader);
    assert!(
        delay > Duration::from_secs(6) && delay < Duration::from_millis(7500),
        "{delay:?}"
    );
    let cause = events.iter().find_map(|(_, e)| match e {
        TurnEvent::RetryScheduled { cause, .. } => Some(*cause),
        _ => None,
    });
    assert_eq!(cause, Some(WaitCause::Requests));
}

#[tokio::test(start_paused = true)]
async fn overloaded_backs_off_within_the_full_jitter_bounds() {
    let server = MockServer::start(quick_mock()).await.expect("mock");
    server.control().push_script([
        ScriptStep::overloaded(),
        ScriptStep::overloaded(),
        ScriptStep::overloaded(),
        ScriptStep::Ok,
    ]);
    let events = collect(driver(&server).run(request("hi"))).await;
    assert!(matches!(last(&events), TurnEvent::Finished { .. }));
    let waits = retry_waits(&events);
    assert_eq!(waits.len(), 3);
    for (i, (ev, slept)) in waits.iter().enumerate() {
        match ev {
            TurnEvent::RetryScheduled {
                delay,
                source,
                cause,
                status,
                ..
            } => {
                let bound = Duration::from_secs(1 << i);
                assert!(*delay < bound, "retry {}: {delay:?} ≥ {bound:?}", i + 1);
                assert_eq!(*source, DelaySource::Backoff);
                assert_eq!(*cause, WaitCause::Overloaded);
                assert_eq!(*status, Some(529));
                assert_eq!(slept, delay);
            }
            other => panic!("{other:?}"),
        }
    }
}

async fn fails_at_once(step: ScriptStep, kind: FailureKind) -> String {
    let server = MockServer::start(quick_mock()).await.expect("mock");
    server.control().push_script([step]);
    let t0 = Instant::now();
    let events = collect(driver(&server).run(request("hi"))).await;
    assert_eq!(server.control().stats().messages_requests, 1, "no retry");
    assert!(
        !events
            .iter()
            .any(|(_, e)| matches!(e, TurnEvent::RetryScheduled { .. }))
    );
    assert!(Instant::now() - t0 < Duration::from_secs(1), "no sleep");
    match last(&events) {
        TurnEvent::Failed(f) => {
            assert_eq!(f.kind, kind);
            f.message.clone()
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_401_fails_at_once_and_says_which_variable_to_set() {
    let message = fails_at_once(ScriptStep::error(401), FailureKind::Authentication).await;
    assert!(message.contains("ANTHROPIC_API_KEY"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn a_400_fails_at_once() {
    let message = fails_at_once(ScriptStep::error(400), FailureKind::InvalidRequest).await;
    assert!(message.contains("400"), "{message}");
    // And a request the mock really rejects.
    let server = MockServer::start(quick_mock()).await.expect("mock");
    let events = collect(driver(&server).run(request("   ").clone_with_empty_text())).await;
    match last(&events) {
        TurnEvent::Failed(f) => assert_eq!(f.kind, FailureKind::InvalidRequest),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.control().stats().messages_requests, 1);
}

trait EmptyText {
    fn clone_with_empty_text(self) -> Self;
}

impl EmptyText for backchat::api::MessagesRequest {
    fn clone_with_empty_text(mut self) -> Self {
        self.messages = vec![backchat::api::Message::text(backchat::api::Role::User, "")];
        self
    }
}

#[tokio::test(start_paused = true)]
async fn should_retry_false_on_a_500_fails_at_once() {
    let message = fails_at_once(
        ScriptStep::error(500).with_should_retry(false),
        FailureKind::NotRetryable,
    )
    .await;
    assert!(message.contains("x-should-retry"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn a_spend_cap_429_fails_at_once_with_its_own_message() {
    let message = fails_at_once(ScriptStep::SpendCap, FailureKind::SpendCap).await;
    assert!(
        message.contains("spend limit") && message.contains("retrying will not help"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_enormous_retry_after_fails_with_the_reset_time_and_no_sleep() {
    let message = fails_at_once(ScriptStep::rate_limited("100000"), FailureKind::WaitTooLong).await;
    assert!(message.contains("--max-wait"), "{message}");
    assert!(
        message.contains("UTC"),
        "says when the quota frees up: {message}"
    );
}

#[tokio::test(start_paused = true)]
async fn max_retries_3_makes_4_attempts_then_exits_4() {
    let server = MockServer::start(quick_mock()).await.expect("mock");
    server
        .control()
        .push_script((0..6).map(|_| ScriptStep::overloaded()));
    let driver = driver(&server).with_config(RetryConfig {
        max_retries: 3,
        ..RetryConfig::default()
    });
    let outcome = print_turn(
        driver.run(request("hi")),
        &mut Vec::new(),
        &mut Vec::new(),
        None,
        std::future::pending(),
    )
    .await;
    assert_eq!(outcome.exit_code, 4);
    assert_eq!(server.control().stats().messages_requests, 4);
}

#[tokio::test(start_paused = true)]
async fn cancelling_during_a_wait_returns_at_once_and_sends_nothing_more() {
    let server = MockServer::start(quick_mock()).await.expect("mock");
    server
        .control()
        .push_script([ScriptStep::rate_limited("30"), ScriptStep::Ok]);
    let mut turn = Box::pin(driver(&server).run(request("hi")));
    while !matches!(
        turn.next().await.expect("events"),
        TurnEvent::RetryScheduled { .. }
    ) {}
    // Cancel through the headless consumer: it returns at the same instant.
    let t0 = Instant::now();
    let outcome = print_turn(turn, &mut Vec::new(), &mut Vec::new(), None, async {}).await;
    assert_eq!(outcome.exit_code, 130);
    assert_eq!(Instant::now(), t0, "no time passes");
    tokio::time::sleep(Duration::from_mins(1)).await;
    assert_eq!(
        server.control().stats().messages_requests,
        1,
        "the retry never happens"
    );
}

#[tokio::test(start_paused = true)]
async fn with_pacing_eight_concurrent_turns_at_10_rpm_meet_no_429() {
    let mut cfg = quick_mock();
    cfg.limits = MockLimits {
        rpm: 10,
        itpm: 1_000_000,
        otpm: 1_000_000,
        // A bucket of 3 requests: the burst of 8 does not fit, so pacing has to work.
        capacity_fraction: 0.3,
    };
    let server = MockServer::start(cfg).await.expect("mock");
    let driver = driver(&server);
    let turns = (0..8).map(|i| collect(driver.run(request(&format!("question {i}")))));
    let results = futures::future::join_all(turns).await;
    for events in &results {
        assert!(
            matches!(last(events), TurnEvent::Finished { .. }),
            "{:?}",
            last(events)
        );
    }
    let stats = server.control().stats();
    assert_eq!(stats.count(429), 0, "{:?}", stats.by_status);
    assert_eq!(stats.count(200), 8);
    let paced = results
        .iter()
        .flatten()
        .filter(|(_, e)| {
            matches!(
                e,
                TurnEvent::Pacing {
                    bucket: Bucket::Requests,
                    ..
                }
            )
        })
        .count();
    assert!(
        paced >= 5,
        "the turns beyond the burst were paced ({paced})"
    );
}

#[tokio::test(start_paused = true)]
async fn without_pacing_the_same_burst_meets_429s_and_still_finishes() {
    let mut cfg = quick_mock();
    cfg.limits = MockLimits {
        rpm: 10,
        itpm: 1_000_000,
        otpm: 1_000_000,
        capacity_fraction: 0.3,
    };
    let server = MockServer::start(cfg).await.expect("mock");
    let driver = driver(&server).with_limiter(None);
    let turns = (0..8).map(|i| collect(driver.run(request(&format!("question {i}")))));
    let results = futures::future::join_all(turns).await;
    for events in &results {
        assert!(matches!(last(events), TurnEvent::Finished { .. }));
    }
    assert!(server.control().stats().count(429) > 0);
}

#[tokio::test(start_paused = true)]
async fn no_key_gets_a_401_that_names_the_variable() {
    let server = MockServer::start(quick_mock()).await.expect("mock");
    let d = Driver::new(Arc::new(transport(&server.base_url(), None)))
        .with_budget(Arc::new(RetryBudget::unlimited()));
    let events = collect(d.run(request("hi"))).await;
    match last(&events) {
        TurnEvent::Failed(f) => {
            assert_eq!(f.kind, FailureKind::Authentication);
            assert!(f.message.contains("ANTHROPIC_API_KEY"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_base_url_with_a_path_prefix_works() {
    use axum::Router;
    use axum::routing::post;
    // A stand-in gateway that only answers under /anthropic.
    let body = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"prefixed\"}}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );
    let app = Router::new().route(
        "/anthropic/v1/messages",
        post(move || async move { ([("content-type", "text/event-stream")], body) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let d = Driver::new(Arc::new(transport(
        &format!("http://{addr}/anthropic/"),
        Some("k"),
    )));
    let events = collect(d.run(request("hi"))).await;
    assert_eq!(text_of(&events), "prefixed");
    assert!(matches!(last(&events), TurnEvent::Finished { .. }));
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_stops_an_outage_from_being_amplified() {
    let server = MockServer::start(quick_mock()).await.expect("mock");
    server
        .control()
        .push_script((0..20).map(|_| ScriptStep::overloaded()));
    // The default budget: 10 tokens, retries only above half.
    let d = Driver::new(Arc::new(transport(&server.base_url(), Some("k")))).with_seed(1);
    let events = collect(d.run(request("hi"))).await;
    match last(&events) {
        TurnEvent::Failed(f) => assert_eq!(f.kind, FailureKind::RetryBudgetExhausted),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        server.control().stats().messages_requests,
        5,
        "4 retries, then the budget stops them"
    );
}
