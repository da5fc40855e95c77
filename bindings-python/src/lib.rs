//! `meterline._native`: the Rust half of the `meterline` Python package.
//!
//! Thin by design (DESIGN §1): behaviour lives in `meterline-core`; this crate converts
//! Python values to JSON (`convert`), options to the core's config (`config`), core errors to
//! `meterline.errors` classes (`error`), bridges asyncio (`runtime`), forwards logs and
//! background errors to Python (`logging`, `notices`) and keeps all of it fork-safe (`fork`).
//! The idiomatic API (`Client`, `AsyncClient`, `Stats`) is the Python package on top.

mod client;
mod config;
mod convert;
mod entitlements;
mod error;
mod fork;
mod logging;
mod notices;
mod runtime;

use pyo3::prelude::*;

/// The native module. Its names are private to the `meterline` package (see `_native.pyi`).
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logging::install();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MAX_DEPTH", convert::MAX_DEPTH)?;
    m.add(
        "EXIT_FLUSH_GRACE",
        meterline_core::arguments::EXIT_FLUSH_GRACE.as_secs_f64(),
    )?;
    m.add_class::<client::NativeClient>()?;
    m.add_class::<entitlements::Entitlement>()?;
    m.add_function(wrap_pyfunction!(notices::_take_notices, m)?)?;
    m.add_function(wrap_pyfunction!(notices::_wake_notices, m)?)?;
    m.add_function(wrap_pyfunction!(notices::_close_notices, m)?)?;
    m.add_function(wrap_pyfunction!(logging::_set_log_level, m)?)?;
    m.add_function(wrap_pyfunction!(fork::_before_fork, m)?)?;
    m.add_function(wrap_pyfunction!(fork::_after_fork_in_parent, m)?)?;
    m.add_function(wrap_pyfunction!(fork::_after_fork_in_child, m)?)?;
    Ok(())
}
