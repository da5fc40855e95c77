//! Kotlin and Swift bindings of meterline (uniffi): the native library of the JVM, Android
//! and iOS packages.
//!
//! Thin by design (DESIGN §1): type conversion ([`options`], [`stats`], [`entitlements`]),
//! error mapping ([`error`]) and async bridging ([`client`]); every behaviour is the core's.
//! `uniffi-bindgen` generates the Kotlin package `dev.meterline` and the Swift module
//! `Meterline` from the built library (bindings-swift-kotlin/scripts/generate.sh).

uniffi::setup_scaffolding!("meterline");

pub mod client;
pub mod entitlements;
pub mod error;
pub mod identity;
pub mod lean;
pub mod options;
pub mod stats;

/// A bare call with the same three string arguments as `track()` that does nothing: the
/// floor of a call from Kotlin into Rust (JNA plus uniffi's lowering), for the bench.
#[uniffi::export]
pub fn bare_call(r#type: String, subject: String, data: String) -> u64 {
    (r#type.len() + subject.len() + data.len()) as u64
}
