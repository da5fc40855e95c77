//! `meterline.toml` parsing and checking: arbitrary text. Must never panic; errors are
//! messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterline_server::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = text.parse::<Config>() {
            assert!(!e.to_string().is_empty());
        }
    }
});
