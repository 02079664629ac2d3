//! The endpoints besides `POST /v1/messages`: models, count_tokens, the `/_mock/*` admin
//! endpoints, and shutting the server down.

use backchat::mock::{MockConfig, model_ids};
use serde_json::json;

use super::harness::{Harness, KEY, assert_envelope, body, instant, request, simple};

#[tokio::test(start_paused = true)]
async fn models_page_forward_and_back() {
    let h = Harness::start(instant()).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/models?limit=3&after_id={a}"),
            None => "/v1/models?limit=3".to_string(),
        };
        let page = h.get(&path).await;
        assert_eq!(page.status, 200);
        let v = page.json();
        let data = v["data"].as_array().expect("data");
        assert!(data.len() <= 3);
        for m in data {
            assert_eq!(m["type"], "model");
            assert!(
                m["display_name"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("Claude"))
            );
            assert!(m["created_at"].as_str().is_some_and(|c| c.ends_with('Z')));
            seen.push(m["id"].as_str().expect("id").to_string());
        }
        assert_eq!(v["first_id"], data[0]["id"]);
        assert_eq!(v["last_id"], data[data.len() - 1]["id"]);
        if v["has_more"] == false {
            break;
        }
        after = v["last_id"].as_str().map(str::to_string);
    }
    assert_eq!(seen, model_ids());
    for id in [
        "claude-sonnet-4-6",
        "claude-opus-4-8",
        "claude-haiku-4-5",
        "claude-sonnet-5",
        "claude-opus-5",
    ] {
        assert!(seen.iter().any(|s| s == id), "{id}");
    }
    let back = h
        .get(&format!("/v1/models?limit=2&before_id={}", seen[4]))
        .await
        .json();
    assert_eq!(back["first_id"], seen[2].as_str());
    assert_eq!(back["last_id"], seen[3].as_str());
    assert_eq!(back["has_more"], true);

    let one = h.get("/v1/models/claude-opus-5").await;
    assert_eq!(one.json()["id"], "claude-opus-5");
    let missing = h.get("/v1/models/claude-1").await;
    assert_envelope(&missing, 404, "not_found_error");
    let bad = h.get("/v1/models?limit=0").await;
    assert_envelope(&bad, 400, "invalid_request_error");
}

#[tokio::test(start_paused = true)]
async fn count_tokens_matches_the_estimate_and_costs_nothing() {
    let h = Harness::start(instant()).await;
    let req = request("how many tokens is this?", false);
    let mut b = body(&req);
    if let Some(o) = b.as_object_mut() {
        o.remove("max_tokens");
    }
    let r = h.post_as("/v1/messages/count_tokens", &b, Some(KEY)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"input_tokens": req.estimated_input_tokens()})
    );
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining"),
        Some("50")
    );
    let missing = h
        .post_as(
            "/v1/messages/count_tokens",
            &json!({"model": "m"}),
            Some(KEY),
        )
        .await;
    assert_eq!(
        assert_envelope(&missing, 400, "invalid_request_error"),
        "messages: Field required"
    );
    assert_eq!(h.server.control().stats().messages_requests, 0);
}

#[tokio::test(start_paused = true)]
async fn the_admin_endpoint_is_off_unless_enabled() {
    let off = Harness::start(instant()).await;
    let r = off
        .post_as(
            "/_mock/script",
            &json!([{"type": "error", "status": 529}]),
            None,
        )
        .await;
    assert_envelope(&r, 404, "not_found_error");

    let on = Harness::start(MockConfig {
        admin_endpoint: true,
        ..instant()
    })
    .await;
    let r = on
        .post_as(
            "/_mock/script",
            &json!([{"type": "error", "status": 429, "retry_after": "1"}, {"type": "ok"}]),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["queued"], 2);
    let r = on.post(&simple("x", 5, false)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(on.post(&simple("x", 5, false)).await.status, 200);
    let bad = on
        .post_as("/_mock/script", &json!([{"type": "nope"}]), None)
        .await;
    assert_envelope(&bad, 400, "invalid_request_error");
    let stats = on.get("/_mock/stats").await.json();
    assert_eq!(stats["messages_requests"], 2);
    assert_eq!(stats["by_status"]["429"], 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_the_server() {
    let h = Harness::start(instant()).await;
    let url = h.url("/v1/models");
    let client = h.client.clone();
    let Harness { server, .. } = h;
    server.shutdown().await;
    assert!(
        client.get(url).send().await.is_err(),
        "nothing listens any more"
    );
}
