//! `GET /v1/models` and `GET /v1/models/{id}` (paged by `first_id`/`last_id` cursors; see
//! docs/protocol.md), with the model ids the newest SDKs know, newest first as the API
//! lists them.

use serde_json::{Value, json};

/// `(id, display name, created_at)`, newest first.
const MODELS: [(&str, &str, &str); 10] = [
    ("claude-opus-5-5", "Claude Opus 5.5", "2026-10-14T00:00:00Z"),
    (
        "claude-sonnet-5-5",
        "Claude Sonnet 5.5",
        "2026-10-14T00:00:00Z",
    ),
    (
        "claude-haiku-5-5",
        "Claude Haiku 5.5",
        "2026-10-14T00:00:00Z",
    ),
    ("claude-opus-5", "Claude Opus 5", "2026-07-22T00:00:00Z"),
    ("claude-sonnet-5", "Claude Sonnet 5", "2026-07-22T00:00:00Z"),
    ("claude-opus-4-8", "Claude Opus 4.8", "2026-05-06T00:00:00Z"),
    ("claude-opus-4-7", "Claude Opus 4.7", "2026-03-18T00:00:00Z"),
    ("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z"),
    (
        "claude-sonnet-4-6",
        "Claude Sonnet 4.6",
        "2026-02-17T00:00:00Z",
    ),
    (
        "claude-haiku-4-5",
        "Claude Haiku 4.5",
        "2025-10-15T00:00:00Z",
    ),
];

/// The model ids the mock lists, newest first.
pub fn model_ids() -> Vec<&'static str> {
    MODELS.iter().map(|(id, _, _)| *id).collect()
}

fn info(index: usize) -> Value {
    let (id, name, created) = MODELS[index];
    let haiku = id.contains("haiku");
    json!({
        "type": "model",
        "id": id,
        "display_name": name,
        "created_at": created,
        "max_input_tokens": if haiku { 200_000 } else { 1_000_000 },
        "max_tokens": if haiku { 64_000 } else { 128_000 },
    })
}

/// `GET /v1/models/{id}`: the model object, or `None` for an unknown id.
pub(crate) fn get(id: &str) -> Option<Value> {
    MODELS.iter().position(|(m, _, _)| *m == id).map(info)
}

/// One page of the list. `limit` defaults to 20 and must be 1–1000; `after_id` pages
/// forward, `before_id` backward (the page just before that id). An unknown cursor gives an
/// empty page.
pub(crate) fn list(
    limit: Option<&str>,
    after_id: Option<&str>,
    before_id: Option<&str>,
) -> Result<Value, String> {
    let limit = match limit {
        None => 20,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            Ok(0) => return Err("limit: Input should be greater than or equal to 1".into()),
            Ok(_) => return Err("limit: Input should be less than or equal to 1000".into()),
            Err(_) => return Err("limit: Input should be a valid integer".into()),
        },
    };
    let position = |id: &str| MODELS.iter().position(|(m, _, _)| *m == id);
    let (range, has_more) = match (after_id, before_id) {
        (Some(_), Some(_)) => {
            return Err("after_id and before_id cannot be used together".into());
        }
        (Some(after), None) => match position(after) {
            Some(p) => {
                let start = p + 1;
                let end = (start + limit).min(MODELS.len());
                (start..end, end < MODELS.len())
            }
            None => (0..0, false),
        },
        (None, Some(before)) => match position(before) {
            Some(p) => {
                let start = p.saturating_sub(limit);
                (start..p, start > 0)
            }
            None => (0..0, false),
        },
        (None, None) => {
            let end = limit.min(MODELS.len());
            (0..end, end < MODELS.len())
        }
    };
    let data: Vec<Value> = range.clone().map(info).collect();
    let first = range.clone().next().map(|i| MODELS[i].0);
    let last = range.last().map(|i| MODELS[i].0);
    Ok(json!({"data": data, "has_more": has_more, "first_id": first, "last_id": last}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_forward_and_backward() {
        let p1 = list(Some("4"), None, None).expect("ok");
        assert_eq!(p1["data"].as_array().map(Vec::len), Some(4));
        assert_eq!(p1["has_more"], true);
        assert_eq!(p1["first_id"], "claude-opus-5-5");
        let last = p1["last_id"].as_str().expect("id");
        let p2 = list(Some("100"), Some(last), None).expect("ok");
        assert_eq!(p2["data"].as_array().map(Vec::len), Some(6));
        assert_eq!(p2["has_more"], false);
        assert_eq!(p2["last_id"], "claude-haiku-4-5");
        let back = list(Some("2"), None, p2["first_id"].as_str()).expect("ok");
        assert_eq!(back["last_id"], last);
        assert_eq!(back["has_more"], true);
        assert!(list(Some("0"), None, None).is_err());
        assert!(list(Some("x"), None, None).is_err());
        assert!(get("claude-sonnet-4-6").is_some());
        assert!(get("claude-2").is_none());
    }
}
