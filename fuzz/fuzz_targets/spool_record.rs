//! The spool reader: arbitrary bytes as one stored spool entry (first byte: the key's length,
//! 0–16; then the key; the rest is the value). Must never panic; what decodes is an event
//! the sender can send (a JSON object with a string id) under the key it was stored with.
#![no_main]

#[path = "../harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    harness::spool_record(data);
});
