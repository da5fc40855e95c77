//! The JavaScript options object (`new Client({ apiKey, endpoint, ... })`) → the core's
//! [`Config`].
//!
//! The options are the core's table (`meterline_core::options`), in camelCase with durations
//! in milliseconds (`flushIntervalMs`). This module only turns each JavaScript value into a
//! [`HostValue`]; the core reads, checks and names them (a `ConfigError` report with the
//! option as written in JavaScript). `undefined` means "not given".

use meterline_core::{
    Config, Error as CoreError,
    options::{self, HostValue, Spelling},
};
use napi::{
    Env, JsValue, ValueType,
    bindgen_prelude::{Object, Unknown},
};
use serde_json::Value;

use crate::error::{ErrorReport, IntoNapiErr};

/// Converts and checks the options object (errors as thrown JS values).
pub fn config_from_js(env: &Env, options: &Object, has_token_provider: bool) -> napi::Result<Config> {
    let bad = |name: &str, message: String| CoreError::config(name.to_owned(), message).into_napi_err(env);
    let mut given = Vec::new();
    for name in Object::keys(options).map_err(|e| bad("options", e.reason))? {
        let value: Option<Unknown> = options.get(&name).map_err(|e| bad(&name, e.reason))?;
        let Some(value) = value else { continue };
        let ty = value.get_type().map_err(|e| bad(&name, e.reason))?;
        let host = match ty {
            ValueType::Undefined => continue,
            ValueType::Null => HostValue::Null,
            ValueType::Boolean => HostValue::Bool(value.coerce_to_bool().map_err(|e| bad(&name, e.reason))?),
            ValueType::Number => HostValue::js_number(
                value
                    .coerce_to_number()
                    .and_then(|n| n.get_double())
                    .map_err(|e| bad(&name, e.reason))?,
            ),
            ValueType::String => HostValue::Str(
                value
                    .coerce_to_string()
                    .and_then(|s| s.into_utf8())
                    .and_then(|s| s.into_owned())
                    .map_err(|e| bad(&name, e.reason))?,
            ),
            // Plain objects and arrays (`schemas`, `fallbacks`) as JSON. The JS layer has
            // already refused what JSON cannot carry in `fallbacks` (BigInt, cycles …), with
            // the path inside the option.
            ValueType::Object => {
                let json: Option<Value> = options
                    .get(&name)
                    .map_err(|e| bad(&name, format!("must be plain JSON: {}", e.reason)))?;
                HostValue::Json(json.unwrap_or(Value::Null))
            }
            other => HostValue::Other(js_type(other).to_owned()),
        };
        given.push((name, host));
    }
    options::config_from_host_with_provider(given, Spelling::CamelMs, &[], has_token_provider)
        .map_err(|e| ErrorReport::as_named(&e).into_napi_err(env))
}

/// JavaScript's name of a value type, for messages.
fn js_type(ty: ValueType) -> &'static str {
    match ty {
        ValueType::Symbol => "a symbol",
        ValueType::Function => "a function",
        ValueType::External => "an external",
        ValueType::BigInt => "a bigint",
        _ => "an unsupported value",
    }
}
