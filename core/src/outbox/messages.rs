//! What the outbox and its runtime tell each other: a push's outcome, a refused event's
//! reports, what to send, the server's answer and what became of a batch.

use std::time::Duration;

use crate::retry::Outcome;

/// What happened to a pushed event.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued as `seq`. `wake`: the sender should look now (a batch filled up, or the queue
    /// was empty and so the sender may be sleeping with no timer).
    Queued {
        /// The event's sequence number.
        seq: u64,
        /// Whether to wake the sender.
        wake: bool,
    },
    /// Queued as `seq`; the oldest event, `evicted_seq`, was dropped for it (`drop_oldest`).
    Evicted {
        /// The event's sequence number.
        seq: u64,
        /// The dropped event's sequence number.
        evicted_seq: u64,
    },
    /// The queue is full under `block`: the caller may wait for progress and push the event
    /// again, or give up with [`Outbox::refuse`](super::Outbox::refuse).
    Full(Vec<u8>),
    /// Not queued: the overflow policy dropped it (counted in `dropped`).
    Dropped(Refusal),
}

/// A refused event: what the runtime tells whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// `reject`: `track()` fails with `queue_full`. Otherwise it returns no id.
    pub raise: bool,
    /// Report a `queue_full` error to the error callback (at most once per
    /// [`DROP_REPORT_WINDOW_MS`](super::DROP_REPORT_WINDOW_MS)).
    pub report: bool,
    /// Log a warning, with how many drops went unlogged since the last one (at most once per
    /// [`DROP_WARNING_WINDOW_MS`](super::DROP_WARNING_WINDOW_MS)).
    pub warn: Option<u64>,
}

/// What to send now.
#[derive(Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// A new batch: its first sequence number and events. The runtime keeps the encoded
    /// body until the batch settles (a retry sends the same body).
    Send {
        /// The first event's sequence number (the batch's name from now on).
        first_seq: u64,
        /// The serialized events, oldest first.
        events: Vec<Vec<u8>>,
    },
    /// Send the batch `first_seq` again.
    Resend {
        /// The batch.
        first_seq: u64,
        /// Retries already made for it.
        retry: u32,
    },
}

/// What the server (or the attempt) answered for a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    /// 202 with per-event results.
    Counted {
        /// Events stored for the first time.
        accepted: u64,
        /// Events the server already had.
        duplicates: u64,
        /// Events refused (reported one by one by the runtime; never retried).
        rejected: u64,
    },
    /// Another 2xx, without counts: every event counts as sent.
    Delivered,
    /// The attempt failed: a connection failure, a timeout or an error status.
    Failed(Outcome<'a>),
    /// A 2xx that did not arrive whole or could not be read
    /// ([`Acknowledgement::Unclear`](super::Acknowledgement::Unclear)): the server may have
    /// stored the batch or not. Sent again with the same ids, as after a connection failure;
    /// nothing is counted as delivered.
    Unclear,
    /// The body could not be encoded: sending it again cannot help.
    Unsendable,
    /// Shutdown's deadline cut the attempt off.
    Aborted,
}

impl Answer<'_> {
    /// Whether the batch is done with whatever the retry policy says: delivered, or failed
    /// for good (a 4xx other than 408/429, an unencodable body). A runtime with a store
    /// removes such a batch from it before handing the answer to
    /// [`Outbox::answer`](super::Outbox::answer), so a caller woken by the settle never
    /// finds it stored; any other batch stays stored (it may be sent again, now or at the
    /// next start).
    pub fn leaves_store(&self) -> bool {
        match *self {
            Answer::Counted { .. } | Answer::Delivered | Answer::Unsendable => true,
            Answer::Failed(outcome) => super::is_permanent(outcome),
            Answer::Unclear | Answer::Aborted => false,
        }
    }
}

/// What became of a batch after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The server answered for every event: remove the batch from any store.
    Delivered {
        /// Events in the batch.
        count: u64,
    },
    /// It will be sent again (counted in `retried`); nothing to do now.
    Retry {
        /// Retries made for it so far, this one included.
        retry: u32,
        /// The wait the policy chose (the batch may wait longer behind an outage's probe).
        delay: Duration,
    },
    /// Given up on. `kept`: it stays stored for the next start (not dropped); otherwise it
    /// is counted as dropped and removed from any store. `permanent`: the failure cannot
    /// pass by sending it again (a 4xx other than 408/429, an unencodable body).
    GaveUp {
        /// Events in the batch.
        count: u64,
        /// Whether it stays stored.
        kept: bool,
        /// Whether the failure is permanent.
        permanent: bool,
    },
}
