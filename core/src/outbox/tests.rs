//! The outbox's cut between two users' events (`identify()`) and `discard()` (`opt_out()`).

use std::time::Duration;

use super::*;

fn outbox(flush_at: usize) -> Outbox {
    Outbox::new(
        OutboxSettings {
            rules: BatchRules {
                flush_at,
                max_batch_bytes: 1 << 20,
                flush_interval: Duration::from_secs(1),
            },
            capacity: 100,
            overflow: OverflowPolicy::DropNewest,
            max_in_flight: 10,
            retry: RetryPolicy::default(),
            keep_undelivered: false,
        },
        0,
    )
}

fn sent(dispatches: Vec<Dispatch>) -> Vec<(u64, usize)> {
    dispatches
        .into_iter()
        .filter_map(|d| match d {
            Dispatch::Send { first_seq, events } => Some((first_seq, events.len())),
            Dispatch::Resend { .. } => None,
        })
        .collect()
}

#[test]
fn no_batch_spans_a_cut() {
    let mut o = outbox(10);
    for _ in 0..3 {
        o.push(b"{}".to_vec(), || 0);
    }
    assert_eq!(o.cut(), 3);
    for _ in 0..4 {
        o.push(b"{}".to_vec(), || 0);
    }
    assert_eq!(o.cut(), 7);
    o.push(b"{}".to_vec(), || 0);
    o.request_flush(0);
    assert_eq!(sent(o.poll(0)), [(0, 3), (3, 4), (7, 1)]);
    // A cut on an empty queue separates nothing.
    let mut empty = outbox(10);
    assert_eq!(empty.cut(), 0);
    empty.push(b"{}".to_vec(), || 0);
    empty.push(b"{}".to_vec(), || 0);
    empty.request_flush(0);
    assert_eq!(sent(empty.poll(0)), [(0, 2)]);
}

#[test]
fn discard_drops_the_queue_and_the_waiting_batches_but_not_those_on_the_wire() {
    let mut o = outbox(2);
    for _ in 0..6 {
        o.push(b"{}".to_vec(), || 0);
    }
    o.request_flush(0);
    // flush_at 2 and max_in_flight 10: three batches of two go out.
    let batches = sent(o.poll(0));
    assert_eq!(batches, [(0, 2), (2, 2), (4, 2)]);
    let failed = Answer::Failed(crate::retry::Outcome::Network);
    o.answer(0, failed, 0, SystemTime::UNIX_EPOCH, 0.5).unwrap();
    for _ in 0..3 {
        o.push(b"{}".to_vec(), || 0);
    }
    let ranges = o.discard();
    assert_eq!(ranges, [(0, 2), (6, 3)], "the waiting batch and the queue");
    assert_eq!(o.stats().queue_length, 4, "the two batches on the wire stay");
    assert_eq!(o.stats().dropped, 0, "counted by the runtime as opted out");
}
