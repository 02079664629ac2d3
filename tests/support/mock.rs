//! Shared helpers for tests that drive the real client against the in-process mock.

use std::sync::Arc;
use std::time::Duration;

use backchat::api::{HttpTransport, HttpTransportConfig, Message, MessagesRequest, Role};
use backchat::mock::{MockConfig, MockServer};
use backchat::retry::{Driver, RetryBudget, RetryConfig, TurnEvent};
use backchat::secret::ApiKey;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

/// A mock with fast, deterministic replies.
pub fn quick_mock() -> MockConfig {
    MockConfig {
        seed: Some(3),
        token_rate: 1e6,
        first_token_latency: Duration::ZERO,
        ..MockConfig::default()
    }
}

/// A transport for tests on a paused clock: no pool-expiry timer (it would make the paused
/// clock jump while a socket is busy).
pub fn transport(base_url: &str, key: Option<&str>) -> HttpTransport {
    let mut cfg = HttpTransportConfig::new(base_url, key.and_then(ApiKey::new));
    cfg.pool_idle_timeout = None;
    HttpTransport::new(cfg).expect("client")
}

/// A driver against `server` with a seeded RNG, an unlimited retry budget and pacing on.
pub fn driver(server: &MockServer) -> Driver {
    Driver::new(Arc::new(transport(&server.base_url(), Some("sk-test-key"))))
        .with_seed(42)
        .with_budget(Arc::new(RetryBudget::unlimited()))
        .with_config(RetryConfig::default())
}

/// A one-message request.
pub fn request(prompt: &str) -> MessagesRequest {
    MessagesRequest::new(
        "claude-sonnet-4-6",
        4096,
        vec![Message::text(Role::User, prompt)],
    )
}

/// Every event with the (tokio) time it arrived.
pub async fn collect(turn: impl Stream<Item = TurnEvent>) -> Vec<(Instant, TurnEvent)> {
    let mut turn = std::pin::pin!(turn);
    let mut out = Vec::new();
    while let Some(ev) = turn.next().await {
        out.push((Instant::now(), ev));
    }
    out
}

/// The text of all `TextDelta`s.
pub fn text_of(events: &[(Instant, TurnEvent)]) -> String {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            TurnEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// The last event.
pub fn last(events: &[(Instant, TurnEvent)]) -> &TurnEvent {
    &events.last().expect("at least one event").1
}

/// `(announced delay, time until the next Sending)` for every `RetryScheduled`.
pub fn retry_waits(events: &[(Instant, TurnEvent)]) -> Vec<(TurnEvent, Duration)> {
    let mut out = Vec::new();
    for (i, (at, ev)) in events.iter().enumerate() {
        if let TurnEvent::RetryScheduled { .. } = ev {
            let next = events[i + 1..]
                .iter()
                .find(|(_, e)| matches!(e, TurnEvent::Sending { .. }))
                .map(|(t, _)| *t - *at)
                .expect("a retry is followed by a send");
            out.push((ev.clone(), next));
        }
    }
    out
}
