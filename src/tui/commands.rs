//! Slash commands: parsing (the app carries them out), and the text of `/cost`.

use crate::cost::{Prices, Tally, Tokens, prices_for, usd_text};
use crate::tui::view::status_bar::compact;

/// Most prompts `/burst` sends at once.
pub const BURST_MAX: u32 = 50;

/// What `/copy` copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyTarget {
    /// `/copy`: the last reply.
    Reply,
    /// `/copy code`: the last code block of the last reply.
    LastCode,
    /// `/copy code N`: the N-th code block of the last reply (1-based, as numbered on screen).
    Code(usize),
}

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `/model NAME` (`None`: show the current one).
    Model(Option<String>),
    /// `/system TEXT` (`None`: clear it).
    System(Option<String>),
    /// `/clear`.
    Clear,
    /// `/retry`.
    Retry,
    /// `/attach PATH`: attach a file to the next prompt.
    Attach(String),
    /// `/detach`: drop the attachments waiting for the next prompt.
    Detach,
    /// `/export [FILE]`: the conversation as Markdown (`None`: `<session>.md`).
    Export(Option<String>),
    /// `/continue`: continue the last broken reply from its partial text.
    Continue,
    /// `/edit`: load the last prompt to edit and resend.
    Edit,
    /// `/find TEXT`: search the transcript (`None`: open the search line to type it).
    Find(Option<String>),
    /// `/help`.
    Help,
    /// `/quit`.
    Quit,
    /// `/burst N [PROMPT]`; `capped` when N was above [`BURST_MAX`].
    Burst {
        /// How many.
        n: u32,
        /// The prompt, if given.
        prompt: Option<String>,
        /// N was lowered to the maximum.
        capped: bool,
    },
    /// `/copy`, `/copy code`, `/copy code N`.
    Copy(CopyTarget),
    /// `/sessions`: pick a saved session.
    Sessions,
    /// `/rename NAME`: rename this session.
    Rename(String),
    /// `/cost`: the session's cost, broken down.
    Cost,
    /// A command that exists, used wrongly: the message says how.
    Invalid(String),
    /// No such command.
    Unknown(String),
}

/// Parse a line that starts with `/`.
pub fn parse(line: &str) -> Command {
    let line = line.trim();
    let body = line.strip_prefix('/').unwrap_or(line);
    let (name, rest) = match body.split_once(char::is_whitespace) {
        Some((n, r)) => (n, r.trim()),
        None => (body, ""),
    };
    let arg = (!rest.is_empty()).then(|| rest.to_string());
    match name {
        "model" => match arg {
            Some(m) if m.split_whitespace().count() > 1 => {
                Command::Invalid("usage: /model NAME (one word, e.g. claude-sonnet-4-6)".into())
            }
            m => Command::Model(m),
        },
        "system" => Command::System(arg),
        "clear" | "new" => Command::Clear,
        "retry" => Command::Retry,
        "edit" => Command::Edit,
        "continue" => Command::Continue,
        "export" => Command::Export(arg),
        "attach" => match arg {
            Some(path) => Command::Attach(path),
            None => Command::Invalid("usage: /attach PATH".into()),
        },
        "detach" => Command::Detach,
        "find" | "search" => Command::Find(arg),
        "help" | "?" => Command::Help,
        "quit" | "exit" | "q" => Command::Quit,
        "copy" => {
            let words: Vec<&str> = rest.split_whitespace().collect();
            match words[..] {
                [] => Command::Copy(CopyTarget::Reply),
                ["code"] => Command::Copy(CopyTarget::LastCode),
                ["code", n] => match n.parse::<usize>() {
                    Ok(n) if n >= 1 => Command::Copy(CopyTarget::Code(n)),
                    _ => Command::Invalid(
                        "usage: /copy code N, N from 1 (the [N] on a code block)".into(),
                    ),
                },
                _ => Command::Invalid("usage: /copy, /copy code or /copy code N".into()),
            }
        }
        "cost" => Command::Cost,
        "sessions" | "resume" => Command::Sessions,
        "rename" => match arg {
            Some(name) => Command::Rename(name),
            None => Command::Invalid("usage: /rename NAME".into()),
        },
        "burst" => {
            let (n, prompt) = match rest.split_once(char::is_whitespace) {
                Some((n, p)) => (n, Some(p.trim().to_string()).filter(|p| !p.is_empty())),
                None => (rest, None),
            };
            match n.parse::<u64>() {
                Ok(0) | Err(_) => Command::Invalid(format!(
                    "usage: /burst N [PROMPT] with N from 1 to {BURST_MAX}"
                )),
                Ok(n) => Command::Burst {
                    n: n.min(u64::from(BURST_MAX)) as u32,
                    prompt,
                    capped: n > u64::from(BURST_MAX),
                },
            }
        }
        other => Command::Unknown(other.to_string()),
    }
}

