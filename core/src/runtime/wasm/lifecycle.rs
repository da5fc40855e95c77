//! The page's life: the browser events the client follows (only where the host fires them —
//! a page; not a worker's missing ones, not Node).
//!
//! - `offline` pauses sending (the outbox sends nothing and asks for no wake-up: no retry
//!   storm against a network that is not there); `online` sends what is queued at once and
//!   cuts a backoff short (see [`Outbox::set_offline`](crate::outbox::Outbox::set_offline)).
//!   A page that starts offline (`navigator.onLine` false) starts paused.
//! - `pagehide`, and `visibilitychange` to `hidden` (the last event a mobile browser
//!   reliably fires before it discards a tab): what is queued leaves at once by
//!   `fetch(…, {keepalive: true})`, which outlives the page, in pieces taken by
//!   [`Outbox::take_unload`](crate::outbox::Outbox::take_unload). Chromium lets a page have
//!   at most 64 KiB of keepalive bodies in flight, `sendBeacon`'s included (a second 60 KB
//!   `sendBeacon` returns false while the first is out), so the first pieces fill that quota
//!   and each finished one makes room for the next while the page is still hidden; a page
//!   that is gone leaves the rest in its persisted outbox for the next page load. With a publishable key the
//!   pieces go to the server's beacon route, `POST /v1/beacon`, with the credentials in the
//!   body (`{"key", "token", "events"}`, `text/plain`: no preflight, which a keepalive request
//!   cannot wait for); with another key to `POST /v1/events` as usual. If the page lives on
//!   (a tab switch) the answers settle the batches as any other; if it is gone they are never
//!   heard, and the persisted copies (`persist.rs`) are sent again by the next page load —
//!   the server keeps each id once.

use std::rc::{Rc, Weak};

use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use web_sys::EventTarget;

use super::{Inner, credentials::Whose, host, sender};
use crate::{key::KeyKind, outbox::Dispatch};

/// Most bytes a keepalive request (or a beacon) carries: browsers refuse more in flight.
pub(crate) const KEEPALIVE_MAX_BYTES: usize = 64 * 1024;

/// Follows the page's events for the client's life (listeners hold it weakly).
pub(crate) fn install(inner: &Rc<Inner>) {
    let global: JsValue = js_sys::global().into();
    let Some(window) = global.dyn_ref::<EventTarget>() else {
        return;
    };
    let online = Reflect::get(&global, &"navigator".into())
        .and_then(|n| Reflect::get(&n, &"onLine".into()))
        .ok()
        .and_then(|v| v.as_bool());
    if online == Some(false) {
        inner.outbox.borrow_mut().set_offline(true, host::monotonic_ms());
    }
    listen(window, "offline", inner, |inner| network(inner, true));
    listen(window, "online", inner, |inner| network(inner, false));
    listen(window, "pagehide", inner, unload);
    if let Ok(document) = Reflect::get(&global, &"document".into())
        && let Some(document) = document.dyn_ref::<EventTarget>()
    {
        let doc = document.clone();
        listen(document, "visibilitychange", inner, move |inner| {
            let state = Reflect::get(&doc, &"visibilityState".into())
                .ok()
                .and_then(|s| s.as_string());
            if state.as_deref() == Some("hidden") {
                unload(inner);
            }
        });
    }
}

fn listen(target: &EventTarget, event: &str, inner: &Rc<Inner>, on: impl Fn(&Rc<Inner>) + 'static) {
    let weak: Weak<Inner> = Rc::downgrade(inner);
    let listener = Closure::<dyn FnMut()>::new(move || {
        if let Some(inner) = weak.upgrade() {
            on(&inner);
        }
    });
    if target
        .add_event_listener_with_callback(event, listener.as_ref().unchecked_ref())
        .is_ok()
    {
        // Registered for the page's life; once the client is gone it does nothing.
        listener.forget();
    }
}

/// `offline` / `online`.
fn network(inner: &Rc<Inner>, offline: bool) {
    let changed = inner.outbox.borrow_mut().set_offline(offline, host::monotonic_ms());
    if changed {
        sender::drive(inner);
    }
}

/// The smallest piece worth sending: below this much room in the keepalive quota, the next
/// piece waits for a request to finish.
const MIN_PIECE_BYTES: usize = 4 * 1024;

/// The page is being hidden or left: what is queued goes now, in keepalive pieces, as far
/// as the browser's keepalive quota (64 KiB in flight per page, `sendBeacon` included) has
/// room; each finished piece makes room for the next while the page stays hidden
/// ([`continue_unload`]). A page that is gone leaves the rest in its persisted outbox, for
/// the next page load.
fn unload(inner: &Rc<Inner>) {
    let beacon = inner.key.kind == KeyKind::Publishable;
    // Room for the longest envelope: each piece goes with its own user's token (at least
    // as long as `null`, for none).
    let envelope = if beacon {
        let longest = "t".repeat(inner.identity.longest_token().max(4));
        let (head, tail) = beacon_envelope(inner, Some(&longest));
        head.len() + tail.len()
    } else {
        0
    };
    loop {
        let room = KEEPALIVE_MAX_BYTES.saturating_sub(inner.sender.borrow().keepalive_bytes);
        if room < envelope + MIN_PIECE_BYTES {
            break;
        }
        // The beacon's body is the batch in its envelope; a gzip body is smaller than its batch.
        let taken = inner
            .outbox
            .borrow_mut()
            .take_unload(room - envelope, host::monotonic_ms());
        let Some(Dispatch::Send { first_seq, events }) = taken else {
            break;
        };
        let body = beacon.then(|| {
            let token = inner.identity.token_now(Whose::Batch(first_seq));
            let (head, tail) = beacon_envelope(inner, token.as_deref());
            let mut body = head.into_bytes();
            body.extend_from_slice(&crate::codec::encode_batch(events.iter().map(|e| &e[..])));
            body.extend_from_slice(tail.as_bytes());
            body
        });
        sender::send_keepalive(inner, first_seq, &events, body);
    }
    sender::drive(inner);
}

/// A keepalive piece finished: while the page is still hidden, the next ones go.
pub(crate) fn continue_unload(inner: &Rc<Inner>) {
    let global: JsValue = js_sys::global().into();
    let state = Reflect::get(&global, &"document".into())
        .and_then(|d| Reflect::get(&d, &"visibilityState".into()))
        .ok()
        .and_then(|s| s.as_string());
    if state.as_deref() == Some("hidden") {
        unload(inner);
    }
}

/// The beacon body around the events array: `{"key":…,"token":…,"events":` and `}`, with
/// the customer token of the batch's user.
fn beacon_envelope(inner: &Inner, token: Option<&str>) -> (String, String) {
    let text = |s: &str| serde_json::Value::from(s).to_string();
    let token = token.map_or("null".to_owned(), text);
    (
        format!("{{\"key\":{},\"token\":{token},\"events\":", text(&inner.key.expose())),
        "}".to_owned(),
    )
}
