//! `backchat mock`: the mock as a standalone server, set up by flags and/or a scenario file
//! (flags override the file).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::config::{MockConfig, MockConfigError, MockLimits};
use super::server::MockServer;
use crate::util::parse_fraction;

/// Flags of `backchat mock`.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct MockArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787", help_heading = "Server")]
    pub addr: SocketAddr,
    /// TOML scenario file (limits, faults, outages, script); see docs/mock.md.
    #[arg(long, value_name = "FILE", help_heading = "Server")]
    pub scenario: Option<PathBuf>,
    /// Usage tier whose limits to use (1–4).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4), help_heading = "Limits")]
    pub tier: Option<u8>,
    /// Requests per minute.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Limits")]
    pub rpm: Option<u64>,
    /// Input tokens per minute.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Limits")]
    pub itpm: Option<u64>,
    /// Output tokens per minute.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Limits")]
    pub otpm: Option<u64>,
    /// Bucket capacity as a fraction of the per-minute limit, in (0, 1]: `0.25`, `1/6`.
    #[arg(long, value_name = "F", value_parser = parse_fraction, help_heading = "Limits")]
    pub capacity_fraction: Option<f64>,
    /// Generation speed, output tokens per second.
    #[arg(long, value_parser = parse_positive, help_heading = "Limits")]
    pub token_rate: Option<f64>,
    /// Fix the reply (reply number seed mod N) and the random fault sequence.
    #[arg(long, help_heading = "Server")]
    pub seed: Option<u64>,
    /// Probability of a 529 overloaded_error per request.
    #[arg(long, value_name = "RATE", value_parser = parse_rate, help_heading = "Faults")]
    pub fault_overloaded: Option<f64>,
    /// Probability of a 500 api_error per request.
    #[arg(long, value_name = "RATE", value_parser = parse_rate, help_heading = "Faults")]
    pub fault_server_error: Option<f64>,
    /// Probability of a 503 per request.
    #[arg(long, value_name = "RATE", value_parser = parse_rate, help_heading = "Faults")]
    pub fault_unavailable: Option<f64>,
    /// Send the 503 as a proxy's HTML page instead of JSON.
    #[arg(long, help_heading = "Faults")]
    pub unavailable_html: bool,
    /// Probability of a mid-stream `event: error` (overloaded_error).
    #[arg(long, value_name = "RATE", value_parser = parse_rate, help_heading = "Faults")]
    pub fault_midstream_error: Option<f64>,
    /// Probability of a connection dropped mid-stream.
    #[arg(long, value_name = "RATE", value_parser = parse_rate, help_heading = "Faults")]
    pub fault_drop: Option<f64>,
    /// Probability of a stream that ends without message_stop.
    #[arg(long, value_name = "RATE", value_parser = parse_rate, help_heading = "Faults")]
    pub fault_end_without_stop: Option<f64>,
    /// Probability of a stream that stalls mid-way (connection kept open).
    #[arg(long, value_name = "RATE", value_parser = parse_rate, help_heading = "Faults")]
    pub fault_stall: Option<f64>,
    /// Probability of a slow first byte (a delay before the response headers).
    #[arg(long, value_name = "RATE", value_parser = parse_rate, help_heading = "Faults")]
    pub fault_slow_first_byte: Option<f64>,
    /// How long a slow first byte takes, in milliseconds.
    #[arg(long, value_name = "MS", help_heading = "Faults")]
    pub slow_first_byte_ms: Option<u64>,
    /// Probability of the spend-cap 429 (enforced_spend_limit_reached).
    #[arg(long, value_name = "RATE", value_parser = parse_rate, help_heading = "Faults")]
    pub fault_spend_cap: Option<f64>,
    /// Add `retry-after-ms` (precise milliseconds) to rate-limit 429s.
    #[arg(long, help_heading = "Limits")]
    pub retry_after_ms: bool,
    /// Largest request body in bytes (413 above it).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Server")]
    pub max_body_bytes: Option<u64>,
    /// Shrink the mock's minute: buckets refill FACTOR× faster (retry-after and reset shrink
    /// with them).
    #[arg(long, value_name = "FACTOR", value_parser = parse_positive, help_heading = "Limits")]
    pub time_scale: Option<f64>,
    /// Serve the test-only admin endpoints (POST /_mock/script, GET /_mock/stats).
    #[arg(long, help_heading = "Server")]
    pub admin_endpoint: bool,
    /// Close a kept-alive connection idle this long (no request in flight, nothing
    /// arriving), in seconds; 0 keeps idle connections open.
    #[arg(long, value_name = "SECS", default_value_t = STANDALONE_IDLE_TIMEOUT.as_secs(), help_heading = "Server")]
    pub idle_timeout: u64,
}

