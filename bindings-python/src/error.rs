//! Every error of the core mapped — once, here — to its class in `meterline.errors`.
//!
//! | core | Python |
//! |---|---|
//! | `Validation` | `ValidationError(code, path)` |
//! | `Rejected` | `RejectedError(code, path, event_id, index)` (a `ValidationError`) |
//! | `Config` | `ConfigError(field)` |
//! | `Unauthorized` | `AuthError` |
//! | `Forbidden` | `ForbiddenError` (an `AuthError`) |
//! | `Timeout` | `TimeoutError(timeout)` (also `builtins.TimeoutError`) |
//! | `QueueFull` | `QueueFullError(capacity, policy)` |
//! | `Closed` | `ClosedError` |
//! | `Network` | `NetworkError` |
//! | `Http` | `ServerError(status)` |
//! | `Codec` | `CodecError` |
//! | `Stream` | `StreamError` (its `code` is the server's or `stream_closed`) |
//! | anything newer | `MeterlineError` with the core's `code` |
//!
//! The message is the core error's `Display` text; `code` is always the core's `code()`.

use meterline_core::{Error, ValidationError};
use pyo3::{
    prelude::*,
    sync::PyOnceLock,
    types::{PyDict, PyModule},
};

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Converts a core error into the Python exception to raise.
pub trait IntoPyErr {
    /// The matching `meterline.errors` exception.
    fn into_py_err(self) -> PyErr;
}

impl IntoPyErr for Error {
    fn into_py_err(self) -> PyErr {
        Python::attach(|py| to_py_err(py, &self))
    }
}

impl IntoPyErr for ValidationError {
    fn into_py_err(self) -> PyErr {
        Python::attach(|py| to_py_err(py, &Error::Validation(self)))
    }
}

/// The exception for `err` (also used to build the objects handed to `on_error`).
pub fn to_py_err(py: Python<'_>, err: &Error) -> PyErr {
    let message = err.to_string();
    let code = err.code().to_owned();
    let built = match err {
        Error::Validation(v) => build(py, "ValidationError", message, code, |kw| kw.set_item("path", &v.path)),
        Error::Rejected(r) => build(py, "RejectedError", message, code, |kw| {
            kw.set_item("path", &r.path)?;
            kw.set_item("event_id", r.id.as_deref())?;
            kw.set_item("index", r.index)
        }),
        Error::Config { field, .. } => build(py, "ConfigError", message, code, |kw| kw.set_item("field", *field)),
        Error::Unauthorized { .. } => build(py, "AuthError", message, code, |_| Ok(())),
        Error::Forbidden { .. } => build(py, "ForbiddenError", message, code, |_| Ok(())),
        Error::Timeout(after) => build(py, "TimeoutError", message, code, |kw| {
            kw.set_item("timeout", after.as_secs_f64())
        }),
        Error::QueueFull { capacity, policy } => build(py, "QueueFullError", message, code, |kw| {
            kw.set_item("capacity", *capacity)?;
            kw.set_item("policy", *policy)
        }),
        Error::Closed => build(py, "ClosedError", message, code, |_| Ok(())),
        Error::Network(_) => build(py, "NetworkError", message, code, |_| Ok(())),
        Error::Http { status, .. } => build(py, "ServerError", message, code, |kw| kw.set_item("status", *status)),
        Error::Codec { .. } => build(py, "CodecError", message, code, |_| Ok(())),
        Error::Stream { .. } => build(py, "StreamError", message, code, |_| Ok(())),
        _ => build(py, "MeterlineError", message, code, |_| Ok(())),
    };
    built.unwrap_or_else(|failure| failure)
}

/// A `ConfigError` for an option the binding itself checks (unknown name, wrong Python type).
pub fn config_error(field: &str, message: impl Into<String>) -> PyErr {
    Python::attach(|py| {
        let message = format!("invalid configuration `{field}`: {}", message.into());
        build(py, "ConfigError", message, "invalid_config".to_owned(), |kw| {
            kw.set_item("field", field)
        })
        .unwrap_or_else(|failure| failure)
    })
}

/// Instantiates `meterline.errors.<class>(message, code=…, **details)`; an `Err` carries the
/// (unexpected) failure to do so, itself a Python exception worth raising.
fn build(
    py: Python<'_>,
    class: &str,
    message: String,
    code: String,
    details: impl FnOnce(&Bound<'_, PyDict>) -> PyResult<()>,
) -> Result<PyErr, PyErr> {
    let module = ERRORS.get_or_try_init(py, || PyModule::import(py, "meterline.errors").map(Bound::unbind))?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("code", code)?;
    details(&kwargs)?;
    let exception = module.bind(py).getattr(class)?.call((message,), Some(&kwargs))?;
    Ok(PyErr::from_value(exception))
}
