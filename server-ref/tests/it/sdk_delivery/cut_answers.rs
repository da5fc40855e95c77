//! A 2xx whose answer does not reach the client whole — its body cut by a reset or by a close
//! before its `Content-Length`, or a body that is not JSON — says nothing certain: the server
//! may have stored the batch or not. The client sends the batch again with the same ids (the
//! server deduplicates) and counts its events as delivered only on a whole, parsed answer.

use std::{collections::HashSet, time::Duration};

use meterline_core::Client;
use serde_json::json;

use super::chaos::{ChaosProxy, Fault, Plan};
use crate::common::{
    Server,
    delivery::{assert_exactly_once, assert_resent_only_after_failures, config, rt, stored_ids},
};

const EVENTS: u64 = 2_000;

#[test]
fn a_2xx_answer_that_is_not_whole_is_sent_again_and_each_event_stored_and_counted_once() {
    let rt = rt();
    let server = Server::start();
    let proxy = rt.block_on(ChaosProxy::start(&server.url, 0xc0ffee));
    // Each connection carries one answer (the client reconnects for the next request), and
    // half of them are tampered with.
    proxy.set_plan(Plan {
        rate: 1.0,
        faults: vec![
            Fault::OneAnswer,
            Fault::OneAnswer,
            Fault::OneAnswer,
            Fault::OneAnswer,
            Fault::CutBody { keep: 0, reset: true },
            Fault::CutBody { keep: 12, reset: true },
            Fault::CutBody { keep: 12, reset: false },
            Fault::GarbleBody,
        ],
    });
    let mut c = config(server.sk(), &proxy.url);
    c.fetch_schemas = false;
    c.flush_at = 50;
    let client = Client::new(c).unwrap();
    let tracked: HashSet<String> = (0..EVENTS)
        .map(|i| {
            client
                .track("api.call", "c1", json!({"tokens": i}), None, None)
                .unwrap()
                .expect("queued")
        })
        .collect();
    client.flush(Duration::from_secs(60)).unwrap();
    let stats = client.stats();
    let injected = proxy.injected();
    // The client settled every event, so each must have had a whole 2xx reach it.
    let (attempts, unanswered) = proxy.attempts_once_answered(&tracked, Duration::from_secs(5));
    client.shutdown(Duration::from_secs(5)).unwrap();

    // Every event stored once, and counted once: sent the first time, a duplicate when the
    // first answer was cut after the server stored it.
    assert_exactly_once(&stored_ids(&rt, &server, server.sk()), &tracked);
    assert_eq!((stats.dropped, stats.rejected), (0, 0), "{stats:?}");
    assert_eq!(stats.sent + stats.duplicates, EVENTS, "{stats:?}");
    for fault in [
        "body cut (reset) after 2xx",
        "body cut (closed) after 2xx",
        "body garbled after 2xx",
    ] {
        assert!(
            injected.get(fault).is_some_and(|&n| n > 0),
            "{fault} never injected: {injected:?}"
        );
    }
    assert_eq!(
        unanswered, 0,
        "{unanswered} of {EVENTS} events counted delivered without a whole 2xx reaching the client \
         ({injected:?}, {stats:?})"
    );
    assert!(
        stats.duplicates > 0,
        "batches stored but answered with a cut body were sent again: {stats:?}"
    );
    let resends = assert_resent_only_after_failures(&attempts, |_| false);
    assert!(resends.resent_ids > 0, "{resends:?}");
}
