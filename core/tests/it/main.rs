//! The core's integration tests, one test binary (each former `tests/<name>.rs` is the module
//! `<name>` here, so `cargo test -p meterline-core --test it <name>::` runs one of them): the
//! conformance vectors, the entitlement vectors, the kept fuzz inputs, and the native client
//! and its disk spool against real sockets. One binary links the core once instead of once
//! per file.

#![allow(clippy::unwrap_used, missing_docs)]

#[cfg(feature = "native")]
mod common;

mod entitlement_vectors;
#[cfg(feature = "native")]
mod entitlements_native;
mod fuzz_inputs;
#[cfg(feature = "native")]
mod spool_native;
mod vectors;
