//! The SDK's reading of `GET /v1/customers/{subject}/entitlements`: arbitrary bytes as the
//! body (after a first byte that picks the fetch's jitter and `ETag`), parsed as the native
//! client does (an `Entitlements` for the subject asked, else a failed fetch) into an
//! `EntitlementCache`; then tracked events counted into it and lookups of every feature.
//! Must never panic; a parsed answer is served from the cache with its version.
#![no_main]

#[path = "../harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    harness::entitlement_answer(data);
});
