//! The end of a client: `shutdown()` (waits, bounded) and the last handle's drop (never
//! waits: the final flush is handed to the worker).

use std::{
    sync::{Arc, Mutex, atomic::Ordering},
    thread::JoinHandle,
    time::Duration,
};

use super::Shared;
use crate::error::Error;

/// How long the worker goes on delivering after the last handle was dropped without
/// `shutdown()`; then it gives up what is left (a spool keeps it for the next start).
pub(crate) const DROP_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Owns the worker thread; its `Drop` is the last-handle shutdown.
pub(crate) struct Lifecycle {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Lifecycle {
    pub(crate) fn new(shared: Arc<Shared>, worker: JoinHandle<()>) -> Self {
        Lifecycle {
            shared,
            worker: Mutex::new(Some(worker)),
        }
    }

    fn take_worker(&self) -> Option<JoinHandle<()>> {
        self.worker.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Stops accepting events, delivers what is queued within `timeout`, stops the worker
    /// and closes the spool (see `Client::shutdown`).
    pub(crate) fn shutdown(&self, timeout: Duration) -> Result<(), Error> {
        let Some(worker) = self.take_worker() else {
            return Ok(());
        };
        let pipeline = &self.shared.pipeline;
        self.shared.closed.store(true, Ordering::Release);
        let target = pipeline.drain();
        let settled = pipeline.wait_settled(target, timeout);
        if !settled {
            pipeline.abort();
        }
        if worker.join().is_err() {
            tracing::error!("the meterline worker thread panicked");
        }
        pipeline.close_spool();
        if settled {
            Ok(())
        } else {
            let stats = pipeline.snapshot();
            tracing::warn!(
                dropped = stats.dropped,
                spooled = stats.spool_length,
                "shutdown timed out; undelivered events were dropped (or stay in the spool for the next start)"
            );
            Err(Error::Timeout(timeout))
        }
    }
}

impl Drop for Lifecycle {
    /// The last handle went without `shutdown()`: stop accepting events and let the worker
    /// deliver what is left — for up to [`DROP_FLUSH_TIMEOUT`], on its own thread — without
    /// waiting for it here (the dropping thread may be an async executor's).
    fn drop(&mut self) {
        let Some(worker) = self.take_worker() else {
            return;
        };
        let pipeline = &self.shared.pipeline;
        self.shared.closed.store(true, Ordering::Release);
        let target = pipeline.drain();
        if pipeline.lock().low_watermark() >= target {
            // Nothing left to send: release the spool's directory now, so a new client can
            // open it at once (the worker no longer touches it).
            pipeline.close_spool();
        } else {
            let shared = self.shared.clone();
            self.shared.runtime.spawn(async move {
                tokio::time::sleep(DROP_FLUSH_TIMEOUT).await;
                shared.pipeline.abort();
            });
        }
        // Detached: the worker stops once the outbox is drained (or aborted) and then closes
        // the spool itself.
        drop(worker);
    }
}