impl Default for MockArgs {
    fn default() -> Self {
        MockArgs {
            addr: SocketAddr::from(([127, 0, 0, 1], 8787)),
            scenario: None,
            tier: None,
            rpm: None,
            itpm: None,
            otpm: None,
            capacity_fraction: None,
            token_rate: None,
            seed: None,
            fault_overloaded: None,
            fault_server_error: None,
            fault_unavailable: None,
            unavailable_html: false,
            fault_midstream_error: None,
            fault_drop: None,
            fault_end_without_stop: None,
            fault_stall: None,
            fault_slow_first_byte: None,
            slow_first_byte_ms: None,
            fault_spend_cap: None,
            retry_after_ms: false,
            max_body_bytes: None,
            time_scale: None,
            admin_endpoint: false,
            idle_timeout: STANDALONE_IDLE_TIMEOUT.as_secs(),
        }
    }
}

impl MockArgs {
    /// The configuration: the scenario file (or the defaults), then each flag given.
    pub fn to_config(&self) -> Result<MockConfig, MockConfigError> {
        let mut c = match &self.scenario {
            Some(path) => MockConfig::from_scenario_file(path)?,
            None => MockConfig::default(),
        };
        if let Some(t) = self.tier {
            c.limits = MockLimits::tier(t).ok_or_else(|| MockConfigError::Invalid {
                what: "--tier".into(),
                message: format!("there is no tier {t}; use 1, 2, 3 or 4"),
            })?;
        }
        let set = |slot: &mut u64, v: Option<u64>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut c.limits.rpm, self.rpm);
        set(&mut c.limits.itpm, self.itpm);
        set(&mut c.limits.otpm, self.otpm);
        let setf = |slot: &mut f64, v: Option<f64>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        setf(&mut c.limits.capacity_fraction, self.capacity_fraction);
        setf(&mut c.token_rate, self.token_rate);
        setf(&mut c.time_scale, self.time_scale);
        setf(&mut c.faults.overloaded, self.fault_overloaded);
        setf(&mut c.faults.server_error, self.fault_server_error);
        setf(&mut c.faults.unavailable, self.fault_unavailable);
        setf(&mut c.faults.midstream_error, self.fault_midstream_error);
        setf(&mut c.faults.drop, self.fault_drop);
        setf(&mut c.faults.end_without_stop, self.fault_end_without_stop);
        setf(&mut c.faults.stall, self.fault_stall);
        setf(&mut c.faults.slow_first_byte, self.fault_slow_first_byte);
        setf(&mut c.faults.spend_cap, self.fault_spend_cap);
        if let Some(ms) = self.slow_first_byte_ms {
            c.faults.slow_first_byte_delay = Duration::from_millis(ms);
        }
        if self.unavailable_html {
            c.faults.unavailable_html = true;
        }
        if self.seed.is_some() {
            c.seed = self.seed;
        }
        if self.retry_after_ms {
            c.emit_retry_after_ms = true;
        }
        if let Some(n) = self.max_body_bytes {
            c.max_body_bytes = usize::try_from(n).unwrap_or(usize::MAX);
        }
        // Records are readable only through the admin endpoint: without it, keep counters only.
        c.keep_request_records = self.admin_endpoint;
        // A server others can reach closes connections whose request headers dawdle.
        c.header_read_timeout = Some(STANDALONE_HEADER_READ_TIMEOUT);
        c.idle_timeout = (self.idle_timeout > 0).then(|| Duration::from_secs(self.idle_timeout));
        if self.admin_endpoint {
            c.admin_endpoint = true;
        }
        c.validate()?;
        Ok(c)
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("`{s}` is not a probability between 0 and 1")),
    }
}

fn parse_positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a number above 0")),
    }
}

