//! The outbox: every decision between `track()` and the server's answer, without I/O
//! (DESIGN §1, §7). A runtime — native threads, a browser's timers — only drives it: it
//! pushes events, asks [`Outbox::poll`] what to send, sends it, hands the server's answer to
//! [`Outbox::answer`], and sleeps until [`Outbox::next_wake`] (never, when idle).
//!
//! Every accepted event gets a sequence number. Batches leave the queue in order and are
//! remembered by their first sequence number until the server answered for them. The *low
//! watermark* — the smallest sequence number not yet settled (sent, duplicate, rejected or
//! dropped) — is the front of the queue or the oldest batch in flight, whichever is smaller;
//! `flush()` waits until it passes the sequence number that was next when it was called. A
//! runtime with a disk store maps sequence numbers to its own keys: the outbox does not know
//! the store, only whether undelivered batches stay in it ([`OutboxSettings::keep_undelivered`]).
//!
//! While the server cannot be reached (or answers a retryable failure) the outbox is in an
//! *outage*: one batch at a time probes the server — after the retry policy's backoff, capped
//! at [`MAX_PROBE_INTERVAL`] for connection failures, or after the server's `Retry-After` —
//! and the rest waits. The first success ends the outage and releases everything at once (up
//! to `max_in_flight`). `flush()` and `shutdown()` cut the backoff short: one probe at once.
//!
//! Times are milliseconds on a monotonic clock the runtime chooses (the vectors use their
//! own); a `Retry-After` date is resolved with the wall-clock time given to [`Outbox::answer`].

mod acknowledgement;
pub mod conformance;
mod messages;
mod page;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, SystemTime},
};

pub use self::{
    acknowledgement::Acknowledgement,
    messages::{Answer, Dispatch, Pushed, Refusal, Settled},
};
use crate::{
    config::OverflowPolicy,
    queue::{BatchRules, EventQueue, Push},
    retry::{Outcome, RetryDecision, RetryPolicy},
    stats::Stats,
    throttle::ErrorThrottle,
};

/// Ceiling of the backoff between two probes while connections to the server fail (the
/// delay is a full-jitter draw below it), so a server that is back is found within this
/// long and the queue delivered within 5 s of its return. Answers with a status back off by
/// the retry policy alone, and a `Retry-After` is honoured as given.
pub const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(4);

/// A dropped event is reported to the error callback at most once per this many ms.
pub const DROP_REPORT_WINDOW_MS: u64 = 1_000;

/// A dropped event is logged as a warning at most once per this many ms.
pub const DROP_WARNING_WINDOW_MS: u64 = 60_000;

/// What the outbox is built with (from [`Config`](crate::Config)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxSettings {
    /// When a batch is due and how large it may be.
    pub rules: BatchRules,
    /// `max_queue_size`.
    pub capacity: usize,
    /// What a full queue does with a new event.
    pub overflow: OverflowPolicy,
    /// Batch requests sent at once (outside an outage).
    pub max_in_flight: usize,
    /// Backoff of failed sends.
    pub retry: RetryPolicy,
    /// Batches given up on for a failure that may pass (retries exhausted, shutdown's
    /// deadline) stay stored for the next start instead of being dropped: the runtime has a
    /// disk spool.
    pub keep_undelivered: bool,
}

/// A batch the server has not answered for yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Batch {
    count: usize,
    retries: u32,
    sending: bool,
}

/// The server is failing: one probe at a time, at `probe_at` at the earliest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outage {
    probe_at: u64,
    /// The server's `Retry-After` end: `flush()` does not cut the wait short before it.
    not_before: u64,
    /// The batch probing now.
    probing: Option<u64>,
}

/// Monotonic counters behind [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    enqueued: u64,
    sent: u64,
    duplicates: u64,
    rejected: u64,
    dropped: u64,
    retried: u64,
    batches: u64,
}

/// The queue, the batches in flight, the flush targets and the counters of one client.
#[derive(Debug)]
pub struct Outbox {
    settings: OutboxSettings,
    queue: EventQueue,
    /// Sequence number of the queue's front event.
    head_seq: u64,
    /// First sequence number → batch, of each batch not yet answered for.
    in_flight: BTreeMap<u64, Batch>,
    /// Send at once, whatever the batching rules say, until `head_seq` reaches this.
    flush_target: u64,
    /// `shutdown()`: send everything, then stop.
    draining: bool,
    /// Shutdown's deadline passed: nothing more is sent.
    aborted: bool,
    /// When the current interval started (the last batch, or the first event into an
    /// empty queue).
    interval_start: u64,
    outage: Option<Outage>,
    /// Sequence numbers where a new credential starts (`identify()`): no batch spans one.
    cuts: BTreeSet<u64>,
    /// The host is offline (a browser's `offline` event): nothing is sent until it is back
    /// (see `page.rs`).
    offline: bool,
    counters: Counters,
    drop_reports: ErrorThrottle,
    drop_warnings: ErrorThrottle,
}

