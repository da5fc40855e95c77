//! Request/response body decompression with the size limit: arbitrary bytes as gzip, zstd or
//! identity. Must never panic, and never return more than the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterline_core::codec::{Encoding, decompress_limited};

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let encoding = match selector % 3 {
        0 => Encoding::Gzip,
        1 => Encoding::Zstd,
        _ => Encoding::Identity,
    };
    if let Ok(out) = decompress_limited(encoding, body, LIMIT) {
        assert!(out.len() <= LIMIT);
    }
});
