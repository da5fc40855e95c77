//! Node.js bindings of meterline (napi-rs): the native half of the npm package `meterline`.
//!
//! Thin by design (DESIGN §1): type conversion ([`config`], [`stats`]), error mapping
//! ([`error`]) and async bridging ([`client`]); every behaviour is the core's. The package's
//! `index.js` builds the idiomatic JavaScript API — `Client`, the `MeterlineError` classes,
//! `on('error')`, `beforeExit` flushing — on top of the `NativeClient` class exported here.

pub mod client;
pub mod config;
pub mod entitlement_cache;
pub mod entitlements;
pub mod error;
pub mod retry;
pub mod stats;
pub mod track;
