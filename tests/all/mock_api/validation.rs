//! Validation and auth: every 400 has the real envelope and message, the body-size limit
//! comes first, and keys come from `x-api-key` or `Authorization: Bearer`.

use backchat::mock::MockConfig;
use serde_json::{Value, json};

use super::harness::{Harness, KEY, assert_envelope, instant, send, simple};

#[tokio::test(start_paused = true)]
async fn every_validation_error_has_the_real_envelope() {
    let h = Harness::start(instant()).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
            "model: Field required",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens: Field required",
        ),
        (
            json!({"model": "m", "max_tokens": 5}),
            "messages: Field required",
        ),
        (
            json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens: Input should be greater than or equal to 1",
        ),
        (
            json!({"model": "m", "max_tokens": 2.5, "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens: Input should be a valid integer",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": []}),
            "messages: at least one message is required",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": ""}]}),
            "messages.0: all messages must have non-empty content except for the optional final assistant message",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": []}]}),
            "messages.0: all messages must have non-empty content except for the optional final assistant message",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}),
            "messages: text content blocks must be non-empty",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": "x"}]}),
            "messages: first message must use the \"user\" role",
        ),
    ];
    for (b, message) in cases {
        let r = h.post(&b).await;
        assert_eq!(
            assert_envelope(&r, 400, "invalid_request_error"),
            message,
            "{b}"
        );
        assert!(
            r.header("anthropic-ratelimit-requests-limit").is_some(),
            "after auth: headers"
        );
    }
    // Not JSON at all.
    let r = send(
        h.client
            .post(h.url("/v1/messages"))
            .header("x-api-key", KEY)
            .header("anthropic-version", "2023-06-01")
            .body("{not json"),
    )
    .await;
    let m = assert_envelope(&r, 400, "invalid_request_error");
    assert!(m.starts_with("The request body is not valid JSON"), "{m}");
    // No anthropic-version.
    let r = send(
        h.client
            .post(h.url("/v1/messages"))
            .header("x-api-key", KEY)
            .body(simple("x", 5, false).to_string()),
    )
    .await;
    assert_eq!(
        assert_envelope(&r, 400, "invalid_request_error"),
        "anthropic-version: header is required"
    );
    // Unknown path, wrong method.
    let r = h.get("/v1/nothing-here").await;
    assert_envelope(&r, 404, "not_found_error");
    let r = h.get("/v1/messages").await;
    assert_envelope(&r, 405, "invalid_request_error");
    assert_eq!(r.header("allow"), Some("POST"));
    // Nothing was admitted.
    let stats = h.server.control().stats();
    assert_eq!(stats.input_tokens_charged, 0);
    assert_eq!(stats.count(400), 13);
}

#[tokio::test(start_paused = true)]
async fn bodies_over_the_limit_get_413_before_anything_else() {
    let h = Harness::start(MockConfig {
        max_body_bytes: 1024,
        ..instant()
    })
    .await;
    let big = simple(&"x".repeat(2000), 5, false);
    // Even without a key, and even on an unknown path: size is checked first.
    for (path, key) in [("/v1/messages", None), ("/v1/elsewhere", Some(KEY))] {
        let r = h.post_as(path, &big, key).await;
        assert_envelope(&r, 413, "request_too_large");
        assert!(r.header("anthropic-ratelimit-requests-limit").is_none());
    }
    assert_eq!(h.post(&simple("small", 5, false)).await.status, 200);
}

#[tokio::test(start_paused = true)]
async fn keys_come_from_x_api_key_or_bearer() {
    let h = Harness::start(MockConfig {
        rejected_keys: vec!["sk-revoked".into()],
        ..instant()
    })
    .await;
    let b = simple("hello", 5, false);
    assert_eq!(h.post_as("/v1/messages", &b, Some(KEY)).await.status, 200);
    let bearer = send(
        h.client
            .post(h.url("/v1/messages"))
            .header("authorization", "Bearer some-oauth-token")
            .header("anthropic-version", "2026-10-21")
            .body(b.to_string()),
    )
    .await;
    assert_eq!(bearer.status, 200);

    let none = h.post_as("/v1/messages", &b, None).await;
    assert_eq!(
        assert_envelope(&none, 401, "authentication_error"),
        "x-api-key header is required"
    );
    assert!(none.header("anthropic-ratelimit-requests-limit").is_none());
    let revoked = h.post_as("/v1/messages", &b, Some("sk-revoked")).await;
    assert_eq!(
        assert_envelope(&revoked, 401, "authentication_error"),
        "invalid x-api-key"
    );
    let models = send(h.client.get(h.url("/v1/models"))).await;
    assert_envelope(&models, 401, "authentication_error");
}
