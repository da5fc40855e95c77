//! Node.js bindings of meterline (napi-rs): the native half of the npm package `meterline`.
//!
//! Thin by design (DESIGN §1): type conversion ([`config`], [`stats`]), error mapping
//! ([`error`]) and async bridging ([`client`]); every behaviour is the core's. The package's
//! `index.js` builds the idiomatic JavaScript API — `Client`, the `MeterlineError` classes,
//! `on('error')`, `beforeExit` flushing — on top of the `NativeClient` class exported here.

pub mod client;
pub mod config;
pub mod entitlements;
pub mod error;
pub mod stats;
pub mod track;

use napi_derive::napi;

/// The core's argument rules the JavaScript layer needs before it calls in (internal).
#[napi(object)]
pub struct Limits {
    /// Deepest nesting accepted inside `data` (`data` itself is one level).
    pub max_data_depth: u32,
    /// How long the `beforeExit` flush may keep the process alive, in milliseconds.
    pub exit_flush_grace_ms: u32,
}

/// The core's argument rules (see [`Limits`]).
#[napi]
pub fn limits() -> Limits {
    let grace = meterline_core::arguments::EXIT_FLUSH_GRACE.as_millis();
    Limits {
        max_data_depth: u32::try_from(meterline_core::arguments::MAX_DATA_DEPTH).unwrap_or(u32::MAX),
        exit_flush_grace_ms: u32::try_from(grace).unwrap_or(u32::MAX),
    }
}
