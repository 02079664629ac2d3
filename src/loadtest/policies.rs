//! The retry policies under test: the peers of docs/loadtest.md, reproduced exactly as pure
//! functions of (failed attempt, status, server hints, RNG), and the `backchat` policy, which
//! is the real engine (`retry::Driver` + one shared `LocalLimiter` per process + the
//! `RetryBudget`), not a re-implementation of it.
//!
//! All durations here are in *model* seconds. Against a time-scaled mock the harness converts
//! at the boundary (header values × scale in, sleeps ÷ scale out), which is how "the peer
//! policies' constants shrink with the mock's minute".

use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, RngExt};

use crate::limiter::{Limiter, LocalLimiter, LocalLimiterConfig, RedisLimiter, RedisLimiterConfig};
use crate::retry::{RetryBudget, RetryConfig};
use crate::secret::ApiKey;

/// Attempts after which an "unlimited" policy stops (docs/loadtest.md, *Policies*: P0 stops at 1000).
pub const UNLIMITED_ATTEMPTS: u32 = 1000;

/// A policy, by its command-line name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyId {
    /// P0: retry 429/529 at once.
    Naive,
    /// P1: the seed article's tenacity policy.
    TenacitySeed,
    /// P2: the seed article's Node wrapper.
    NodeSeed,
    /// P3: the Anthropic SDK's default.
    AnthropicSdk,
    /// P4: AWS full jitter, 3 attempts.
    FullJitter3,
    /// P4: AWS full jitter, unlimited.
    FullJitter,
    /// P5: decorrelated jitter, 3 attempts.
    Decorrelated3,
    /// P5: decorrelated jitter, unlimited.
    Decorrelated,
    /// P6: `retry-after` plus jitter.
    RetryAfterJitter,
    /// P7: backchat's engine.
    Backchat,
}

impl PolicyId {
    /// Every policy, in table order.
    pub const ALL: [PolicyId; 10] = [
        PolicyId::Naive,
        PolicyId::TenacitySeed,
        PolicyId::NodeSeed,
        PolicyId::AnthropicSdk,
        PolicyId::FullJitter3,
        PolicyId::FullJitter,
        PolicyId::Decorrelated3,
        PolicyId::Decorrelated,
        PolicyId::RetryAfterJitter,
        PolicyId::Backchat,
    ];

