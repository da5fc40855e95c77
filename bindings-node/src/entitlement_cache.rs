//! Conformance only: the core's sans-I/O `EntitlementCache` driven by the core's vector
//! step driver (`meterline_core::conformance`), so the Node test suite runs
//! `tests/vectors/entitlements.json` and `stream.json` through this binding with the
//! vectors' own clock. Steps and answers cross as JSON text; no behaviour lives here. Not
//! part of the public API.

use meterline_core::conformance::VectorCache as Driver;
use napi::{Error, Result};
use napi_derive::napi;
use serde_json::Value;

/// The core's vector step driver: an `EntitlementCache` and the fetch tickets it handed out.
#[napi(js_name = "_EntitlementCache")]
pub struct VectorCache {
    driver: Driver,
}

#[napi]
impl VectorCache {
    /// A fresh cache; `settings` is the JSON of a scenario's `settings`, `payloads` the JSON
    /// of the vector file's named answers (optional).
    #[napi(constructor)]
    pub fn new(settings: String, payloads: Option<String>) -> Result<Self> {
        let payloads = payloads.as_deref().map(|p| parse("payloads", p)).transpose()?;
        let driver = Driver::new(&parse("settings", &settings)?, &payloads.unwrap_or(Value::Null))
            .map_err(|e| Error::from_reason(format!("vector step: {e}")))?;
        Ok(VectorCache { driver })
    }

    /// Runs one vector step (JSON) and returns what it gave (JSON).
    #[napi]
    pub fn step(&mut self, step: String) -> Result<String> {
        let got = self
            .driver
            .step(&parse("step", &step)?)
            .map_err(|e| Error::from_reason(format!("vector step: {e}")))?;
        Ok(got.to_string())
    }
}

fn parse(what: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::from_reason(format!("vector step: bad {what}: {e}")))
}
