//! The realtime stream client (DESIGN §5): one WebSocket per client, opened when the first
//! entitlement is cached, keeping the cache current.
//!
//! It subscribes every cached subject (up to the server's 1,000 per connection; the rest
//! rely on their TTL), resumes after a reconnect with `since` = the last seq applied, and
//! refetches every cached subject on `resync` or when a reconnect cannot resume. Reconnects
//! back off exponentially with full jitter; after 4401/4403 (or a server without the stream)
//! it pauses for minutes instead of hammering. Shutdown closes the socket with 1000.

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
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
    entitlement_cache::StreamEffect,
    error::Error,
    stream::{ClientOp, Disconnect, MAX_FRAME_BYTES, MAX_SUBJECTS, ReconnectPolicy, ServerMessage},
};

/// The server pings every 20 s: three missed pings and the connection is presumed dead.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
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

    /// Closes the socket cleanly and waits (briefly) for the task to end. Runs on the worker.
    pub async fn close(&self) {
        self.closing.send_replace(true);
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(CLOSE_WAIT + Duration::from_millis(200), task).await;
        }
    }
}

/// How a session ended.
enum Ended {
    Closing,
    Lost {
        why: Disconnect,
        reason: String,
        /// The socket had opened.
        connected: bool,
        /// The server had answered a subscribe: the connection worked, reset the backoff.
        healthy: bool,
    },
}

/// A loss before the socket opened.
fn failed(why: Disconnect, reason: impl Into<String>) -> Ended {
    Ended::Lost {
        why,
        reason: reason.into(),
        connected: false,
        healthy: false,
    }
}

/// A loss of an open socket.
fn lost(why: Disconnect, reason: impl Into<String>, healthy: bool) -> Ended {
    Ended::Lost {
        why,
        reason: reason.into(),
        connected: true,
        healthy,
    }
}

async fn run(shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let control = &shared.entitlements.stream;
    let mut closing = control.closing.subscribe();
    let policy = ReconnectPolicy::default();
    let mut subjects = BTreeSet::new();
    let mut attempt = 0u32;
    let mut connected_before = false;
    let mut reported_down = false;
    // The earliest `as_of` of the subjects added while no socket was open: the first
    // subscribe of the next session must replay from there too.
    let mut floor = None;
    loop {
        if *closing.borrow_and_update() {
            return;
        }
        let ended = session(
            &shared,
            &mut commands,
            &mut subjects,
            &mut closing,
            connected_before,
            &mut floor,
        )
        .await;
        let Ended::Lost {
            why,
            reason,
            connected: was_connected,
            healthy,
        } = ended
        else {
            return;
        };
        connected_before |= was_connected;
        control.connected.store(false, Ordering::Relaxed);
        if was_connected {
            reported_down = false;
        }
        if !reported_down {
            shared.callbacks.connection_change(false, &reason);
            reported_down = true;
        }
        report_loss(&shared, why, &reason);
        if healthy {
            attempt = 0;
        }
        let delay = policy.delay(why, attempt, fastrand::f64());
        attempt = attempt.saturating_add(1);
        tracing::debug!(?delay, "stream lost ({reason}); reconnecting later");
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                _ = closing.changed() => return,
                command = commands.recv() => match command {
                    Some(command) => {
                        if let Command::Subscribe(_, as_of) = &command {
                            floor = earliest(floor, *as_of);
                        }
                        apply_command(&mut subjects, command, None);
                    }
                    None => return,
                },
            }
        }
    }
}

fn report_loss(shared: &Shared, why: Disconnect, reason: &str) {
    let err = match why {
        Disconnect::Closed(4401) | Disconnect::Refused(401) => Error::Unauthorized {
            message: format!("stream: {reason}"),
        },
        Disconnect::Closed(4403) | Disconnect::Refused(403) => Error::Forbidden {
            message: format!("stream: {reason}"),
        },
        Disconnect::Closed(1000 | 1001) => return,
        Disconnect::Closed(_) | Disconnect::Refused(_) => Error::Stream {
            code: if why.is_unsupported() {
                "stream_unavailable".into()
            } else {
                "stream_closed".into()
            },
            message: reason.to_owned(),
        },
        Disconnect::Network => Error::Network(format!("stream: {reason}")),
    };
    report(shared, "stream", &err);
}

