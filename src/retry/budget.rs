//! A retry budget shared by every turn of the process, so that many concurrent turns cannot
//! amplify an outage (docs/retries.md: gRPC A6 retry throttling).
//!
//! The budget holds up to `max_tokens` tokens. Each retryable failure that spends the budget
//! (5xx, 529, network; never a rate limit, which is a schedule) removes one token; each
//! success adds `token_ratio`. A retry is allowed only while more than half the tokens remain.
//! With the defaults (10, 0.1) a healthy API never notices the budget, while during an outage
//! retries stop after a few failures and resume once about one in ten requests succeeds.

use std::sync::Mutex;

/// Settings of the budget.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetConfig {
    /// Capacity (gRPC `maxTokens`).
    pub max_tokens: f64,
    /// Refund per success (gRPC `tokenRatio`).
    pub token_ratio: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            max_tokens: 10.0,
            token_ratio: 0.1,
        }
    }
}

/// The shared budget.
#[derive(Debug)]
pub struct RetryBudget {
    config: BudgetConfig,
    tokens: Mutex<f64>,
}

impl RetryBudget {
    /// A full budget.
    pub fn new(config: BudgetConfig) -> Self {
        RetryBudget {
            tokens: Mutex::new(config.max_tokens),
            config,
        }
    }

    /// A budget that never refuses (for tests of other things).
    #[cfg(any(test, feature = "test-support"))]
    pub fn unlimited() -> Self {
        RetryBudget::new(BudgetConfig {
            max_tokens: f64::INFINITY,
            token_ratio: 0.0,
        })
    }

    /// Record a failure that wants a retry; returns whether the retry is allowed.
    pub fn try_spend(&self) -> bool {
        if self.config.max_tokens.is_infinite() {
            return true;
        }
        let mut t = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *t = (*t - 1.0).max(0.0);
        *t > self.config.max_tokens / 2.0
    }

    /// Record a success.
    pub fn record_success(&self) {
        if self.config.max_tokens.is_infinite() {
            return;
        }
        let mut t = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *t = (*t + self.config.token_ratio).min(self.config.max_tokens);
    }

    /// Tokens left (for diagnostics).
    pub fn tokens(&self) -> f64 {
        *self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(BudgetConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_stops_retries_and_successes_restore_them() {
        let b = RetryBudget::default();
        let allowed: Vec<bool> = (0..6).map(|_| b.try_spend()).collect();
        assert_eq!(allowed, vec![true, true, true, true, false, false]);
        // The level is 4; each success refunds 0.1, and a retry needs more than 5 left after
        // paying for it: 30 successes (level 7) are enough.
        for _ in 0..30 {
            b.record_success();
        }
        assert!(b.try_spend(), "after successes a retry is allowed again");
    }

    #[test]
    fn unlimited_never_refuses() {
        let b = RetryBudget::unlimited();
        assert!((0..1000).all(|_| b.try_spend()));
    }
}
