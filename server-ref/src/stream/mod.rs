//! The realtime stream (DESIGN §5): `GET /v1/stream` ([`socket`]) delivers the messages
//! producers append to the retained log (in `store`) and publish on the [`hub`].
//!
//! - [`socket`]: the upgrade and the three ways to authenticate;
//! - [`connection`]: one connection's loop — subscriptions, replay, pings, limits, closes;
//! - [`subscription`]: which frames a connection wants (pure);
//! - [`upkeep`]: pruning the retained log and noticing revocations made by the CLI;
//! - [`StreamControl`]: revocations and shutdown broadcast to every open connection.

pub mod config;
pub mod connection;
pub mod follow;
pub mod hub;
pub mod socket;
pub mod subscription;
pub mod upkeep;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

pub use config::StreamConfig;
pub use hub::{Hub, PublishGuard};
use tokio::sync::broadcast;

/// Open stream connections (gauge).
pub const STREAM_CONNECTIONS: &str = "meterline_stream_connections";
/// Messages sent to stream clients (data frames: messages, `subscribed`, `error` …).
pub const STREAM_FRAMES_SENT: &str = "meterline_stream_frames_sent_total";
/// Connections closed because they could not keep up (hub lag or a send timeout).
pub const STREAM_SLOW_CONSUMERS: &str = "meterline_stream_slow_consumer_closes_total";

/// Describes the stream and rate-limit metrics (called once by `health::install_metrics`).
pub fn describe_metrics() {
    metrics::describe_gauge!(STREAM_CONNECTIONS, "Open /v1/stream connections.");
    metrics::describe_counter!(STREAM_FRAMES_SENT, "Text frames sent to stream clients.");
    metrics::describe_counter!(
        STREAM_SLOW_CONSUMERS,
        "Stream connections closed with 1008 for not keeping up."
    );
    metrics::describe_counter!(
        crate::ratelimit::RATE_LIMITED,
        "Requests and stream operations refused by the per-key rate limit."
    );
    metrics::gauge!(STREAM_CONNECTIONS).set(0.0);
    metrics::counter!(STREAM_FRAMES_SENT).increment(0);
    metrics::counter!(STREAM_SLOW_CONSUMERS).increment(0);
    metrics::counter!(crate::ratelimit::RATE_LIMITED).increment(0);
}

/// A notice every open connection receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// This key was revoked: connections authenticated by it, or by a customer token it
    /// signed, close with 4403.
    Revoked(Arc<str>),
    /// The server is stopping: every connection closes with 1001.
    ShuttingDown,
}

/// Revocations and shutdown for the open connections, and their count.
#[derive(Debug)]
pub struct StreamControl {
    tx: broadcast::Sender<Control>,
    open: AtomicUsize,
}

impl Default for StreamControl {
    fn default() -> Self {
        // A connection that misses notices (lags) re-reads its keys from the store.
        let (tx, _) = broadcast::channel(256);
        StreamControl {
            tx,
            open: AtomicUsize::new(0),
        }
    }
}

impl StreamControl {
    /// Closes the streams of `key_id` (and of customer tokens it signed) with 4403.
    pub fn key_revoked(&self, key_id: &str) {
        let _ = self.tx.send(Control::Revoked(key_id.into()));
    }

    /// Closes every stream with 1001 (the server is stopping).
    pub fn shutting_down(&self) {
        let _ = self.tx.send(Control::ShuttingDown);
    }

    /// Open connections.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn listen(&self) -> broadcast::Receiver<Control> {
        self.tx.subscribe()
    }

    /// Counts a new connection, or `None` when `max` are open already.
    fn admit(self: &Arc<Self>, max: usize) -> Option<ConnectionSlot> {
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .is_ok();
        admitted.then(|| {
            metrics::gauge!(STREAM_CONNECTIONS).increment(1.0);
            ConnectionSlot(self.clone())
        })
    }
}

/// One counted connection; dropping it uncounts it.
#[derive(Debug)]
struct ConnectionSlot(Arc<StreamControl>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!(STREAM_CONNECTIONS).decrement(1.0);
    }
}
