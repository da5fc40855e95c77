//! The realtime stream in the browser: the core's [`StreamSession`] driven with the page's
//! `WebSocket` and one `setTimeout`. The session decides everything — what to subscribe,
//! `since`, reconnect delays, what a close code means, when a silent connection is dead,
//! refetches after `resync` — and this module only carries it out:
//!
//! - **credentials**: a browser cannot set headers on an upgrade, so the first frame of every
//!   connection is `{"op":"auth","key":…,"token":…}` (DESIGN §5), sent as the socket opens
//!   and before the session's subscribe frames;
//! - **closes**: the browser reports a failed or broken connection as close code 1006 (it
//!   hides the HTTP status of a refused upgrade): that is a network loss; other codes are
//!   the server's (4401 → fresh credentials, 4403 → stop, 1000/1001 → reconnect quietly);
//! - **callbacks**: `on_connection_change` and `on_usage_threshold` run as tasks of their
//!   own, never inside a socket event; failures go to the error callback, at most once a
//!   minute per kind.
//!
//! A socket's handlers hold the client weakly and carry the socket's number, so the events
//! of a socket the session abandoned are ignored.

use std::{
    cell::{Cell, RefCell},
    rc::{Rc, Weak},
};

use gloo_timers::callback::Timeout;
use wasm_bindgen::{JsCast, closure::Closure};
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

use super::{Inner, host};
use crate::{
    entitlement_cache::UsageThresholdEvent,
    error::Error,
    stream::{ClientOp, Disconnect},
    stream_session::{Action, Frame, SessionSettings, SessionState, StreamSession},
    throttle::ErrorThrottle,
};

/// Receives `usage.threshold` messages (a message may come again after a reconnect: dedupe
/// by its `seq`).
pub type UsageThresholdCallback = Rc<dyn Fn(&UsageThresholdEvent)>;

/// Told when the stream connects (`true`, `"connected"`) or is lost (`false`, why).
pub type ConnectionCallback = Rc<dyn Fn(bool, &str)>;

/// The application's stream callbacks.
#[derive(Default, Clone)]
pub struct StreamCallbacks {
    /// See [`UsageThresholdCallback`].
    pub on_usage_threshold: Option<UsageThresholdCallback>,
    /// See [`ConnectionCallback`].
    pub on_connection_change: Option<ConnectionCallback>,
}

/// The open socket (or the one being opened) and its handlers.
struct Socket {
    ws: WebSocket,
    /// The customer token its auth frame carries.
    token: Option<String>,
    /// Which socket of the client this is: events of an older one are ignored.
    number: u64,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    /// Detaches the handlers and closes the socket (`code`: a clean close; `None`: abandon).
    fn retire(self, code: Option<(u16, &str)>) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = match code {
            Some((code, reason)) => self.ws.close_with_code_and_reason(code, reason),
            None => self.ws.close(),
        };
    }
}

/// The stream half of the client.
pub(crate) struct StreamState {
    session: RefCell<StreamSession>,
    socket: RefCell<Option<Socket>>,
    sockets_opened: Cell<u64>,
    /// Connection attempts asked for: a token arriving for an older one is dropped.
    connects: Cell<u64>,
    /// The generation of the customer token the last attempt carried (for a 4401).
    token_generation: Cell<u64>,
    /// The session's wake-up, and for when (Unix ms).
    timer: RefCell<Option<(u64, Timeout)>>,
    callbacks: RefCell<StreamCallbacks>,
    throttle: RefCell<ErrorThrottle>,
    connected: Cell<bool>,
}

impl StreamState {
    pub fn new(config: &crate::config::Config) -> Self {
        StreamState {
            session: RefCell::new(StreamSession::new(SessionSettings {
                connect_timeout: config.request_timeout,
                ..SessionSettings::default()
            })),
            socket: RefCell::new(None),
            sockets_opened: Cell::new(0),
            connects: Cell::new(0),
            token_generation: Cell::new(0),
            timer: RefCell::new(None),
            callbacks: RefCell::new(StreamCallbacks::default()),
            throttle: RefCell::new(ErrorThrottle::new(60_000)),
            connected: Cell::new(false),
        }
    }

    /// Whether the socket is open (for `stats()`).
    pub fn connected(&self) -> bool {
        self.connected.get()
    }
}

impl super::Client {
    /// Sets the stream callbacks (before the first `entitlement()` call, or they miss what
    /// came before).
    pub fn set_stream_callbacks(&self, callbacks: StreamCallbacks) {
        *self.inner.stream.callbacks.borrow_mut() = callbacks;
    }

    /// The stream session's state (`idle`, `connecting`, `open`, `waiting`, `paused`,
    /// `stopped`) and its reconnect attempts since the last healthy connection.
    pub fn stream_state(&self) -> (&'static str, u32) {
        let session = self.inner.stream.session.borrow();
        (session.state().as_str(), session.attempt())
    }
}

