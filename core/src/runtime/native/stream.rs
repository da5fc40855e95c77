//! The realtime stream client's I/O (DESIGN §5): one WebSocket per client, opened when the
//! first entitlement is cached. Every decision — what to subscribe, `since`, resync and
//! refetch, reconnect delays, what a close code means, the idle limit — is the core's
//! [`StreamSession`]; this task opens the socket, sends and reads frames, sleeps until the
//! session's next wake-up and carries out its [`Action`]s. Shutdown closes with 1000.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};
use tokio_tungstenite::tungstenite::{
    self, Message,
    client::IntoClientRequest,
    http::{HeaderValue, header::AUTHORIZATION},
    protocol::{CloseFrame, WebSocketConfig, frame::coding::CloseCode},
};

use super::{
    Shared,
    entitlements::lock,
    fetch::{refetch_all, report},
};
use crate::{
    stream::Disconnect,
    stream_session::{Action, Frame, SessionSettings, StreamSession},
};

/// How long shutdown waits for the server to acknowledge the close.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Largest incoming message accepted (the server sends ≤ 64 KiB; leave headroom).
const MAX_INCOMING: usize = 1024 * 1024;
/// Bytes read from the socket at a time. tungstenite zero-fills this much of its buffer
/// before every read, so its 128 KiB default cost ≈ 5 µs per frame received (an
/// `entitlements.updated` frame is ≈ 600 bytes); larger messages still grow the buffer.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// A change of the subscribed set, sent by the fetch side.
#[derive(Debug)]
enum Command {
    /// A newly cached subject, and the stream seq its answer is current to.
    Subscribe(String, Option<u64>),
    Unsubscribe(String),
    /// The user switched: drop every subject and the connection.
    Forget,
}

/// The handle the rest of the client uses to drive the stream task.
#[derive(Debug)]
pub(crate) struct StreamControl {
    tx: mpsc::UnboundedSender<Command>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Command>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    closing: watch::Sender<bool>,
    /// Whether the socket is open (for `stats()`).
    pub connected: AtomicBool,
}

impl StreamControl {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        StreamControl {
            tx,
            rx: Mutex::new(Some(rx)),
            task: Mutex::new(None),
            closing: watch::Sender::new(false),
            connected: AtomicBool::new(false),
        }
    }

    /// Subscribes `subject`, starting the stream task on first use (if `stream` is on);
    /// `as_of` is the stream seq its cached answer is current to.
    pub fn subscribe(&self, shared: &Arc<Shared>, subject: &str, as_of: Option<u64>) {
        if !shared.config.stream || *self.closing.borrow() {
            return;
        }
        if let Some(rx) = lock(&self.rx).take() {
            *lock(&self.task) = Some(shared.runtime.spawn(run(shared.clone(), rx)));
        }
        let _ = self.tx.send(Command::Subscribe(subject.to_owned(), as_of));
    }

    /// Unsubscribes `subject` (nothing to do before the task started).
    pub fn unsubscribe(&self, subject: &str) {
        if lock(&self.task).is_some() {
            let _ = self.tx.send(Command::Unsubscribe(subject.to_owned()));
        }
    }

    /// `identify()` / `reset()`: drops every subject and closes the connection (nothing to
    /// do before the task started).
    pub fn forget_subjects(&self) {
        if lock(&self.task).is_some() {
            let _ = self.tx.send(Command::Forget);
        }
    }

    /// Closes the socket cleanly and waits (briefly) for the task to end. Runs on the worker.
    pub async fn close(&self) {
        self.closing.send_replace(true);
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(CLOSE_WAIT + Duration::from_millis(200), task).await;
        }
    }
}

/// The open socket.
type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A connection attempt: the socket, or why it failed.
type Connecting = Pin<Box<dyn Future<Output = Result<Socket, (Disconnect, String)>> + Send>>;

/// The I/O side of one client's stream: the socket (or the attempt to open one).
struct Io {
    shared: Arc<Shared>,
    socket: Option<Socket>,
    connecting: Option<Connecting>,
    /// The generation of the customer token the last connection attempt carried.
    token_generation: Arc<AtomicU64>,
}

