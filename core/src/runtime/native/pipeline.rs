//! The native runtime's hold on the [`Outbox`]: one mutex shared by `track()` callers and
//! the sender, the wake-ups (a condvar for blocking callers, a `Notify` for async ones and
//! one for the sender task), the monotonic clock the outbox reads, and the disk spool with
//! the map from the outbox's sequence numbers to the spool's keys. Every batching, retry
//! and drop decision is the outbox's.

use std::{
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::spool::{Recovered, Spool};
use crate::{
    error::Error,
    outbox::{Outbox, OutboxSettings, Pushed, Refusal},
    stats::Stats,
};

/// The outbox and the spool, guarded by one mutex.
#[derive(Debug)]
pub(crate) struct State {
    pub outbox: Outbox,
    /// The disk spool, if any, under the queue's lock so `push` writes to it without a
    /// second lock; `None` once [`Pipeline::close_spool`] released it.
    spool: Option<Arc<SpoolKeys>>,
}

impl State {
    /// The smallest sequence number not yet settled (see [`Outbox::low_watermark`]).
    pub fn low_watermark(&self) -> u64 {
        self.outbox.low_watermark()
    }
}

/// What became of a pushed event.
#[derive(Debug)]
pub(crate) enum Accepted {
    /// Queued as this sequence number.
    Queued(u64),
    /// Dropped by the overflow policy.
    Refused(Refusal),
}

#[derive(Debug)]
pub(crate) struct Pipeline {
    state: Mutex<State>,
    /// The outbox's clock starts here.
    epoch: Instant,
    progress: Condvar,
    progress_async: tokio::sync::Notify,
    pub wake_sender: tokio::sync::Notify,
    /// Turns true when shutdown's deadline passed: in-flight sends stop at once and what is
    /// left is given up.
    aborted: tokio::sync::watch::Sender<bool>,
    /// Events left in the spool when it was closed (what `spool_length` reports after).
    spool_left: AtomicU64,
    /// How often the sender woke up (tests check that an idle one sleeps).
    pub wakeups: AtomicU64,
}

/// The disk spool with the map from the pipeline's sequence numbers to its keys: the
/// replayed events keep their old keys (which may have gaps), new ones continue after the
/// largest key found.
#[derive(Debug)]
struct SpoolKeys {
    spool: Spool,
    /// Keys of sequence numbers `0..replayed.len()`.
    replayed: Vec<u64>,
    /// Key of sequence number `s ≥ replayed.len()` is `base + s`.
    base: u64,
}

impl SpoolKeys {
    fn key(&self, seq: u64) -> u64 {
        usize::try_from(seq)
            .ok()
            .and_then(|i| self.replayed.get(i).copied())
            .unwrap_or(self.base + seq)
    }
}

impl Pipeline {
    pub fn new(settings: OutboxSettings) -> Self {
        Pipeline {
            state: Mutex::new(State {
                outbox: Outbox::new(settings, 0),
                spool: None,
            }),
            epoch: Instant::now(),
            progress: Condvar::new(),
            progress_async: tokio::sync::Notify::new(),
            wake_sender: tokio::sync::Notify::new(),
            aborted: tokio::sync::watch::Sender::new(false),
            spool_left: AtomicU64::new(0),
            wakeups: AtomicU64::new(0),
        }
    }

    /// Milliseconds since the pipeline started: the outbox's clock.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The instant of outbox time `ms`.
    pub fn instant_at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Attaches the disk spool and queues what it held (oldest first, ahead of anything
    /// new), under the same bound and overflow policy as new events. Events the bound
    /// refuses are removed from the spool and counted as dropped (by the outbox).
    pub fn attach_spool(&mut self, spool: Spool, recovered: Recovered) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let mut replayed = Vec::with_capacity(recovered.events.len());
        let mut gone = Vec::new();
        for (key, event) in recovered.events {
            match state.outbox.restore(event) {
                Some((_, None)) => replayed.push(key),
                Some((_, Some(evicted_seq))) => {
                    let evicted = usize::try_from(evicted_seq).map_or(key, |i| replayed[i]);
                    gone.push(evicted);
                    replayed.push(key);
                }
                None => gone.push(key),
            }
        }
        if !gone.is_empty() {
            tracing::warn!(
                events = gone.len(),
                "the spool held more events than max_queue_size; dropped by the overflow policy"
            );
            spool.remove(gone);
        }
        let base = recovered.next_key.saturating_sub(replayed.len() as u64);
        state.spool = Some(Arc::new(SpoolKeys { spool, replayed, base }));
    }

    /// Removes settled events `first_seq..first_seq + count` from the spool.
    pub fn unspool(&self, first_seq: u64, count: u64) {
        // The store is written outside the queue's lock, so `track()` callers never wait on it.
        let spool = self.lock().spool.clone();
        if let Some(s) = spool {
            s.spool.remove((first_seq..first_seq + count).map(|seq| s.key(seq)));
        }
    }

    /// Closes the spool (its store and the directory's lock), so another client can open
    /// the directory at once; `spool_length` keeps reporting what was left in it. Called
    /// once the worker stopped (nothing else uses the spool then).
    pub fn close_spool(&self) {
        let spool = self.lock().spool.take();
        if let Some(s) = spool {
            self.spool_left.store(s.spool.len(), Ordering::Relaxed);
            // Dropped outside the queue's lock: fjall persists its journal and stops its
            // background threads here.
            drop(s);
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the outbox half-updated (every update
        // is a single call), so a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues one serialized event (and writes it to the spool, if any). Under `block`
    /// waits up to `block_timeout` for room. Fails when the spool cannot store the event.
    pub fn push(&self, event: Vec<u8>, block_timeout: Duration) -> Result<Accepted, Error> {
        let mut state = self.lock();
        let mut outcome = state.outbox.push(event, || self.now_ms());
        if let Pushed::Full(_) = outcome {
            let deadline = Instant::now() + block_timeout;
            while let Pushed::Full(event) = outcome {
                let now = Instant::now();
                if now >= deadline {
                    outcome = Pushed::Dropped(state.outbox.refuse(self.now_ms()));
                    break;
                }
                state = self
                    .progress
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                outcome = state.outbox.push(event, || self.now_ms());
            }
        }
        let (seq, wake) = match outcome {
            Pushed::Queued { seq, wake } => (seq, wake),
            Pushed::Evicted { seq, evicted_seq } => {
                if let Some(s) = &state.spool {
                    s.spool.remove([s.key(evicted_seq)]);
                }
                (seq, false)
            }
            Pushed::Dropped(refusal) => return Ok(Accepted::Refused(refusal)),
            Pushed::Full(_) => unreachable!("the block loop ends with a push or a refusal"),
        };
        if let Some(s) = &state.spool {
            // Under the lock: the sender cannot take (and unspool) the event before it is
            // written, and keys stay in sequence order.
            let written = match state.outbox.newest() {
                Some(event) => s.spool.insert(s.key(seq), event),
                None => Ok(()),
            };
            if let Err(e) = written {
                state.outbox.unpush();
                return Err(e);
            }
        }
        drop(state);
        if wake {
            self.wake_sender.notify_one();
        }
        Ok(Accepted::Queued(seq))
    }

    /// Discards what is queued and waiting for a retry (`opt_out()`), from the spool too.
    /// Returns how many events it discarded.
    pub fn discard(&self) -> u64 {
        let ranges = self.lock().outbox.discard();
        for &(first_seq, count) in &ranges {
            self.unspool(first_seq, count);
        }
        self.notify_progress();
        ranges.iter().map(|&(_, count)| count).sum()
    }

    /// Gives up on everything not yet delivered (shutdown's deadline passed).
    pub fn abort(&self) {
        self.lock().outbox.abort();
        self.aborted.send_replace(true);
        self.wake_sender.notify_one();
        self.notify_progress();
    }

    /// Resolves once [`Pipeline::abort`] was called (at once if it already was).
    pub async fn aborted(&self) {
        let mut rx = self.aborted.subscribe();
        let _ = rx.wait_for(|aborted| *aborted).await;
    }

    pub fn notify_progress(&self) {
        self.progress.notify_all();
        self.progress_async.notify_waiters();
    }

    /// Asks for everything queued now to be sent (cutting a retry's backoff short); returns
    /// the sequence number to wait for.
    pub fn request_flush(&self) -> u64 {
        let target = self.lock().outbox.request_flush(self.now_ms());
        self.wake_sender.notify_one();
        target
    }

    /// `shutdown()`: no more events; send everything, then stop. Returns the sequence
    /// number to wait for.
    pub fn drain(&self) -> u64 {
        let target = self.lock().outbox.drain(self.now_ms());
        self.wake_sender.notify_one();
        target
    }

    /// Blocks until every event before `target` is settled, or the timeout passes.
    pub fn wait_settled(&self, target: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while state.low_watermark() < target {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .progress
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Async form of [`Pipeline::wait_settled`]; never blocks the caller's executor.
    pub async fn wait_settled_async(&self, target: u64, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.progress_async.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.lock().low_watermark() >= target {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    pub fn snapshot(&self) -> Stats {
        let state = self.lock();
        let stats = state.outbox.stats();
        let spool_length = state
            .spool
            .as_ref()
            .map_or_else(|| self.spool_left.load(Ordering::Relaxed), |s| s.spool.len());
        drop(state);
        Stats { spool_length, ..stats }
    }
}
