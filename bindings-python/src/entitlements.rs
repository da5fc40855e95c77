//! The entitlement half of the binding: the `Entitlement` answer type and the argument
//! conversion for `entitlement()`, `customer_token()` and `prime_entitlements()`. (A cache
//! hit is answered on the caller's thread by the core's `try_entitlement`; a miss waits
//! GIL-free or on the async runtime.)

use std::time::Duration;

use meterline_core::{EntitlementAnswer, ValidationError, arguments, entitlement::Entitlements};
use pyo3::{
    prelude::*,
    types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString},
};
use serde_json::Value;

use crate::convert;

/// What `entitlement()` returns (`meterline.Entitlement`): immutable; its fields are read
/// from the core's answer when accessed, so building one on a cache hit is one allocation.
#[pyclass(frozen, module = "meterline", name = "Entitlement")]
pub struct Entitlement(pub EntitlementAnswer);

#[pymethods]
impl Entitlement {
    /// The customer.
    #[getter]
    fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The feature key.
    #[getter]
    fn feature(&self) -> &str {
        &self.0.feature
    }

    /// `"boolean"`, `"metered"`, `"config"`, or `None` (not in the plan, or a deny fallback).
    #[getter]
    fn kind(&self) -> Option<&'static str> {
        self.0.kind.map(|k| match k {
            meterline_core::entitlement::FeatureKind::Boolean => "boolean",
            meterline_core::entitlement::FeatureKind::Metered => "metered",
            meterline_core::entitlement::FeatureKind::Config => "config",
        })
    }

    /// Whether the subject may use the feature now.
    #[getter]
    fn has_access(&self) -> bool {
        self.0.has_access
    }

    /// Metered: the period's limit (`None`: unlimited or unknown).
    #[getter]
    fn limit(&self) -> Option<f64> {
        self.0.limit
    }

    /// Metered: usage in the current period, this client's untallied events included.
    #[getter]
    fn usage(&self) -> Option<f64> {
        self.0.usage
    }

    /// Metered: `limit - usage`, never below 0.
    #[getter]
    fn remaining(&self) -> Option<f64> {
        self.0.remaining
    }

    /// Config: the feature's JSON value (a new Python object on each access).
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.0.value {
            None => Ok(py.None().into_bound(py)),
            Some(value) => to_python(py, value),
        }
    }

    /// Metered: end of the current period (RFC 3339, UTC).
    #[getter]
    fn period_end(&self) -> Option<&str> {
        self.0.period_end.as_deref()
    }

    /// The server answer's version (`None` for a fallback).
    #[getter]
    fn version(&self) -> Option<u64> {
        self.0.version
    }

    /// `"fresh"`, `"cache"`, `"stale"` or `"fallback"`.
    #[getter]
    fn source(&self) -> &'static str {
        self.0.source.as_str()
    }

    /// Why the answer is not a plain fresh or cached one (`None` when it is).
    #[getter]
    fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }

    /// Every field as a plain dict (JSON-ready).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("subject", self.subject())?;
        dict.set_item("feature", self.feature())?;
        dict.set_item("kind", self.kind())?;
        dict.set_item("has_access", self.has_access())?;
        dict.set_item("limit", self.limit())?;
        dict.set_item("usage", self.usage())?;
        dict.set_item("remaining", self.remaining())?;
        dict.set_item("value", self.value(py)?)?;
        dict.set_item("period_end", self.period_end())?;
        dict.set_item("version", self.version())?;
        dict.set_item("source", self.source())?;
        dict.set_item("reason", self.reason())?;
        Ok(dict)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<Entitlement>().is_ok_and(|o| o.get().0 == self.0)
    }

    fn __repr__(&self) -> String {
        let mut out = format!(
            "Entitlement(subject={:?}, feature={:?}, kind={}, has_access={}",
            &*self.0.subject,
            &*self.0.feature,
            self.kind().map_or("None".to_owned(), |k| format!("{k:?}")),
            if self.0.has_access { "True" } else { "False" },
        );
        let number = |n: Option<f64>| n.map_or("None".to_owned(), |n| format!("{n:?}"));
        if self.0.limit.is_some() || self.0.usage.is_some() {
            out += &format!(
                ", limit={}, usage={}, remaining={}",
                number(self.0.limit),
                number(self.0.usage),
                number(self.0.remaining)
            );
        }
        if let Some(value) = &self.0.value {
            out += &format!(", value={value}");
        }
        out += &format!(", source={:?}", self.source());
        if let Some(reason) = &self.0.reason {
            out += &format!(", reason={reason:?}");
        }
        out + ")"
    }
}

/// A JSON value as the equivalent Python object (dict, list, str, int, float, bool, None).
pub fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => PyInt::new(py, i).into_any(),
            (None, Some(u)) => PyInt::new(py, u).into_any(),
            _ => PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_python(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// A required `str` argument (`subject`, `feature`) borrowed from the Python string; a wrong
/// type is `invalid_argument` at `/name` (lengths are the core's to check).
pub fn arg_str<'a>(obj: &'a Bound<'_, PyAny>, name: &str) -> Result<&'a str, ValidationError> {
    match obj.cast::<PyString>() {
        Ok(s) => s.to_str().map_err(|_| {
            ValidationError::invalid_argument(
                format!("/{name}"),
                format!("{name} contains a lone surrogate and cannot be encoded as UTF-8"),
            )
        }),
        Err(_) => Err(ValidationError::invalid_argument(
            format!("/{name}"),
            format!("{name} must be a str, got {}", convert::type_name(obj)),
        )),
    }
}

/// `customer_token`'s `ttl`: seconds (int or float) or a `datetime.timedelta`. Range checks
/// (more than 0, at most 30 days) are the core's; this refuses what is not a duration.
pub fn ttl(obj: &Bound<'_, PyAny>) -> Result<Duration, ValidationError> {
    let bad = |message: String| ValidationError::invalid_argument("/ttl", message);
    let secs = if obj.is_instance_of::<PyBool>() {
        None
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        Some(f.value())
    } else if obj.is_instance_of::<PyInt>() {
        // Huge ints become inf (refused below as out of range).
        obj.extract::<f64>().ok().or(Some(f64::INFINITY))
    } else if convert::type_name(obj) == "timedelta" {
        obj.call_method0("total_seconds")
            .ok()
            .and_then(|s| s.extract::<f64>().ok())
    } else {
        None
    };
    let Some(secs) = secs else {
        return Err(bad(format!(
            "ttl must be a number of seconds or a datetime.timedelta, got {}",
            convert::type_name(obj)
        )));
    };
    arguments::token_ttl_from_secs(secs)
}

/// `prime_entitlements(payload)`: the server's entitlements JSON body as a mapping.
pub fn prime_payload(obj: &Bound<'_, PyAny>) -> Result<Entitlements, ValidationError> {
    if !obj.is_instance_of::<PyDict>() && obj.cast::<pyo3::types::PyMapping>().is_err() {
        return Err(ValidationError::invalid_argument(
            "/payload",
            format!(
                "payload must be a mapping (the server's entitlements JSON body), got {}",
                convert::type_name(obj)
            ),
        ));
    }
    let value = convert::to_json(obj)
        .map_err(|e| ValidationError::invalid_argument(e.path("/payload"), format!("payload: {}", e.message())))?;
    serde_json::from_value::<Entitlements>(value)
        .map_err(|e| ValidationError::invalid_argument("/payload", format!("not an entitlements answer: {e}")))
}