async fn run(shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut closing = shared.entitlements.stream.closing.subscribe();
    let settings = SessionSettings {
        connect_timeout: shared.config.request_timeout,
        ..SessionSettings::default()
    };
    let mut session = StreamSession::new(settings);
    let mut io = Io {
        shared: shared.clone(),
        socket: None,
        connecting: None,
        token_generation: Arc::new(AtomicU64::new(0)),
    };
    loop {
        io.execute(&mut session).await;
        if *closing.borrow_and_update() {
            session.close();
            io.execute(&mut session).await;
            return;
        }
        let ents = &shared.entitlements;
        let sleep = match session.next_wake() {
            Some(at) => tokio::time::sleep(Duration::from_millis(at.saturating_sub(ents.clock.now_ms()))),
            None => tokio::time::sleep(Duration::from_secs(86_400 * 365)),
        };
        tokio::select! {
            _ = closing.changed() => {}
            command = commands.recv() => {
                let now = ents.clock.now_ms();
                match command {
                    Some(Command::Subscribe(subject, as_of)) => {
                        let last_seq = lock(&ents.cache).last_seq();
                        session.subscribe(&subject, as_of, last_seq, now);
                    }
                    Some(Command::Unsubscribe(subject)) => session.unsubscribe(&subject),
                    Some(Command::Forget) => session.forget_subjects(),
                    None => {
                        session.close();
                        io.execute(&mut session).await;
                        return;
                    }
                }
            }
            opened = attempt(&mut io.connecting) => {
                io.connecting = None;
                let now = ents.clock.now_ms();
                match opened {
                    Ok(socket) => {
                        io.socket = Some(socket);
                        session.opened(now, &mut lock(&ents.cache));
                    }
                    Err((why, reason)) => session.lost(why, &reason, now, fastrand::f64()),
                }
            }
            message = next_message(&mut io.socket) => io.received(&mut session, message).await,
            () = sleep => session.on_timer(ents.clock.now_ms(), fastrand::f64()),
        }
    }
}

/// The pending connection attempt's result (never, without one).
async fn attempt(connecting: &mut Option<Connecting>) -> Result<Socket, (Disconnect, String)> {
    match connecting {
        Some(connecting) => connecting.await,
        None => std::future::pending().await,
    }
}

/// The open socket's next message (never, without one).
async fn next_message(socket: &mut Option<Socket>) -> Option<Result<Message, tungstenite::Error>> {
    match socket {
        Some(socket) => socket.next().await,
        None => std::future::pending().await,
    }
}

impl Io {
    /// Carries out what the session asked for, in order.
    async fn execute(&mut self, session: &mut StreamSession) {
        let shared = self.shared.clone();
        while let Some(action) = session.poll_action() {
            match action {
                Action::Connect => {
                    let generation = self.token_generation.clone();
                    self.connecting = Some(Box::pin(connect(shared.clone(), generation)));
                }
                Action::Send(frame) => {
                    let Some(socket) = &mut self.socket else { continue };
                    if let Err(e) = socket.send(Message::text(frame)).await {
                        self.socket = None;
                        let now = shared.entitlements.clock.now_ms();
                        session.lost(Disconnect::Network, &e.to_string(), now, fastrand::f64());
                    }
                }
                Action::Close { code, reason } => {
                    if let Some(mut socket) = self.socket.take() {
                        let frame = CloseFrame {
                            code: CloseCode::from(code),
                            reason: reason.into(),
                        };
                        let _ = socket.close(Some(frame)).await;
                        // Read until the server's close arrives (or give up).
                        let _ =
                            tokio::time::timeout(CLOSE_WAIT, async { while let Some(Ok(_)) = socket.next().await {} })
                                .await;
                    }
                    self.connecting = None;
                }
                Action::Abandon => {
                    self.socket = None;
                    self.connecting = None;
                }
                Action::ConnectionChange { connected, reason } => {
                    shared.entitlements.stream.connected.store(connected, Ordering::Relaxed);
                    if !connected {
                        tracing::debug!("stream lost ({reason}); reconnecting later");
                    }
                    shared.callbacks.connection_change(connected, &reason);
                }
                Action::Refetch(subjects) => {
                    shared.runtime.spawn(refetch_all(shared.clone(), subjects));
                }
                Action::UsageThreshold(event) => shared.callbacks.usage_threshold(&event),
                Action::RefreshSchemas { etag } => {
                    let now = shared.entitlements.clock.now_ms();
                    shared.schema_refresh.announce(&etag, now);
                }
                Action::RefreshCredentials => {
                    // Ask the provider (once for every request refused with this token) and
                    // reconnect at once with the fresh token; without one, the session's
                    // pause stands.
                    let refused = self.token_generation.load(Ordering::Relaxed);
                    if shared.credentials.customer && shared.credentials.stream_refused(&shared, refused).await {
                        session.credentials_refreshed(shared.entitlements.clock.now_ms());
                    } else {
                        tracing::debug!("stream: credentials refused and none fresher to be had");
                    }
                }
                Action::Report(err) => report(&shared, "stream", &err),
            }
        }
        shared
            .entitlements
            .stream
            .connected
            .store(session.is_open(), Ordering::Relaxed);
    }

