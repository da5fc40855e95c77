//! `NativeClient`: the core's browser client, each method three moves — convert the
//! arguments, call core, map the error (to a report object; `js/client.js` throws the class).

use std::{cell::RefCell, rc::Rc};

use js_sys::{Function, Promise};
use meterline_core::{
    Error as CoreError, arguments,
    runtime::wasm::{
        Client, ConnectionCallback, ErrorCallback, StreamCallbacks, TokenAnswer, TokenProvider, UsageThresholdCallback,
    },
    sdk::Sdk,
};
use wasm_bindgen::{JsCast, JsValue, prelude::wasm_bindgen};
use wasm_bindgen_futures::{JsFuture, future_to_promise};

use crate::{config::config_from_js, error};

/// The core client (internal: `js/client.js` wraps it as `Client`).
#[wasm_bindgen]
pub struct NativeClient {
    client: Client,
}

#[wasm_bindgen]
impl NativeClient {
    /// Reads the options and starts the client. `on_error` receives background errors as
    /// report objects.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue, on_error: Option<Function>) -> Result<NativeClient, JsValue> {
        Self::start(options, on_error, None)
    }

    /// [`NativeClient::new`] with a token provider: a function returning a customer token or
    /// a Promise of one (the JS layer has checked it is a function).
    #[wasm_bindgen(js_name = withTokenProvider)]
    pub fn with_token_provider(
        options: JsValue,
        on_error: Option<Function>,
        provider: Function,
    ) -> Result<NativeClient, JsValue> {
        Self::start(options, on_error, Some(token_provider(provider)))
    }

    /// `track()` with `data` as JSON text (the JS layer's `JSON.stringify`). Answers where
    /// the event's id is (see [`id_buffer`]): its length in bytes when it is in the id
    /// buffer, [`ID_ELSEWHERE`] when `takeId()` returns it, 0 when the overflow policy
    /// dropped the event.
    pub fn track(
        &self,
        event_type: &str,
        subject: &str,
        data: &str,
        id: Option<String>,
        time: Option<String>,
    ) -> Result<u32, JsValue> {
        let id = self
            .client
            .track(event_type, subject, data, id, time)
            .map_err(|e| error::report(&e))?;
        Ok(id.map_or(0, hand_over_id))
    }

    /// Resolves once everything tracked so far is settled; rejects with a `timeout` report.
    pub fn flush(&self, timeout_ms: Option<f64>) -> Result<Promise, JsValue> {
        let timeout = arguments::wait_from_millis(timeout_ms).map_err(|e| error::validation(&e))?;
        let client = self.client.clone();
        Ok(future_to_promise(async move {
            client.flush(timeout).await.map_err(|e| error::report(&e))?;
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// Stops accepting events and delivers what is queued within `timeout_ms`.
    pub fn shutdown(&self, timeout_ms: Option<f64>) -> Result<Promise, JsValue> {
        let timeout = arguments::wait_from_millis(timeout_ms).map_err(|e| error::validation(&e))?;
        let client = self.client.clone();
        Ok(future_to_promise(async move {
            client.shutdown(timeout).await.map_err(|e| error::report(&e))?;
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// The counters, as JSON text.
    pub fn stats(&self) -> String {
        camel_json(&self.client.stats())
    }

    /// The entitlement answer as JSON text, in a Promise.
    pub fn entitlement(&self, subject: String, feature: String) -> Promise {
        let client = self.client.clone();
        future_to_promise(async move {
            let answer = client
                .entitlement(&subject, &feature)
                .await
                .map_err(|e| error::report(&e))?;
            Ok(JsValue::from_str(&camel_json(&answer)))
        })
    }

    /// The cached answer (or the fallback while one fetch fills the cache), as JSON text.
    #[wasm_bindgen(js_name = cachedEntitlement)]
    pub fn cached_entitlement(&self, subject: &str, feature: &str) -> Result<String, JsValue> {
        let answer = self
            .client
            .cached_entitlement(subject, feature)
            .map_err(|e| error::report(&e))?;
        Ok(camel_json(&answer))
    }

    /// Consent withdrawn: `track()` keeps nothing (returns `undefined`, counted in
    /// `stats().optedOut`), what is queued is discarded; recorded in `localStorage`.
    #[wasm_bindgen(js_name = optOut)]
    pub fn opt_out(&self) -> Result<(), JsValue> {
        self.client.opt_out().map_err(|e| error::report(&e))
    }

    /// Consent given again: `track()` queues and sends events from now on.
    #[wasm_bindgen(js_name = optIn)]
    pub fn opt_in(&self) -> Result<(), JsValue> {
        self.client.opt_in().map_err(|e| error::report(&e))
    }

    /// Whether the user opted out (in this page, or as recorded in `localStorage`).
    #[wasm_bindgen(js_name = optedOut)]
    pub fn opted_out(&self) -> bool {
        self.client.is_opted_out()
    }

    /// Whether the client keeps no timer and has no request out.
    pub fn idle(&self) -> bool {
        self.client.idle()
    }

    /// Acts for `subject` from now on with its customer `token` (publishable keys).
    pub fn identify(&self, subject: &str, token: &str) -> Result<(), JsValue> {
        self.client.identify(subject, token).map_err(|e| error::report(&e))
    }

    /// Drops the identity (sign-out): `track()` fails with `forbidden` until `identify()`.
    pub fn reset(&self) -> Result<(), JsValue> {
        self.client.reset().map_err(|e| error::report(&e))
    }

    /// The stream callbacks: `on_usage_threshold(eventJson)` and
    /// `on_connection_change(connected, reason)`. An exception in them is the application's.
    #[wasm_bindgen(js_name = setStreamCallbacks)]
    pub fn set_stream_callbacks(&self, on_usage_threshold: Option<Function>, on_connection_change: Option<Function>) {
        let on_usage_threshold = on_usage_threshold.map(|f| -> UsageThresholdCallback {
            Rc::new(move |event| {
                let _ = f.call1(&JsValue::NULL, &JsValue::from_str(&camel_json(event)));
            })
        });
        let on_connection_change = on_connection_change.map(|f| -> ConnectionCallback {
            Rc::new(move |connected, reason| {
                let _ = f.call2(
                    &JsValue::NULL,
                    &JsValue::from_bool(connected),
                    &JsValue::from_str(reason),
                );
            })
        });
        self.client.set_stream_callbacks(StreamCallbacks {
            on_usage_threshold,
            on_connection_change,
        });
    }

    /// The stream session's state and reconnect attempts, as JSON (`{state, attempt}`).
    #[wasm_bindgen(js_name = streamState)]
    pub fn stream_state(&self) -> String {
        let (state, attempt) = self.client.stream_state();
        serde_json::json!({ "state": state, "attempt": attempt }).to_string()
    }

    /// Caches an entitlement answer obtained elsewhere; `payload` is the JSON text of a
    /// `GET /v1/customers/{subject}/entitlements` answer (the JS layer's `JSON.stringify`).
    #[wasm_bindgen(js_name = primeEntitlements)]
    pub fn prime_entitlements(&self, payload: &str) -> Result<(), JsValue> {
        let answer: meterline_core::entitlement::Entitlements = serde_json::from_str(payload).map_err(|e| {
            error::validation(&meterline_core::ValidationError::invalid_argument(
                "/payload",
                format!("not an entitlements answer ({{ subject, version, ttl_ms, entitlements }}): {e}"),
            ))
        })?;
        self.client.prime_entitlements(answer).map_err(|e| error::report(&e))
    }
}

/// The page's token provider as the core's: called without arguments; a string, or a
/// Promise (any thenable) of one. A throw, a rejection or anything but a string is an `Err`
/// naming what came back (the core counts and reports it).
fn token_provider(f: Function) -> TokenProvider {
    Rc::new(move || -> TokenAnswer {
        let called = f.call0(&JsValue::NULL);
        Box::pin(async move {
            let value = called.map_err(|e| format!("it threw {}", describe(&e)))?;
            let value = JsFuture::from(Promise::resolve(&value))
                .await
                .map_err(|e| format!("its promise rejected with {}", describe(&e)))?;
            value
                .as_string()
                .ok_or_else(|| format!("it returned {}, not a string", describe(&value)))
        })
    })
}

/// A JavaScript value in words, for error messages (never a token: only what is not one).
fn describe(value: &JsValue) -> String {
    if let Some(err) = value.dyn_ref::<js_sys::Error>() {
        return format!("{}: {}", String::from(err.name()), String::from(err.message()));
    }
    if value.is_null() {
        return "null".to_owned();
    }
    if let Some(s) = value.as_string() {
        return format!("the string {s:?}");
    }
    value
        .js_typeof()
        .as_string()
        .map_or_else(|| "a value".to_owned(), |t| format!("a {t}"))
}

impl NativeClient {
    fn start(
        options: JsValue,
        on_error: Option<Function>,
        provider: Option<TokenProvider>,
    ) -> Result<NativeClient, JsValue> {
        let mut config = config_from_js(&options, provider.is_some())?;
        config.sdk = Sdk {
            name: "meterline-web".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            runtime: user_agent(),
        };
        let on_error: Option<ErrorCallback> = on_error.map(|f| -> ErrorCallback {
            Rc::new(move |err: &CoreError| {
                // An exception in the application's handler is the application's.
                let _ = f.call1(&JsValue::NULL, &error::report(err));
            })
        });
        let client = Client::with_token_provider(config, on_error, provider).map_err(|e| error::report(&e))?;
        Ok(NativeClient { client })
    }
}

/// Bytes of the id buffer: a generated id (36) and most callers' ids fit.
const ID_BUFFER_BYTES: usize = 64;
/// `track()`'s answer for an id that is not in the id buffer (too long, or not ASCII).
const ID_ELSEWHERE: u32 = u32::MAX;

thread_local! {
    /// The id of the event `track()` just queued, as ASCII bytes: the JS layer reads it
    /// straight from the memory. A returned `String` would cross through the host's
    /// `TextDecoder`, a quarter of a `track()` call in Chromium.
    static ID_BUFFER: RefCell<[u8; ID_BUFFER_BYTES]> = const { RefCell::new([0; ID_BUFFER_BYTES]) };
    /// An id that does not fit the buffer, until `takeId()`.
    static ID_ELSEWHERE_TEXT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Puts a queued event's id where the JS layer reads it; `track()`'s answer for it.
fn hand_over_id(id: String) -> u32 {
    if id.is_ascii() && id.len() <= ID_BUFFER_BYTES {
        ID_BUFFER.with_borrow_mut(|buffer| buffer[..id.len()].copy_from_slice(id.as_bytes()));
        id.len() as u32
    } else {
        ID_ELSEWHERE_TEXT.set(id);
        ID_ELSEWHERE
    }
}

/// Where in the WebAssembly memory the id buffer is (its address never changes).
#[wasm_bindgen(js_name = idBuffer)]
pub fn id_buffer() -> u32 {
    ID_BUFFER.with(|buffer| buffer.as_ptr() as u32)
}

/// The id `track()` answered [`ID_ELSEWHERE`] for.
#[wasm_bindgen(js_name = takeId)]
pub fn take_id() -> String {
    ID_ELSEWHERE_TEXT.take()
}

/// The WebAssembly memory (the JS layer reads the id buffer from it).
#[wasm_bindgen(js_name = wasmMemory)]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}

/// Limits the JS layer checks against, as JSON (`maxDataDepth`).
#[wasm_bindgen]
pub fn limits() -> String {
    serde_json::json!({ "maxDataDepth": arguments::MAX_DATA_DEPTH }).to_string()
}

/// The core's option table, as JSON (for documentation and tests).
#[wasm_bindgen(js_name = optionTable)]
pub fn option_table() -> String {
    meterline_core::options::table_json().to_string()
}

/// A core value as JSON text with its top-level keys in JavaScript's camelCase
/// (`has_access` → `hasAccess`), as the Node package answers.
fn camel_json(value: &impl serde::Serialize) -> String {
    let value = match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => serde_json::Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let mut camel = String::with_capacity(key.len());
                    let mut upper = false;
                    for c in key.chars() {
                        match (c, upper) {
                            ('_', _) => upper = true,
                            // The keys are the core's ASCII field names (no Unicode case tables).
                            (c, true) => {
                                camel.push(c.to_ascii_uppercase());
                                upper = false;
                            }
                            (c, false) => camel.push(c),
                        }
                    }
                    (camel, value)
                })
                .collect(),
        ),
        Ok(other) => other,
        Err(_) => serde_json::Value::Null,
    };
    value.to_string()
}

/// The host's `navigator.userAgent` (empty without one: the core then names it `browser`).
fn user_agent() -> String {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("navigator"))
        .ok()
        .filter(|n| n.is_object())
        .and_then(|n| js_sys::Reflect::get(&n, &JsValue::from_str("userAgent")).ok())
        .and_then(|ua| ua.as_string())
        .unwrap_or_default()
}
