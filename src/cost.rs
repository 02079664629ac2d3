//! What a turn and a session cost, from the token counts and the price table in
//! `assets/prices.csv` (per-model USD per million tokens: base input, 5-minute cache write,
//! 1-hour cache write, cache read, output; its source and date are in the file).
//!
//! Pure arithmetic on plain numbers, so every surface prices alike: the status bar, the quota
//! panel, `/cost`, the headless usage events and the load test. A model the table does not
//! list has no price: callers show the token counts and "price unknown", never a guess.

use std::sync::OnceLock;

/// The price table, as shipped.
const TABLE: &str = include_str!("../assets/prices.csv");

/// One model's prices, USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prices {
    /// Uncached input.
    pub base_input: f64,
    /// Cache writes with the five-minute TTL.
    pub cache_write_5m: f64,
    /// Cache writes with the one-hour TTL.
    pub cache_write_1h: f64,
    /// Cache reads (hits and refreshes).
    pub cache_read: f64,
    /// Output.
    pub output: f64,
}

/// Token counts of one request, or a sum of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tokens {
    /// Uncached input (`input_tokens`).
    pub input: u64,
    /// Written to the cache with the five-minute TTL.
    pub cache_write_5m: u64,
    /// Written with the one-hour TTL.
    pub cache_write_1h: u64,
    /// Read from the cache.
    pub cache_read: u64,
    /// Output.
    pub output: u64,
}

impl Tokens {
    /// Every input token: uncached, written and read.
    pub fn total_input(&self) -> u64 {
        self.input + self.cache_write_5m + self.cache_write_1h + self.cache_read
    }

    /// Share of the input read from the cache, 0–1 (0 with no input).
    pub fn hit_rate(&self) -> f64 {
        let total = self.total_input();
        if total == 0 {
            0.0
        } else {
            self.cache_read as f64 / total as f64
        }
    }

    /// Add another request's counts.
    pub fn add(&mut self, other: &Tokens) {
        self.input += other.input;
        self.cache_write_5m += other.cache_write_5m;
        self.cache_write_1h += other.cache_write_1h;
        self.cache_read += other.cache_read;
        self.output += other.output;
    }
}

const PER_MTOK: f64 = 1_000_000.0;

impl Prices {
    /// What `t` costs in USD.
    pub fn cost(&self, t: &Tokens) -> f64 {
        (t.input as f64 * self.base_input
            + t.cache_write_5m as f64 * self.cache_write_5m
            + t.cache_write_1h as f64 * self.cache_write_1h
            + t.cache_read as f64 * self.cache_read
            + t.output as f64 * self.output)
            / PER_MTOK
    }

    /// What `t` would have cost with no caching: every input token at the base price.
    pub fn uncached_cost(&self, t: &Tokens) -> f64 {
        (t.total_input() as f64 * self.base_input + t.output as f64 * self.output) / PER_MTOK
    }
}

/// One row of the table: the model id and its prices.
fn parse_row(line: &str) -> Option<(String, Prices)> {
    let mut cells = line.split(',').map(str::trim);
    let model = cells.next()?.to_string();
    let mut n = || cells.next()?.parse::<f64>().ok();
    let prices = Prices {
        base_input: n()?,
        cache_write_5m: n()?,
        cache_write_1h: n()?,
        cache_read: n()?,
        output: n()?,
    };
    Some((model, prices))
}

/// The table parsed: comment lines (`#`), the header and malformed rows are skipped.
pub fn parse_table(text: &str) -> Vec<(String, Prices)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(parse_row)
        .collect()
}

fn table() -> &'static [(String, Prices)] {
    static PARSED: OnceLock<Vec<(String, Prices)>> = OnceLock::new();
    PARSED.get_or_init(|| parse_table(TABLE))
}