    /// Hands what the socket produced to the session.
    async fn received(&mut self, session: &mut StreamSession, message: Option<Result<Message, tungstenite::Error>>) {
        let shared = &self.shared;
        let ents = &shared.entitlements;
        let now = ents.clock.now_ms();
        let lost = |why: Disconnect, reason: String| (why, reason);
        let ended = match message {
            None => lost(Disconnect::Network, "the connection ended".into()),
            Some(Err(e)) => lost(Disconnect::Network, e.to_string()),
            Some(Ok(Message::Text(text))) => {
                let counted_through = shared.pipeline.lock().low_watermark();
                session.received(Frame::Text(text.as_str()), now, &mut lock(&ents.cache), counted_through);
                return;
            }
            Some(Ok(Message::Close(frame))) => {
                let (code, why) = frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                let reason = format!("closed by the server with {code} {why}").trim_end().to_owned();
                lost(Disconnect::Closed(code), reason)
            }
            Some(Ok(Message::Ping(_))) => {
                session.received(Frame::Other, now, &mut lock(&ents.cache), 0);
                if let Some(socket) = &mut self.socket {
                    let _ = socket.flush().await;
                }
                return;
            }
            Some(Ok(_)) => {
                session.received(Frame::Other, now, &mut lock(&ents.cache), 0);
                return;
            }
        };
        self.socket = None;
        session.lost(ended.0, &ended.1, now, fastrand::f64());
    }
}

/// Opens the socket with the client's credentials (the session times it out); records the
/// customer token's generation in `generation`.
async fn connect(shared: Arc<Shared>, generation: Arc<AtomicU64>) -> Result<Socket, (Disconnect, String)> {
    let token = shared
        .credentials
        .for_stream(&shared)
        .await
        .map_err(|e| (Disconnect::Network, e.to_string()))?;
    if let Some((_, g)) = &token {
        generation.store(*g, Ordering::Relaxed);
    }
    let token = token.map(|(value, _)| value);
    let request = request(&shared, token.as_deref()).map_err(|reason| (Disconnect::Network, reason))?;
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(MAX_INCOMING))
        .max_frame_size(Some(MAX_INCOMING));
    match tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            Err((
                Disconnect::Refused(status),
                format!("the server refused the upgrade with {status}"),
            ))
        }
        Err(e) => Err((Disconnect::Network, e.to_string())),
    }
}

/// The upgrade request: the stream URL with the client's credentials.
fn request(shared: &Shared, token: Option<&str>) -> Result<tungstenite::handshake::client::Request, String> {
    let url = shared.config.stream_url();
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("bad stream URL {url:?}: {e}"))?;
    let headers = request.headers_mut();
    let mut auth = HeaderValue::from_str(&format!("Bearer {}", shared.key.expose()))
        .map_err(|_| "the API key cannot be sent in a header".to_owned())?;
    auth.set_sensitive(true);
    headers.insert(AUTHORIZATION, auth);
    if let Some(token) = token {
        let mut value = HeaderValue::from_str(token).map_err(|_| "the customer token cannot be sent in a header")?;
        value.set_sensitive(true);
        headers.insert(super::CUSTOMER_TOKEN_HEADER, value);
    }
    let agent = super::user_agent(&shared.config);
    headers.insert(
        "user-agent",
        HeaderValue::from_str(&agent).map_err(|_| "the SDK name cannot be sent in a header")?,
    );
    Ok(request)
}
