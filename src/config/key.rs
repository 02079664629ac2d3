//! Getting the key out of a password manager (`api_key_cmd`), and warning about a key stored
//! in a file that others can read.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::secret::ApiKey;

/// How long `api_key_cmd` may run: a password manager that waits for a person to unlock it
/// still answers well within this; `sleep 1000` does not hang the program.
pub const KEY_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// The most `api_key_cmd` may print. A key is about a hundred bytes; `cat /dev/zero` is
/// stopped here instead of filling memory.
pub const KEY_COMMAND_MAX_OUTPUT: usize = 64 << 10;

/// Run `command` with `sh -c` and take the first line of its stdout as the key.
///
/// The first line, because `pass show` and similar tools print the secret first and metadata
/// after it. stdin is closed and stderr goes to ours, so a password manager can still prompt
/// (most do so on the terminal directly). The error never quotes the output: on failure it
/// may well hold the key. The command gets [`KEY_COMMAND_TIMEOUT`] and may print at most
/// [`KEY_COMMAND_MAX_OUTPUT`] bytes; past either, it is killed (its whole process group, so
/// that `sh -c 'sleep 1000'` leaves no `sleep` behind).
pub fn run_key_command(command: &str) -> Result<ApiKey, String> {
    run_key_command_with(command, KEY_COMMAND_TIMEOUT, KEY_COMMAND_MAX_OUTPUT)
}

/// [`run_key_command`] with its limits given (tests use short ones).
pub fn run_key_command_with(
    command: &str,
    timeout: Duration,
    max_output: usize,
) -> Result<ApiKey, String> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("api_key_cmd could not be started (sh -c): {e}"))?;
    let Some(stdout) = child.stdout.take() else {
        kill(&mut child);
        return Err("api_key_cmd could not be started: no stdout".into());
    };
    // Read on a thread, so that a command that never closes its stdout cannot block us.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let read = stdout
            .take(max_output as u64 + 1)
            .read_to_end(&mut buf)
            .map(|_| buf);
        let _ = tx.send(read);
    });
    let started = Instant::now();
    let out = match rx.recv_timeout(timeout) {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            kill(&mut child);
            return Err(format!("api_key_cmd's output could not be read: {e}"));
        }
        Err(_) => {
            kill(&mut child);
            return Err(timed_out(timeout));
        }
    };
    if out.len() > max_output {
        kill(&mut child);
        return Err(format!(
            "api_key_cmd printed more than {} KiB; a key is one short line",
            max_output >> 10
        ));
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                kill(&mut child);
                return Err(timed_out(timeout));
            }
            Err(e) => {
                kill(&mut child);
                return Err(format!("api_key_cmd could not be waited for: {e}"));
            }
        }
    };
    if !status.success() {
        let status = match status.code() {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_string(),
        };
        return Err(format!(
            "api_key_cmd failed ({status}); its output is not shown because it may hold the key"
        ));
    }
    let Ok(text) = String::from_utf8(out) else {
        return Err("api_key_cmd printed something that is not UTF-8 text".into());
    };
    let first = text.lines().next().unwrap_or_default();
    ApiKey::new(first).ok_or_else(|| {
        "api_key_cmd succeeded but printed nothing on its first line of stdout".to_string()
    })
}

fn timed_out(timeout: Duration) -> String {
    format!(
        "api_key_cmd did not finish within {}s and was stopped",
        timeout.as_secs()
    )
}

/// Kill the command and everything it started (its process group), then reap it.
fn kill(child: &mut Child) {
    #[cfg(unix)]
    {
        // The group was created by `process_group(0)`, so its id is the child's pid.
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// An error when `key` cannot be sent as an HTTP header value: a control character (a
/// newline inside it, an escape) or a non-ASCII character. Such a key would fail every
/// request as a "network error"; it is a configuration error instead.
pub fn check_header_safe(key: &ApiKey) -> Result<(), String> {
    let bad = key
        .expose()
        .chars()
        .position(|c| !(c.is_ascii_graphic() || c == ' '));
    match bad {
        None => Ok(()),
        Some(at) => Err(format!(
            "the API key has a character that no HTTP header can carry (a control or non-ASCII \
             character at position {}); check how it was copied",
            at + 1
        )),
    }
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

    #[test]
    fn a_hung_command_times_out_and_a_flood_is_capped() {
        let t = Instant::now();
        let e = run_key_command_with("sleep 1000", Duration::from_millis(300), 1024)
            .expect_err("times out");
        assert!(e.contains("did not finish"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let e = run_key_command_with("cat /dev/zero", Duration::from_secs(5), 1024)
            .expect_err("capped");
        assert!(e.contains("more than 1 KiB"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    }

    #[test]
    fn a_key_no_header_can_carry_is_refused() {
        let bad = ApiKey::new("sk-ant-abc\u{1b}[2Jdef").expect("key");
        assert!(
            check_header_safe(&bad)
                .expect_err("bad")
                .contains("position 11")
        );
        let bad = ApiKey::new("sk-ant-é").expect("key");
        assert!(check_header_safe(&bad).is_err());
        assert!(check_header_safe(&ApiKey::new("sk-ant-api03-AbC_d-9").expect("key")).is_ok());
    }
}
