//! Conformance only: the core's `EntitlementCache` driven step by step with an explicit
//! clock (`meterline_core::conformance`), so the shared vectors (`tests/vectors/
//! entitlements.json`, `stream.json`) run through this package too. This file only converts
//! between Python and JSON; no behaviour lives here. Not part of the public API.

use std::sync::Mutex;

use meterline_core::conformance::VectorCache as Driver;
use pyo3::{exceptions::PyValueError, prelude::*};
use serde_json::Value;

use crate::{convert, entitlements::to_python};

/// The core's vector step driver: an `EntitlementCache` and the fetch tickets it handed out.
#[pyclass(module = "meterline._native", name = "_EntitlementCache")]
pub struct VectorCache {
    driver: Mutex<Driver>,
}

fn bad(message: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("vector step: {message}"))
}

fn json_of(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    convert::to_json(obj).map_err(|e| bad(format!("{} at {}", e.message(), e.path(""))))
}

#[pymethods]
impl VectorCache {
    /// `settings`: a scenario's `settings` (`cache_size`, `max_stale_ms`, `max_ttl_ms`,
    /// `fallbacks`); `payloads`: the vector file's named answers.
    #[new]
    #[pyo3(signature = (settings, payloads=None))]
    fn new(settings: &Bound<'_, PyAny>, payloads: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let payloads = payloads.map(json_of).transpose()?.unwrap_or(Value::Null);
        let driver = Driver::new(&json_of(settings)?, &payloads).map_err(bad)?;
        Ok(VectorCache {
            driver: Mutex::new(driver),
        })
    }

    /// Runs one vector step and returns what it gave.
    fn step<'py>(&self, py: Python<'py>, step: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let step = json_of(step)?;
        let got = self
            .driver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .step(&step)
            .map_err(bad)?;
        to_python(py, &got)
    }
}