    /// The name used by `--policy` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            PolicyId::Naive => "naive",
            PolicyId::TenacitySeed => "tenacity-seed",
            PolicyId::NodeSeed => "node-seed",
            PolicyId::AnthropicSdk => "anthropic-sdk",
            PolicyId::FullJitter3 => "full-jitter-3",
            PolicyId::FullJitter => "full-jitter",
            PolicyId::Decorrelated3 => "decorrelated-3",
            PolicyId::Decorrelated => "decorrelated",
            PolicyId::RetryAfterJitter => "retry-after-jitter",
            PolicyId::Backchat => "backchat",
        }
    }

    /// The rule in one line (docs/loadtest.md, *Policies*).
    pub fn description(self) -> &'static str {
        match self {
            PolicyId::Naive => "P0: retry 429/529 at once; stop at 1000 attempts",
            PolicyId::TenacitySeed => {
                "P1: 429 only; wait min(2^(k-1) + U(0,1), 60) s after attempt k = 1..4; give up after 5; 529 gives up at once"
            }
            PolicyId::NodeSeed => {
                "P2: 429 and >= 500; up to 5 retries; before retry a = 0..4 wait 2^a + U(0,1) s (counting from 0: [1,2] .. [16,17] s)"
            }
            PolicyId::AnthropicSdk => {
                "P3: 2 retries on 408/409/429/>=500; header delay if 0 < d <= 60 s (retry-after-ms first), else min(0.5*2^n, 8)*(1 - 0.25U)"
            }
            PolicyId::FullJitter3 => "P4: 429 and >= 500; U(0, min(20, 2^(k-1))) s; 3 attempts",
            PolicyId::FullJitter => {
                "P4: 429 and >= 500; U(0, min(20, 2^(k-1))) s; unlimited (stop at 1000)"
            }
            PolicyId::Decorrelated3 => {
                "P5: 429 and >= 500; s = min(20, U(1, 3 s_prev)), s_0 = 1 s; 3 attempts"
            }
            PolicyId::Decorrelated => {
                "P5: 429 and >= 500; s = min(20, U(1, 3 s_prev)), s_0 = 1 s; unlimited (stop at 1000)"
            }
            PolicyId::RetryAfterJitter => {
                "P6: 429 and >= 500; retry-after + U(0,1) s, full jitter when there is none; unlimited (stop at 1000)"
            }
            PolicyId::Backchat => {
                "P7a: backchat's engine: Driver + one shared Pacer per process + RetryBudget (10, 0.1)"
            }
        }
    }

    /// The rule of the backchat policy pacing through the shared limiter (`--shared-limiter`).
    pub const SHARED_DESCRIPTION: &'static str = "P7b: backchat's engine, every process pacing through the shared limiter (Redis) + RetryBudget (10, 0.1) per process";

    /// `naive`, `all`, or a comma-separated list of names.
    pub fn parse_list(text: &str) -> Result<Vec<PolicyId>, String> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.eq_ignore_ascii_case("all") {
                out.extend(PolicyId::ALL);
                continue;
            }
            let p = PolicyId::ALL
                .into_iter()
                .find(|p| p.name().eq_ignore_ascii_case(part))
                .ok_or_else(|| {
                    let names: Vec<&str> = PolicyId::ALL.iter().map(|p| p.name()).collect();
                    format!("no policy `{part}`; use one of: all, {}", names.join(", "))
                })?;
            out.push(p);
        }
        let mut seen = Vec::new();
        out.retain(|p| {
            let fresh = !seen.contains(p);
            seen.push(*p);
            fresh
        });
        if out.is_empty() {
            return Err("name at least one policy (or `all`)".into());
        }
        Ok(out)
    }

    /// The peer policy's rule, or `None` for the backchat engine.
    pub fn peer(self) -> Option<PeerPolicy> {
        Some(match self {
            PolicyId::Naive => PeerPolicy::Naive,
            PolicyId::TenacitySeed => PeerPolicy::TenacitySeed,
            PolicyId::NodeSeed => PeerPolicy::NodeSeed,
            PolicyId::AnthropicSdk => PeerPolicy::AnthropicSdk,
            PolicyId::FullJitter3 => PeerPolicy::FullJitter { max_attempts: 3 },
            PolicyId::FullJitter => PeerPolicy::FullJitter {
                max_attempts: UNLIMITED_ATTEMPTS,
            },
            PolicyId::Decorrelated3 => PeerPolicy::Decorrelated { max_attempts: 3 },
            PolicyId::Decorrelated => PeerPolicy::Decorrelated {
                max_attempts: UNLIMITED_ATTEMPTS,
            },
            PolicyId::RetryAfterJitter => PeerPolicy::RetryAfterJitter,
            PolicyId::Backchat => return None,
        })
    }
}

/// A peer policy's rule (docs/loadtest.md, *Policies*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerPolicy {
    /// P0.
    Naive,
    /// P1.
    TenacitySeed,
    /// P2, counting retries from 0.
    NodeSeed,
    /// P3.
    AnthropicSdk,
    /// P4.
    FullJitter {
        /// Attempts before giving up.
        max_attempts: u32,
    },
    /// P5.
    Decorrelated {
        /// Attempts before giving up.
        max_attempts: u32,
    },
    /// P6.
    RetryAfterJitter,
}

/// What a response said about retrying, in model seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ServerHints {
    /// `retry-after-ms`, in seconds.
    pub retry_after_ms: Option<f64>,
    /// `retry-after`, in seconds.
    pub retry_after: Option<f64>,
    /// `x-should-retry`.
    pub should_retry: Option<bool>,
}

/// The policy's answer to a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Wait this many seconds, then try again.
    Retry {
        /// The wait, in model seconds.
        delay_s: f64,
    },
    /// Surface the error to the user.
    GiveUp,
}

