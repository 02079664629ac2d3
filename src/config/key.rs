//! Getting the key out of a password manager (`api_key_cmd`), and warning about a key stored
//! in a file that others can read.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::secret::ApiKey;

/// Run `command` with `sh -c` and take the first line of its stdout as the key.
///
/// The first line, because `pass show` and similar tools print the secret first and metadata
/// after it. stdin is closed and stderr goes to ours, so a password manager can still prompt
/// (most do so on the terminal directly). The error never quotes the output: on failure it
/// may well hold the key.
pub fn run_key_command(command: &str) -> Result<ApiKey, String> {
    let output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("api_key_cmd could not be started (sh -c): {e}"))?;
    if !output.status.success() {
        let status = match output.status.code() {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_string(),
        };
        return Err(format!(
            "api_key_cmd failed ({status}); its output is not shown because it may hold the key"
        ));
    }
    let Ok(text) = String::from_utf8(output.stdout) else {
        return Err("api_key_cmd printed something that is not UTF-8 text".into());
    };
    let first = text.lines().next().unwrap_or_default();
    ApiKey::new(first).ok_or_else(|| {
        "api_key_cmd succeeded but printed nothing on its first line of stdout".to_string()
    })
}

/// A warning when the file at `path` can be read by users other than its owner.
#[cfg(unix)]
pub fn readable_by_others(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} holds an API key and other users can read it (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )
    })
}

/// A warning when the file at `path` can be read by users other than its owner.
#[cfg(not(unix))]
pub fn readable_by_others(_path: &Path) -> Option<String> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_of_stdout_is_the_key() {
        let k = run_key_command("printf 'sk-ant-cmd-key-123\\nmetadata: x\\n'").expect("runs");
        assert_eq!(k.expose(), "sk-ant-cmd-key-123");
    }

    #[test]
    fn failures_name_the_status_and_never_the_output() {
        let e = run_key_command("echo sk-ant-should-not-show; exit 3").expect_err("fails");
        assert!(e.contains("exit status 3"), "{e}");
        assert!(!e.contains("should-not-show"), "{e}");
        let e = run_key_command("true").expect_err("empty");
        assert!(e.contains("printed nothing"), "{e}");
    }
}
