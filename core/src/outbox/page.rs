//! What a page's life asks of the outbox (the browser runtime drives these; native runtimes
//! never call them):
//!
//! - **offline / online**: while the host says it is offline nothing is sent and no wake-up
//!   is asked for (no retry storm against a network that is not there); back online, what
//!   is queued goes at once and a backoff is cut short, as `flush()` does.
//! - **unload**: the page is being hidden or left. What is queued leaves now in batches of at
//!   most a given size (a keepalive request or a beacon carries at most 64 KiB), whatever
//!   the batching rules, `max_in_flight` or an outage say: there may be no later. The
//!   batches are in flight like any other and settle by [`Outbox::answer`] if the page lives
//!   on to hear the answer.

use super::{Dispatch, Outbox};

impl Outbox {
    /// The host went offline (`true`) or came back (`false`). Coming back flushes what is
    /// queued at once and cuts a backoff short (one probe at once, unless the server's
    /// `Retry-After` has not passed). Returns whether the state changed.
    pub fn set_offline(&mut self, offline: bool, now: u64) -> bool {
        if self.offline == offline {
            return false;
        }
        self.offline = offline;
        if !offline {
            self.request_flush(now);
        }
        true
    }

    /// Whether the host is offline (nothing is sent).
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// The page is leaving: the next batch of queued events whose JSON array body is at most
    /// `max_bytes` (a single larger event goes alone), taken now — regardless of the batching
    /// rules, `max_in_flight` and an outage's probe. `None` when nothing is queued, when
    /// offline (what is queued stays for a later page load, if the runtime keeps it) or
    /// after shutdown's deadline. Call it until it returns `None`.
    pub fn take_unload(&mut self, max_bytes: usize, now: u64) -> Option<Dispatch> {
        if self.aborted || self.offline {
            return None;
        }
        let rules = self.settings.rules;
        self.settings.rules.max_batch_bytes = rules.max_batch_bytes.min(max_bytes);
        let taken = self.take_batch(now);
        self.settings.rules = rules;
        taken
    }

    /// The host's store failed (IndexedDB refused a write, or is gone): nothing is kept for a
    /// later page load any more, so batches given up on from now on are counted as dropped.
    /// `unstored` are the events the store never took that have not left it (not settled,
    /// evicted or discarded since): those the outbox no longer holds were given up on as
    /// kept, and are counted as dropped now. Returns how many were.
    pub fn store_failed(&mut self, unstored: impl IntoIterator<Item = u64>) -> u64 {
        self.settings.keep_undelivered = false;
        let lost = unstored.into_iter().filter(|&seq| !self.holds(seq)).count() as u64;
        self.counters.dropped += lost;
        lost
    }

