//! Replays the fuzz seeds and every kept fuzz regression input (`fuzz/seeds/<target>`,
//! `fuzz/regressions/<target>`) of the core's targets through the same calls as the fuzz
//! targets, so a fixed crash stays fixed in `make test` without the fuzz toolchain.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;

use meterline_core::{
    codec::{Encoding, decompress_limited},
    stream::{ClientOp, ServerMessage},
};

/// Every input file of a target (dotfiles skipped); at least the seeds exist.
fn inputs(target: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
                files.push(std::fs::read(&path).unwrap());
            }
        }
    }
    assert!(!files.is_empty(), "no fuzz inputs found for {target}");
    files
}

#[test]
fn decompress_inputs_stay_within_the_limit() {
    const LIMIT: usize = 1 << 20;
    for input in inputs("decompress") {
        let Some((&selector, body)) = input.split_first() else {
            continue;
        };
        let encoding = [Encoding::Gzip, Encoding::Zstd, Encoding::Identity][usize::from(selector % 3)];
        if let Ok(out) = decompress_limited(encoding, body, LIMIT) {
            assert!(out.len() <= LIMIT);
        }
    }
}

#[test]
fn stream_frame_inputs_round_trip() {
    let mut parsed = 0;
    for input in inputs("stream_frame") {
        if let Ok(op) = serde_json::from_slice::<ClientOp>(&input) {
            let text = serde_json::to_string(&op).unwrap();
            assert_eq!(serde_json::from_str::<ClientOp>(&text).unwrap(), op);
            parsed += 1;
        }
        if let Ok(msg) = serde_json::from_slice::<ServerMessage>(&input) {
            serde_json::to_string(&msg).unwrap();
            parsed += 1;
        }
    }
    assert!(parsed >= 3, "the seeds hold valid frames");
}
