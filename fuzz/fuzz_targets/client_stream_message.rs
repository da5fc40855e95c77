//! The SDK's side of the realtime stream: arbitrary bytes as text frames (one per line) from
//! the server, decoded as the native client does (`ServerMessage` from the frame's text) and
//! applied to an `EntitlementCache` holding one answer; then lookups of what is cached. Must
//! never panic; the resume point never moves backwards except by `resync`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    harness::client_stream_message(data);
});
