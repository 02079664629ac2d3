//! The config file loader (`config::file::parse`): any text gives values or an error that
//! names the file, never a panic. Bytes that are not UTF-8 are read lossily.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = backchat::config::file::parse(Path::new("/fuzz/config.toml"), &text) {
        let shown = e.to_string();
        assert!(shown.contains("/fuzz/config.toml"), "{shown}");
    }
});