    /// Whether event `seq` is still queued or in a batch not yet answered for.
    fn holds(&self, seq: u64) -> bool {
        (self.head_seq..self.next_seq()).contains(&seq)
            || self
                .in_flight
                .range(..=seq)
                .next_back()
                .is_some_and(|(&first, batch)| seq < first + batch.count as u64)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::{
        config::OverflowPolicy,
        outbox::{Answer, OutboxSettings, Settled},
        queue::BatchRules,
        retry::{Outcome, RetryPolicy},
    };

    fn outbox(max_in_flight: usize) -> Outbox {
        Outbox::new(
            OutboxSettings {
                rules: BatchRules {
                    flush_at: 500,
                    max_batch_bytes: 1 << 20,
                    flush_interval: Duration::from_secs(1),
                },
                capacity: 1000,
                overflow: OverflowPolicy::DropNewest,
                max_in_flight,
                retry: RetryPolicy::default(),
                keep_undelivered: true,
            },
            0,
        )
    }

    fn event(n: usize) -> Vec<u8> {
        vec![b'x'; n]
    }

    #[test]
    fn a_failed_store_counts_what_it_kept_and_keeps_nothing_more() {
        let mut o = outbox(4);
        for _ in 0..5 {
            o.push(event(10), || 0);
        }
        o.request_flush(0);
        assert!(matches!(&o.poll(0)[..], [Dispatch::Send { first_seq: 0, events }] if events.len() == 5));
        // Given up on while the store still worked: kept, not counted.
        assert_eq!(o.abort(), 0);
        let settled = o.answer(0, Answer::Aborted, 0, SystemTime::UNIX_EPOCH, 0.5).unwrap();
        assert!(
            matches!(
                settled,
                Settled::GaveUp {
                    count: 5,
                    kept: true,
                    ..
                }
            ),
            "{settled:?}"
        );
        assert_eq!(o.stats().dropped, 0);
        // The store never took events 3 and 4: they are lost, and counted.
        assert_eq!(o.store_failed([3, 4]), 2);
        assert_eq!(o.stats().dropped, 2);
    }

    #[test]
    fn after_a_failed_store_a_batch_given_up_on_is_dropped_and_held_events_are_not_counted() {
        let mut o = outbox(4);
        o.push(event(10), || 0);
        o.push(event(10), || 0);
        o.request_flush(0);
        assert_eq!(o.poll(0).len(), 1);
        o.push(event(10), || 0);
        // Events 0–1 in flight and 2 queued are still held: not counted.
        assert_eq!(o.store_failed([0, 1, 2]), 0);
        o.abort();
        assert_eq!(o.stats().dropped, 1, "the queued event given up on is dropped");
        let settled = o.answer(0, Answer::Aborted, 0, SystemTime::UNIX_EPOCH, 0.5).unwrap();
        assert!(
            matches!(
                settled,
                Settled::GaveUp {
                    count: 2,
                    kept: false,
                    ..
                }
            ),
            "{settled:?}"
        );
        assert_eq!(o.stats().dropped, 3);
    }

    #[test]
    fn offline_sends_nothing_and_asks_for_no_wake_up_until_online_flushes_at_once() {
        let mut o = outbox(4);
        assert!(o.set_offline(true, 0));
        assert!(!o.set_offline(true, 0), "no change");
        o.push(event(10), || 0);
        o.request_flush(0);
        assert!(o.poll(5_000).is_empty());
        assert_eq!(o.next_wake(5_000), None, "no timer while offline");
        assert!(o.set_offline(false, 5_000));
        let sent = o.poll(5_000);
        assert!(matches!(&sent[..], [Dispatch::Send { first_seq: 0, events }] if events.len() == 1));
    }

    #[test]
    fn online_cuts_an_outage_backoff_short() {
        let mut o = outbox(4);
        o.push(event(10), || 0);
        o.request_flush(0);
        assert_eq!(o.poll(0).len(), 1);
        o.answer(0, Answer::Failed(Outcome::Network), 0, SystemTime::UNIX_EPOCH, 0.99)
            .unwrap();
        assert!(o.in_outage());
        o.set_offline(true, 10);
        assert!(o.poll(60_000).is_empty(), "offline: no probe");
        o.set_offline(false, 60_000);
        assert!(o.next_wake(60_000).is_some_and(|at| at <= 60_000), "a probe at once");
        assert!(matches!(&o.poll(60_000)[..], [Dispatch::Resend { first_seq: 0, .. }]));
    }

    #[test]
    fn unload_takes_everything_in_pieces_under_the_cap_past_max_in_flight_and_outages() {
        let mut o = outbox(1);
        // An outage: normally one probe at a time.
        o.push(event(10), || 0);
        o.request_flush(0);
        o.poll(0);
        o.answer(0, Answer::Failed(Outcome::Network), 0, SystemTime::UNIX_EPOCH, 0.5)
            .unwrap();
        for _ in 0..100 {
            o.push(event(1000), || 0);
        }
        o.push(event(5000), || 0);
        let mut pieces = Vec::new();
        while let Some(Dispatch::Send { first_seq, events }) = o.take_unload(4096, 1) {
            let body: usize = 2 + events.iter().map(|e| e.len()).sum::<usize>() + events.len() - 1;
            pieces.push((first_seq, events.len(), body));
        }
        assert_eq!(pieces.len(), 26, "{pieces:?}");
        assert_eq!(pieces[0], (1, 4, 4005));
        assert!(pieces[..25].iter().all(|&(_, _, body)| body <= 4096));
        assert_eq!(pieces[25], (101, 1, 5002), "an event over the cap goes alone");
        assert_eq!(o.stats().queue_length, 102, "all in flight, answered as any batch");
        assert_eq!(o.settings().rules.max_batch_bytes, 1 << 20, "the rules are back");
        o.answer(1, Answer::Delivered, 2, SystemTime::UNIX_EPOCH, 0.5).unwrap();
        assert_eq!(o.stats().sent, 4);
    }

    #[test]
    fn unload_takes_nothing_offline() {
        let mut o = outbox(4);
        o.push(event(10), || 0);
        o.set_offline(true, 0);
        assert!(o.take_unload(4096, 0).is_none());
        assert_eq!(o.stats().queue_length, 1);
    }
}
