//! The JavaScript options object (`new Client({ apiKey, endpoint, ... })`) converted into the
//! core's [`Config`]. Only type conversion happens here; ranges and defaults are the core's
//! (`Config::new`, `Config::validate`).

use std::time::Duration;

use meterline_core::{Config, Fallbacks, codec::Encoding};
use napi::{
    JsValue, ValueType,
    bindgen_prelude::{Object, Unknown},
};
use serde_json::Value;

use crate::error::ErrorReport;

/// Every option: its JavaScript name and the core's name for it.
const OPTIONS: &[(&str, &str)] = &[
    ("apiKey", "api_key"),
    ("endpoint", "endpoint"),
    ("source", "source"),
    ("flushAt", "flush_at"),
    ("maxBatchBytes", "max_batch_bytes"),
    ("flushIntervalMs", "flush_interval"),
    ("maxQueueSize", "max_queue_size"),
    ("overflow", "overflow"),
    ("blockTimeoutMs", "block_timeout"),
    ("compression", "compression"),
    ("requestTimeoutMs", "request_timeout"),
    ("strictTypes", "strict_types"),
    ("fetchSchemas", "fetch_schemas"),
    ("schemas", "schemas"),
    ("maxInFlight", "max_in_flight"),
    ("cacheSize", "cache_size"),
    ("entitlementTimeoutMs", "entitlement_timeout"),
    ("maxStaleMs", "max_stale"),
    ("maxTtlMs", "max_ttl"),
    ("fallbacks", "fallbacks"),
    ("stream", "stream"),
    ("streamEndpoint", "stream_endpoint"),
    ("customerToken", "customer_token"),
    ("spoolDir", "spool_dir"),
    ("spoolFsync", "spool_fsync"),
];

/// The JavaScript name of a core option (`flush_interval` → `flushIntervalMs`), so a
/// configuration error names what the caller wrote.
pub fn js_option_name(core_field: &str) -> &str {
    OPTIONS
        .iter()
        .find(|(_, core)| *core == core_field)
        .map_or(core_field, |(js, _)| js)
}

/// Converts the options object. Errors name the option in its JavaScript spelling: an
/// unknown name, a value of the wrong JavaScript type, or a range the core refuses.
pub fn config_from_js(options: &Object) -> Result<Config, Box<ErrorReport>> {
    let keys = Object::keys(options).map_err(|e| bad("options", e.reason))?;
    if let Some(unknown) = keys.iter().find(|k| !OPTIONS.iter().any(|(js, _)| js == k)) {
        let known: Vec<&str> = OPTIONS.iter().map(|(js, _)| *js).collect();
        return Err(bad(
            unknown,
            format!("unknown option; the options are {}", known.join(", ")),
        ));
    }
    let reader = Reader(options);
    let api_key = reader
        .string("apiKey")?
        .ok_or_else(|| bad("apiKey", "is required (an ml_sk_… secret key)"))?;
    let endpoint = reader
        .string("endpoint")?
        .ok_or_else(|| bad("endpoint", "is required (the server's base URL)"))?;
    let mut config = Config::new(api_key, endpoint);
    if let Some(source) = reader.string("source")? {
        config.source = source;
    }
    if let Some(n) = reader.count("flushAt")? {
        config.flush_at = n;
    }
    if let Some(n) = reader.count("maxBatchBytes")? {
        config.max_batch_bytes = n;
    }
    if let Some(d) = reader.millis("flushIntervalMs")? {
        config.flush_interval = d;
    }
    if let Some(n) = reader.count("maxQueueSize")? {
        config.max_queue_size = n;
    }
    if let Some(policy) = reader.string("overflow")? {
        config.overflow = policy.parse().map_err(|e| report_core(&e))?;
    }
    if let Some(d) = reader.millis("blockTimeoutMs")? {
        config.block_timeout = d;
    }
    if let Some(encoding) = reader.string("compression")? {
        config.compression = encoding.parse::<Encoding>().map_err(|e| bad("compression", e))?;
    }
    if let Some(d) = reader.millis("requestTimeoutMs")? {
        config.request_timeout = d;
    }
    if let Some(b) = reader.boolean("strictTypes")? {
        config.strict_types = b;
    }
    if let Some(b) = reader.boolean("fetchSchemas")? {
        config.fetch_schemas = b;
    }
    if let Some(schemas) = reader.schemas()? {
        config.schemas = schemas;
    }
    if let Some(n) = reader.count("maxInFlight")? {
        config.max_in_flight = n;
    }
    if let Some(n) = reader.count("cacheSize")? {
        config.cache_size = n;
    }
    if let Some(d) = reader.millis("entitlementTimeoutMs")? {
        config.entitlement_timeout = d;
    }
    if let Some(d) = reader.millis("maxStaleMs")? {
        config.max_stale = d;
    }
    if let Some(d) = reader.millis("maxTtlMs")? {
        config.max_ttl = Some(d);
    }
    if let Some(fallbacks) = reader.fallbacks()? {
        config.fallbacks = fallbacks;
    }
    if let Some(b) = reader.boolean("stream")? {
        config.stream = b;
    }
    if let Some(url) = reader.string("streamEndpoint")? {
        config.stream_endpoint = Some(url);
    }
    if let Some(dir) = reader.string("spoolDir")? {
        config.spool_dir = Some(dir.into());
    }
    if let Some(policy) = reader.string("spoolFsync")? {
        config.spool_fsync = policy.parse().map_err(|e| report_core(&e))?;
    }
    if let Some(token) = reader.string("customerToken")? {
        config.customer_token = Some(token);
    }
    // Range checks are the core's; run them here so the error names the JS option.
    config.validate().map_err(|e| report_core(&e))?;
    Ok(config)
}

