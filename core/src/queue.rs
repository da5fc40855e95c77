//! The bounded event queue and the batching rules (DESIGN §7), without I/O.
//!
//! Events are queued already validated and serialized, so a batch body is a concatenation.

use std::{collections::VecDeque, time::Duration};

use crate::config::OverflowPolicy;

/// What happened to a pushed event.
#[derive(Debug, PartialEq, Eq)]
pub enum Push {
    /// Queued.
    Queued,
    /// Queued, and the oldest event was evicted to make room (`drop_oldest`).
    Evicted,
    /// Not queued: the queue is full (`drop_newest`, `reject`, or `block` — the caller may
    /// wait and try again with the event handed back here).
    Full(Vec<u8>),
}

/// When a batch is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRules {
    /// Events per batch.
    pub flush_at: usize,
    /// Uncompressed bytes per batch.
    pub max_batch_bytes: usize,
    /// Longest an event waits before its batch is sent.
    pub flush_interval: Duration,
}

/// A FIFO of serialized events with a length bound and an overflow policy.
#[derive(Debug)]
pub struct EventQueue {
    items: VecDeque<Vec<u8>>,
    bytes: usize,
    capacity: usize,
    policy: OverflowPolicy,
}

impl EventQueue {
    /// An empty queue holding at most `capacity` events.
    pub fn new(capacity: usize, policy: OverflowPolicy) -> Self {
        EventQueue {
            items: VecDeque::with_capacity(capacity.min(4096)),
            bytes: 0,
            capacity,
            policy,
        }
    }

    /// Adds an event according to the overflow policy.
    pub fn push(&mut self, event: Vec<u8>) -> Push {
        let mut outcome = Push::Queued;
        if self.items.len() >= self.capacity {
            match self.policy {
                OverflowPolicy::DropNewest | OverflowPolicy::Block | OverflowPolicy::Reject => {
                    return Push::Full(event);
                }
                OverflowPolicy::DropOldest => {
                    if let Some(old) = self.items.pop_front() {
                        self.bytes -= old.len();
                    }
                    outcome = Push::Evicted;
                }
            }
        }
        self.bytes += event.len();
        self.items.push_back(event);
        outcome
    }

    /// The newest queued event.
    pub fn back(&self) -> Option<&[u8]> {
        self.items.back().map(Vec::as_slice)
    }

    /// Takes the newest queued event back out (it could not be written to the spool).
    pub fn pop_back(&mut self) -> Option<Vec<u8>> {
        let event = self.items.pop_back()?;
        self.bytes -= event.len();
        Some(event)
    }

    /// Drops every queued event (shutdown gave up on them); returns how many.
    pub fn clear(&mut self) -> usize {
        let n = self.items.len();
        self.items.clear();
        self.bytes = 0;
        n
    }

    /// Queued events.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Serialized bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether a batch should be sent now, given the time since the last one.
    pub fn batch_due(&self, rules: &BatchRules, since_last_flush: Duration) -> bool {
        !self.items.is_empty()
            && (self.items.len() >= rules.flush_at
                || self.bytes >= rules.max_batch_bytes
                || since_last_flush >= rules.flush_interval)
    }

    /// Takes the next batch: up to `flush_at` events and `max_batch_bytes` (always at least
    /// one event when the queue is not empty).
    pub fn take_batch(&mut self, rules: &BatchRules) -> Vec<Vec<u8>> {
        let mut batch = Vec::with_capacity(rules.flush_at.min(self.items.len()));
        let mut size = 2; // the array brackets
        while let Some(next) = self.items.front() {
            let add = next.len() + usize::from(!batch.is_empty());
            if !batch.is_empty() && (batch.len() >= rules.flush_at || size + add > rules.max_batch_bytes) {
                break;
            }
            size += add;
            let ev = self.items.pop_front().expect("front exists");
            self.bytes -= ev.len();
            batch.push(ev);
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: usize) -> Vec<u8> {
        vec![b'x'; n]
    }

    const RULES: BatchRules = BatchRules {
        flush_at: 3,
        max_batch_bytes: 100,
        flush_interval: Duration::from_secs(1),
    };

    #[test]
    fn overflow_policies() {
        let mut q = EventQueue::new(2, OverflowPolicy::DropNewest);
        assert_eq!(q.push(ev(1)), Push::Queued);
        assert_eq!(q.push(ev(2)), Push::Queued);
        assert_eq!(q.push(ev(3)), Push::Full(ev(3)));
        assert_eq!(q.bytes(), 3);

        let mut q = EventQueue::new(2, OverflowPolicy::DropOldest);
        q.push(ev(1));
        q.push(ev(2));
        assert_eq!(q.push(ev(3)), Push::Evicted);
        assert_eq!(q.len(), 2);
        assert_eq!(q.bytes(), 5);

        let mut q = EventQueue::new(1, OverflowPolicy::Block);
        q.push(ev(1));
        assert_eq!(q.push(ev(1)), Push::Full(ev(1)));
    }

    #[test]
    fn batches_by_count_bytes_and_time() {
        let mut q = EventQueue::new(100, OverflowPolicy::DropNewest);
        assert!(!q.batch_due(&RULES, Duration::from_secs(5)), "empty queue is never due");
        q.push(ev(10));
        assert!(!q.batch_due(&RULES, Duration::from_millis(10)));
        assert!(q.batch_due(&RULES, Duration::from_secs(1)));
        q.push(ev(10));
        q.push(ev(10));
        assert!(q.batch_due(&RULES, Duration::ZERO));
        q.push(ev(10));
        assert_eq!(q.take_batch(&RULES).len(), 3);
        assert_eq!(q.len(), 1);

        let mut q = EventQueue::new(100, OverflowPolicy::DropNewest);
        for _ in 0..3 {
            q.push(ev(40));
        }
        // 2 + 40 + 1 + 40 = 83; a third would make 124 > 100.
        assert_eq!(q.take_batch(&RULES).len(), 2);
        q.push(ev(500));
        assert_eq!(q.take_batch(&RULES).len(), 1, "the 40-byte event goes alone");
        assert_eq!(q.take_batch(&RULES).len(), 1, "an oversized event still goes, alone");
        assert!(q.is_empty());
    }

    #[test]
    fn clear_empties() {
        let mut q = EventQueue::new(10, OverflowPolicy::DropNewest);
        q.push(ev(3));
        q.push(ev(4));
        assert_eq!(q.back(), Some(&ev(4)[..]));
        assert_eq!(q.pop_back(), Some(ev(4)));
        assert_eq!(q.bytes(), 3);
        q.push(ev(4));
        assert_eq!(q.clear(), 2);
        assert_eq!((q.len(), q.bytes()), (0, 0));
    }
}
