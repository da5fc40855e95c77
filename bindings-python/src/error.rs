//! Every core error raised as the class the core names for it ([`Error::class`]), looked up
//! in `meterline.errors`, with the details of its kind as attributes: `path` (validation and
//! argument errors, server rejections), `argument`, `field` (the option), `timeout`,
//! `capacity`/`policy`, `status`, `event_id`/`index`. The message is the core error's
//! `Display` text; `code` is always the core's `code()`.

use meterline_core::{Error, ErrorClass, ValidationError};
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
    let built = build(py, err.class().name(), message, code, |kw| {
        if let Some(status) = err.status() {
            kw.set_item("status", status)?;
        }
        match err {
            Error::Validation(v) if err.class() == ErrorClass::Argument => {
                kw.set_item("path", &v.path)?;
                kw.set_item("argument", v.path.trim_start_matches('/').split('/').next())
            }
            Error::Validation(v) => kw.set_item("path", &v.path),
            Error::Rejected(r) => {
                kw.set_item("path", &r.path)?;
                kw.set_item("event_id", r.id.as_deref())?;
                kw.set_item("index", r.index)
            }
            Error::Config { field, .. } => kw.set_item("field", field.as_ref()),
            Error::Timeout(after) => kw.set_item("timeout", after.as_secs_f64()),
            Error::QueueFull { capacity, policy } => {
                kw.set_item("capacity", *capacity)?;
                kw.set_item("policy", *policy)
            }
            _ => Ok(()),
        }
    });
    built.unwrap_or_else(|failure| failure)
}

/// A `ConfigError` for an option value the binding itself cannot convert.
pub fn config_error(field: &str, message: impl Into<String>) -> PyErr {
    Error::config(field.to_owned(), message).into_py_err()
}

/// An `ArgumentError` for a method argument the binding itself cannot convert (`path` names
/// it: `/timeout`).
pub fn argument_error(path: &str, message: impl Into<String>) -> PyErr {
    ValidationError::invalid_argument(path, message).into_py_err()
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
