//! Every core error as the JavaScript class the core names for it
//! ([`meterline_core::Error::class`]): it crosses as a plain object (`kind`, `code`,
//! `message` and the variant's details) that `js/errors.js` turns into that
//! `MeterlineError` subclass — the same classes and codes as the Node package.

use js_sys::{Object, Reflect};
use meterline_core::{
    Error as CoreError, ErrorClass, ValidationError,
    options::{self, Spelling},
};
use wasm_bindgen::{JsValue, prelude::wasm_bindgen};

/// A core error as the report object `js/errors.js` builds the class from. Configuration
/// errors raised after the options were read name the option in camelCase.
pub fn report(err: &CoreError) -> JsValue {
    match err {
        CoreError::Config { .. } => report_as_named(&options::respell(err.clone(), Spelling::CamelMs)),
        _ => report_as_named(err),
    }
}

/// The report of `err` with its option named as it already is (`config_from_host`'s
/// errors name an option as the caller wrote it).
pub fn report_as_named(err: &CoreError) -> JsValue {
    if let CoreError::Validation(v) = err {
        return validation(v);
    }
    let obj = base(err.class().name(), err.code(), &err.to_string());
    if let Some(status) = err.status() {
        set(&obj, "status", JsValue::from(status));
    }
    match err {
        CoreError::Config { field, .. } => set(&obj, "option", JsValue::from_str(field)),
        CoreError::Rejected(r) => {
            set(&obj, "path", JsValue::from_str(&r.path));
            if let Some(id) = &r.id {
                set(&obj, "eventId", JsValue::from_str(id));
            }
        }
        _ => {}
    }
    obj.into()
}

/// A validation error with its JSON pointer; `invalid_argument` names the parameter.
pub fn validation(err: &ValidationError) -> JsValue {
    let message = if err.path.is_empty() {
        format!("{}: {}", err.code, err.message)
    } else {
        err.to_string()
    };
    let class = CoreError::Validation(err.clone()).class();
    let obj = base(class.name(), err.code, &message);
    set(&obj, "path", JsValue::from_str(&err.path));
    if class == ErrorClass::Argument {
        let argument = err.path.trim_start_matches('/').split('/').next().unwrap_or_default();
        set(&obj, "argument", JsValue::from_str(argument));
    }
    obj.into()
}

fn base(kind: &str, code: &str, message: &str) -> Object {
    let obj = Object::new();
    set(&obj, "kind", JsValue::from_str(kind));
    set(&obj, "code", JsValue::from_str(code));
    set(&obj, "message", JsValue::from_str(message));
    obj
}

fn set(obj: &Object, key: &str, value: JsValue) {
    // Setting a property of a fresh plain object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value);
}

/// The core's error classes, base first, as JSON `[{name, parent, defaultCode}]` (internal:
/// `js/errors.js` builds the classes from it).
#[wasm_bindgen(js_name = errorClasses)]
pub fn error_classes() -> String {
    let rows: Vec<serde_json::Value> = ErrorClass::ALL
        .iter()
        .map(|class| {
            serde_json::json!({
                "name": class.name(),
                "parent": class.parent().map(|p| p.name()),
                "defaultCode": class.default_code(),
            })
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}
