//! The in-process fan-out of stream messages: producers append to the log in their
//! transaction, commit, then [`PublishGuard::publish`]; every open stream connection holds a
//! [`broadcast::Receiver`] and filters by project and subject.
//!
//! [`Hub::sequence`] serialises "append → commit → publish" across producers, so frames
//! reach the broadcast channel in seq order: a client that saw seq N has seen every earlier
//! message for its subjects, which is what makes `since` resumes exact.

use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard, broadcast};

pub use crate::store::StreamFrame;

/// Fan-out of committed stream frames to the open connections.
#[derive(Debug)]
pub struct Hub {
    tx: broadcast::Sender<Arc<StreamFrame>>,
    order: Mutex<()>,
}

impl Hub {
    /// A hub whose receivers may fall `capacity` frames behind before they lag (a lagging
    /// receiver is a slow consumer and is closed with 1008).
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Hub {
            tx,
            order: Mutex::new(()),
        }
    }

    /// Take before appending to the stream log and hold until the frames are published.
    pub async fn sequence(&self) -> PublishGuard<'_> {
        PublishGuard {
            hub: self,
            _order: self.order.lock().await,
        }
    }

    /// A receiver of every frame published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StreamFrame>> {
        self.tx.subscribe()
    }

    /// How many connections are receiving.
    pub fn receivers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// Holds the hub's publish order; see [`Hub::sequence`].
#[derive(Debug)]
pub struct PublishGuard<'a> {
    hub: &'a Hub,
    _order: MutexGuard<'a, ()>,
}

impl PublishGuard<'_> {
    /// Sends committed frames, in the order given (their seq order), and releases the order.
    pub fn publish(self, frames: Vec<StreamFrame>) {
        for frame in frames {
            // No receivers is not an error: nobody is connected.
            let _ = self.hub.tx.send(Arc::new(frame));
        }
    }
}
