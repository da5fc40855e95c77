//! The realtime stream session (DESIGN §5), sans I/O: every decision of the stream client,
//! for every runtime.
//!
//! A [`StreamSession`] is fed what happened — a subject cached or evicted, the socket
//! opened, a frame arrived, the connection ended, a timer fired, shutdown — each with the
//! time (Unix milliseconds) and, where a delay is drawn, a jitter draw in `[0, 1)`. It
//! answers with [`Action`]s ([`StreamSession::poll_action`]) and the time it must be woken
//! next ([`StreamSession::next_wake`]). The runtime opens sockets, sends the frames, sets
//! one timer and calls the application's callbacks; it decides nothing.
//!
//! What it decides:
//! - **what to subscribe**: every subject cached with an answer, up to [`MAX_SUBJECTS`]
//!   (the rest rely on their TTL), in frames under [`MAX_FRAME_BYTES`];
//! - **`since`**: the cache's last applied seq, lowered to the `as_of` of a subject cached
//!   while no socket was open (its answer is current to that seq, so a change made between
//!   its fetch and the subscription is replayed, not missed);
//! - **resync and refetch**: on `resync`, and on a reconnect that cannot resume (no seq
//!   applied yet), every cached subject is marked and handed out for refetch;
//! - **reconnects**: exponential backoff with full jitter ([`ReconnectPolicy`]), reset once
//!   a connection was answered with `subscribed`; what a close means ([`CloseMeaning`]):
//!   1000/1001 reconnect quietly, 1008 and network losses reconnect and are reported, 4401
//!   pauses and asks for fresh credentials ([`Action::RefreshCredentials`]), 4403 stops;
//! - **liveness**: a connection that does not open within `connect_timeout`, or hears
//!   nothing (the server pings every 20 s) for `idle_limit`, is abandoned as lost;
//! - **what the application is told**: connected / lost (a loss once per outage, not per
//!   failed attempt), `usage.threshold`, and failures to report.

use std::{
    collections::{BTreeSet, VecDeque},
    time::Duration,
};

use crate::{
    entitlement_cache::{EntitlementCache, StreamEffect, UsageThresholdEvent},
    error::Error,
    stream::{ClientOp, CloseMeaning, Disconnect, MAX_FRAME_BYTES, MAX_SUBJECTS, ReconnectPolicy, ServerMessage},
};

/// The client's limits and timers for a stream session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// Reconnect delays.
    pub reconnect: ReconnectPolicy,
    /// How long opening a connection may take (the client's `request_timeout`).
    pub connect_timeout: Duration,
    /// Silence after which an open connection is presumed dead: three of the server's
    /// 20 s pings missed (default 60 s).
    pub idle_limit: Duration,
    /// Most subjects subscribed on one connection (the server's limit, 1,000).
    pub max_subjects: usize,
    /// Largest frame sent (the server's limit, 64 KiB).
    pub max_frame_bytes: usize,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            reconnect: ReconnectPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            idle_limit: Duration::from_secs(60),
            max_subjects: MAX_SUBJECTS,
            max_frame_bytes: MAX_FRAME_BYTES,
        }
    }
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Nothing subscribed yet: no connection wanted.
    Idle,
    /// A connection is being opened.
    Connecting,
    /// The connection is open.
    Open,
    /// Lost; reconnecting after a backoff delay.
    Waiting,
    /// Refused (4401, or a server without the stream): trying again after a long pause.
    Paused,
    /// Revoked (4403) or shut down: no more connections.
    Stopped,
}

impl SessionState {
    /// The state's name in the vectors (`idle`, `connecting`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Idle => "idle",
            SessionState::Connecting => "connecting",
            SessionState::Open => "open",
            SessionState::Waiting => "waiting",
            SessionState::Paused => "paused",
            SessionState::Stopped => "stopped",
        }
    }
}