/// `subject` is now cached, current to stream seq `as_of`: subscribes it (connecting on
/// first use) when the `stream` option is on.
pub(crate) fn subscribe(inner: &Rc<Inner>, subject: &str, as_of: Option<u64>) {
    if !inner.config.stream || inner.closed.get() {
        return;
    }
    let last_seq = inner.entitlements.cache.borrow().last_seq();
    inner
        .stream
        .session
        .borrow_mut()
        .subscribe(subject, as_of, last_seq, host::wall_ms());
    execute(inner);
}

/// `subject` left the cache.
pub(crate) fn unsubscribe(inner: &Rc<Inner>, subject: &str) {
    inner.stream.session.borrow_mut().unsubscribe(subject);
    execute(inner);
}

/// `identify()` / `reset()`: drops every subject and the connection (it carried the
/// previous user's token).
pub(crate) fn forget_subjects(inner: &Rc<Inner>) {
    inner.stream.session.borrow_mut().forget_subjects();
    execute(inner);
}

/// Shutdown: closes the connection with 1000 and stops.
pub(crate) fn close(inner: &Rc<Inner>) {
    inner.stream.session.borrow_mut().close();
    execute(inner);
}

/// Carries out what the session asked for, in order, then sets its timer.
fn execute(inner: &Rc<Inner>) {
    let stream = &inner.stream;
    loop {
        let Some(action) = stream.session.borrow_mut().poll_action() else {
            break;
        };
        match action {
            Action::Connect => connect(inner),
            Action::Send(frame) => send(inner, &frame),
            Action::Close { code, reason } => {
                if let Some(socket) = stream.socket.borrow_mut().take() {
                    socket.retire(Some((code, reason)));
                }
            }
            Action::Abandon => {
                if let Some(socket) = stream.socket.borrow_mut().take() {
                    socket.retire(None);
                }
            }
            Action::ConnectionChange { connected, reason } => {
                stream.connected.set(connected);
                if let Some(cb) = stream.callbacks.borrow().on_connection_change.clone() {
                    wasm_bindgen_futures::spawn_local(async move { cb(connected, &reason) });
                }
            }
            Action::Refetch(subjects) => super::entitlements::refetch_all(inner, subjects),
            Action::UsageThreshold(event) => {
                if let Some(cb) = stream.callbacks.borrow().on_usage_threshold.clone() {
                    wasm_bindgen_futures::spawn_local(async move { cb(&event) });
                }
            }
            // The full build fetches the announced schemas at once; the default build has
            // none to refresh.
            Action::RefreshSchemas { etag } => super::schemas::announce(inner, &etag),
            Action::RefreshCredentials => super::credentials::stream_refused(inner, stream.token_generation.get()),
            Action::Report(err) => report(inner, err),
        }
    }
    stream.connected.set(stream.session.borrow().is_open());
    set_timer(inner);
}

/// Reports a stream failure, at most once a minute per kind.
fn report(inner: &Rc<Inner>, err: Error) {
    let kind = format!("stream/{}", err.code());
    if inner
        .stream
        .throttle
        .borrow_mut()
        .allow(&kind, host::wall_ms())
        .is_some()
    {
        inner.report(err);
    }
}

/// Fresh credentials came after a 4401: a paused session reconnects now.
pub(crate) fn credentials_refreshed(inner: &Rc<Inner>) {
    inner.stream.session.borrow_mut().credentials_refreshed(host::wall_ms());
    execute(inner);
}

/// Keeps one timer for the session's next wake-up, or none.
fn set_timer(inner: &Rc<Inner>) {
    let wake_at = inner.stream.session.borrow().next_wake();
    let mut timer = inner.stream.timer.borrow_mut();
    match wake_at {
        None => *timer = None,
        Some(at) if timer.as_ref().is_some_and(|(set, _)| *set == at) => {}
        Some(at) => {
            let delay = u32::try_from(at.saturating_sub(host::wall_ms())).unwrap_or(u32::MAX);
            let weak = Rc::downgrade(inner);
            let timeout = Timeout::new(delay, move || {
                if let Some(inner) = weak.upgrade() {
                    *inner.stream.timer.borrow_mut() = None;
                    inner
                        .stream
                        .session
                        .borrow_mut()
                        .on_timer(host::wall_ms(), host::jitter());
                    execute(&inner);
                }
            });
            *timer = Some((at, timeout));
        }
    }
}

/// Sends a frame on the open socket; a refusal is a lost connection.
fn send(inner: &Rc<Inner>, frame: &str) {
    let failed = {
        let socket = inner.stream.socket.borrow();
        let Some(socket) = socket.as_ref() else { return };
        socket.ws.send_with_str(frame).err()
    };
    if let Some(e) = failed {
        if let Some(socket) = inner.stream.socket.borrow_mut().take() {
            socket.retire(None);
        }
        let reason = format!("sending failed: {}", host::describe(&e));
        inner
            .stream
            .session
            .borrow_mut()
            .lost(Disconnect::Network, &reason, host::wall_ms(), host::jitter());
    }
}