/// Per-request state of a peer policy (decorrelated jitter remembers its last sleep).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeerState {
    prev_sleep_s: f64,
}

impl Default for PeerState {
    fn default() -> Self {
        // Decorrelated jitter: s_prev starts at the base, 1 s.
        PeerState { prev_sleep_s: 1.0 }
    }
}

/// `U(0, 1)`.
fn unit(rng: &mut impl Rng) -> f64 {
    rng.random::<f64>()
}

/// AWS full jitter: `U(0, min(20, 1·2^(k−1)))`.
fn full_jitter(attempt: u32, rng: &mut impl Rng) -> f64 {
    let bound = (2f64.powi(attempt.saturating_sub(1).min(60) as i32)).min(20.0);
    unit(rng) * bound
}

impl PeerPolicy {
    /// The longest a request is tried before the policy gives up.
    pub fn max_attempts(self) -> u32 {
        match self {
            PeerPolicy::Naive | PeerPolicy::RetryAfterJitter => UNLIMITED_ATTEMPTS,
            PeerPolicy::TenacitySeed => 5,
            PeerPolicy::NodeSeed => 6,
            PeerPolicy::AnthropicSdk => 3,
            PeerPolicy::FullJitter { max_attempts } | PeerPolicy::Decorrelated { max_attempts } => {
                max_attempts
            }
        }
    }

    /// Whether the policy retries this status at all (0 = a network error, no response).
    pub fn retries_status(self, status: u16, hints: &ServerHints) -> bool {
        match self {
            PeerPolicy::Naive => matches!(status, 429 | 529),
            // tenacity's `retry_if_exception_type(RateLimitError)`: 529 is OverloadedError.
            PeerPolicy::TenacitySeed => status == 429,
            // `x-should-retry` wins over the status (docs/protocol.md, *Retry headers*).
            PeerPolicy::AnthropicSdk => match hints.should_retry {
                Some(b) => b,
                None => matches!(status, 0 | 408 | 409 | 429) || status >= 500,
            },
            PeerPolicy::NodeSeed => status == 429 || status >= 500,
            PeerPolicy::FullJitter { .. }
            | PeerPolicy::Decorrelated { .. }
            | PeerPolicy::RetryAfterJitter => matches!(status, 0 | 429) || status >= 500,
        }
    }

    /// The decision after failed attempt `attempt` (1 for the first try) with `status`.
    pub fn decide(
        self,
        state: &mut PeerState,
        attempt: u32,
        status: u16,
        hints: &ServerHints,
        rng: &mut impl Rng,
    ) -> Decision {
        if !self.retries_status(status, hints) || attempt >= self.max_attempts() {
            return Decision::GiveUp;
        }
        let delay_s = match self {
            PeerPolicy::Naive => 0.0,
            // wait_exponential_jitter(initial=1, max=60): min(2^(k−1) + U(0,1), 60).
            PeerPolicy::TenacitySeed => (2f64.powi(attempt as i32 - 1) + unit(rng)).min(60.0),
            // Before retry a = attempt − 1: 2^a·1000 ms + U(0,1)·1000 ms.
            PeerPolicy::NodeSeed => 2f64.powi(attempt as i32 - 1) + unit(rng),
            PeerPolicy::AnthropicSdk => {
                let header = hints.retry_after_ms.or(hints.retry_after);
                match header {
                    Some(d) if d > 0.0 && d <= 60.0 => d,
                    _ => {
                        let n = attempt - 1;
                        (0.5 * 2f64.powi(n as i32)).min(8.0) * (1.0 - 0.25 * unit(rng))
                    }
                }
            }
            PeerPolicy::FullJitter { .. } => full_jitter(attempt, rng),
            PeerPolicy::Decorrelated { .. } => {
                let hi = 3.0 * state.prev_sleep_s;
                let s = (1.0 + unit(rng) * (hi - 1.0)).min(20.0);
                state.prev_sleep_s = s;
                s
            }
            PeerPolicy::RetryAfterJitter => match hints.retry_after {
                Some(d) => d + unit(rng),
                None => full_jitter(attempt, rng),
            },
        };
        Decision::Retry { delay_s }
    }
}

