//! The JavaScript options object (`new Client({ apiKey, endpoint, ... })`) → the core's
//! [`Config`]: each value becomes a [`HostValue`]; the core's option table reads, checks and
//! names them (camelCase, durations in milliseconds: `flushIntervalMs`), as for Node.
//! `undefined` means "not given".

use js_sys::{JSON, Object, Reflect};
use meterline_core::{
    Config, Error as CoreError,
    options::{self, HostValue, Spelling},
};
use wasm_bindgen::{JsCast, JsValue};

use crate::error::report_as_named;

/// Reads the options object; errors are report objects (`ConfigError`). With
/// `has_token_provider` a publishable key needs no `customerToken`.
pub fn config_from_js(options: &JsValue, has_token_provider: bool) -> Result<Config, JsValue> {
    let bad = |name: &str, message: String| report_as_named(&CoreError::config(name.to_owned(), message));
    let Some(object) = options
        .dyn_ref::<Object>()
        .filter(|_| !options.is_function() && !js_sys::Array::is_array(options))
    else {
        return Err(bad(
            "options",
            "`options` must be an object like { apiKey, endpoint, customerToken }".to_owned(),
        ));
    };
    let mut given = Vec::new();
    for name in Object::keys(object).iter() {
        let name = name.as_string().unwrap_or_default();
        let value = Reflect::get(object, &JsValue::from_str(&name)).map_err(|_| bad(&name, "cannot be read".into()))?;
        let host = if value.is_undefined() {
            continue;
        } else if value.is_null() {
            HostValue::Null
        } else if let Some(b) = value.as_bool() {
            HostValue::Bool(b)
        } else if let Some(n) = value.as_f64() {
            HostValue::js_number(n)
        } else if let Some(s) = value.as_string() {
            HostValue::Str(s)
        } else if value.is_function() {
            HostValue::Other("a function".into())
        } else if value.is_object() {
            // Plain objects and arrays (`schemas`, `fallbacks`) as JSON; the JS layer has
            // refused what JSON cannot carry, with the path inside the option.
            let text = JSON::stringify(&value)
                .ok()
                .and_then(|t| t.as_string())
                .ok_or_else(|| bad(&name, "must be plain JSON".into()))?;
            HostValue::Json(
                serde_json::from_slice(text.as_bytes()).map_err(|e| bad(&name, format!("must be plain JSON: {e}")))?,
            )
        } else if value.is_bigint() {
            HostValue::Other("a bigint".into())
        } else {
            HostValue::Other("a symbol".into())
        };
        given.push((name, host));
    }
    options::config_from_host_with_provider(given, Spelling::CamelMs, &["onError"], has_token_provider)
        .map_err(|e| report_as_named(&e))
}
