//! Consent persisted in the page (DR-103): `localStorage["meterline.consent.<key id>"]` holds
//! `opted_out` while the user has opted out (one entry per API key, so two projects on one
//! origin keep their own choice) and is removed on opt-in. A host without `localStorage`
//! (a worker, Node) keeps the choice in memory only. Storage that throws when read, or an
//! entry holding anything else, counts as opted out: the safe side of a consent question.

use js_sys::{Function, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use super::host::describe;
use crate::error::Error;

/// What the entry holds while opted out.
const OPTED_OUT: &str = "opted_out";

/// The `localStorage` entry for the key with public id `key_id`.
pub(crate) fn entry(key_id: &str) -> String {
    format!("meterline.consent.{key_id}")
}

/// The host's `localStorage`: `Ok(None)` when it has none, `Err` when reading it throws
/// (a sandboxed frame, storage disabled).
fn storage() -> Result<Option<JsValue>, JsValue> {
    let global = js_sys::global();
    if !Reflect::has(&global, &JsValue::from_str("localStorage"))? {
        return Ok(None);
    }
    let storage = Reflect::get(&global, &JsValue::from_str("localStorage"))?;
    Ok((!storage.is_null() && !storage.is_undefined()).then_some(storage))
}

/// Calls `storage[method](args…)`.
fn call(storage: &JsValue, method: &str, args: &[&str]) -> Result<JsValue, JsValue> {
    let f: Function = Reflect::get(storage, &JsValue::from_str(method))?.dyn_into()?;
    let args: js_sys::Array = args.iter().map(|a| JsValue::from_str(a)).collect();
    f.apply(storage, &args)
}

/// Whether the user opted out in an earlier page load.
pub(crate) fn load(entry: &str) -> bool {
    match storage().and_then(|s| s.map(|s| call(&s, "getItem", &[entry])).transpose()) {
        Ok(None) => false,
        Ok(Some(value)) => !value.is_null(),
        Err(_) => true,
    }
}

/// Records the choice. Errors: `spool_error` naming the entry (the choice applies in memory
/// all the same).
pub(crate) fn store(entry: &str, opted_out: bool) -> Result<(), Error> {
    let written = storage().and_then(|s| match s {
        None => Ok(JsValue::UNDEFINED),
        Some(s) if opted_out => call(&s, "setItem", &[entry, OPTED_OUT]),
        Some(s) => call(&s, "removeItem", &[entry]),
    });
    written.map(|_| ()).map_err(|e| {
        Error::Spool(format!(
            "cannot record consent in localStorage[{entry:?}]: {}",
            describe(&e)
        ))
    })
}