/// Run `backchat mock` until Ctrl+C. Returns the exit code: 0 after Ctrl+C, 2 for a bad
/// scenario, bad flags or an address that cannot be bound.
pub async fn run_standalone(args: MockArgs) -> i32 {
    let config = match args.to_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("backchat mock: {e}");
            return crate::exit::USAGE;
        }
    };
    let summary = config.summary();
    let description = config.description.clone();
    let server = match MockServer::bind(config, args.addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("backchat mock: cannot listen on {}: {e}", args.addr);
            return crate::exit::USAGE;
        }
    };
    eprintln!(
        "backchat mock listening on {} ({summary})",
        server.base_url()
    );
    if let Some(d) = description {
        eprintln!("scenario: {d}");
    }
    eprintln!("Use any non-empty API key. Press Ctrl+C to stop.");
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("backchat mock: cannot wait for Ctrl+C ({e}); stopping");
    }
    server.shutdown().await;
    eprintln!("backchat mock stopped");
    crate::exit::OK
}

/// The standalone mock's header-read timeout (see `MockConfig::header_read_timeout`).
pub const STANDALONE_HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The standalone mock's default idle timeout (`--idle-timeout`, `MockConfig::idle_timeout`).
pub const STANDALONE_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_mins(1);

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        mock: MockArgs,
    }

    fn parse(args: &[&str]) -> Result<MockArgs, clap::Error> {
        let mut all = vec!["backchat-mock"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| c.mock)
    }

    #[test]
    fn defaults_match_the_default_config() {
        let a = parse(&[]).expect("no flags");
        assert_eq!(a, MockArgs::default());
        // Standalone, the mock guards itself: records off without the admin endpoint, a
        // header-read timeout and an idle timeout. Everything else is the default config.
        assert_eq!(
            a.to_config().expect("valid"),
            MockConfig {
                keep_request_records: false,
                header_read_timeout: Some(STANDALONE_HEADER_READ_TIMEOUT),
                idle_timeout: Some(Duration::from_mins(1)),
                ..MockConfig::default()
            }
        );
    }

    #[test]
    fn idle_timeout_flag_sets_or_disables_it() {
        let c = parse(&["--idle-timeout", "5"])
            .expect("valid flag")
            .to_config()
            .expect("valid config");
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(5)));
        let c = parse(&["--idle-timeout", "0"])
            .expect("valid flag")
            .to_config()
            .expect("valid config");
        assert_eq!(c.idle_timeout, None);
        assert!(parse(&["--idle-timeout", "-1"]).is_err());
    }

    #[test]
    fn flags_set_and_override() {
        let a = parse(&[
            "--rpm",
            "5",
            "--itpm",
            "2000",
            "--fault-overloaded",
            "0.25",
            "--retry-after-ms",
            "--time-scale",
            "10",
            "--slow-first-byte-ms",
            "250",
        ])
        .expect("valid flags");
        let c = a.to_config().expect("valid config");
        assert_eq!(
            (c.limits.rpm, c.limits.itpm, c.limits.otpm),
            (5, 2000, 8000)
        );
        assert_eq!(c.faults.overloaded, 0.25);
        assert!(c.emit_retry_after_ms);
        assert_eq!(c.time_scale, 10.0);
        assert_eq!(c.faults.slow_first_byte_delay, Duration::from_millis(250));
    }

    #[test]
    fn bad_flags_are_refused_with_a_reason() {
        let e = parse(&["--fault-drop", "1.5"]).expect_err("out of range");
        assert!(e.to_string().contains("probability"), "{e}");
        assert!(parse(&["--rpm", "0"]).is_err());
        assert!(parse(&["--token-rate", "-1"]).is_err());
        let e = parse(&["--capacity-fraction", "7/6"]).expect_err("above 1");
        assert!(e.to_string().contains("(0, 1]"), "{e}");
    }

    #[test]
    fn capacity_fractions_are_numbers_or_ratios() {
        for (text, want) in [("1/6", 1.0 / 6.0), ("0.25", 0.25)] {
            let a = parse(&["--capacity-fraction", text]).expect(text);
            let c = a.to_config().expect("valid");
            assert_eq!(c.limits.capacity_fraction, want, "{text}");
        }
    }

    #[test]
    fn scenario_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.toml");
        std::fs::write(&path, "[limits]\nrpm = 7\nitpm = 1234\n").expect("write");
        let mut a = MockArgs {
            scenario: Some(path),
            ..MockArgs::default()
        };
        a.itpm = Some(999);
        let c = a.to_config().expect("valid");
        assert_eq!((c.limits.rpm, c.limits.itpm), (7, 999));
        let missing = MockArgs {
            scenario: Some("/nonexistent/x.toml".into()),
            ..MockArgs::default()
        };
        let e = missing.to_config().expect_err("no file");
        assert!(e.to_string().contains("/nonexistent/x.toml"), "{e}");
    }
}
