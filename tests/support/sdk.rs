//! Running a check script of the official Anthropic Python SDK (`tests/sdk/*.py`) against a
//! server started by the test, the same way for every SDK test.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Whether the `anthropic` Python package can be imported. Without it an SDK test fails and
/// says how to install it, unless `BACKCHAT_SKIP_SDK_TESTS=1` is set, when it returns `false`
/// and the test skips itself.
pub fn sdk_ready() -> bool {
    let available = std::process::Command::new("python3")
        .args(["-c", "import anthropic"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if available {
        return true;
    }
    if std::env::var("BACKCHAT_SKIP_SDK_TESTS").is_ok_and(|v| v == "1") {
        eprintln!(
            "skipped: the `anthropic` Python package is not installed (BACKCHAT_SKIP_SDK_TESTS=1)"
        );
        return false;
    }
    panic!(
        "`python3 -c \"import anthropic\"` failed: run `pip install anthropic` \
         (or set BACKCHAT_SKIP_SDK_TESTS=1 to skip this test)"
    );
}

/// Run `tests/sdk/<script>` with `args`; it must exit 0 within two minutes. Returns its stdout.
pub async fn run_check(script: &str, args: &[String]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(script);
    let run = tokio::process::Command::new("python3")
        .arg(&path)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        // The scripts import `tests/sdk/mock_admin.py`: no bytecode cache in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_mins(2), run)
        .await
        .expect("the SDK check finished within 2 minutes")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the SDK check failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}
