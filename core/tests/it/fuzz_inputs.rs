//! Replays the fuzz seeds and every kept fuzz regression input (`fuzz/seeds/<target>`,
//! `fuzz/regressions/<target>`) of the core's targets through the same calls as the fuzz
//! targets (the client-side ones through the very same code, `fuzz/harness.rs`), so a fixed
//! crash stays fixed in `make test` without the fuzz toolchain.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../../../fuzz/harness.rs"]
mod harness;
#[path = "../../../fuzz/inputs.rs"]
mod kept;

use meterline_core::{
    codec::{Encoding, decompress_limited},
    stream::{ClientOp, ServerMessage},
};

#[test]
fn decompress_inputs_stay_within_the_limit() {
    const LIMIT: usize = 1 << 20;
    for input in kept::inputs("decompress") {
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
    for input in kept::inputs("stream_frame") {
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

#[test]
fn spool_record_inputs_decode_only_events() {
    let decoded = kept::inputs("spool_record")
        .iter()
        .filter(|input| harness::spool_record(input))
        .count();
    assert!(decoded >= 1, "the seeds hold a valid record");
}

#[test]
fn client_stream_message_inputs_apply_to_the_cache() {
    let applied: usize = kept::inputs("client_stream_message")
        .iter()
        .map(|input| harness::client_stream_message(input))
        .sum();
    assert!(applied >= 3, "the seeds hold valid frames");
}

#[test]
fn entitlement_answer_inputs_are_served_from_the_cache() {
    let fetched = kept::inputs("entitlement_answer")
        .iter()
        .filter(|input| harness::entitlement_answer(input))
        .count();
    assert!(fetched >= 1, "the seeds hold an answer for c1");
}
