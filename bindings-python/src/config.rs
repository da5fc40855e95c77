//! `Client(api_key, endpoint, **options)` → the core's [`Config`].
//!
//! Options are snake_case as in DESIGN §7; durations are seconds (`float`). Type and name
//! checks happen here (a wrong Python type or an unknown option is a `ConfigError` naming
//! it); range checks are the core's (`Config::validate`), so every binding enforces the same
//! limits.

use std::time::Duration;

use meterline_core::{Config, Fallbacks, OverflowPolicy, codec::Encoding, config::SpoolFsync};
use pyo3::{
    prelude::*,
    types::{PyBool, PyDict, PyFloat, PyInt, PyString},
};

use crate::{
    convert,
    error::{IntoPyErr, config_error},
};

/// The option names `Client` accepts besides `api_key` and `endpoint`, for the error message
/// about an unknown one.
pub const OPTIONS: &[&str] = &[
    "source",
    "flush_at",
    "max_batch_bytes",
    "flush_interval",
    "max_queue_size",
    "overflow",
    "block_timeout",
    "compression",
    "request_timeout",
    "strict_types",
    "fetch_schemas",
    "schema_refresh_interval",
    "schemas",
    "max_in_flight",
    "cache_size",
    "entitlement_timeout",
    "max_stale",
    "max_ttl",
    "fallbacks",
    "stream",
    "stream_endpoint",
    "customer_token",
    "spool_dir",
    "spool_fsync",
    "on_error",
    "on_usage_threshold",
    "on_connection_change",
];

/// The options as passed (each `None` when left at its default).
#[derive(Default)]
pub struct Options<'a, 'py> {
    pub source: Option<&'a Bound<'py, PyAny>>,
    pub flush_at: Option<&'a Bound<'py, PyAny>>,
    pub max_batch_bytes: Option<&'a Bound<'py, PyAny>>,
    pub flush_interval: Option<&'a Bound<'py, PyAny>>,
    pub max_queue_size: Option<&'a Bound<'py, PyAny>>,
    pub overflow: Option<&'a Bound<'py, PyAny>>,
    pub block_timeout: Option<&'a Bound<'py, PyAny>>,
    pub compression: Option<&'a Bound<'py, PyAny>>,
    pub request_timeout: Option<&'a Bound<'py, PyAny>>,
    pub strict_types: Option<&'a Bound<'py, PyAny>>,
    pub fetch_schemas: Option<&'a Bound<'py, PyAny>>,
    pub schema_refresh_interval: Option<&'a Bound<'py, PyAny>>,
    pub schemas: Option<&'a Bound<'py, PyAny>>,
    pub max_in_flight: Option<&'a Bound<'py, PyAny>>,
    pub cache_size: Option<&'a Bound<'py, PyAny>>,
    pub entitlement_timeout: Option<&'a Bound<'py, PyAny>>,
    pub max_stale: Option<&'a Bound<'py, PyAny>>,
    pub max_ttl: Option<&'a Bound<'py, PyAny>>,
    pub fallbacks: Option<&'a Bound<'py, PyAny>>,
    pub stream: Option<&'a Bound<'py, PyAny>>,
    pub stream_endpoint: Option<&'a Bound<'py, PyAny>>,
    pub customer_token: Option<&'a Bound<'py, PyAny>>,
    pub spool_dir: Option<&'a Bound<'py, PyAny>>,
    pub spool_fsync: Option<&'a Bound<'py, PyAny>>,
}

