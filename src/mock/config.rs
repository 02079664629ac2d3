//! The mock's settings: limits, speed, faults, outages and scripted steps.
//!
//! [`MockConfig::default`] is a quiet Tier-1 server (limits in docs/protocol.md). A scenario
//! file (`mock/scenario.rs`, format in docs/mock.md) or the `backchat mock` flags
//! (`mock/args.rs`) change it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::script::ScriptStep;

/// Per-minute limits of one API key, as the tier tables state them (docs/protocol.md).
#[derive(Clone, Debug, PartialEq)]
pub struct MockLimits {
    /// Requests per minute.
    pub rpm: u64,
    /// Input tokens per minute.
    pub itpm: u64,
    /// Output tokens per minute.
    pub otpm: u64,
    /// Bucket capacity as a fraction of the per-minute limit: 1.0 is the documented
    /// behaviour; 1/60 models "60 RPM enforced as 1 per second", which the rate-limits page
    /// warns the API may do (docs/retries.md).
    pub capacity_fraction: f64,
}

impl Default for MockLimits {
    fn default() -> Self {
        MockLimits::tier(1).unwrap_or(MockLimits {
            rpm: 50,
            itpm: 30_000,
            otpm: 8_000,
            capacity_fraction: 1.0,
        })
    }
}

impl MockLimits {
    /// The Sonnet/Opus 4.x limits of a usage tier (1–4), from the rate-limits page
    /// (docs/protocol.md); `None` for another number.
    pub fn tier(tier: u8) -> Option<MockLimits> {
        let (rpm, itpm, otpm) = match tier {
            1 => (50, 30_000, 8_000),
            2 => (1_000, 450_000, 90_000),
            3 => (2_000, 800_000, 160_000),
            4 => (4_000, 2_000_000, 400_000),
            _ => return None,
        };
        Some(MockLimits {
            rpm,
            itpm,
            otpm,
            capacity_fraction: 1.0,
        })
    }

    /// Limits tight enough that a person sees pacing within a minute: 6 RPM, 4,000 ITPM,
    /// 3,000 OTPM (a canned reply is 150–700 tokens, so about six replies a minute).
    pub fn tight_demo() -> MockLimits {
        MockLimits {
            rpm: 6,
            itpm: 4_000,
            otpm: 3_000,
            capacity_fraction: 1.0,
        }
    }

    /// "50 RPM, 30,000 ITPM, 8,000 OTPM" (plus the capacity fraction when it is not 1).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} RPM, {} ITPM, {} OTPM",
            thousands(self.rpm),
            thousands(self.itpm),
            thousands(self.otpm)
        );
        if (self.capacity_fraction - 1.0).abs() > 1e-9 {
            s.push_str(&format!(", capacity ×{:.3}", self.capacity_fraction));
        }
        s
    }
}

/// Per-request probabilities of injected faults (each 0.0–1.0).
///
/// The error and stream faults are mutually exclusive: one uniform draw per request walks
/// them in the order listed here. A slow first byte is drawn separately and can come on top.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRates {
    /// 529 `overloaded_error`, no `retry-after`.
    pub overloaded: f64,
    /// 500 `api_error`.
    pub server_error: f64,
    /// 503, JSON `api_error`, or an HTML page when [`FaultRates::unavailable_html`] is set.
    pub unavailable: f64,
    /// Send the 503 as a proxy's HTML page instead of the JSON envelope.
    pub unavailable_html: bool,
    /// The spend-cap 429 (`enforced_spend_limit_reached`, no `retry-after`).
    pub spend_cap: f64,
    /// `event: error` (`overloaded_error`) after some text of a 200 stream.
    pub midstream_error: f64,
    /// The connection is cut after some text, without `message_stop`.
    pub drop: f64,
    /// The body ends cleanly at the HTTP level after some text, without `message_stop`.
    pub end_without_stop: f64,
    /// The stream stops sending after some text and keeps the connection open.
    pub stall: f64,
    /// A delay before the response headers.
    pub slow_first_byte: f64,
    /// How long a slow first byte takes.
    pub slow_first_byte_delay: Duration,
    /// `x-should-retry` on injected error responses: `None` sends no header.
    pub should_retry: Option<bool>,
}

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates {
            overloaded: 0.0,
            server_error: 0.0,
            unavailable: 0.0,
            unavailable_html: false,
            spend_cap: 0.0,
            midstream_error: 0.0,
            drop: 0.0,
            end_without_stop: 0.0,
            stall: 0.0,
            slow_first_byte: 0.0,
            slow_first_byte_delay: Duration::from_secs(5),
            should_retry: None,
        }
    }
}

impl FaultRates {
    /// True when no fault can be injected at random.
    pub fn is_quiet(&self) -> bool {
        self.named().iter().all(|(_, p)| *p <= 0.0)
    }

