//! Test support shared by the session, config and key-leak tests: temporary XDG directories,
//! a way to run the real binary in them, and a tiny scripted stand-in for the Messages API
//! (raw HTTP over a loopback TcpListener, one thread per connection).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_backchat");

/// A scratch home with its own XDG directories.
pub struct Home {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

impl Home {
    /// A fresh one.
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    /// Its root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `$XDG_CONFIG_HOME/backchat/config.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.root().join("config/backchat/config.toml")
    }

    /// Write the default config file.
    pub fn write_config(&self, text: &str) -> PathBuf {
        let p = self.config_file();
        std::fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write config");
        set_mode(&p, 0o600);
        p
    }

    /// `$XDG_DATA_HOME/backchat/sessions`.
    pub fn sessions_dir(&self) -> PathBuf {
        self.root().join("data/backchat/sessions")
    }

    /// The session file `name`.
    pub fn session_file(&self, name: &str) -> PathBuf {
        self.sessions_dir().join(format!("{name}.jsonl"))
    }

    /// `$XDG_STATE_HOME/backchat/backchat.log`.
    pub fn log_file(&self) -> PathBuf {
        self.root().join("state/backchat/backchat.log")
    }

    /// A command for the binary with only this home's environment (no inherited
    /// `ANTHROPIC_*`/`BACKCHAT_*` variables).
    pub fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.root())
            .env("XDG_CONFIG_HOME", self.root().join("config"))
            .env("XDG_DATA_HOME", self.root().join("data"))
            .env("XDG_STATE_HOME", self.root().join("state"))
            .current_dir(self.root())
            .stdin(Stdio::null());
        c
    }

    /// Run the binary with `args` and extra environment, to completion.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.command();
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        run_with_timeout(c, Duration::from_mins(1))
    }

    /// The environment variables of [`Home::command`], for an in-process `Config::resolve`.
    pub fn env(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |k: &str| match k {
            "HOME" => Some(self.root().display().to_string()),
            "XDG_CONFIG_HOME" => Some(self.root().join("config").display().to_string()),
            "XDG_DATA_HOME" => Some(self.root().join("data").display().to_string()),
            "XDG_STATE_HOME" => Some(self.root().join("state").display().to_string()),
            _ => None,
        }
    }
}

/// Run a command, killing it if it outlives `limit` (so a hang fails the test instead of
/// blocking the suite).
pub fn run_with_timeout(mut c: Command, limit: Duration) -> Output {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().expect("the binary starts");
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    if let Ok(out) = rx.recv_timeout(limit) {
        out.expect("output collected")
    } else {
        let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
        panic!("backchat did not finish within {limit:?}");
    }
}

/// Set a file's permission bits.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Text of stdout and stderr.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Poll `cond` every 20 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// How the fake API answers one request.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A complete streamed reply with this text.
    Reply(String),
    /// Stream this much text, then keep the connection open without a word (until killed).
    Hang(String),
    /// 401 with the JSON error envelope; the message echoes the key it was sent, as a careless
    /// proxy might, to prove the client redacts it.
    Unauthorized,
}

/// One request the fake API received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The `x-api-key` header.
    pub api_key: Option<String>,
    /// The JSON body.
    pub body: serde_json::Value,
}

/// A scripted Messages API on a loopback port.
pub struct FakeApi {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Every request, in order.
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl FakeApi {
    /// Serve: the n-th request (from 0) gets `script(n)`.
    pub fn start(script: impl Fn(usize) -> Answer + Send + Sync + 'static) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let script = Arc::new(script);
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let log = Arc::clone(&log);
                let script = Arc::clone(&script);
                std::thread::spawn(move || serve(stream, script(n), &log));
            }
        });
        FakeApi { url, received }
    }

    /// The bodies received so far.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.received
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|r| r.body.clone())
            .collect()
    }
}

fn serve(stream: TcpStream, answer: Answer, log: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone socket"));
    let mut length = 0usize;
    let mut api_key = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-length" {
                length = v.trim().parse().unwrap_or(0);
            } else if k == "x-api-key" {
                api_key = Some(v.trim().to_string());
            }
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    log.lock().expect("not poisoned").push(Received {
        api_key: api_key.clone(),
        body,
    });
    let mut out = stream;
    match answer {
        Answer::Unauthorized => {
            let body = serde_json::json!({
                "type": "error",
                "error": {
                    "type": "authentication_error",
                    "message": format!("invalid x-api-key: {}", api_key.unwrap_or_default())
                },
                "request_id": "req_test_401"
            })
            .to_string();
            let _ = write!(
                out,
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\
                 request-id: req_test_401\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Answer::Reply(text) => {
            let _ = out.write_all(sse_head().as_bytes());
            let _ = out.write_all(sse_text(&text).as_bytes());
            let _ = out.write_all(sse_tail().as_bytes());
        }
        Answer::Hang(text) => {
            let _ = out.write_all(sse_head().as_bytes());
            let _ = out.write_all(sse_text(&text).as_bytes());
            let _ = out.flush();
            // Hold the connection open until the client goes away.
            std::thread::sleep(Duration::from_mins(5));
        }
    }
    let _ = out.flush();
}

fn event(name: &str, data: serde_json::Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn sse_head() -> String {
    let mut s = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
         request-id: req_test_ok\r\nconnection: close\r\n\r\n",
    );
    s += &event(
        "message_start",
        serde_json::json!({"type":"message_start","message":{"id":"msg_1","type":"message",
            "role":"assistant","model":"claude-test","content":[],"stop_reason":null,
            "stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}),
    );
    s += &event(
        "content_block_start",
        serde_json::json!({"type":"content_block_start","index":0,
            "content_block":{"type":"text","text":""}}),
    );
    s
}

fn sse_text(text: &str) -> String {
    event(
        "content_block_delta",
        serde_json::json!({"type":"content_block_delta","index":0,
            "delta":{"type":"text_delta","text":text}}),
    )
}

fn sse_tail() -> String {
    let mut s = event(
        "content_block_stop",
        serde_json::json!({"type":"content_block_stop","index":0}),
    );
    s += &event(
        "message_delta",
        serde_json::json!({"type":"message_delta","delta":{"stop_reason":"end_turn",
            "stop_sequence":null},"usage":{"output_tokens":5}}),
    );
    s += &event("message_stop", serde_json::json!({"type":"message_stop"}));
    s
}

/// The roles of a request body's messages.
pub fn roles(body: &serde_json::Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| m["role"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The text of message `i` of a request body.
pub fn message_text(body: &serde_json::Value, i: usize) -> String {
    let content = &body["messages"][i]["content"];
    match content {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}