/// Something the runtime must do, in the order given.
#[derive(Debug, Clone)]
pub enum Action {
    /// Open a connection (upgrade `GET /v1/stream` with the client's credentials); report
    /// the result with [`StreamSession::opened`] or [`StreamSession::lost`].
    Connect,
    /// Send this text frame on the open connection.
    Send(String),
    /// Close the open connection with this code (a clean shutdown), then drop it.
    Close {
        /// The WebSocket close code.
        code: u16,
        /// The close reason.
        reason: &'static str,
    },
    /// Drop the connection, or the connection attempt, without a handshake: it is lost
    /// (silent past the idle limit, or not opened in time).
    Abandon,
    /// Tell the application the stream connected (`true`) or was lost (`false`), and why.
    ConnectionChange {
        /// Whether the stream is now connected.
        connected: bool,
        /// `connected`, or why it was lost.
        reason: String,
    },
    /// Fetch these subjects' entitlements again (most recently used first).
    Refetch(Vec<String>),
    /// Hand this to the application's `on_usage_threshold`.
    UsageThreshold(UsageThresholdEvent),
    /// The server's event schemas changed (their document now has this ETag).
    RefreshSchemas {
        /// The new ETag.
        etag: String,
    },
    /// The server did not accept the credentials (4401): obtain fresh ones (a customer
    /// token provider) before the next attempt. Without a way to do that, nothing to do:
    /// the session retries after its pause.
    RefreshCredentials,
    /// Report this failure to the application (`on_error`, rate-limited by the runtime).
    Report(Error),
}

/// A frame received on the open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A text frame: one server message.
    Text(&'a str),
    /// A ping, pong or binary frame: only a sign of life.
    Other,
}