    /// Each rate with its name, in draw order (slow first byte last).
    pub fn named(&self) -> [(&'static str, f64); 9] {
        [
            ("overloaded", self.overloaded),
            ("server_error", self.server_error),
            ("unavailable", self.unavailable),
            ("spend_cap", self.spend_cap),
            ("midstream_error", self.midstream_error),
            ("drop", self.drop),
            ("end_without_stop", self.end_without_stop),
            ("stall", self.stall),
            ("slow_first_byte", self.slow_first_byte),
        ]
    }

    /// "none", or "overloaded 5%, drop 1%".
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .named()
            .iter()
            .filter(|(_, p)| *p > 0.0)
            .map(|(n, p)| format!("{n} {}%", (p * 1000.0).round() / 10.0))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// A scheduled outage: every `POST /v1/messages` between `start` and `end` after the server
/// started gets `status` (529 `overloaded_error` by default).
#[derive(Clone, Debug, PartialEq)]
pub struct Outage {
    /// Start, measured from server start.
    pub start: Duration,
    /// End (exclusive), measured from server start.
    pub end: Duration,
    /// The status every request gets meanwhile; the error type follows from it.
    pub status: u16,
}

impl Outage {
    /// A 529 outage between two offsets in seconds.
    pub fn overloaded(start_s: f64, end_s: f64) -> Outage {
        Outage {
            start: crate::clock::secs_f64(start_s),
            end: crate::clock::secs_f64(end_s),
            status: 529,
        }
    }

    /// True when `elapsed` (since server start) falls inside the window.
    pub fn covers(&self, elapsed: Duration) -> bool {
        elapsed >= self.start && elapsed < self.end
    }
}

/// Everything the mock server can be told.
#[derive(Clone, Debug, PartialEq)]
pub struct MockConfig {
    /// Per-key limits.
    pub limits: MockLimits,
    /// Generation speed in output tokens per second (default 60).
    pub token_rate: f64,
    /// Fixes the reply (reply number `seed mod N`) and the random fault sequence. `None`:
    /// the reply follows from a hash of the last user prompt, and faults are drawn from
    /// system entropy.
    pub seed: Option<u64>,
    /// Random fault rates.
    pub faults: FaultRates,
    /// Steps consumed one per `POST /v1/messages`, before normal processing.
    pub script: Vec<ScriptStep>,
    /// Scheduled outages.
    pub outages: Vec<Outage>,
    /// Largest request body accepted; larger ones get 413 (32 MB, like the real API).
    pub max_body_bytes: usize,
    /// Time between `ping` events while a stream is generating.
    pub ping_interval: Duration,
    /// Add `retry-after-ms` (precise milliseconds) to rate-limit 429s.
    pub emit_retry_after_ms: bool,
    /// Keys answered with 401 "invalid x-api-key" (only their hashes are kept at run time).
    pub rejected_keys: Vec<String>,
    /// Serve the test-only `POST /_mock/script` and `GET /_mock/stats` (off by default).
    pub admin_endpoint: bool,
    /// Shrinks the mock's minute: buckets refill `time_scale`× faster, so `retry-after` and
    /// `*-reset` shrink with them. The reported per-minute limits stay the same.
    pub time_scale: f64,
    /// Time from the start of a reply to its first token (time to first token).
    pub first_token_latency: Duration,
    /// Answer 400 when the `anthropic-version` header is missing, as the real API does.
    pub require_anthropic_version: bool,
    /// A line that says what the scenario is for (shown at start-up).
    pub description: Option<String>,
    /// Probability that a request finds its key's prompt cache evicted (a forced miss).
    pub cache_evict: f64,
    /// Most connections open at once; further clients wait until one closes.
    pub max_connections: usize,
    /// Time allowed for a connection's first request headers to arrive (slowloris guard).
    /// Off for in-process servers: on a paused test clock tokio may jump past it while a
    /// request is still on the loopback wire. The standalone mock sets 10 s.
    pub header_read_timeout: Option<Duration>,
    /// Close a kept-alive connection that has had no request in flight and no bytes
    /// arriving for this long, so that idle clients cannot hold every slot. A response in
    /// progress (a slow first byte, a stall, a long stream) never counts as idle. Off for
    /// in-process servers: their one client is the process itself, and a paused test clock
    /// that jumps minutes between two requests would close the client's pooled connection
    /// under it. The standalone mock sets 60 s (`--idle-timeout`).
    pub idle_timeout: Option<Duration>,
    /// Keep a record of each request (`MockStats::requests`, a ring of the last
    /// [`super::stats::MAX_RECORDS`]). The counters are always kept. On for in-process
    /// servers (tests read the records); the standalone mock keeps them only with
    /// `--admin-endpoint`, the one way to read them.
    pub keep_request_records: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            limits: MockLimits::default(),
            token_rate: 60.0,
            seed: None,
            faults: FaultRates::default(),
            script: Vec::new(),
            outages: Vec::new(),
            max_body_bytes: 32 * 1024 * 1024,
            ping_interval: Duration::from_secs(5),
            emit_retry_after_ms: false,
            rejected_keys: Vec::new(),
            admin_endpoint: false,
            time_scale: 1.0,
            first_token_latency: Duration::from_millis(200),
            require_anthropic_version: true,
            description: None,
            cache_evict: 0.0,
            max_connections: 1024,
            header_read_timeout: None,
            idle_timeout: None,
            keep_request_records: true,
        }
    }
}