/// One connection, from connect to loss (or shutdown).
async fn session(
    shared: &Arc<Shared>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    subjects: &mut BTreeSet<String>,
    closing: &mut watch::Receiver<bool>,
    reconnect: bool,
    floor: &mut Option<u64>,
) -> Ended {
    let request = match request(shared) {
        Ok(request) => request,
        Err(reason) => return failed(Disconnect::Network, reason),
    };
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(MAX_INCOMING))
        .max_frame_size(Some(MAX_INCOMING));
    let timeout = shared.config.request_timeout;
    let connect = tokio::time::timeout(
        timeout,
        tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true),
    );
    let mut ws = tokio::select! {
        connected = connect => match connected {
            Err(_) => return failed(Disconnect::Network, format!("connecting timed out after {timeout:?}")),
            Ok(Err(tungstenite::Error::Http(resp))) => {
                let status = resp.status().as_u16();
                return failed(Disconnect::Refused(status), format!("the server refused the upgrade with {status}"));
            }
            Ok(Err(e)) => return failed(Disconnect::Network, e.to_string()),
            Ok(Ok((ws, _))) => ws,
        },
        _ = closing.changed() => return Ended::Closing,
    };
    shared.entitlements.stream.connected.store(true, Ordering::Relaxed);
    shared.callbacks.connection_change(true, "connected");
    let ents = &shared.entitlements;
    let since = lock(&ents.cache).last_seq();
    if reconnect && since.is_none() {
        // Nothing to resume from: what changed while disconnected is unknown.
        let due = {
            let mut cache = lock(&ents.cache);
            cache.mark_all_for_refetch();
            cache.take_refetch_due()
        };
        shared.runtime.spawn(refetch_all(shared.clone(), due));
    }
    // Subjects resubscribed on a resume are covered by `since`; subjects added while
    // disconnected by their `as_of` (without either, the refetch above covers them).
    let floor = floor.take();
    let since = if reconnect && since.is_none() {
        None
    } else {
        earliest(since, floor)
    };
    for frame in subscribe_frames(subjects, since) {
        if let Err(e) = ws.send(Message::text(frame)).await {
            return lost(Disconnect::Network, e.to_string(), false);
        }
    }
    let mut healthy = false;
    // Only frames from the server (pings included) count as signs of life.
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = closing.changed() => {
                let frame = CloseFrame { code: CloseCode::Normal, reason: "client shutdown".into() };
                let _ = ws.close(Some(frame)).await;
                // Read until the server's close arrives (or give up).
                let _ = tokio::time::timeout(CLOSE_WAIT, async { while let Some(Ok(_)) = ws.next().await {} }).await;
                return Ended::Closing;
            }
            command = commands.recv() => {
                let Some(command) = command else { return Ended::Closing };
                let since = lock(&ents.cache).last_seq();
                if let Some(frame) = apply_command(subjects, command, since)
                    && let Err(e) = ws.send(Message::text(frame)).await
                {
                    return lost(Disconnect::Network, e.to_string(), healthy);
                }
            }
            message = tokio::time::timeout_at(heard + IDLE_LIMIT, ws.next()) => match message {
                Err(_) => return lost(Disconnect::Network, format!("nothing from the server for {IDLE_LIMIT:?}"), healthy),
                Ok(None) => return lost(Disconnect::Network, "the connection ended", healthy),
                Ok(Some(Err(e))) => return lost(Disconnect::Network, e.to_string(), healthy),
                Ok(Some(Ok(Message::Text(text)))) => {
                    heard = tokio::time::Instant::now();
                    healthy |= handle(shared, text.as_str());
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    let (code, why) = frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                    return lost(Disconnect::Closed(code), format!("closed by the server with {code} {why}").trim_end().to_owned(), healthy);
                }
                Ok(Some(Ok(Message::Ping(_)))) => {
                    heard = tokio::time::Instant::now();
                    let _ = ws.flush().await;
                }
                Ok(Some(Ok(_))) => heard = tokio::time::Instant::now(),
            }
        }
    }
}

/// The upgrade request: the stream URL with the client's credentials.
fn request(shared: &Shared) -> Result<tungstenite::handshake::client::Request, String> {
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
    if let Some(token) = &shared.config.customer_token {
        let mut value = HeaderValue::from_str(token).map_err(|_| "the customer token cannot be sent in a header")?;
        value.set_sensitive(true);
        headers.insert(super::CUSTOMER_TOKEN_HEADER, value);
    }
    headers.insert(
        "user-agent",
        HeaderValue::from_static(concat!("meterline-rust/", env!("CARGO_PKG_VERSION"))),
    );
    Ok(request)
}

