//! One stream connection: authentication, subscriptions with replay, live delivery, pings,
//! limits, and every way it ends (DESIGN §5).
//!
//! One task per connection owns the socket and waits on the client, the hub, the control
//! channel (revocations, shutdown) and its timers at once. Every send has a deadline
//! (`stream.send_timeout_ms`) and the hub queues a bounded number of frames per
//! connection (its [`Route`]), so a client that stops reading is closed (1008), never
//! buffered for.

use std::{
    pin::pin,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use meterline_core::{
    event::MAX_ATTRIBUTE_LEN,
    stream::{CLOSE_FORBIDDEN, CLOSE_POLICY, CLOSE_UNAUTHENTICATED, ClientOp, ServerMessage},
};
use tokio::{
    sync::broadcast::{Receiver, error::RecvError},
    time::{Instant, MissedTickBehavior, interval_at, sleep_until, timeout, timeout_at},
};

use super::{
    Control, STREAM_FRAMES_SENT, STREAM_SLOW_CONSUMERS,
    hub::{Route, RouteError},
    socket::Presented,
    subscription::Subscriptions,
};
use crate::{
    app::AppState,
    auth::{Authenticated, Scope, authenticate},
    error::ApiError,
    ratelimit::Bucket,
    store::{LogRead, StoreError, StreamFrame},
};

/// Most queued frames one burst takes before the connection's loop looks at its timers and
/// the client again.
const MAX_BURST: usize = 64;

/// Endpoint going away: idle timeout, server shutdown.
const CLOSE_GOING_AWAY: u16 = 1001;
/// The client broke the WebSocket protocol.
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// A text frame that is not UTF-8.
const CLOSE_INVALID_DATA: u16 = 1007;
/// A frame over `stream.max_frame_bytes`.
const CLOSE_TOO_BIG: u16 = 1009;
/// The server failed (storage).
const CLOSE_INTERNAL_ERROR: u16 = 1011;
/// Too many connections, or the key is over its rate limit while authenticating.
const CLOSE_TRY_AGAIN_LATER: u16 = 1013;
/// Longest close reason the protocol allows, in bytes.
const MAX_CLOSE_REASON: usize = 123;
/// Longest `error` message sent (they may quote client input).
const MAX_ERROR_MESSAGE: usize = 300;
/// How long a closing connection waits for the client's close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// A refused frame is forgiven after this long (see `stream.max_errors`).
const ERROR_REFILL: Duration = Duration::from_secs(6);

/// Why a connection ends.
#[derive(Debug)]
enum End {
    /// Send a close frame with this code and reason.
    Close(u16, String),
    /// The client is gone or closed first; nothing more to send.
    Gone,
    /// The client does not keep up: closed with 1008 if that can still be sent.
    Slow(String),
}

/// A connection after authentication.
struct Session {
    auth: Authenticated,
    subs: Subscriptions,
    /// Live frames of the subscribed subjects; taken at the first subscribe, and each
    /// subject routed here before the log is read for it.
    hub: Option<Route>,
}

struct Connection {
    state: AppState,
    socket: WebSocket,
    /// `meterline_stream_frames_sent_total`, looked up once (not once per burst).
    frames_sent: metrics::Counter,
    /// The connection's operations (text and binary frames).
    ops: Bucket,
    /// Refused frames tolerated before the connection is closed.
    errors: Bucket,
}

/// Serves one upgraded connection until it ends. `origin` is the upgrade request's
/// `Origin` header, checked against the project's `allowed_origins` once the key is known.
pub async fn run(state: AppState, socket: WebSocket, presented: Presented, origin: Option<String>) {
    let mut conn = Connection {
        ops: Bucket::new(
            Duration::from_secs(1) / state.config.stream.ops_per_second.max(1),
            state.config.stream.ops_burst,
        ),
        errors: Bucket::new(ERROR_REFILL, state.config.stream.max_errors),
        state,
        socket,
        frames_sent: metrics::counter!(STREAM_FRAMES_SENT),
    };
    let Some(_slot) = conn.state.streams.admit(conn.state.config.stream.max_connections) else {
        let reason = "too many open stream connections; retry later".to_owned();
        return conn.finish(End::Close(CLOSE_TRY_AGAIN_LATER, reason)).await;
    };
    // Listen before authenticating, so a revocation racing the handshake is not missed.
    let control = conn.state.streams.listen();
    let end = match conn.authenticate(presented, origin.as_deref()).await {
        Ok(auth) => {
            let session = Session {
                auth,
                subs: Subscriptions::default(),
                hub: None,
            };
            conn.serve(session, control).await
        }
        Err(end) => end,
    };
    conn.finish(end).await;
}

impl Connection {
    async fn authenticate(&mut self, presented: Presented, origin: Option<&str>) -> Result<Authenticated, End> {
        let (key, token) = match presented {
            Presented::Credentials { key, token } => (key, token),
            Presented::Unusable(reason) => return Err(End::Close(CLOSE_UNAUTHENTICATED, reason)),
            Presented::Nothing => self.auth_frame().await?,
        };
        let auth = authenticate(&self.state, &key, token.as_deref(), origin, None)
            .await
            .map_err(refused_credentials)?;
        auth.caller
            .require(Scope::ReadEntitlements)
            .map_err(refused_credentials)?;
        Ok(auth)
    }

    /// Waits for the first frame, which must be `{"op":"auth",…}`.
    async fn auth_frame(&mut self) -> Result<(String, Option<String>), End> {
        let wait = self.state.config.stream.auth_timeout();
        let deadline = Instant::now() + wait;
        let first_frame = "the first frame must be {\"op\":\"auth\",\"key\":…,\"token\":…}".to_owned();
        loop {
            match timeout_at(deadline, self.socket.recv()).await {
                Err(_) => {
                    let reason = format!("not authenticated within {} ms", wait.as_millis());
                    return Err(End::Close(CLOSE_UNAUTHENTICATED, reason));
                }
                Ok(None | Some(Ok(Message::Close(_)))) => return Err(End::Gone),
                Ok(Some(Err(e))) => return Err(self.end_for_error(e)),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Ok(Some(Ok(Message::Text(text)))) => {
                    return match serde_json::from_str::<ClientOp>(&text) {
                        Ok(ClientOp::Auth { key, token }) => Ok((key, token)),
                        _ => Err(End::Close(CLOSE_UNAUTHENTICATED, first_frame)),
                    };
                }
                Ok(Some(Ok(Message::Binary(_)))) => return Err(End::Close(CLOSE_UNAUTHENTICATED, first_frame)),
            }
        }
    }

    async fn serve(&mut self, mut session: Session, control: Receiver<Control>) -> End {
        let config = self.state.config.clone();
        let limits = &config.stream;
        let far_future = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let token_expiry = session.auth.token.as_ref().map(|t| instant_of_unix(t.valid_until));
        let mut expiry = pin!(sleep_until(token_expiry.unwrap_or(far_future)));
        let mut idle = pin!(sleep_until(Instant::now() + limits.idle_timeout()));
        let mut ping = interval_at(Instant::now() + limits.ping_interval(), limits.ping_interval());
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // One wait on the control channel lives across the loop's turns: a broadcast
        // receive registers with (and on drop leaves) the channel under its lock, shared by
        // every connection, so remaking it at each frame made every frame contend for it.
        let mut notices = pin!(next_notice(control));
        loop {
            // Unbiased: a busy hub must not starve the client's frames (and pongs), nor
            // a busy client the hub.
            let step = tokio::select! {
                (notice, control) = &mut notices => {
                    notices.set(next_notice(control));
                    self.on_control(notice, &session).await
                }
                () = &mut expiry, if token_expiry.is_some() => {
                    let reason = "token_expired: the customer token expired; reconnect with a fresh one";
                    Err(End::Close(CLOSE_UNAUTHENTICATED, reason.into()))
                }
                () = &mut idle => {
                    let reason = format!("idle: no frame or pong for {} ms", limits.idle_timeout_ms);
                    Err(End::Close(CLOSE_GOING_AWAY, reason))
                }
                _ = ping.tick() => self.send(Message::Ping(Default::default())).await,
                frame = next_frame(&mut session.hub) => self.on_frame(frame, &mut session).await,
                message = self.socket.recv() => {
                    idle.as_mut().reset(Instant::now() + limits.idle_timeout());
                    self.on_client(message, &mut session).await
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    async fn on_control(&mut self, notice: Result<Control, RecvError>, session: &Session) -> Result<(), End> {
        let revoked = match notice {
            Ok(Control::Revoked(id)) => signed_by(session, &id).then(|| id.to_string()),
            Ok(Control::ShuttingDown) | Err(RecvError::Closed) => {
                return Err(End::Close(CLOSE_GOING_AWAY, "the server is shutting down".into()));
            }
            // Notices were missed: ask the store whether this connection's keys still stand.
            Err(RecvError::Lagged(_)) => revoked_key(&self.state, session).await?,
        };
        match revoked {
            Some(id) => Err(End::Close(CLOSE_FORBIDDEN, format!("key {id} was revoked"))),
            None => Ok(()),
        }
    }

    /// Sends `frame` and the frames already queued behind it (up to [`MAX_BURST`]) as one
    /// burst: each is fed to the socket, then one flush writes them together, so a plan change
    /// reaching many of this connection's subjects costs one write, not one per frame.
    async fn on_frame(
        &mut self,
        frame: Result<Arc<StreamFrame>, RouteError>,
        session: &mut Session,
    ) -> Result<(), End> {
        match frame {
            Ok(frame) => {
                let limit = self.state.config.stream.send_timeout();
                let mut next = Some(frame);
                let (mut fed, mut taken) = (0u64, 0usize);
                while let Some(frame) = next.take() {
                    if frame.project_id == session.auth.caller.project_id && session.subs.wants(&frame) {
                        Self::deadline(
                            limit,
                            SinkExt::feed(&mut self.socket, Message::Text(frame.frame.clone())),
                        )
                        .await?;
                        fed += 1;
                    }
                    taken += 1;
                    if taken < MAX_BURST {
                        next = session.hub.as_mut().and_then(Route::try_recv);
                    }
                }
                if fed > 0 {
                    Self::deadline(limit, SinkExt::flush(&mut self.socket)).await?;
                    self.frames_sent.increment(fed);
                }
                Ok(())
            }
            Err(RouteError::Lagged(missed)) => Err(End::Slow(format!(
                "slow consumer: fell {missed} messages behind; reconnect with since"
            ))),
            Err(RouteError::Closed) => Err(End::Close(CLOSE_GOING_AWAY, "the server is shutting down".into())),
        }
    }

    async fn on_client(
        &mut self,
        message: Option<Result<Message, axum::Error>>,
        session: &mut Session,
    ) -> Result<(), End> {
        let text = match message {
            None | Some(Ok(Message::Close(_))) => return Err(End::Gone),
            Some(Err(e)) => return Err(self.end_for_error(e)),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => return Ok(()),
            Some(Ok(Message::Text(text))) => Some(text),
            Some(Ok(Message::Binary(_))) => None,
        };
        if !self.ops.take() {
            let per_second = self.state.config.stream.ops_per_second;
            let message = format!("more than {per_second} operations per second on this connection");
            return self.refuse("rate_limited", message).await;
        }
        let caller = &session.auth.caller;
        let charged = match &caller.subject {
            Some(subject) => self.state.limits.check_subject(caller.project_id, subject),
            None => Ok(()),
        };
        if let Err(e) = charged.and_then(|()| self.state.limits.check(&caller.key_id)) {
            return self.refuse("rate_limited", e.message).await;
        }
        let Some(text) = text else {
            return self
                .refuse("bad_message", "binary frames are not supported; send JSON text".into())
                .await;
        };
        match serde_json::from_str::<ClientOp>(&text) {
            Err(e) => {
                let message = format!("expected {{\"op\":\"subscribe\"|\"unsubscribe\",…}}: {e}");
                self.refuse("bad_message", message).await
            }
            Ok(ClientOp::Auth { .. }) => {
                self.refuse("bad_message", "this connection is already authenticated".into())
                    .await
            }
            Ok(ClientOp::Subscribe { subjects, since }) => self.subscribe(session, subjects, since).await,
            Ok(ClientOp::Unsubscribe { subjects }) => {
                session.subs.remove(&subjects);
                if let Some(route) = &session.hub {
                    route.remove(&subjects);
                }
                let project = session.auth.caller.project_id;
                let seq = self.state.store.stream_seq(project).await.map_err(storage_failed)?;
                let subjects = session.subs.sorted();
                self.send_message(&ServerMessage::Subscribed { seq, subjects }).await
            }
        }
    }

    /// Adds subjects: with `since`, replays the retained messages after it (or answers
    /// `resync`), then answers `subscribed` with the seq live delivery continues after.
    async fn subscribe(&mut self, session: &mut Session, subjects: Vec<String>, since: Option<u64>) -> Result<(), End> {
        if subjects
            .iter()
            .any(|s| s.is_empty() || s.chars().count() > MAX_ATTRIBUTE_LEN)
        {
            let message = format!("every subject must be 1–{MAX_ATTRIBUTE_LEN} characters");
            return self.refuse("bad_message", message).await;
        }
        if let Some(own) = &session.auth.caller.subject
            && let Some(other) = subjects.iter().find(|s| *s != own)
        {
            let message = format!("this customer token is for subject {own:?}; it cannot subscribe to {other:?}");
            return self.refuse("forbidden", message).await;
        }
        let new = session.subs.new_subjects(&subjects);
        let max = self.state.config.stream.max_subjects;
        if session.subs.len() + new.len() > max {
            let message = format!(
                "at most {max} subjects per connection ({} subscribed, {} more asked)",
                session.subs.len(),
                new.len()
            );
            return self.refuse("too_many_subjects", message).await;
        }
        // Route live frames here from before the log is read: a frame committed meanwhile
        // is then in the log or in the queue (or both — its seq tells).
        let project = session.auth.caller.project_id;
        session
            .hub
            .get_or_insert_with(|| self.state.hub.route(project))
            .add(&new);
        let store = self.state.store.clone();
        let seq = match since {
            Some(since) if !session.subs.is_active() || !new.is_empty() => {
                let max_replay = self.state.config.stream.max_replay;
                match store
                    .stream_since(project, since, &new, max_replay)
                    .await
                    .map_err(storage_failed)?
                {
                    LogRead::Covered { frames, current } => {
                        for frame in frames.iter().filter(|f| session.subs.replays(f, &new)) {
                            self.send_text(frame.frame.clone()).await?;
                        }
                        current
                    }
                    LogRead::Resync { current } => {
                        self.send_message(&ServerMessage::Resync { seq: current }).await?;
                        current
                    }
                }
            }
            _ => store.stream_seq(project).await.map_err(storage_failed)?,
        };
        session.subs.add(new, seq);
        let subjects = session.subs.sorted();
        self.send_message(&ServerMessage::Subscribed { seq, subjects }).await
    }

    /// Answers a refused frame with `error`; one more than `stream.max_errors` in a burst
    /// closes the connection instead.
    async fn refuse(&mut self, code: &str, mut message: String) -> Result<(), End> {
        if !self.errors.take() {
            return Err(End::Close(
                CLOSE_POLICY,
                format!("too many refused frames (the last: {code})"),
            ));
        }
        truncate(&mut message, MAX_ERROR_MESSAGE);
        let error = ServerMessage::Error {
            code: code.to_owned(),
            message,
        };
        self.send_message(&error).await
    }

    async fn send_message(&mut self, message: &ServerMessage) -> Result<(), End> {
        let text = serde_json::to_string(message)
            .map_err(|e| End::Close(CLOSE_INTERNAL_ERROR, format!("a message does not serialize: {e}")))?;
        self.send_text(text.into()).await
    }

    async fn send_text(&mut self, text: Utf8Bytes) -> Result<(), End> {
        self.send(Message::Text(text)).await?;
        self.frames_sent.increment(1);
        Ok(())
    }

    /// Sends within `stream.send_timeout_ms`; a send that cannot complete marks a slow
    /// consumer.
    async fn send(&mut self, message: Message) -> Result<(), End> {
        let limit = self.state.config.stream.send_timeout();
        match timeout(limit, self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => Err(End::Slow(format!(
                "slow consumer: a send did not complete within {} ms",
                limit.as_millis()
            ))),
        }
    }

    /// Runs one socket operation (feed or flush) within `stream.send_timeout_ms`, as
    /// [`Self::send`] does.
    async fn deadline(limit: Duration, operation: impl Future<Output = Result<(), axum::Error>>) -> Result<(), End> {
        match timeout(limit, operation).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => Err(End::Slow(format!(
                "slow consumer: a send did not complete within {} ms",
                limit.as_millis()
            ))),
        }
    }

    fn end_for_error(&self, error: axum::Error) -> End {
        use tungstenite::Error as WsError;
        match error.into_inner().downcast::<WsError>().map(|e| *e) {
            Ok(WsError::Capacity(_)) => {
                let max = self.state.config.stream.max_frame_bytes;
                End::Close(CLOSE_TOO_BIG, format!("a frame or message is larger than {max} bytes"))
            }
            Ok(WsError::Utf8(_)) => End::Close(CLOSE_INVALID_DATA, "a text frame is not valid UTF-8".into()),
            Ok(WsError::Protocol(e)) => End::Close(CLOSE_PROTOCOL_ERROR, format!("WebSocket protocol error: {e}")),
            _ => End::Gone,
        }
    }

    /// Closes as `end` says: a close frame, then up to [`CLOSE_LINGER`] for the client's, so
    /// it reads the reason before the TCP connection goes.
    async fn finish(mut self, end: End) {
        let (code, mut reason, wait) = match end {
            End::Gone => {
                // If the client sent a close frame, reading once more flushes the reply
                // tungstenite queued for it.
                let _ = timeout(Duration::from_millis(100), self.socket.recv()).await;
                return;
            }
            End::Close(code, reason) => (code, reason, CLOSE_LINGER),
            End::Slow(reason) => {
                metrics::counter!(STREAM_SLOW_CONSUMERS).increment(1);
                tracing::info!(%reason, "closing a slow stream consumer");
                (CLOSE_POLICY, reason, Duration::from_millis(100))
            }
        };
        tracing::debug!(code, %reason, "closing a stream connection");
        truncate(&mut reason, MAX_CLOSE_REASON);
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let deadline = Instant::now() + wait;
        if timeout_at(deadline, self.socket.send(Message::Close(Some(frame))))
            .await
            .is_ok_and(|sent| sent.is_ok())
        {
            while let Ok(Some(Ok(message))) = timeout_at(deadline, self.socket.recv()).await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        }
    }
}

/// The connection's key, or the key that signed its token, if the store says it is revoked
/// (or gone).
async fn revoked_key(state: &AppState, session: &Session) -> Result<Option<String>, End> {
    let store = &state.store;
    let key_id = &session.auth.caller.key_id;
    let key = store.key(key_id).await.map_err(storage_failed)?;
    if key.is_none_or(|k| k.revoked_at.is_some()) {
        return Ok(Some(key_id.clone()));
    }
    if let Some(token) = &session.auth.token {
        let signer = store
            .token_signer(&token.signing_key_id)
            .await
            .map_err(storage_failed)?;
        if signer.is_none_or(|s| s.revoked) {
            return Ok(Some(token.signing_key_id.clone()));
        }
    }
    Ok(None)
}

/// The next control notice, with the receiver to wait for the one after.
async fn next_notice(mut control: Receiver<Control>) -> (Result<Control, RecvError>, Receiver<Control>) {
    let notice = control.recv().await;
    (notice, control)
}

/// The next frame from the hub, or never before the first subscribe.
async fn next_frame(hub: &mut Option<Route>) -> Result<Arc<StreamFrame>, RouteError> {
    match hub {
        Some(route) => route.recv().await,
        None => std::future::pending().await,
    }
}

/// Whether the session's key is `key_id`, or `key_id` signed its customer token.
fn signed_by(session: &Session, key_id: &str) -> bool {
    session.auth.caller.key_id == key_id || session.auth.token.as_ref().is_some_and(|t| t.signing_key_id == key_id)
}

/// Closes for credentials that were refused while connecting.
fn refused_credentials(error: ApiError) -> End {
    let code = match error.status.as_u16() {
        401 => CLOSE_UNAUTHENTICATED,
        403 => CLOSE_FORBIDDEN,
        429 => CLOSE_TRY_AGAIN_LATER,
        _ => CLOSE_INTERNAL_ERROR,
    };
    End::Close(code, format!("{}: {}", error.code, error.message))
}

fn storage_failed(error: StoreError) -> End {
    tracing::error!(%error, "stream storage read failed");
    End::Close(
        CLOSE_INTERNAL_ERROR,
        "the server could not read the stream log; reconnect".into(),
    )
}

/// The tokio instant of a Unix time in seconds (now, if it has passed).
fn instant_of_unix(secs: u64) -> Instant {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Instant::now() + Duration::from_secs(secs).saturating_sub(now)
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole() {
        let mut text = "ab€".to_owned();
        truncate(&mut text, 4);
        assert_eq!(text, "ab");
        let mut short = "ok".to_owned();
        truncate(&mut short, 123);
        assert_eq!(short, "ok");
    }

    #[test]
    fn refused_credentials_map_to_close_codes() {
        use axum::http::StatusCode;
        let close = |status, code| match refused_credentials(ApiError::new(status, code, "m")) {
            End::Close(c, reason) => (c, reason),
            other => panic!("{other:?}"),
        };
        assert_eq!(close(StatusCode::UNAUTHORIZED, "invalid_token").0, 4401);
        assert_eq!(close(StatusCode::FORBIDDEN, "forbidden").0, 4403);
        assert_eq!(close(StatusCode::TOO_MANY_REQUESTS, "rate_limited").0, 1013);
        assert!(
            close(StatusCode::UNAUTHORIZED, "token_expired")
                .1
                .starts_with("token_expired: ")
        );
    }
}