impl MockConfig {
    /// The `--demo` server: tight limits (6 RPM, 4,000 ITPM, 3,000 OTPM), so that pacing
    /// shows within the first minute. A client that paces itself rarely meets a 429, so the
    /// demo also answers the first request with a 429 (`retry-after: 3`) and one request in
    /// twelve with a 529: a new user sees a countdown and backoff at once.
    pub fn tight_demo() -> MockConfig {
        MockConfig {
            limits: MockLimits::tight_demo(),
            token_rate: 40.0,
            faults: FaultRates {
                overloaded: 1.0 / 12.0,
                ..FaultRates::default()
            },
            script: vec![ScriptStep::rate_limited("3")],
            description: Some(
                "tight demo limits (6 RPM, 4,000 ITPM, 3,000 OTPM), a 429 on the first request, some 529s"
                    .into(),
            ),
            ..MockConfig::default()
        }
    }

    /// Read a TOML scenario file (format in docs/mock.md).
    pub fn from_scenario_file(path: &Path) -> Result<MockConfig, MockConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| MockConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_scenario_str(&text, &path.display().to_string())
    }

    /// Parse a TOML scenario; `origin` names it in errors (a path, or `"<inline>"`).
    pub fn from_scenario_str(text: &str, origin: &str) -> Result<MockConfig, MockConfigError> {
        super::scenario::parse(text, origin)
    }

    /// One line for people: limits, speed and faults.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "limits: {}; {} tokens/s; faults: {}",
            self.limits.summary(),
            self.token_rate,
            self.faults.summary()
        );
        if !self.outages.is_empty() {
            s.push_str(&format!("; {} outage(s)", self.outages.len()));
        }
        if !self.script.is_empty() {
            s.push_str(&format!("; {} scripted step(s)", self.script.len()));
        }
        if (self.time_scale - 1.0).abs() > 1e-9 {
            s.push_str(&format!("; time ×{}", self.time_scale));
        }
        s
    }

    /// Check values that make no sense (used after flags are applied).
    pub fn validate(&self) -> Result<(), MockConfigError> {
        let bad = |what: &str, why: &str| {
            Err(MockConfigError::Invalid {
                what: what.into(),
                message: why.into(),
            })
        };
        if self.limits.rpm == 0 || self.limits.itpm == 0 || self.limits.otpm == 0 {
            return bad("limits", "rpm, itpm and otpm must be at least 1");
        }
        let f = self.limits.capacity_fraction;
        if !(f.is_finite() && f > 0.0 && f <= 1.0) {
            return bad("capacity_fraction", "must be in (0, 1]");
        }
        if !(self.token_rate.is_finite() && self.token_rate > 0.0) {
            return bad(
                "token_rate",
                "must be a positive number of tokens per second",
            );
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return bad("time_scale", "must be a positive factor");
        }
        for (name, p) in self.faults.named() {
            if !(0.0..=1.0).contains(&p) {
                return bad(name, "a fault rate must be between 0 and 1");
            }
        }
        for o in &self.outages {
            if o.end <= o.start {
                return bad("outages", "an outage must end after it starts");
            }
        }
        Ok(())
    }
}

/// A scenario file or a flag that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MockConfigError {
    /// The file could not be read.
    #[error("cannot read scenario {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key or a bad value (the message names the key
    /// and the line).
    #[error("{origin}: {message}")]
    Parse {
        /// The file (or `"<inline>"`).
        origin: String,
        /// toml's message, with line and column.
        message: String,
    },
    /// A value that parses but makes no sense.
    #[error("{what}: {message}")]
    Invalid {
        /// The key or flag.
        what: String,
        /// Why.
        message: String,
    },
}

pub use crate::util::thousands;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_tier_one_and_valid() {
        let c = MockConfig::default();
        assert_eq!(
            (c.limits.rpm, c.limits.itpm, c.limits.otpm),
            (50, 30_000, 8_000)
        );
        assert!(c.validate().is_ok());
        assert!(c.faults.is_quiet());
        assert_eq!(
            c.summary(),
            "limits: 50 RPM, 30,000 ITPM, 8,000 OTPM; 60 tokens/s; faults: none"
        );
        assert!(MockConfig::tight_demo().validate().is_ok());
    }

    #[test]
    fn outage_window_is_half_open() {
        let o = Outage::overloaded(10.0, 40.0);
        assert!(!o.covers(Duration::from_secs(9)));
        assert!(o.covers(Duration::from_secs(10)));
        assert!(!o.covers(Duration::from_secs(40)));
    }
}
