//! Scenario files: TOML that sets up a [`MockConfig`] (the format is in docs/mock.md).
//!
//! Every table denies unknown keys, and every value is checked while it is deserialized, so
//! that toml's error (which carries the line, the column and the offending line of text)
//! names both the key and the line of a mistake.

use serde::{Deserialize, Deserializer};

use super::config::{FaultRates, MockConfig, MockConfigError, MockLimits, Outage};
use super::script::ScriptStep;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    description: Option<String>,
    token_rate: Option<Positive>,
    seed: Option<u64>,
    ping_interval_ms: Option<AtLeastOne>,
    first_token_latency_ms: Option<u64>,
    max_body_bytes: Option<AtLeastOne>,
    emit_retry_after_ms: Option<bool>,
    rejected_keys: Option<Vec<String>>,
    admin_endpoint: Option<bool>,
    time_scale: Option<Positive>,
    require_anthropic_version: Option<bool>,
    cache_evict: Option<Probability>,
    limits: Option<LimitsTable>,
    faults: Option<FaultsTable>,
    #[serde(default)]
    outages: Vec<OutageTable>,
    #[serde(default)]
    script: Vec<ScriptStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsTable {
    tier: Option<Tier>,
    rpm: Option<AtLeastOne>,
    itpm: Option<AtLeastOne>,
    otpm: Option<AtLeastOne>,
    capacity_fraction: Option<Fraction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsTable {
    overloaded: Option<Probability>,
    server_error: Option<Probability>,
    unavailable: Option<Probability>,
    unavailable_html: Option<bool>,
    spend_cap: Option<Probability>,
    midstream_error: Option<Probability>,
    drop: Option<Probability>,
    end_without_stop: Option<Probability>,
    stall: Option<Probability>,
    slow_first_byte: Option<Probability>,
    slow_first_byte_ms: Option<u64>,
    should_retry: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawOutage")]
struct OutageTable(Outage);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutage {
    start_s: f64,
    end_s: f64,
    #[serde(default = "overloaded_status")]
    status: u16,
}

fn overloaded_status() -> u16 {
    529
}

impl TryFrom<RawOutage> for OutageTable {
    type Error = String;

    fn try_from(raw: RawOutage) -> Result<Self, String> {
        if !(raw.start_s.is_finite() && raw.start_s >= 0.0) {
            return Err(format!("start_s must be ≥ 0 seconds, got {}", raw.start_s));
        }
        if !(raw.end_s.is_finite() && raw.end_s > raw.start_s) {
            return Err(format!(
                "end_s ({}) must be after start_s ({})",
                raw.end_s, raw.start_s
            ));
        }
        if !(400..=599).contains(&raw.status) {
            return Err(format!(
                "status must be an error status (400–599), got {}",
                raw.status
            ));
        }
        let mut o = Outage::overloaded(raw.start_s, raw.end_s);
        o.status = raw.status;
        Ok(OutageTable(o))
    }
}

/// Parse scenario text into a config (defaults for everything not given).
pub(crate) fn parse(text: &str, origin: &str) -> Result<MockConfig, MockConfigError> {
    let file: ScenarioFile = toml::from_str(text).map_err(|e| MockConfigError::Parse {
        origin: origin.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let mut c = MockConfig::default();
    if let Some(limits) = file.limits {
        let mut l = match limits.tier {
            Some(Tier(t)) => MockLimits::tier(t).unwrap_or_default(),
            None => MockLimits::default(),
        };
        if let Some(AtLeastOne(v)) = limits.rpm {
            l.rpm = v;
        }
        if let Some(AtLeastOne(v)) = limits.itpm {
            l.itpm = v;
        }
        if let Some(AtLeastOne(v)) = limits.otpm {
            l.otpm = v;
        }
        if let Some(Fraction(v)) = limits.capacity_fraction {
            l.capacity_fraction = v;
        }
        c.limits = l;
    }
    if let Some(f) = file.faults {
        let mut r = FaultRates::default();
        let set = |slot: &mut f64, v: Option<Probability>| {
            if let Some(Probability(p)) = v {
                *slot = p;
            }
        };
        set(&mut r.overloaded, f.overloaded);
        set(&mut r.server_error, f.server_error);
        set(&mut r.unavailable, f.unavailable);
        set(&mut r.spend_cap, f.spend_cap);
        set(&mut r.midstream_error, f.midstream_error);
        set(&mut r.drop, f.drop);
        set(&mut r.end_without_stop, f.end_without_stop);
        set(&mut r.stall, f.stall);
        set(&mut r.slow_first_byte, f.slow_first_byte);
        if let Some(b) = f.unavailable_html {
            r.unavailable_html = b;
        }
        if let Some(ms) = f.slow_first_byte_ms {
            r.slow_first_byte_delay = std::time::Duration::from_millis(ms);
        }
        r.should_retry = f.should_retry;
        c.faults = r;
    }
    c.description = file.description;
    if let Some(Positive(v)) = file.token_rate {
        c.token_rate = v;
    }
    c.seed = file.seed;
    if let Some(AtLeastOne(ms)) = file.ping_interval_ms {
        c.ping_interval = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = file.first_token_latency_ms {
        c.first_token_latency = std::time::Duration::from_millis(ms);
    }
    if let Some(AtLeastOne(n)) = file.max_body_bytes {
        c.max_body_bytes = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(b) = file.emit_retry_after_ms {
        c.emit_retry_after_ms = b;
    }
    if let Some(keys) = file.rejected_keys {
        c.rejected_keys = keys;
    }
    if let Some(b) = file.admin_endpoint {
        c.admin_endpoint = b;
    }
    if let Some(Positive(v)) = file.time_scale {
        c.time_scale = v;
    }
    if let Some(Probability(p)) = file.cache_evict {
        c.cache_evict = p;
    }
    if let Some(b) = file.require_anthropic_version {
        c.require_anthropic_version = b;
    }
    c.outages = file.outages.into_iter().map(|o| o.0).collect();
    c.script = file
        .script
        .into_iter()
        .map(ScriptStep::normalized)
        .collect();
    c.validate().map_err(|e| MockConfigError::Parse {
        origin: origin.to_string(),
        message: e.to_string(),
    })?;
    Ok(c)
}

/// A probability, 0.0–1.0.
struct Probability(f64);

impl<'de> Deserialize<'de> for Probability {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = f64::deserialize(d)?;
        if (0.0..=1.0).contains(&p) {
            Ok(Probability(p))
        } else {
            Err(serde::de::Error::custom(format!(
                "a fault rate is a probability between 0 and 1, got {p}"
            )))
        }
    }
}

/// A finite number above zero.
struct Positive(f64);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if v.is_finite() && v > 0.0 {
            Ok(Positive(v))
        } else {
            Err(serde::de::Error::custom(format!(
                "expected a number above 0, got {v}"
            )))
        }
    }
}

/// A capacity fraction in (0, 1].
struct Fraction(f64);

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if v.is_finite() && v > 0.0 && v <= 1.0 {
            Ok(Fraction(v))
        } else {
            Err(serde::de::Error::custom(format!(
                "capacity_fraction must be above 0 and at most 1, got {v}"
            )))
        }
    }
}

/// A whole number ≥ 1.
struct AtLeastOne(u64);

impl<'de> Deserialize<'de> for AtLeastOne {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        if v >= 1 {
            Ok(AtLeastOne(v))
        } else {
            Err(serde::de::Error::custom(
                "expected a whole number ≥ 1, got 0",
            ))
        }
    }
}