/// Whether `model` names `id`: exactly, or with a date suffix (`-20250929`).
fn names(model: &str, id: &str) -> bool {
    model == id
        || model
            .strip_prefix(id)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The prices of `model`, or `None` when the table does not list it.
pub fn prices_for(model: &str) -> Option<Prices> {
    table()
        .iter()
        .find(|(id, _)| names(model, id))
        .map(|(_, p)| *p)
}

/// A running total: a session's, or a load-test run's.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Tally {
    /// All tokens.
    pub tokens: Tokens,
    /// USD of the priced requests.
    pub usd: f64,
    /// USD the priced requests would have cost with no caching.
    pub uncached_usd: f64,
    /// Requests whose model had no price (their tokens are counted, their cost is not).
    pub unpriced: u64,
    /// Requests counted.
    pub requests: u64,
}

impl Tally {
    /// Count one request of `model`.
    pub fn add(&mut self, model: &str, t: &Tokens) {
        self.tokens.add(t);
        self.requests += 1;
        match prices_for(model) {
            Some(p) => {
                self.usd += p.cost(t);
                self.uncached_usd += p.uncached_cost(t);
            }
            None => self.unpriced += 1,
        }
    }

    /// USD the cache saved (negative while writes cost more than the reads saved).
    pub fn saved_usd(&self) -> f64 {
        self.uncached_usd - self.usd
    }

    /// Whether any request had a price.
    pub fn priced(&self) -> bool {
        self.requests > self.unpriced
    }
}

/// Dollars for a person: `$0.0123` below a dollar (cents alone hide a turn's cost), `$12.34`
/// above.
pub fn usd_text(usd: f64) -> String {
    let sign = if usd < 0.0 { "-" } else { "" };
    let a = usd.abs();
    if a < 1.0 {
        format!("{sign}${a:.4}")
    } else {
        format!("{sign}${a:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_and_lists_the_common_models() {
        let t = parse_table(TABLE);
        assert!(t.len() >= 10, "{t:?}");
        let sonnet = prices_for("claude-sonnet-4-6").expect("listed");
        assert_eq!(
            sonnet,
            Prices {
                base_input: 3.0,
                cache_write_5m: 3.75,
                cache_write_1h: 6.0,
                cache_read: 0.3,
                output: 15.0
            }
        );
        assert!(prices_for("claude-sonnet-4-5-20250929").is_some());
        assert!(prices_for("claude-opus-5").is_some());
        // A longer id is another model, not a dated variant.
        assert_eq!(prices_for("claude-opus-5-5"), None);
        assert_eq!(prices_for("mock-model"), None);
    }

    #[test]
    fn a_cached_turn_costs_what_the_columns_say() {
        let p = prices_for("claude-sonnet-4-6").expect("listed");
        let t = Tokens {
            input: 500,
            cache_write_5m: 1_000,
            cache_write_1h: 0,
            cache_read: 100_000,
            output: 700,
        };
        let usd = p.cost(&t);
        let want = (500.0 * 3.0 + 1000.0 * 3.75 + 100_000.0 * 0.3 + 700.0 * 15.0) / 1e6;
        assert!((usd - want).abs() < 1e-12, "{usd} vs {want}");
        assert!(p.uncached_cost(&t) > 5.0 * usd);
        assert!((t.hit_rate() - 100_000.0 / 101_500.0).abs() < 1e-12);
    }

    #[test]
    fn a_tally_counts_unknown_models_without_pricing_them() {
        let mut tally = Tally::default();
        let t = Tokens {
            input: 1000,
            output: 10,
            ..Tokens::default()
        };
        tally.add("claude-haiku-4-5", &t);
        tally.add("some-future-model", &t);
        assert_eq!(tally.tokens.input, 2000);
        assert_eq!((tally.requests, tally.unpriced), (2, 1));
        assert!((tally.usd - (1000.0 + 50.0) / 1e6).abs() < 1e-12);
        assert!(tally.saved_usd().abs() < 1e-12);
        assert_eq!(usd_text(0.012_34), "$0.0123");
        assert_eq!(usd_text(12.345), "$12.35");
    }
}