/// The stream client's state. See the module docs.
#[derive(Debug, Clone)]
pub struct StreamSession {
    settings: SessionSettings,
    state: SessionState,
    subjects: BTreeSet<String>,
    /// The earliest `as_of` of the subjects added while no connection was open: the next
    /// connection's subscribe replays from there too.
    floor: Option<u64>,
    /// Reconnect attempts since the last healthy connection.
    attempt: u32,
    /// A connection opened before: the next one is a reconnect.
    connected_before: bool,
    /// The application was told of the current outage.
    reported_down: bool,
    /// The open connection answered a subscribe: it works, the backoff starts over.
    healthy: bool,
    /// When the current timer runs out: the connect deadline, the idle deadline (from the
    /// last frame heard) or the end of the reconnect delay.
    wake_at: Option<u64>,
    actions: VecDeque<Action>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The earlier of two resume points: a replay from it covers both (a replay from too early
/// only repeats messages, which the cache ignores by version).
pub fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl StreamSession {
    /// A session with nothing subscribed (state `idle`).
    pub fn new(settings: SessionSettings) -> Self {
        StreamSession {
            settings,
            state: SessionState::Idle,
            subjects: BTreeSet::new(),
            floor: None,
            attempt: 0,
            connected_before: false,
            reported_down: false,
            healthy: false,
            wake_at: None,
            actions: VecDeque::new(),
        }
    }

    /// The next thing to do, oldest first (`None`: nothing until the next input).
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`StreamSession::on_timer`] (Unix ms); `None`: no timer (idle, stopped).
    pub fn next_wake(&self) -> Option<u64> {
        self.wake_at
    }

    /// Where the session is.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Whether the connection is open (for `stats()`).
    pub fn is_open(&self) -> bool {
        self.state == SessionState::Open
    }

    /// The subscribed subjects, in order.
    pub fn subjects(&self) -> impl Iterator<Item = &str> {
        self.subjects.iter().map(String::as_str)
    }

    /// Reconnect attempts since the last healthy connection.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// `subject` now has a cached answer, current to stream seq `as_of` (the server's
    /// `Meterline-Stream-Seq`); `last_seq` is the cache's resume point. Subscribes it — at
    /// once when open — and starts the first connection.
    pub fn subscribe(&mut self, subject: &str, as_of: Option<u64>, last_seq: Option<u64>, now: u64) {
        if self.state == SessionState::Stopped
            || self.subjects.contains(subject)
            || self.subjects.len() >= self.settings.max_subjects
        {
            return;
        }
        self.subjects.insert(subject.to_owned());
        match self.state {
            SessionState::Open => {
                let op = ClientOp::Subscribe {
                    subjects: vec![subject.to_owned()],
                    since: earliest(last_seq, as_of),
                };
                self.send(&op);
            }
            SessionState::Idle => {
                self.floor = earliest(self.floor, as_of);
                self.connect(now);
            }
            _ => self.floor = earliest(self.floor, as_of),
        }
    }

    /// `subject` left the cache: unsubscribes it.
    pub fn unsubscribe(&mut self, subject: &str) {
        if self.subjects.remove(subject) && self.state == SessionState::Open {
            self.send(&ClientOp::Unsubscribe {
                subjects: vec![subject.to_owned()],
            });
        }
    }

    /// The connection asked for by [`Action::Connect`] opened at `now`. Subscribes every
    /// subject (with `since`); on a reconnect that cannot resume, hands out every cached
    /// subject for refetch first.
    pub fn opened(&mut self, now: u64, cache: &mut EntitlementCache) {
        if self.state != SessionState::Connecting {
            return;
        }
        self.state = SessionState::Open;
        self.healthy = false;
        self.reported_down = false;
        self.heard(now);
        self.actions.push_back(Action::ConnectionChange {
            connected: true,
            reason: "connected".into(),
        });
        let last_seq = cache.last_seq();
        let floor = self.floor.take();
        let since = if self.connected_before && last_seq.is_none() {
            // Nothing to resume from: what changed while disconnected is unknown.
            cache.mark_all_for_refetch();
            let due = cache.take_refetch_due();
            if !due.is_empty() {
                self.actions.push_back(Action::Refetch(due));
            }
            None
        } else {
            earliest(last_seq, floor)
        };
        self.connected_before = true;
        for frame in subscribe_frames(&self.subjects, since, self.settings.max_frame_bytes) {
            self.actions.push_back(Action::Send(frame));
        }
    }

    /// A frame arrived at `now` on the open connection. A text frame is applied to `cache`
    /// (`counted_through`: see [`EntitlementCache::apply`]).
    pub fn received(&mut self, frame: Frame<'_>, now: u64, cache: &mut EntitlementCache, counted_through: u64) {
        if self.state != SessionState::Open {
            return;
        }
        self.heard(now);
        let Frame::Text(text) = frame else {
            return;
        };
        let message = match ServerMessage::from_frame(text) {
            Ok(message) => message,
            Err(e) => {
                self.actions.push_back(Action::Report(Error::Stream {
                    code: "bad_message".into(),
                    message: format!("unreadable stream message: {e}"),
                }));
                return;
            }
        };
        self.healthy |= matches!(message, ServerMessage::Subscribed { .. });
        match cache.apply(message, now, counted_through) {
            StreamEffect::None | StreamEffect::Updated { .. } => {}
            StreamEffect::UsageThreshold(event) => self.actions.push_back(Action::UsageThreshold(event)),
            StreamEffect::SchemaUpdated { etag } => self.actions.push_back(Action::RefreshSchemas { etag }),
            StreamEffect::Resync => {
                let due = cache.take_refetch_due();
                if !due.is_empty() {
                    self.actions.push_back(Action::Refetch(due));
                }
            }
            StreamEffect::Error { code, message } => {
                self.actions.push_back(Action::Report(Error::Stream { code, message }))
            }
        }
    }

    /// The connection (or the attempt to open it) ended at `now`: `why`, and `reason` in
    /// words. `jitter` is a uniform draw in `[0, 1)` for the reconnect delay.
    pub fn lost(&mut self, why: Disconnect, reason: &str, now: u64, jitter: f64) {
        let was_open = match self.state {
            SessionState::Open => true,
            SessionState::Connecting => false,
            _ => return,
        };
        if was_open {
            self.reported_down = false;
        }
        if !self.reported_down {
            self.actions.push_back(Action::ConnectionChange {
                connected: false,
                reason: reason.to_owned(),
            });
            self.reported_down = true;
        }
        let meaning = why.meaning();
        if let Some(err) = report_of(why, meaning, reason) {
            self.actions.push_back(Action::Report(err));
        }
        if self.healthy {
            self.attempt = 0;
        }
        self.healthy = false;
        match meaning {
            CloseMeaning::Revoked => {
                self.state = SessionState::Stopped;
                self.wake_at = None;
                return;
            }
            CloseMeaning::Unauthenticated => self.actions.push_back(Action::RefreshCredentials),
            _ => {}
        }
        let delay = self.settings.reconnect.delay(why, self.attempt, jitter);
        self.attempt = self.attempt.saturating_add(1);
        self.state = match meaning {
            CloseMeaning::Unauthenticated | CloseMeaning::Unsupported => SessionState::Paused,
            _ => SessionState::Waiting,
        };
        self.wake_at = Some(now.saturating_add(ms(delay)));
    }

    /// The timer of [`StreamSession::next_wake`] ran out (it may be called early or late:
    /// only what is due at `now` happens). `jitter` as for [`StreamSession::lost`].
    pub fn on_timer(&mut self, now: u64, jitter: f64) {
        let Some(at) = self.wake_at else { return };
        if now < at {
            return;
        }
        match self.state {
            SessionState::Waiting | SessionState::Paused => self.connect(now),
            SessionState::Connecting => {
                self.actions.push_back(Action::Abandon);
                let after = self.settings.connect_timeout;
                self.lost(
                    Disconnect::Network,
                    &format!("connecting timed out after {after:?}"),
                    now,
                    jitter,
                );
            }
            SessionState::Open => {
                self.actions.push_back(Action::Abandon);
                let idle = self.settings.idle_limit;
                self.lost(
                    Disconnect::Network,
                    &format!("nothing from the server for {idle:?}"),
                    now,
                    jitter,
                );
            }
            SessionState::Idle | SessionState::Stopped => self.wake_at = None,
        }
    }

    /// The client switched users (`identify()` / `reset()`): every subject is dropped and an
    /// open connection closed (it was authenticated as the previous user); the next
    /// subscription connects anew, with the new credentials, as a first connection.
    pub fn forget_subjects(&mut self) {
        match self.state {
            SessionState::Open => {
                self.actions.push_back(Action::Close {
                    code: 1000,
                    reason: "identity changed",
                });
                self.actions.push_back(Action::ConnectionChange {
                    connected: false,
                    reason: "identity changed".to_owned(),
                });
            }
            SessionState::Connecting => self.actions.push_back(Action::Abandon),
            SessionState::Stopped => return,
            _ => {}
        }
        self.subjects.clear();
        self.floor = None;
        self.attempt = 0;
        self.connected_before = false;
        self.reported_down = false;
        self.healthy = false;
        self.state = SessionState::Idle;
        self.wake_at = None;
    }

    /// Fresh credentials came after [`Action::RefreshCredentials`]: a session paused for
    /// them reconnects now instead of after its pause (otherwise nothing changes).
    pub fn credentials_refreshed(&mut self, now: u64) {
        if self.state == SessionState::Paused {
            self.connect(now);
        }
    }

    /// The client shuts down: closes an open connection with 1000 (and tells the
    /// application it is no longer connected, as every other end of a connection does) and
    /// stops.
    pub fn close(&mut self) {
        match self.state {
            SessionState::Open => {
                self.actions.push_back(Action::Close {
                    code: 1000,
                    reason: "client shutdown",
                });
                self.actions.push_back(Action::ConnectionChange {
                    connected: false,
                    reason: "client shutdown".to_owned(),
                });
            }
            SessionState::Connecting => self.actions.push_back(Action::Abandon),
            _ => {}
        }
        self.state = SessionState::Stopped;
        self.wake_at = None;
    }

    fn connect(&mut self, now: u64) {
        self.state = SessionState::Connecting;
        self.wake_at = Some(now.saturating_add(ms(self.settings.connect_timeout)));
        self.actions.push_back(Action::Connect);
    }

    fn heard(&mut self, now: u64) {
        self.wake_at = Some(now.saturating_add(ms(self.settings.idle_limit)));
    }

    fn send(&mut self, op: &ClientOp) {
        if let Ok(frame) = serde_json::to_string(op) {
            self.actions.push_back(Action::Send(frame));
        }
    }
}

/// The failure to report for a loss (`None`: a clean close, nothing to report).
fn report_of(why: Disconnect, meaning: CloseMeaning, reason: &str) -> Option<Error> {
    Some(match meaning {
        CloseMeaning::Normal => return None,
        CloseMeaning::Unauthenticated => Error::Unauthorized {
            message: format!("stream: {reason}"),
        },
        CloseMeaning::Revoked => Error::Forbidden {
            message: format!("stream: {reason}"),
        },
        CloseMeaning::Unsupported | CloseMeaning::Policy => Error::Stream {
            code: if meaning == CloseMeaning::Unsupported {
                "stream_unavailable".into()
            } else {
                "stream_closed".into()
            },
            message: reason.to_owned(),
        },
        CloseMeaning::Broken => match why {
            Disconnect::Network => Error::Network(format!("stream: {reason}")),
            Disconnect::Closed(_) | Disconnect::Refused(_) => Error::Stream {
                code: "stream_closed".into(),
                message: reason.to_owned(),
            },
        },
    })
}

/// Subscribe frames for every subject, each at most `max_frame_bytes` long.
pub fn subscribe_frames(subjects: &BTreeSet<String>, since: Option<u64>, max_frame_bytes: usize) -> Vec<String> {
    let budget = max_frame_bytes.saturating_sub(256).max(1);
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
mod tests;
