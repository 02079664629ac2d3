//! The sample config file documents every key, and is valid once uncommented.

use std::path::Path;

#[test]
fn the_example_config_is_valid_when_every_setting_is_uncommented() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/config.example.toml"),
    )
    .expect("the example exists");
    let mut seen_key_cmd = false;
    let uncommented: String = text
        .lines()
        .filter_map(|l| {
            let body = l.strip_prefix("# ")?;
            let is_setting = body.starts_with('[')
                || body
                    .split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            if !is_setting {
                return None;
            }
            // Several alternatives are shown for these; keep the first, and not both kinds.
            if body.starts_with("api_key") {
                if seen_key_cmd {
                    return None;
                }
                seen_key_cmd = true;
            }
            Some(format!("{body}\n"))
        })
        .collect();
    let values = backchat::config::file::parse(Path::new("example.toml"), &uncommented)
        .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    assert!(values.model.is_some() && values.mock_token_rate.is_some());
    for key in backchat::config::file::TOP_KEYS
        .iter()
        .chain(&backchat::config::file::RETRY_KEYS)
        .chain(&backchat::config::file::MOCK_KEYS)
    {
        assert!(
            text.contains(&format!("# {key} = ")) || text.contains(&format!("# [{key}]")),
            "the example documents {key}"
        );
    }
}
