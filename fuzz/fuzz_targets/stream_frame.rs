//! Realtime stream frames: arbitrary bytes as a client op (what the server decodes) and as a
//! server message (what the SDK decodes). Must never panic; what parses re-serializes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterline_core::stream::{ClientOp, ServerMessage};

fuzz_target!(|data: &[u8]| {
    if let Ok(op) = serde_json::from_slice::<ClientOp>(data) {
        let text = serde_json::to_string(&op).expect("a parsed op serializes");
        assert_eq!(serde_json::from_str::<ClientOp>(&text).ok(), Some(op));
    }
    if let Ok(msg) = serde_json::from_slice::<ServerMessage>(data) {
        serde_json::to_string(&msg).expect("a parsed message serializes");
    }
});