/// Applies a server text frame; returns whether it answered our subscribe.
fn handle(shared: &Arc<Shared>, text: &str) -> bool {
    let message: ServerMessage = match serde_json::from_str(text) {
        Ok(message) => message,
        Err(e) => {
            let err = Error::Stream {
                code: "bad_message".into(),
                message: format!("unreadable stream message: {e}"),
            };
            report(shared, "stream", &err);
            return false;
        }
    };
    let subscribed = matches!(message, ServerMessage::Subscribed { .. });
    let counted_through = shared.pipeline.lock().low_watermark();
    let ents = &shared.entitlements;
    let effect = lock(&ents.cache).apply(message, ents.clock.now_ms(), counted_through);
    match effect {
        StreamEffect::None | StreamEffect::Updated { .. } => {}
        StreamEffect::UsageThreshold(event) => shared.callbacks.usage_threshold(&event),
        StreamEffect::SchemaUpdated { etag } => shared.schema_refresh.announce(&etag, ents.clock.now_ms()),
        StreamEffect::Resync => {
            let due = lock(&ents.cache).take_refetch_due();
            if !due.is_empty() {
                shared.runtime.spawn(refetch_all(shared.clone(), due));
            }
        }
        StreamEffect::Error { code, message } => report(shared, "stream", &Error::Stream { code, message }),
    }
    subscribed
}

/// Updates the subscribed set; returns the frame to send, if any.
fn apply_command(subjects: &mut BTreeSet<String>, command: Command, since: Option<u64>) -> Option<String> {
    match command {
        Command::Subscribe(subject, as_of) => {
            if subjects.contains(&subject) || subjects.len() >= MAX_SUBJECTS {
                return None;
            }
            subjects.insert(subject.clone());
            let op = ClientOp::Subscribe {
                subjects: vec![subject],
                since: earliest(since, as_of),
            };
            serde_json::to_string(&op).ok()
        }
        Command::Unsubscribe(subject) => {
            if !subjects.remove(&subject) {
                return None;
            }
            serde_json::to_string(&ClientOp::Unsubscribe {
                subjects: vec![subject],
            })
            .ok()
        }
    }
}

/// The earlier of two resume points: a replay from it covers both (a replay from too early
/// only repeats messages, which the cache ignores by version).
fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Subscribe frames for every subject, each under the server's frame limit.
fn subscribe_frames(subjects: &BTreeSet<String>, since: Option<u64>) -> Vec<String> {
    let budget = MAX_FRAME_BYTES - 256;
    let mut frames = Vec::new();
    let mut chunk = Vec::new();
    let mut size = 0;
    let mut flush = |chunk: &mut Vec<String>| {
        if !chunk.is_empty() {
            let op = ClientOp::Subscribe {
                subjects: std::mem::take(chunk),
                since,
            };
            frames.extend(serde_json::to_string(&op).ok());
        }
    };
    for subject in subjects {
        let len = serde_json::to_string(subject).map_or(subject.len() * 6 + 2, |s| s.len()) + 1;
        if size + len > budget {
            flush(&mut chunk);
            size = 0;
        }
        chunk.push(subject.clone());
        size += len;
    }
    flush(&mut chunk);
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_frames_stay_under_the_frame_limit() {
        let subjects: BTreeSet<String> = (0..MAX_SUBJECTS).map(|i| format!("{i:0>250}")).collect();
        let frames = subscribe_frames(&subjects, Some(7));
        assert!(frames.len() > 1);
        let mut seen = 0;
        for frame in &frames {
            assert!(frame.len() <= MAX_FRAME_BYTES, "{}", frame.len());
            let op: ClientOp = serde_json::from_str(frame).unwrap();
            let ClientOp::Subscribe { subjects, since } = op else {
                panic!()
            };
            assert_eq!(since, Some(7));
            seen += subjects.len();
        }
        assert_eq!(seen, MAX_SUBJECTS);
        assert!(subscribe_frames(&BTreeSet::new(), None).is_empty());
    }

    #[test]
    fn commands_keep_the_set_bounded_and_unique() {
        let mut set = BTreeSet::new();
        assert!(
            apply_command(&mut set, Command::Subscribe("a".into(), None), Some(3))
                .is_some_and(|f| f.contains("\"since\":3"))
        );
        assert!(apply_command(&mut set, Command::Subscribe("a".into(), None), None).is_none());
        // A new subject replays from the earlier of the stream's position and its answer's.
        let frame = apply_command(&mut set, Command::Subscribe("x".into(), Some(2)), Some(3)).unwrap();
        assert!(frame.contains("\"since\":2"), "{frame}");
        let frame = apply_command(&mut set, Command::Subscribe("y".into(), Some(9)), None).unwrap();
        assert!(frame.contains("\"since\":9"), "{frame}");
        assert_eq!(earliest(Some(4), Some(5)), Some(4));
        assert_eq!(earliest(None, Some(5)), Some(5));
        assert_eq!(earliest(None, None), None);
        assert!(apply_command(&mut set, Command::Unsubscribe("b".into()), None).is_none());
        assert!(apply_command(&mut set, Command::Unsubscribe("a".into()), None).is_some());
        for i in 0..MAX_SUBJECTS {
            apply_command(&mut set, Command::Subscribe(i.to_string(), None), None);
        }
        assert!(apply_command(&mut set, Command::Subscribe("over".into(), None), None).is_none());
    }
}