fn report_core(err: &meterline_core::Error) -> Box<ErrorReport> {
    Box::new(ErrorReport::from(err))
}

/// A configuration error naming the JS option (boxed: an `ErrorReport` is large).
fn bad(option: &str, message: impl std::fmt::Display) -> Box<ErrorReport> {
    Box::new(ErrorReport::config(option, message))
}

/// Typed reads of one options object; `undefined` means "not given".
struct Reader<'a, 'env>(&'a Object<'env>);

impl<'env> Reader<'_, 'env> {
    fn value(&self, name: &str) -> Result<Option<(Unknown<'env>, ValueType)>, Box<ErrorReport>> {
        let value: Option<Unknown<'env>> = self.0.get(name).map_err(|e| bad(name, e.reason))?;
        match value {
            None => Ok(None),
            Some(v) => {
                let ty = v.get_type().map_err(|e| bad(name, e.reason))?;
                Ok(Some((v, ty)))
            }
        }
    }

    fn string(&self, name: &str) -> Result<Option<String>, Box<ErrorReport>> {
        match self.value(name)? {
            None => Ok(None),
            Some((v, ValueType::String)) => v
                .coerce_to_string()
                .and_then(|s| s.into_utf8())
                .and_then(|s| s.into_owned())
                .map(Some)
                .map_err(|e| bad(name, e.reason)),
            Some((_, ty)) => Err(bad(name, format!("must be a string, got {}", js_type(ty)))),
        }
    }

    fn boolean(&self, name: &str) -> Result<Option<bool>, Box<ErrorReport>> {
        match self.value(name)? {
            None => Ok(None),
            Some((v, ValueType::Boolean)) => v.coerce_to_bool().map(Some).map_err(|e| bad(name, e.reason)),
            Some((_, ty)) => Err(bad(name, format!("must be a boolean, got {}", js_type(ty)))),
        }
    }

    /// A whole, non-negative number.
    fn integer(&self, name: &str) -> Result<Option<u64>, Box<ErrorReport>> {
        let number = match self.value(name)? {
            None => return Ok(None),
            Some((v, ValueType::Number)) => v
                .coerce_to_number()
                .and_then(|n| n.get_double())
                .map_err(|e| bad(name, e.reason))?,
            Some((_, ty)) => return Err(bad(name, format!("must be a number, got {}", js_type(ty)))),
        };
        // 2^53: the largest integer a JS number holds exactly.
        const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
        if !number.is_finite() || number < 0.0 || number.fract() != 0.0 || number > MAX_SAFE {
            return Err(bad(name, format!("must be a whole number ≥ 0, got {number}")));
        }
        Ok(Some(number as u64))
    }

    fn count(&self, name: &str) -> Result<Option<usize>, Box<ErrorReport>> {
        self.integer(name)?
            .map(|n| usize::try_from(n).map_err(|_| bad(name, "is too large")))
            .transpose()
    }

    fn millis(&self, name: &str) -> Result<Option<Duration>, Box<ErrorReport>> {
        Ok(self.integer(name)?.map(Duration::from_millis))
    }

    /// `schemas`: `{ [eventType]: JSONSchema }`.
    fn schemas(&self) -> Result<Option<Vec<(String, Value)>>, Box<ErrorReport>> {
        const NAME: &str = "schemas";
        let shape = "an object mapping event types to JSON Schemas";
        match self.json_object(NAME, shape)? {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map.into_iter().collect())),
            Some(_) => Err(bad(NAME, format!("must be {shape}"))),
        }
    }

    /// An option that must be a plain object, read as JSON; `shape` describes it in errors.
    fn json_object(&self, name: &str, shape: &str) -> Result<Option<Value>, Box<ErrorReport>> {
        match self.value(name)? {
            None => return Ok(None),
            Some((v, ValueType::Object)) if !v.is_array().unwrap_or(false) => {}
            Some((v, ty)) => {
                let got = if v.is_array().unwrap_or(false) {
                    "an array"
                } else {
                    js_type(ty)
                };
                return Err(bad(name, format!("must be {shape}, got {got}")));
            }
        }
        let value: Value = self
            .0
            .get(name)
            .map_err(|e| bad(name, format!("must be JSON ({shape}): {}", e.reason)))?
            .unwrap_or(Value::Null);
        Ok(Some(value))
    }
}

impl Reader<'_, '_> {
    /// `fallbacks`: `{ features: { [feature]: spec }, default: spec }` in the core's neutral
    /// spelling (`true`/`false`, `{ value: json }`, `{ limit: n }`), parsed by
    /// [`Fallbacks::from_json`]. The JS layer has already refused what JSON cannot carry
    /// (BigInt, functions, NaN …) with the path inside the option.
    fn fallbacks(&self) -> Result<Option<Fallbacks>, Box<ErrorReport>> {
        let shape = "an object like { features: { sso: true }, default: false }";
        match self.json_object("fallbacks", shape)? {
            None => Ok(None),
            Some(value) => Fallbacks::from_json(&value).map(Some).map_err(|e| report_core(&e)),
        }
    }
}

/// JavaScript's name of a value type, for messages.
fn js_type(ty: ValueType) -> &'static str {
    match ty {
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "a boolean",
        ValueType::Number => "a number",
        ValueType::String => "a string",
        ValueType::Symbol => "a symbol",
        ValueType::Object => "an object",
        ValueType::Function => "a function",
        ValueType::External => "an external",
        ValueType::BigInt => "a bigint",
        _ => "an unsupported value",
    }
}
