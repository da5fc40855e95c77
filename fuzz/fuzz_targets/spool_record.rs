//! The spool reader: arbitrary bytes as one stored spool entry (first byte: the key's length,
//! 0–16; then the key; the rest is the value). Must never panic; what decodes is an event
//! the sender can send (a JSON object with a string id) under the key it was stored with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterline_core::spool_record::{SpoolRecordError, decode, encode_key};

fuzz_target!(|data: &[u8]| {
    let Some((&key_len, rest)) = data.split_first() else {
        return;
    };
    let (key, value) = rest.split_at(usize::from(key_len % 17).min(rest.len()));
    match decode(key, value) {
        Ok((seq, event)) => {
            assert_eq!(encode_key(seq), key);
            assert_eq!(event, value);
            let parsed: serde_json::Value = serde_json::from_slice(event).expect("a decoded event is JSON");
            assert!(parsed["id"].as_str().is_some_and(|id| !id.is_empty()), "{parsed}");
        }
        Err(SpoolRecordError::Key(len)) => assert!(len == key.len() && len != 8),
        Err(SpoolRecordError::Value) => assert_eq!(key.len(), 8),
    }
});
