//! `Client(api_key, endpoint, **options)` → the core's [`Config`].
//!
//! The options are the core's table (`meterline_core::options`), in snake_case with
//! durations in seconds. This module only turns each Python value into a [`HostValue`]; the
//! core reads, checks and names them (`ConfigError` with the option as written here).
//! `None` means "not given", as Python callers expect of a keyword default.

use meterline_core::{
    Config,
    options::{self, HostValue, Spelling},
};
use pyo3::{
    prelude::*,
    types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple},
};

use crate::{
    convert,
    error::{IntoPyErr, config_error},
};

/// The options this binding handles itself (callbacks run on Python's side); the core lists
/// them with its own in the message about an unknown option.
pub const CALLBACK_OPTIONS: &[&str] = &[
    "on_error",
    "on_usage_threshold",
    "on_connection_change",
    "token_provider",
];

/// Builds the core configuration from the constructor's arguments.
pub fn build(
    api_key: Option<&Bound<'_, PyAny>>,
    endpoint: Option<&Bound<'_, PyAny>>,
    options: Option<&Bound<'_, PyDict>>,
    has_token_provider: bool,
) -> PyResult<Config> {
    let mut given = Vec::new();
    for (name, value) in [("api_key", api_key), ("endpoint", endpoint)] {
        if let Some(value) = value.filter(|v| !v.is_none()) {
            given.push((name.to_owned(), host_value(name, value)?));
        }
    }
    for (name, value) in options.into_iter().flat_map(|d| d.iter()) {
        if value.is_none() {
            continue;
        }
        let name = name.str()?.to_str()?.to_owned();
        let value = host_value(&name, &value)?;
        given.push((name, value));
    }
    options::config_from_host_with_provider(given, Spelling::Snake, CALLBACK_OPTIONS, has_token_provider)
        .map_err(IntoPyErr::into_py_err)
}

/// One Python value as the core's option table reads it.
fn host_value(name: &str, value: &Bound<'_, PyAny>) -> PyResult<HostValue> {
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(HostValue::Bool(b.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        return Ok(match value.extract::<i64>() {
            Ok(n) => HostValue::Int(n),
            Err(_) => HostValue::Other(format!("the int {value}, beyond 64 bits")),
        });
    }
    if let Ok(f) = value.cast::<PyFloat>() {
        return Ok(HostValue::Float(f.value()));
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(HostValue::Str(s.to_str()?.to_owned()));
    }
    if value.hasattr("__fspath__")? {
        // os.PathLike (spool_dir): its path, as `str` gives it.
        let path: std::path::PathBuf = value.extract()?;
        return Ok(HostValue::Str(path.to_string_lossy().into_owned()));
    }
    let structured = value.is_instance_of::<PyDict>()
        || value.is_instance_of::<PyList>()
        || value.is_instance_of::<PyTuple>()
        || value.cast::<PyMapping>().is_ok();
    if structured {
        return convert::to_json(value)
            .map(HostValue::Json)
            .map_err(|e| config_error(name, format!("{} at {}", e.message(), e.path(""))));
    }
    Ok(HostValue::Other(format!("a {}", convert::type_name(value))))
}
