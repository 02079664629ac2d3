//! Scenario files: the shipped examples parse, errors name the key and the line, and a
//! scenario's script drives the server.

use std::time::Duration;

use backchat::mock::{MockConfig, MockLimits, Outage};

use super::harness::{Harness, simple};

#[test]
fn the_example_scenarios_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/scenarios");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("scenario dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let c = MockConfig::from_scenario_file(&path)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            assert!(
                c.description.is_some(),
                "{} says what it is for",
                path.display()
            );
            names.push(
                path.file_name()
                    .expect("name")
                    .to_string_lossy()
                    .to_string(),
            );
        }
    }
    for want in [
        "tier1.toml",
        "tight-demo.toml",
        "flaky.toml",
        "outage-529.toml",
        "scripted-429s.toml",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} is missing");
    }
    let tight = MockConfig::from_scenario_file(&dir.join("tight-demo.toml")).expect("parses");
    assert_eq!(tight.limits, MockConfig::tight_demo().limits);
    let outage = MockConfig::from_scenario_file(&dir.join("outage-529.toml")).expect("parses");
    assert_eq!(outage.outages, vec![Outage::overloaded(10.0, 40.0)]);
    let tier1 = MockConfig::from_scenario_file(&dir.join("tier1.toml")).expect("parses");
    assert_eq!(tier1.limits, MockLimits::default());
}

#[test]
fn scenario_errors_name_the_key_and_the_line() {
    let e =
        MockConfig::from_scenario_str("token_rate = 30\n[limits]\nrpm = 5\nburst = 2\n", "s.toml")
            .expect_err("unknown key")
            .to_string();
    assert!(e.starts_with("s.toml: "), "{e}");
    assert!(e.contains("burst") && e.contains("line 4"), "{e}");
    let e = MockConfig::from_scenario_str("[faults]\ndrop = -0.5\n", "s.toml")
        .expect_err("bad value")
        .to_string();
    assert!(e.contains("drop = -0.5") && e.contains("line 2"), "{e}");
    let e = MockConfig::from_scenario_str("[limits]\nrpm = \"lots\"\n", "s.toml")
        .expect_err("bad type")
        .to_string();
    assert!(e.contains("rpm") && e.contains("line 2"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_scenario_script_drives_the_server() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/scenarios");
    let mut config =
        MockConfig::from_scenario_file(&dir.join("scripted-429s.toml")).expect("parses");
    config.token_rate = 1e9;
    config.first_token_latency = Duration::ZERO;
    let h = Harness::start(config).await;
    let statuses = [429, 429, 529, 200];
    for want in statuses {
        assert_eq!(h.post(&simple("x", 5, false)).await.status, want);
    }
    let r = h.post(&simple("x", 1000, true)).await;
    assert_eq!(r.events().last().map(|(n, _)| n.as_str()), Some("error"));
}