/// The `/cost` breakdown of a conversation's turns `(model, tokens)`, one line per subject:
/// the session's total and the last turn's; each kind of input token with its count and
/// price; the output, the cache hit rate and what the prompt cache saved. A model without a
/// price shows its token counts and "price unknown".
pub fn cost_report(turns: &[(String, Tokens)]) -> String {
    if turns.is_empty() {
        return "cost: no usage yet".into();
    }
    let mut session = Tally::default();
    for (model, t) in turns {
        session.add(model, t);
    }
    let (last_model, last) = &turns[turns.len() - 1];
    let mut turn = Tally::default();
    turn.add(last_model, last);
    let price = |t: &Tally| {
        if t.priced() {
            usd_text(t.usd)
        } else {
            "price unknown".into()
        }
    };
    let t = session.tokens;
    // Per kind, priced with the last turn's model when every turn used it.
    let one_model = turns.iter().all(|(m, _)| m == last_model);
    let p: Option<Prices> = one_model.then(|| prices_for(last_model)).flatten();
    let part = |n: u64, rate: fn(&Prices) -> f64| match p {
        Some(p) => format!("{} {}", compact(n), usd_text(n as f64 * rate(&p) / 1e6)),
        None => compact(n),
    };
    // Only the kinds that occurred, so the input line stays short.
    let mut kinds: Vec<String> = Vec::new();
    for (n, what, rate) in [
        (
            t.input,
            "uncached",
            (|p: &Prices| p.base_input) as fn(&Prices) -> f64,
        ),
        (t.cache_write_5m, "written 5m", |p| p.cache_write_5m),
        (t.cache_write_1h, "written 1h", |p| p.cache_write_1h),
        (t.cache_read, "read", |p| p.cache_read),
    ] {
        if n > 0 {
            kinds.push(format!("{} {what}", part(n, rate)));
        }
    }
    // One line per subject; the rule wraps each to the terminal's width.
    let mut out = format!(
        "cost: {} this session ({} turn{}) · this turn {}",
        price(&session),
        turns.len(),
        if turns.len() == 1 { "" } else { "s" },
        price(&turn),
    );
    out.push_str(&format!(
        "\ninput: {}",
        if kinds.is_empty() {
            "0".to_string()
        } else {
            kinds.join(", ")
        }
    ));
    out.push_str(&format!(
        "\noutput: {} · cache {:.0}% read",
        part(t.output, |p| p.output),
        t.hit_rate() * 100.0
    ));
    if session.priced() {
        out.push_str(&format!(
            ", saved {} of {}",
            usd_text(session.saved_usd()),
            usd_text(session.uncached_usd)
        ));
    }
    if session.unpriced > 0 {
        out.push_str(&format!(
            "\n{} turns with a model that has no price (counted in tokens only)",
            session.unpriced
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse("/model x"), Command::Model(Some("x".into())));
        assert_eq!(parse("/model"), Command::Model(None));
        assert!(matches!(parse("/model a b"), Command::Invalid(_)));
        assert_eq!(
            parse("/system  be brief "),
            Command::System(Some("be brief".into()))
        );
        assert_eq!(
            parse("/burst 3"),
            Command::Burst {
                n: 3,
                prompt: None,
                capped: false
            }
        );
        assert_eq!(
            parse("/burst 500 hi there"),
            Command::Burst {
                n: 50,
                prompt: Some("hi there".into()),
                capped: true
            }
        );
        assert!(matches!(parse("/burst"), Command::Invalid(_)));
        assert!(matches!(parse("/burst -1"), Command::Invalid(_)));
        assert_eq!(parse("/frobnicate"), Command::Unknown("frobnicate".into()));
        assert_eq!(parse("/sessions"), Command::Sessions);
        assert_eq!(parse("/copy"), Command::Copy(CopyTarget::Reply));
        assert_eq!(parse("/copy code"), Command::Copy(CopyTarget::LastCode));
        assert_eq!(parse("/copy code 2"), Command::Copy(CopyTarget::Code(2)));
        assert!(matches!(parse("/copy code 0"), Command::Invalid(_)));
        assert!(matches!(parse("/copy all"), Command::Invalid(_)));
        assert_eq!(parse("/new"), Command::Clear);
        assert_eq!(parse("/cost"), Command::Cost);
        assert_eq!(
            parse("/rename my notes"),
            Command::Rename("my notes".into())
        );
        assert!(matches!(parse("/rename"), Command::Invalid(_)));
    }

    #[test]
    fn cost_report_breaks_the_session_down() {
        let t = |input, w, r, out| Tokens {
            input,
            cache_write_5m: w,
            cache_write_1h: 0,
            cache_read: r,
            output: out,
        };
        let turns = vec![
            ("claude-sonnet-4-6".to_string(), t(10, 4000, 0, 700)),
            ("claude-sonnet-4-6".to_string(), t(10, 1200, 4000, 700)),
        ];
        let text = cost_report(&turns);
        assert!(text.starts_with("cost: $0.0"), "{text}");
        assert!(text.contains("(2 turns)"), "{text}");
        assert!(text.contains("4k $0.0012 read"), "{text}");
        assert!(text.contains("saved"), "{text}");
        let unknown = cost_report(&[("x-model".to_string(), t(10, 0, 0, 5))]);
        assert!(unknown.contains("price unknown"), "{unknown}");
        assert!(!unknown.contains('$'), "{unknown}");
        assert_eq!(cost_report(&[]), "cost: no usage yet");
    }
}
