//! The workload (docs/loadtest.md, *Workload*): K closed-loop users, each sending N requests one after the
//! other, each of S input tokens. This file builds the requests and draws their sizes.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, LogNormal};

use super::scenario::{MIN_INPUT_TOKENS, Scenario, SizeDist};
use crate::api::{Message, MessagesRequest, Role};

/// The model named in every request (any id works against the mock and the simulation).
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-6";

/// Filler text; its content does not matter, only its length (`crate::tokens` counts four
/// characters per token).
const FILLER: &str = "The quick brown fox jumps over the lazy dog while the rate limiter counts. ";

/// A streaming request whose `estimated_input_tokens()` is exactly `tokens` (at least
/// [`MIN_INPUT_TOKENS`]): one user message of `4·(tokens − 7)` characters, since the request
/// and the message carry 3 + 4 tokens of overhead. The mock counts the same way, so on the
/// mock and in the simulation the estimate is exact.
pub fn request(model: &str, tokens: u64, max_tokens: u32) -> MessagesRequest {
    let overhead = crate::tokens::PER_REQUEST_OVERHEAD + crate::tokens::PER_MESSAGE_OVERHEAD;
    let text_tokens = tokens.max(MIN_INPUT_TOKENS) - overhead;
    let chars = usize::try_from(text_tokens * 4).unwrap_or(usize::MAX);
    let text: String = FILLER.chars().cycle().take(chars).collect();
    MessagesRequest::new(model, max_tokens, vec![Message::text(Role::User, text)])
}

/// The input sizes of one user's N requests. Fixed sizes repeat; log-normal sizes are drawn
/// from an RNG seeded by (run seed, user), so the same user gets the same sizes whichever
/// process runs it, and are kept within [8, the input bucket's capacity] so that every
/// request can be admitted at all.
pub fn sizes(scenario: &Scenario, seed: u64, user: usize) -> Vec<u64> {
    match scenario.size {
        SizeDist::Fixed { tokens } => vec![tokens; scenario.requests],
        SizeDist::Lognormal { mu, sigma } => {
            let max = scenario
                .input_capacity()
                .floor()
                .max(MIN_INPUT_TOKENS as f64);
            let mut rng = StdRng::seed_from_u64(mix(seed, user as u64, 0x51_2e));
            match LogNormal::new(mu, sigma) {
                Ok(dist) => (0..scenario.requests)
                    .map(|_| {
                        let x: f64 = dist.sample(&mut rng);
                        x.round().clamp(MIN_INPUT_TOKENS as f64, max) as u64
                    })
                    .collect(),
                // validate() rejects such parameters; fall back to the median size.
                Err(_) => vec![
                    mu.exp().round().clamp(MIN_INPUT_TOKENS as f64, max) as u64;
                    scenario.requests
                ],
            }
        }
    }
}

/// A seed for one purpose of one user of one run (splitmix64 of the three).
pub fn mix(seed: u64, user: u64, purpose: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(user.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(purpose.wrapping_mul(0x94D0_49BB_1331_11EB));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_exactly_the_asked_size() {
        for s in [8, 9, 200, 3000, 15_000] {
            assert_eq!(request(DEFAULT_MODEL, s, 100).estimated_input_tokens(), s);
        }
    }

    #[test]
    fn lognormal_sizes_are_reproducible_and_bounded() {
        let sc = Scenario {
            size: SizeDist::Lognormal {
                mu: 7.5,
                sigma: 1.5,
            },
            requests: 200,
            ..Scenario::default()
        };
        let a = sizes(&sc, 3, 1);
        assert_eq!(a, sizes(&sc, 3, 1));
        assert_ne!(a, sizes(&sc, 3, 2));
        assert!(a.iter().all(|s| (8..=30_000).contains(s)));
    }
}