/// Obtains the customer token (the provider may be asked first), then opens the socket;
/// the session times the whole attempt out.
fn connect(inner: &Rc<Inner>) {
    let stream = &inner.stream;
    if let Some(old) = stream.socket.borrow_mut().take() {
        old.retire(None);
    }
    let attempt = stream.connects.get() + 1;
    stream.connects.set(attempt);
    let inner = inner.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let token = super::credentials::for_stream(&inner).await;
        let stream = &inner.stream;
        if stream.connects.get() != attempt || stream.session.borrow().state() != SessionState::Connecting {
            return; // abandoned meanwhile
        }
        match token {
            Ok(token) => {
                if let Some((_, generation)) = &token {
                    stream.token_generation.set(*generation);
                }
                open(&inner, token.map(|(value, _)| value));
            }
            Err(err) => {
                let reason = format!("no credentials for the stream: {err}");
                stream
                    .session
                    .borrow_mut()
                    .lost(Disconnect::Network, &reason, host::wall_ms(), host::jitter());
            }
        }
        execute(&inner);
    });
}

/// Opens a socket to the stream URL; its events feed the session.
fn open(inner: &Rc<Inner>, token: Option<String>) {
    let stream = &inner.stream;
    let url = inner.config.stream_url();
    let ws = match WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(e) => {
            // A URL the browser refuses (or a page that forbids it): the session retries
            // after its backoff and the failure is reported.
            let reason = format!("cannot open {url}: {}", host::describe(&e));
            stream
                .session
                .borrow_mut()
                .lost(Disconnect::Network, &reason, host::wall_ms(), host::jitter());
            return;
        }
    };
    ws.set_binary_type(BinaryType::Arraybuffer);
    let number = stream.sockets_opened.get() + 1;
    stream.sockets_opened.set(number);
    let weak = Rc::downgrade(inner);
    let on_open = handler(&weak, number, |inner, _: Event| opened(inner));
    let on_message = handler(&weak, number, |inner, event: MessageEvent| {
        let now = host::wall_ms();
        let counted_through = inner.outbox.borrow().low_watermark();
        let text = event.data().as_string();
        let frame = text.as_deref().map_or(Frame::Other, Frame::Text);
        let mut cache = inner.entitlements.cache.borrow_mut();
        inner
            .stream
            .session
            .borrow_mut()
            .received(frame, now, &mut cache, counted_through);
    });
    let on_close = handler(&weak, number, |inner, event: CloseEvent| {
        if let Some(socket) = inner.stream.socket.borrow_mut().take() {
            socket.retire(None);
        }
        let (why, reason) = match event.code() {
            // The browser's word for "no close frame": refused, unreachable or broken.
            1006 => (Disconnect::Network, "the connection failed or broke (1006)".to_owned()),
            code => (
                Disconnect::Closed(code),
                format!("closed by the server with {code} {}", event.reason())
                    .trim_end()
                    .to_owned(),
            ),
        };
        inner
            .stream
            .session
            .borrow_mut()
            .lost(why, &reason, host::wall_ms(), host::jitter());
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    *stream.socket.borrow_mut() = Some(Socket {
        ws,
        token,
        number,
        _on_open: on_open,
        _on_message: on_message,
        _on_close: on_close,
    });
}

/// A socket event handler: runs `f` (then the session's actions) if the client lives and
/// the event is from its current socket.
fn handler<E: wasm_bindgen::convert::FromWasmAbi + 'static>(
    weak: &Weak<Inner>,
    number: u64,
    f: impl Fn(&Rc<Inner>, E) + 'static,
) -> Closure<dyn FnMut(E)> {
    let weak = weak.clone();
    Closure::new(move |event: E| {
        let Some(inner) = weak.upgrade() else { return };
        let current = inner.stream.socket.borrow().as_ref().map(|s| s.number);
        if current != Some(number) {
            return;
        }
        f(&inner, event);
        execute(&inner);
    })
}

/// The socket opened: the auth frame first (a browser's credentials), then the session's
/// subscribe frames.
fn opened(inner: &Rc<Inner>) {
    let token = inner.stream.socket.borrow().as_ref().and_then(|s| s.token.clone());
    let auth = ClientOp::Auth {
        key: inner.key.expose().to_owned(),
        token,
    };
    match serde_json::to_string(&auth) {
        Ok(frame) => send(inner, &frame),
        Err(e) => {
            report(inner, Error::Network(format!("stream: the auth frame: {e}")));
            return;
        }
    }
    let mut cache = inner.entitlements.cache.borrow_mut();
    inner.stream.session.borrow_mut().opened(host::wall_ms(), &mut cache);
}