/// Builds the core configuration; `unknown` holds the keyword arguments nobody claimed.
pub fn build(
    api_key: &Bound<'_, PyAny>,
    endpoint: Option<&Bound<'_, PyAny>>,
    o: &Options<'_, '_>,
    unknown: Option<&Bound<'_, PyDict>>,
) -> PyResult<Config> {
    if let Some(unknown) = unknown
        && let Some((name, _)) = unknown.iter().next()
    {
        let name = name.to_string();
        return Err(config_error(
            &name,
            format!("unknown option; the options are {}", OPTIONS.join(", ")),
        ));
    }
    let api_key = string("api_key", Some(api_key))?.unwrap_or_default();
    let endpoint = string("endpoint", endpoint)?.unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
    let mut config = Config::new(api_key, endpoint);
    if let Some(source) = string("source", o.source)? {
        config.source = source;
    }
    set(&mut config.flush_at, count("flush_at", o.flush_at)?);
    set(
        &mut config.max_batch_bytes,
        count("max_batch_bytes", o.max_batch_bytes)?,
    );
    set(&mut config.flush_interval, seconds("flush_interval", o.flush_interval)?);
    set(&mut config.max_queue_size, count("max_queue_size", o.max_queue_size)?);
    if let Some(overflow) = string("overflow", o.overflow)? {
        config.overflow = overflow.parse::<OverflowPolicy>().map_err(IntoPyErr::into_py_err)?;
    }
    set(&mut config.block_timeout, seconds("block_timeout", o.block_timeout)?);
    if let Some(compression) = string("compression", o.compression)? {
        config.compression = match compression.as_str() {
            "gzip" => Encoding::Gzip,
            "zstd" => Encoding::Zstd,
            "identity" => Encoding::Identity,
            other => {
                return Err(config_error(
                    "compression",
                    format!("unknown compression {other:?}; use gzip, zstd or identity"),
                ));
            }
        };
    }
    set(
        &mut config.request_timeout,
        seconds("request_timeout", o.request_timeout)?,
    );
    set(&mut config.strict_types, boolean("strict_types", o.strict_types)?);
    set(&mut config.fetch_schemas, boolean("fetch_schemas", o.fetch_schemas)?);
    set(
        &mut config.schema_refresh_interval,
        seconds("schema_refresh_interval", o.schema_refresh_interval)?,
    );
    if let Some(schemas) = o.schemas.filter(|s| !s.is_none()) {
        config.schemas = schema_list(schemas)?;
    }
    set(&mut config.max_in_flight, count("max_in_flight", o.max_in_flight)?);
    set(&mut config.cache_size, count("cache_size", o.cache_size)?);
    set(
        &mut config.entitlement_timeout,
        seconds("entitlement_timeout", o.entitlement_timeout)?,
    );
    set(&mut config.max_stale, seconds("max_stale", o.max_stale)?);
    if let Some(max_ttl) = seconds("max_ttl", o.max_ttl)? {
        config.max_ttl = Some(max_ttl);
    }
    if let Some(fallbacks) = given(o.fallbacks) {
        config.fallbacks = fallback_set(fallbacks)?;
    }
    set(&mut config.stream, boolean("stream", o.stream)?);
    if let Some(url) = string("stream_endpoint", o.stream_endpoint)? {
        config.stream_endpoint = Some(url);
    }
    if let Some(token) = string("customer_token", o.customer_token)? {
        config.customer_token = Some(token);
    }
    if let Some(dir) = given(o.spool_dir) {
        let path: std::path::PathBuf = dir.extract().map_err(|_| {
            config_error(
                "spool_dir",
                format!("must be a str or os.PathLike, got {}", type_name(dir)),
            )
        })?;
        config.spool_dir = Some(path);
    }
    if let Some(policy) = string("spool_fsync", o.spool_fsync)? {
        config.spool_fsync = policy.parse::<SpoolFsync>().map_err(IntoPyErr::into_py_err)?;
    }
    Ok(config)
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

fn given<'a, 'py>(value: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
    value.filter(|v| !v.is_none())
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_owned())
}

fn string(field: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    let Some(value) = given(value) else {
        return Ok(None);
    };
    match value.cast::<PyString>() {
        Ok(s) => Ok(Some(s.to_str()?.to_owned())),
        Err(_) => Err(config_error(field, format!("must be a str, got {}", type_name(value)))),
    }
}

fn count(field: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    let Some(value) = given(value) else {
        return Ok(None);
    };
    if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
        return Err(config_error(field, format!("must be an int, got {}", type_name(value))));
    }
    value.extract::<usize>().map(Some).map_err(|_| {
        config_error(
            field,
            format!("must be a non-negative int that fits in 64 bits, got {value}"),
        )
    })
}

fn seconds(field: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
    let Some(value) = given(value) else {
        return Ok(None);
    };
    let secs = if value.is_instance_of::<PyBool>() {
        None
    } else if let Ok(f) = value.cast::<PyFloat>() {
        Some(f.value())
    } else if value.is_instance_of::<PyInt>() {
        value.extract::<f64>().ok()
    } else {
        None
    };
    let Some(secs) = secs else {
        return Err(config_error(
            field,
            format!("must be a number of seconds, got {}", type_name(value)),
        ));
    };
    Duration::try_from_secs_f64(secs).map(Some).map_err(|_| {
        config_error(
            field,
            format!("must be a finite, non-negative number of seconds, got {secs}"),
        )
    })
}

fn boolean(field: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<bool>> {
    let Some(value) = given(value) else {
        return Ok(None);
    };
    match value.cast::<PyBool>() {
        Ok(b) => Ok(Some(b.is_true())),
        Err(_) => Err(config_error(field, format!("must be a bool, got {}", type_name(value)))),
    }
}

/// `schemas`: a mapping of event type → JSON Schema (each converted like `data`).
fn schema_list(value: &Bound<'_, PyAny>) -> PyResult<Vec<(String, serde_json::Value)>> {
    match convert::to_json(value) {
        Ok(serde_json::Value::Object(map)) => Ok(map.into_iter().collect()),
        Ok(_) => Err(config_error(
            "schemas",
            format!(
                "must be a mapping of event type to JSON Schema, got {}",
                type_name(value)
            ),
        )),
        Err(e) => Err(config_error("schemas", format!("{} at {}", e.message(), e.path("")))),
    }
}

/// `fallbacks`: `{"features": {key: spec}, "default": spec}` in the core's neutral spelling
/// (`True`/`False`, `{"value": …}`, `{"limit": n}`), parsed by the core's
/// `Fallbacks::from_json` so every binding accepts exactly the same documents.
fn fallback_set(value: &Bound<'_, PyAny>) -> PyResult<Fallbacks> {
    let json =
        convert::to_json(value).map_err(|e| config_error("fallbacks", format!("{} at {}", e.message(), e.path(""))))?;
    Fallbacks::from_json(&json).map_err(IntoPyErr::into_py_err)
}
