//! Slash commands: parsing only (the app carries them out).

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
        assert_eq!(
            parse("/rename my notes"),
            Command::Rename("my notes".into())
        );
        assert!(matches!(parse("/rename"), Command::Invalid(_)));
    }
}
