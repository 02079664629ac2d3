//! A conversation as Markdown (`/export`, `backchat export`): a front-matter block (the
//! session, its models, the date, turns and tokens), then each turn, the prompt and the
//! reply, with thinking folded into `<details>` and a broken or failed reply marked.
//!
//! Superseded turns (retried, edited or continued later) are left out, as they are left out
//! of the conversation the model sees.

use crate::chat::{Conversation, ReplyState};

/// What the front matter says besides what the turns carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportMeta {
    /// The session's name.
    pub session: String,
    /// When the conversation was created (RFC 3339), if known.
    pub date: Option<String>,
}

/// A YAML scalar: quoted when it could be read as something else.
fn yaml(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | ' '))
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && !s.contains(": ");
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// The Markdown for `conversation`.
pub fn to_markdown(conversation: &Conversation, meta: &ExportMeta) -> String {
    let turns: Vec<_> = conversation
        .turns
        .iter()
        .filter(|t| !t.superseded)
        .collect();
    let mut models: Vec<&str> = Vec::new();
    for t in &turns {
        if !t.model.is_empty() && !models.contains(&t.model.as_str()) {
            models.push(&t.model);
        }
    }
    let input: u64 = turns
        .iter()
        .filter_map(|t| t.usage.as_ref())
        .map(|u| {
            u.input_tokens
                + u.cache_creation_input_tokens.unwrap_or(0)
                + u.cache_read_input_tokens.unwrap_or(0)
        })
        .sum();
    let output: u64 = turns
        .iter()
        .filter_map(|t| t.usage.as_ref())
        .map(|u| u.output_tokens)
        .sum();
    let mut out = String::from("---\n");
    out.push_str(&format!("session: {}\n", yaml(&meta.session)));
    match models.as_slice() {
        [] => {}
        [one] => out.push_str(&format!("model: {}\n", yaml(one))),
        many => {
            out.push_str("models:\n");
            for m in many {
                out.push_str(&format!("  - {}\n", yaml(m)));
            }
        }
    }
    if let Some(date) = &meta.date {
        out.push_str(&format!("date: {}\n", yaml(date)));
    }
    out.push_str(&format!("turns: {}\n", turns.len()));
    out.push_str(&format!("input_tokens: {input}\n"));
    out.push_str(&format!("output_tokens: {output}\n"));
    // Cost from the price table; a model it does not list is never given a guessed price.
    let mut tally = crate::cost::Tally::default();
    for t in &turns {
        if let Some(u) = &t.usage {
            tally.add(&t.model, &crate::cost::Tokens::from(u));
        }
    }
    if tally.requests > 0 {
        if tally.priced() {
            out.push_str(&format!("cost_usd: {:.6}\n", tally.usd));
        }
        if tally.unpriced > 0 {
            out.push_str(&format!(
                "cost_unpriced_turns: {} # price unknown for their model\n",
                tally.unpriced
            ));
        }
    }
    out.push_str("---\n");
    for (i, t) in turns.iter().enumerate() {
        out.push_str(&format!("\n## You ({})\n\n", i + 1));
        out.push_str(t.user.trim_end());
        out.push('\n');
        if !t.attachments.is_empty() {
            let names: Vec<String> = t
                .attachments
                .iter()
                .map(|a| format!("`{}` ({}, {} bytes)", a.name, a.media_type, a.bytes))
                .collect();
            out.push_str(&format!("\n*Attached: {}*\n", names.join(", ")));
        }
        let model = if t.model.is_empty() {
            String::new()
        } else {
            format!(" ({})", t.model)
        };
        out.push_str(&format!("\n## Claude{model}\n\n"));
        if !t.thinking.trim().is_empty() {
            out.push_str("<details>\n<summary>Thinking</summary>\n\n");
            out.push_str(t.thinking.trim_end());
            out.push_str("\n\n</details>\n\n");
        }
        if !t.assistant.trim().is_empty() {
            out.push_str(t.assistant.trim_end());
            out.push('\n');
        }
        let note = match &t.state {
            ReplyState::Interrupted { reason } => Some(format!("*The reply broke off: {reason}.*")),
            ReplyState::Cancelled => Some("*Cancelled.*".to_string()),
            ReplyState::Failed { message, .. } => Some(format!("*No reply: {message}*")),
            ReplyState::Pending | ReplyState::Streaming => Some("*Unfinished.*".to_string()),
            ReplyState::Complete { .. } => None,
        };
        if let Some(note) = note {
            if !t.assistant.trim().is_empty() {
                out.push('\n');
            }
            out.push_str(&note.replace('\n', " "));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Usage;
    use crate::chat::Turn;

    #[test]
    fn front_matter_turns_and_folded_thinking() {
        let mut a = Turn::new("What is GCRA?", "claude-sonnet-4-6");
        a.thinking = "They want a short answer.".into();
        a.assistant = "A rate limiter.\n\n```rust\nfn f() {}\n```\n".into();
        a.state = ReplyState::Complete { stop_reason: None };
        a.usage = Some(Usage {
            input_tokens: 10,
            output_tokens: 20,
            cache_creation_input_tokens: None,
            cache_read_input_tokens: Some(5),
            ..Usage::default()
        });
        let mut gone = Turn::new("retried", "m");
        gone.superseded = true;
        let mut b = Turn::new("More?", "claude-sonnet-4-6");
        b.assistant = "Sure, ".into();
        b.state = ReplyState::Interrupted {
            reason: "the connection dropped".into(),
        };
        let md = to_markdown(
            &Conversation {
                turns: vec![a, gone, b],
            },
            &ExportMeta {
                session: "work: notes".into(),
                date: Some("2026-12-01T02:40:57Z".into()),
            },
        );
        assert_eq!(
            md,
            "---\nsession: \"work: notes\"\nmodel: claude-sonnet-4-6\ndate: 2026-12-01T02:40:57Z\nturns: 2\ninput_tokens: 15\noutput_tokens: 20\ncost_usd: 0.000331\n---\n\
\n## You (1)\n\nWhat is GCRA?\n\n## Claude (claude-sonnet-4-6)\n\n<details>\n<summary>Thinking</summary>\n\nThey want a short answer.\n\n</details>\n\nA rate limiter.\n\n```rust\nfn f() {}\n```\n\
\n## You (2)\n\nMore?\n\n## Claude (claude-sonnet-4-6)\n\nSure,\n\n*The reply broke off: the connection dropped.*\n"
        );
    }
}