impl Outbox {
    /// An empty outbox; `now` starts the first interval.
    pub fn new(settings: OutboxSettings, now: u64) -> Self {
        Outbox {
            queue: EventQueue::new(settings.capacity, settings.overflow),
            settings,
            head_seq: 0,
            in_flight: BTreeMap::new(),
            flush_target: 0,
            draining: false,
            aborted: false,
            interval_start: now,
            outage: None,
            cuts: BTreeSet::new(),
            offline: false,
            counters: Counters::default(),
            drop_reports: ErrorThrottle::new(DROP_REPORT_WINDOW_MS),
            drop_warnings: ErrorThrottle::new(DROP_WARNING_WINDOW_MS),
        }
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &OutboxSettings {
        &self.settings
    }

    /// Queues one serialized event by the overflow policy. `now` is read only when needed
    /// (the queue was empty, or the event is refused): a clock read on every `track()`
    /// costs ≈ 20 ns.
    pub fn push(&mut self, event: Vec<u8>, now: impl FnOnce() -> u64) -> Pushed {
        let was_empty = self.queue.is_empty();
        let event_len = event.len();
        match self.queue.push(event) {
            Push::Queued => {
                self.counters.enqueued += 1;
                if was_empty {
                    self.interval_start = now();
                }
                // Wake the sender when a batch fills up — once per `flush_at` events, or when
                // the bytes first cross `max_batch_bytes` — not on every push while it is
                // behind (each wake is a syscall on the caller's thread). An empty queue
                // wakes it too: an idle sender sleeps without a timer.
                let rules = &self.settings.rules;
                let (len, bytes) = (self.queue.len(), self.queue.bytes());
                let wake = was_empty
                    || len % rules.flush_at == 0
                    || (bytes >= rules.max_batch_bytes && bytes - event_len < rules.max_batch_bytes);
                Pushed::Queued {
                    seq: self.next_seq() - 1,
                    wake,
                }
            }
            Push::Evicted => {
                // A full `drop_oldest` queue keeps its length: no batch completes, no wake.
                self.counters.enqueued += 1;
                self.counters.dropped += 1;
                let evicted_seq = self.head_seq;
                self.head_seq += 1;
                Pushed::Evicted {
                    seq: self.next_seq() - 1,
                    evicted_seq,
                }
            }
            Push::Full(event) if self.settings.overflow == OverflowPolicy::Block => Pushed::Full(event),
            Push::Full(_) => Pushed::Dropped(self.refuse(now())),
        }
    }

    /// Drops an event the queue has no room for (`block` gave up waiting): counts it and
    /// says what to report.
    pub fn refuse(&mut self, now: u64) -> Refusal {
        self.counters.dropped += 1;
        if self.settings.overflow == OverflowPolicy::Reject {
            // The caller is told by the error itself.
            return Refusal {
                raise: true,
                report: false,
                warn: None,
            };
        }
        Refusal {
            raise: false,
            report: self.drop_reports.allow("queue_full", now).is_some(),
            warn: self.drop_warnings.allow("queue_full", now),
        }
    }

    /// Queues an event recovered from a store at start (ahead of anything new, under the
    /// same bound): not counted as enqueued; an event the bound refuses or evicts is counted
    /// as dropped. Returns its sequence number and the one evicted for it, if any; `None`
    /// when it was refused.
    pub fn restore(&mut self, event: Vec<u8>) -> Option<(u64, Option<u64>)> {
        match self.queue.push(event) {
            Push::Queued => Some((self.next_seq() - 1, None)),
            Push::Evicted => {
                self.counters.dropped += 1;
                self.head_seq += 1;
                Some((self.next_seq() - 1, Some(self.head_seq - 1)))
            }
            Push::Full(_) => {
                self.counters.dropped += 1;
                None
            }
        }
    }

    /// Takes back the newest event (the runtime could not store it); it counts as never
    /// accepted.
    pub fn unpush(&mut self) -> Option<Vec<u8>> {
        let event = self.queue.pop_back()?;
        self.counters.enqueued -= 1;
        Some(event)
    }

    /// The newest queued event.
    pub fn newest(&self) -> Option<&[u8]> {
        self.queue.back()
    }

    /// Counts `n` events as dropped that never reached the queue (unreadable stored ones).
    pub fn count_dropped(&mut self, n: u64) {
        self.counters.dropped += n;
    }

    /// The sequence number the next accepted event gets.
    pub fn next_seq(&self) -> u64 {
        self.head_seq + self.queue.len() as u64
    }

    /// The smallest sequence number not yet settled.
    pub fn low_watermark(&self) -> u64 {
        self.in_flight
            .keys()
            .next()
            .copied()
            .unwrap_or(self.head_seq)
            .min(self.head_seq)
    }

    /// `flush()`: send everything queued now at once, and cut a backoff short (one probe at
    /// once, unless the server's `Retry-After` has not passed). Returns the sequence number
    /// to wait for ([`Outbox::low_watermark`] reaching it).
    pub fn request_flush(&mut self, now: u64) -> u64 {
        let target = self.next_seq();
        self.flush_target = self.flush_target.max(target);
        if let Some(outage) = &mut self.outage {
            outage.probe_at = outage.probe_at.min(now.max(outage.not_before));
        }
        target
    }

    /// `shutdown()`: as [`Outbox::request_flush`], and stop once everything settled
    /// ([`Outbox::finished`]).
    pub fn drain(&mut self, now: u64) -> u64 {
        self.draining = true;
        self.request_flush(now)
    }

    /// Shutdown's deadline passed: nothing more is sent. The queued events and the batches
    /// waiting for a retry are given up (kept for the next start with
    /// [`OutboxSettings::keep_undelivered`], dropped otherwise); batches being sent are given
    /// up when their answer ([`Answer::Aborted`]) comes. Returns how many events it gave up.
    pub fn abort(&mut self) -> u64 {
        self.aborted = true;
        let queued = self.queue.clear() as u64;
        self.head_seq += queued;
        let waiting: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, b)| !b.sending)
            .map(|(&seq, _)| seq)
            .collect();
        let mut given_up = queued;
        for seq in waiting {
            given_up += self.in_flight.remove(&seq).map_or(0, |b| b.count as u64);
        }
        if !self.settings.keep_undelivered {
            self.counters.dropped += given_up;
        }
        given_up
    }

    /// `identify()` / `reset()`: the events queued so far belong to the previous credential,
    /// those accepted from now on to the next, and no batch holds events of both. Returns
    /// the first sequence number of the new credential.
    pub fn cut(&mut self) -> u64 {
        let seq = self.next_seq();
        if seq > self.head_seq {
            self.cuts.insert(seq);
        }
        seq
    }

    /// `opt_out()`: discards the queued events and the batches waiting for a retry (a batch
    /// on the wire finishes: the server may already have it). Not counted as dropped — the
    /// runtime counts them as opted out. Returns the discarded ranges `(first_seq, count)`,
    /// for the runtime's store.
    pub fn discard(&mut self) -> Vec<(u64, u64)> {
        let waiting: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, b)| !b.sending)
            .map(|(&seq, _)| seq)
            .collect();
        let mut ranges = Vec::new();
        for seq in waiting {
            if let Some(batch) = self.in_flight.remove(&seq) {
                ranges.push((seq, batch.count as u64));
            }
        }
        let queued = self.queue.clear() as u64;
        if queued > 0 {
            ranges.push((self.head_seq, queued));
        }
        self.head_seq += queued;
        if self.in_flight.is_empty() {
            self.outage = None;
        }
        ranges
    }

    /// Whether the sender can stop: shutdown drained everything, or its deadline passed and
    /// no attempt is still out.
    pub fn finished(&self) -> bool {
        (self.draining && self.queue.is_empty() && self.in_flight.is_empty())
            || (self.aborted && self.in_flight.values().all(|b| !b.sending))
    }

    /// What to send now: batches waiting for a retry (oldest first), then new batches that
    /// are due — up to `max_in_flight` requests, or one probe in an outage.
    pub fn poll(&mut self, now: u64) -> Vec<Dispatch> {
        let mut out = Vec::new();
        if self.aborted || self.offline {
            return out;
        }
        if let Some(outage) = self.outage {
            if outage.probing.is_none() && now >= outage.probe_at {
                if let Some(dispatch) = self.resend_oldest().or_else(|| self.take_batch(now)) {
                    let (Dispatch::Send { first_seq, .. } | Dispatch::Resend { first_seq, .. }) = &dispatch;
                    self.outage = Some(Outage {
                        probing: Some(*first_seq),
                        ..outage
                    });
                    out.push(dispatch);
                }
            }
            return out;
        }
        let mut sending = self.in_flight.values().filter(|b| b.sending).count();
        while sending < self.settings.max_in_flight {
            let Some(dispatch) = self.resend_oldest() else { break };
            out.push(dispatch);
            sending += 1;
        }
        while sending < self.settings.max_in_flight && self.batch_due(now) {
            out.extend(self.take_batch(now));
            sending += 1;
        }
        out
    }

    /// When [`Outbox::poll`] next has something to do (a time at or before `now`: at once);
    /// `None` when only a push, an answer, a flush or shutdown can give it work — an idle
    /// client keeps no timer.
    pub fn next_wake(&self, now: u64) -> Option<u64> {
        if self.aborted || self.offline {
            return None;
        }
        let waiting = self.in_flight.values().any(|b| !b.sending);
        if let Some(outage) = &self.outage {
            let work = waiting || !self.queue.is_empty();
            return (outage.probing.is_none() && work).then_some(outage.probe_at);
        }
        let sending = self.in_flight.values().filter(|b| b.sending).count();
        if sending >= self.settings.max_in_flight {
            return None;
        }
        if waiting || self.batch_due(now) {
            return Some(now);
        }
        if self.queue.is_empty() {
            return None;
        }
        Some(self.interval_start + self.settings.rules.flush_interval.as_millis() as u64)
    }

    /// Takes the server's answer for batch `first_seq` (`None`: no such batch is being
    /// sent). `jitter` is a uniform draw in `[0, 1)` for the backoff; `wall` resolves an
    /// HTTP-date `Retry-After`.
    pub fn answer(
        &mut self,
        first_seq: u64,
        answer: Answer<'_>,
        now: u64,
        wall: SystemTime,
        jitter: f64,
    ) -> Option<Settled> {
        let batch = *self.in_flight.get(&first_seq).filter(|b| b.sending)?;
        let count = batch.count as u64;
        let outcome = match answer {
            Answer::Counted {
                accepted,
                duplicates,
                rejected,
            } => {
                self.counters.sent += accepted;
                self.counters.duplicates += duplicates;
                self.counters.rejected += rejected;
                return Some(self.delivered(first_seq, count));
            }
            Answer::Delivered => {
                self.counters.sent += count;
                return Some(self.delivered(first_seq, count));
            }
            Answer::Unsendable => return Some(self.give_up(first_seq, count, true)),
            Answer::Aborted => return Some(self.give_up(first_seq, count, false)),
            // The answer broke off: as a connection that broke (its backoff, an outage).
            Answer::Unclear => Outcome::Network,
            Answer::Failed(outcome) => outcome,
        };
        let decision = if self.aborted {
            RetryDecision::GiveUp
        } else {
            self.backoff(outcome).decide(outcome, batch.retries, jitter, wall)
        };
        let delay = match decision {
            RetryDecision::Done => return Some(self.delivered(first_seq, count)),
            RetryDecision::GiveUp => return Some(self.give_up(first_seq, count, is_permanent(outcome))),
            RetryDecision::Retry { delay } => delay,
        };
        let retry_after = matches!(outcome, Outcome::Status { retry_after: Some(v), .. } if crate::retry::parse_retry_after(v, wall).is_some());
        let wait = delay;
        let until = now.saturating_add(wait.as_millis() as u64);
        self.counters.retried += 1;
        self.in_flight.insert(
            first_seq,
            Batch {
                retries: batch.retries + 1,
                sending: false,
                ..batch
            },
        );
        let not_before = if retry_after { until } else { 0 };
        self.outage = Some(match self.outage {
            None => Outage {
                probe_at: until,
                not_before,
                probing: None,
            },
            Some(outage) if outage.probing == Some(first_seq) => Outage {
                probe_at: until,
                not_before,
                probing: None,
            },
            // A batch sent before the outage began: the probe's schedule stands, unless the
            // server asked for a longer pause.
            Some(outage) if retry_after => Outage {
                probe_at: outage.probe_at.max(until),
                not_before: outage.not_before.max(until),
                ..outage
            },
            Some(outage) => outage,
        });
        Some(Settled::Retry {
            retry: batch.retries + 1,
            delay: wait,
        })
    }

    /// A snapshot of the counters; `queue_length` counts the events in flight too. The
    /// runtime fills in the rest (spool, cache, stream).
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let in_flight: usize = self.in_flight.values().map(|b| b.count).sum();
        Stats {
            enqueued: c.enqueued,
            sent: c.sent,
            duplicates: c.duplicates,
            rejected: c.rejected,
            dropped: c.dropped,
            retried: c.retried,
            batches: c.batches,
            queue_length: (self.queue.len() + in_flight) as u64,
            ..Stats::default()
        }
    }

    /// Events in batch `first_seq` (0 when there is no such batch).
    pub fn batch_len(&self, first_seq: u64) -> u64 {
        self.in_flight.get(&first_seq).map_or(0, |b| b.count as u64)
    }

    /// Whether the server is failing (one probe at a time).
    pub fn in_outage(&self) -> bool {
        self.outage.is_some()
    }

    /// The retry policy for `outcome`: for a connection failure its delay ceiling stops at
    /// [`MAX_PROBE_INTERVAL`].
    fn backoff(&self, outcome: Outcome<'_>) -> RetryPolicy {
        let policy = self.settings.retry;
        match outcome {
            Outcome::Network | Outcome::Timeout => RetryPolicy {
                initial_delay: policy.initial_delay.min(MAX_PROBE_INTERVAL),
                max_delay: policy.max_delay.min(MAX_PROBE_INTERVAL),
                ..policy
            },
            Outcome::Status { .. } => policy,
        }
    }

    fn batch_due(&self, now: u64) -> bool {
        let since = Duration::from_millis(now.saturating_sub(self.interval_start));
        self.queue.batch_due(&self.settings.rules, since)
            || (!self.queue.is_empty() && (self.draining || self.head_seq < self.flush_target))
    }

    fn take_batch(&mut self, now: u64) -> Option<Dispatch> {
        if self.queue.is_empty() {
            return None;
        }
        let first_seq = self.head_seq;
        // A batch ends before the next credential's first event.
        while self.cuts.first().is_some_and(|&cut| cut <= first_seq) {
            self.cuts.pop_first();
        }
        let mut rules = self.settings.rules;
        if let Some(&cut) = self.cuts.first() {
            let before_cut = usize::try_from(cut - first_seq).unwrap_or(usize::MAX);
            rules.flush_at = rules.flush_at.min(before_cut);
        }
        let events = self.queue.take_batch(&rules);
        self.head_seq += events.len() as u64;
        self.interval_start = now;
        self.in_flight.insert(
            first_seq,
            Batch {
                count: events.len(),
                retries: 0,
                sending: true,
            },
        );
        Some(Dispatch::Send { first_seq, events })
    }

    fn resend_oldest(&mut self) -> Option<Dispatch> {
        let (&first_seq, batch) = self.in_flight.iter_mut().find(|(_, b)| !b.sending)?;
        batch.sending = true;
        Some(Dispatch::Resend {
            first_seq,
            retry: batch.retries,
        })
    }

    fn delivered(&mut self, first_seq: u64, count: u64) -> Settled {
        self.in_flight.remove(&first_seq);
        self.counters.batches += 1;
        // The server answers again: what waited goes now.
        self.outage = None;
        Settled::Delivered { count }
    }

    fn give_up(&mut self, first_seq: u64, count: u64, permanent: bool) -> Settled {
        self.in_flight.remove(&first_seq);
        if let Some(outage) = &mut self.outage {
            if outage.probing == Some(first_seq) {
                // The next waiting batch probes on the same schedule.
                outage.probing = None;
            }
        }
        if permanent && self.outage.is_some_and(|o| o.probing.is_none()) {
            // The server answered: it is reachable.
            self.outage = None;
        }
        let kept = !permanent && self.settings.keep_undelivered;
        if !kept {
            self.counters.dropped += count;
        }
        Settled::GaveUp { count, kept, permanent }
    }
}

/// A failure that sending the same batch again cannot fix: a 4xx other than 408/429.
pub fn is_permanent(outcome: Outcome<'_>) -> bool {
    matches!(outcome, Outcome::Status { status, .. } if (400..500).contains(&status) && !matches!(status, 408 | 429))
}

#[cfg(test)]
mod tests;