/// A usage tier, 1–4.
struct Tier(u8);

impl<'de> Deserialize<'de> for Tier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        match u8::try_from(v) {
            Ok(t @ 1..=4) => Ok(Tier(t)),
            _ => Err(serde::de::Error::custom(format!(
                "tier must be 1, 2, 3 or 4, got {v}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_full_scenario_parses() {
        let text = r#"
description = "everything"
token_rate = 120
seed = 7
ping_interval_ms = 2000
emit_retry_after_ms = true
rejected_keys = ["sk-revoked"]

[limits]
tier = 2
rpm = 10
capacity_fraction = 0.5

[faults]
overloaded = 0.1
unavailable = 0.05
unavailable_html = true
slow_first_byte = 0.2
slow_first_byte_ms = 1500
should_retry = false

[[outages]]
start_s = 10
end_s = 40

[[script]]
type = "error"
status = 429
retry_after = "2"

[[script]]
type = "ok"
"#;
        let c = MockConfig::from_scenario_str(text, "t.toml").expect("parses");
        assert_eq!(c.limits.rpm, 10);
        assert_eq!(c.limits.itpm, 450_000, "tier 2 keeps its other limits");
        assert_eq!(c.limits.capacity_fraction, 0.5);
        assert_eq!(c.token_rate, 120.0);
        assert_eq!(c.seed, Some(7));
        assert_eq!(c.faults.overloaded, 0.1);
        assert_eq!(c.faults.slow_first_byte_delay, Duration::from_millis(1500));
        assert_eq!(c.faults.should_retry, Some(false));
        assert_eq!(c.outages, vec![Outage::overloaded(10.0, 40.0)]);
        assert_eq!(
            c.script,
            vec![ScriptStep::rate_limited("2"), ScriptStep::Ok],
            "type and message filled from the status"
        );
    }

    #[test]
    fn an_empty_file_is_the_default() {
        assert_eq!(
            MockConfig::from_scenario_str("", "empty").expect("parses"),
            MockConfig::default()
        );
    }

    #[test]
    fn errors_name_the_key_and_the_line() {
        let e = MockConfig::from_scenario_str("[limits]\nrpm = 5\nrpmm = 6\n", "x.toml")
            .expect_err("unknown key");
        let s = e.to_string();
        assert!(s.contains("rpmm") && s.contains("line 3"), "{s}");

        let e = MockConfig::from_scenario_str("[faults]\n\noverloaded = 1.5\n", "x.toml")
            .expect_err("bad rate");
        let s = e.to_string();
        assert!(s.contains("overloaded") && s.contains("line 3"), "{s}");

        let e = MockConfig::from_scenario_str("token_rate = \"fast\"\n", "x.toml")
            .expect_err("bad type");
        let s = e.to_string();
        assert!(s.contains("token_rate") && s.contains("line 1"), "{s}");

        let e = MockConfig::from_scenario_str("[[outages]]\nstart_s = 40\nend_s = 10\n", "x.toml")
            .expect_err("backwards outage");
        let s = e.to_string();
        assert!(s.contains("end_s") && s.contains("line"), "{s}");

        let e = MockConfig::from_scenario_str("[[script]]\ntype = \"drop\"\nafter = 3\n", "x.toml")
            .expect_err("unknown step field");
        let s = e.to_string();
        assert!(s.contains("after") && s.contains("line"), "{s}");
    }
}
