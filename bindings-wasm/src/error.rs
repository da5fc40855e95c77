//! Every core error as the JavaScript class the core names for it
//! ([`meterline_core::Error::class`]): it crosses as a plain object (`kind`, `code`,
//! `message` and the variant's details) that `js/errors.js` turns into that
//! `MeterlineError` subclass — the same classes and codes as the Node package.

use js_sys::{Object, Reflect};
use meterline_core::{Error as CoreError, ErrorClass, ValidationError, error::ErrorReport, options::Spelling};
use wasm_bindgen::{JsValue, prelude::wasm_bindgen};

/// A core error as the report object `js/errors.js` builds the class from. Configuration
/// errors raised after the options were read name the option in camelCase.
pub fn report(err: &CoreError) -> JsValue {
    to_js(ErrorReport::new(err, Spelling::CamelMs))
}

/// The report of `err` with its option named as it already is (`config_from_host`'s
/// errors name an option as the caller wrote it).
pub fn report_as_named(err: &CoreError) -> JsValue {
    to_js(ErrorReport::as_named(err))
}

/// A validation error with its JSON pointer; `invalid_argument` names the parameter.
pub fn validation(err: &ValidationError) -> JsValue {
    to_js(ErrorReport::validation(err))
}

/// The core's report as a plain object: `kind` (the class name), `code`, `message` and the
/// details it has (`path`, `argument`, `option`, `status`, `eventId`).
fn to_js(report: ErrorReport) -> JsValue {
    let obj = Object::new();
    set(&obj, "kind", JsValue::from_str(report.class.name()));
    set(&obj, "code", JsValue::from_str(&report.code));
    set(&obj, "message", JsValue::from_str(&report.message));
    let texts = [
        ("path", report.path),
        ("argument", report.argument),
        ("option", report.option),
        ("eventId", report.event_id),
    ];
    for (key, text) in texts {
        if let Some(text) = text {
            set(&obj, key, JsValue::from_str(&text));
        }
    }
    if let Some(status) = report.status {
        set(&obj, "status", JsValue::from(status));
    }
    obj.into()
}

fn set(obj: &Object, key: &str, value: JsValue) {
    // Setting a property of a fresh plain object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value);
}

/// The core's error classes, base first, as JSON `[{name, parent, defaultCode}]` (internal:
/// `js/errors.js` checks its classes against it).
#[wasm_bindgen(js_name = errorClasses)]
pub fn error_classes() -> String {
    ErrorClass::table_json()
}