/// The backchat policy's retry settings: the defaults, `max_wait_s` (model seconds,
/// `--max-wait`) instead of the default `max_wait` when given, every duration divided by
/// `scale` (against a mock `scale`× faster than real time).
pub fn backchat_retry_config(scale: f64, max_wait_s: Option<f64>) -> RetryConfig {
    let d = RetryConfig::default();
    let s = if scale.is_finite() && scale > 0.0 {
        scale
    } else {
        1.0
    };
    let max_wait = max_wait_s.map_or(d.max_wait, crate::clock::secs_f64);
    RetryConfig {
        max_wait: max_wait.div_f64(s),
        deadline: d.deadline.div_f64(s),
        backoff_base: d.backoff_base.div_f64(s),
        backoff_cap: d.backoff_cap.div_f64(s),
        server_delay_spread: d.server_delay_spread.div_f64(s),
        ..d
    }
}

/// The limiter the backchat policy paces through, one per process and shared by its users:
/// the in-process [`LocalLimiter`], or with `shared` (`--shared-limiter redis://…`) the
/// [`RedisLimiter`], through which every process of the run shares one picture of the quota
/// (docs/loadtest.md, P7b). Both run on the server's minute shrunk by `scale`; the Redis
/// limiter's reservations reach no further ahead than the driver would wait (`retry`, the
/// driver's settings: its scaled `max_wait` and deadline, as `Backend::start` does). `key`
/// must be what the transport sends: the shared state is namespaced by the key's fingerprint
/// (and by the model class of each request), so processes share only when both agree.
pub async fn backchat_limiter(
    shared: Option<&str>,
    scale: f64,
    key: Option<&ApiKey>,
    retry: &RetryConfig,
) -> Result<Arc<dyn Limiter>, String> {
    match shared {
        None => Ok(Arc::new(LocalLimiter::with_config(
            LocalLimiterConfig::time_scaled(scale),
        ))),
        Some(url) => {
            check_shared_limiter_url(url)?;
            let config = RedisLimiterConfig {
                max_ahead: retry.max_wait.min(retry.deadline),
                ..RedisLimiterConfig::new(url).time_scaled(scale)
            };
            Ok(Arc::new(RedisLimiter::connect(config, key).await))
        }
    }
}

/// Refuse a `--shared-limiter` URL that could never connect, before the run starts (the
/// limiter itself would only fail open, quietly, in every worker).
pub fn check_shared_limiter_url(url: &str) -> Result<(), String> {
    crate::config::value::redis_url(crate::config::value::Raw::Str(url))
        .map(drop)
        .map_err(|e| format!("--shared-limiter: {e}"))
}

/// The retry budget shared by one process's users.
pub fn backchat_budget() -> Arc<RetryBudget> {
    Arc::new(RetryBudget::default())
}

/// A duration in model seconds as a real sleep against a clock `scale`× faster.
pub fn real_duration(model_s: f64, scale: f64) -> Duration {
    crate::clock::secs_f64(model_s / scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in PolicyId::ALL {
            assert_eq!(PolicyId::parse_list(p.name()), Ok(vec![p]));
        }
        assert_eq!(PolicyId::parse_list("all").map(|v| v.len()), Ok(10));
        assert!(PolicyId::parse_list("nope").is_err());
        assert_eq!(
            PolicyId::parse_list("naive, backchat,naive"),
            Ok(vec![PolicyId::Naive, PolicyId::Backchat])
        );
    }

    #[test]
    fn max_wait_is_in_model_seconds_and_scaled_like_the_rest() {
        let d = RetryConfig::default();
        let default = backchat_retry_config(20.0, None);
        assert_eq!(default.max_wait, d.max_wait / 20);
        assert_eq!(default.deadline, d.deadline / 20);
        // --max-wait 600 against a mock 20x faster: 30 s of real time.
        let patient = backchat_retry_config(20.0, Some(600.0));
        assert_eq!(patient.max_wait, Duration::from_secs(30));
        assert_eq!(patient.deadline, default.deadline);
    }
}
