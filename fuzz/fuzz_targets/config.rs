//! Hostile configuration files: parsing never panics, and every error is one line
//! (`file:line:column: message`, as the docs promise and log lines need).
#![no_main]

use std::path::Path;

use binauthz_auditor::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse(text, Path::new("/fuzz/config.toml")) {
        Ok(config) => {
            assert!(!config.scope.kinds.is_empty());
            assert!((1..=1024).contains(&config.gcp.concurrency));
            let _ = config.schedule.next_after(chrono::Utc::now());
        }
        Err(e) => {
            assert!(!e.0.contains('\n'), "multi-line config error for input {text:?}:\n{}", e.0);
            assert!(e.0.starts_with("/fuzz/config.toml"), "error does not name the file: {}", e.0);
        }
    }
});
