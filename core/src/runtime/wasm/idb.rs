//! The host APIs the persisted outbox stands on, as small awaitable calls: IndexedDB
//! (requests and transactions as futures) and the Web Locks API (`navigator.locks`, which
//! `web-sys` binds only as unstable). Only the I/O: what is stored and when is
//! [`super::persist`]'s, from the core's outbox.

use std::{cell::RefCell, rc::Rc};

use futures_channel::oneshot;
use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use web_sys::{EventTarget, IdbDatabase, IdbFactory, IdbOpenDbRequest, IdbRequest};

use super::host::describe;

/// The one object store: key `[session, seq]`, value the event's wire JSON as a string.
pub(crate) const STORE: &str = "events";

/// A global's property, when it is an object.
fn global_object(path: &[&str]) -> Option<JsValue> {
    let mut value: JsValue = js_sys::global().into();
    for name in path {
        value = Reflect::get(&value, &JsValue::from_str(name)).ok()?;
        if !value.is_object() {
            return None;
        }
    }
    Some(value)
}

/// The host's `indexedDB` and `navigator.locks`, when it has both (a page or a worker;
/// not Node).
pub(crate) fn available() -> Option<(IdbFactory, JsValue)> {
    let factory = global_object(&["indexedDB"])?.dyn_into::<IdbFactory>().ok()?;
    let locks = global_object(&["navigator", "locks"])?;
    Some((factory, locks))
}

/// Resolves when `target` fires `ok`; fails with the name of the failing event otherwise.
pub(crate) async fn next_event(target: &EventTarget, ok: &str, failures: &[&str]) -> Result<(), String> {
    let (tx, rx) = oneshot::channel::<Result<(), String>>();
    let tx = Rc::new(RefCell::new(Some(tx)));
    let mut listeners = Vec::new();
    for (name, outcome) in std::iter::once((ok, true)).chain(failures.iter().map(|f| (*f, false))) {
        let tx = tx.clone();
        let event = name.to_owned();
        let listener = Closure::<dyn FnMut()>::new(move || {
            if let Some(tx) = tx.borrow_mut().take() {
                let _ = tx.send(if outcome { Ok(()) } else { Err(event.clone()) });
            }
        });
        target
            .add_event_listener_with_callback(name, listener.as_ref().unchecked_ref())
            .map_err(|e| describe(&e))?;
        listeners.push((name, listener));
    }
    let result = rx.await.unwrap_or_else(|_| Err("dropped".to_owned()));
    for (name, listener) in &listeners {
        let _ = target.remove_event_listener_with_callback(name, listener.as_ref().unchecked_ref());
    }
    result
}

/// A request's result once it succeeded.
pub(crate) async fn done(request: &IdbRequest) -> Result<JsValue, String> {
    match next_event(request, "success", &["error"]).await {
        Ok(()) => request.result().map_err(|e| describe(&e)),
        Err(_) => Err(request_error(request)),
    }
}

fn request_error(request: &IdbRequest) -> String {
    match request.error() {
        Ok(Some(e)) => format!("{}: {}", e.name(), e.message()),
        _ => "the request failed".to_owned(),
    }
}

/// Opens (or creates) database `name` with its one object store.
pub(crate) async fn open(factory: &IdbFactory, name: &str) -> Result<IdbDatabase, String> {
    let request: IdbOpenDbRequest = factory.open_with_u32(name, 1).map_err(|e| describe(&e))?;
    let upgrade_target = request.clone();
    let upgrade = Closure::<dyn FnMut()>::new(move || {
        if let Ok(db) = upgrade_target.result().and_then(|r| r.dyn_into::<IdbDatabase>()) {
            let _ = db.create_object_store(STORE);
        }
    });
    request
        .add_event_listener_with_callback("upgradeneeded", upgrade.as_ref().unchecked_ref())
        .map_err(|e| describe(&e))?;
    let opened = done(&request).await;
    let _ = request.remove_event_listener_with_callback("upgradeneeded", upgrade.as_ref().unchecked_ref());
    opened?
        .dyn_into::<IdbDatabase>()
        .map_err(|_| "not a database".to_owned())
}

/// The key of event `seq` of session `session`.
pub(crate) fn key(session: &str, seq: f64) -> JsValue {
    Array::of2(&JsValue::from_str(session), &JsValue::from_f64(seq)).into()
}

/// `navigator.locks.request(name, options, callback)`; the callback gets the lock (or
/// `null` with `ifAvailable`) and holds it until the promise it returns settles.
pub(crate) fn request_lock(
    locks: &JsValue,
    name: &str,
    if_available: bool,
    callback: &Function,
) -> Result<Promise, String> {
    let request: Function = Reflect::get(locks, &JsValue::from_str("request"))
        .and_then(|f| f.dyn_into().map_err(JsValue::from))
        .map_err(|e| describe(&e))?;
    let options = Object::new();
    if if_available {
        Reflect::set(&options, &JsValue::from_str("ifAvailable"), &JsValue::TRUE).map_err(|e| describe(&e))?;
    }
    request
        .call3(locks, &JsValue::from_str(name), &options, callback)
        .map_err(|e| describe(&e))?
        .dyn_into::<Promise>()
        .map_err(|_| "navigator.locks.request returned no Promise".to_owned())
}
