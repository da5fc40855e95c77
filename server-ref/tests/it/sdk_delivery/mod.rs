//! The core SDK client against the real server binary on a real SQLite file: every event that
//! `track()` accepts is stored exactly once — in bulk, on resend, through 5xx/429 storms, and
//! across `kill -9` restarts of the server — and client errors are never retried.

#![allow(clippy::unwrap_used, missing_docs)]

pub(crate) mod chaos;
use crate::common;
mod cut_answers;
mod faults;
pub(crate) mod proxy;
mod recovery;
mod sniff;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{
    Server,
    delivery::{assert_exactly_once, assert_resent_only_after_failures, config, rt, stored_ids},
};
use meterline_core::{Client, Config, Error, OverflowPolicy, runtime::native::Callbacks};
use proxy::{Fault, Proxy};
use serde_json::json;

/// Collects what the client reports through `on_error`.
fn recording_client(config: Config) -> (Client, Arc<Mutex<Vec<Error>>>) {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    let callbacks = Callbacks {
        on_error: Some(Arc::new(move |e: &Error| sink.lock().unwrap().push(e.clone()))),
        ..Callbacks::default()
    };
    (Client::with_callbacks(config, callbacks).unwrap(), errors)
}

#[test]
fn hundred_thousand_events_are_stored_exactly_once() {
    let rt = rt();
    let server = Server::start();
    let proxy = rt.block_on(Proxy::start(&server.url));
    let mut c = config(server.sk(), &proxy.url);
    c.max_in_flight = 4;
    let client = Client::new(c).unwrap();
    let mut tracked = HashSet::with_capacity(100_000);
    for i in 0..100_000u64 {
        let id = client
            .track(
                "api.call",
                &format!("customer-{}", i % 97),
                json!({"tokens": i, "model": "m-large"}),
                None,
                None,
            )
            .unwrap()
            .expect("queued");
        tracked.insert(id);
    }
    client.flush(Duration::from_secs(120)).unwrap();
    let stats = client.stats();
    assert_eq!(
        (
            stats.enqueued,
            stats.sent,
            stats.duplicates,
            stats.rejected,
            stats.dropped
        ),
        (100_000, 100_000, 0, 0, 0)
    );
    assert_eq!(stats.queue_length, 0);
    client.shutdown(Duration::from_secs(5)).unwrap();
    assert_exactly_once(&stored_ids(&rt, &server, server.sk()), &tracked);
    // Nothing failed, so nothing went out twice.
    let resends = assert_resent_only_after_failures(&proxy.attempts(), |_| false);
    assert_eq!((resends.sends, resends.resent_ids), (100_000, 0), "{resends:?}");
}

#[test]
fn resending_the_same_events_counts_duplicates_and_stores_nothing_new() {
    let rt = rt();
    let server = Server::start();
    let ids: Vec<String> = (0..1_000).map(|i| format!("fixed-{i}")).collect();
    for round in 0..2 {
        let client = Client::new(config(server.sk(), &server.url)).unwrap();
        for id in &ids {
            client
                .track("api.call", "c1", json!({"tokens": 1}), Some(id.clone()), None)
                .unwrap();
        }
        client.flush(Duration::from_secs(30)).unwrap();
        let stats = client.stats();
        if round == 0 {
            assert_eq!((stats.sent, stats.duplicates), (1_000, 0));
        } else {
            assert_eq!(
                (stats.sent, stats.duplicates),
                (0, 1_000),
                "the second round is all duplicates"
            );
        }
    }
    assert_exactly_once(&stored_ids(&rt, &server, server.sk()), &ids.into_iter().collect());
}

#[test]
fn server_killed_and_restarted_while_sending_loses_nothing_and_stores_nothing_twice() {
    let rt = rt();
    let dir = common::tempdir();
    let mut server = Server::start_in(dir.clone(), &[]);
    let key = server.sk().to_owned();
    let proxy = rt.block_on(Proxy::start(&server.url));
    let mut c = config(&key, &proxy.url);
    c.flush_at = 200;
    let client = Client::new(c).unwrap();

    let sender = {
        let client = client.clone();
        std::thread::spawn(move || {
            let mut tracked = HashSet::new();
            for i in 0..30_000u64 {
                tracked.insert(
                    client
                        .track("api.call", "c1", json!({"tokens": i}), None, None)
                        .unwrap()
                        .expect("queued"),
                );
                if i % 1_000 == 0 {
                    std::thread::sleep(Duration::from_millis(15)); // spread the load over the kills
                }
            }
            tracked
        })
    };
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(120));
        server.kill9();
        std::thread::sleep(Duration::from_millis(150)); // requests fail with 502 meanwhile
        server = Server::start_in(dir.clone(), &[]);
        assert!(server.secret.is_none(), "a restart must not mint new keys");
        proxy.set_upstream(&server.url);
    }
    let tracked = sender.join().unwrap();
    client.flush(Duration::from_secs(60)).unwrap();
    let stats = client.stats();
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.sent + stats.duplicates, 30_000, "{stats:?}");
    assert!(
        proxy.attempts().iter().any(|(_, status)| *status == 502),
        "the kills were seen by the client"
    );
    assert_exactly_once(&stored_ids(&rt, &server, &key), &tracked);
    let resends = assert_resent_only_after_failures(&proxy.attempts(), |_| false);
    assert!(resends.resent_ids > 0, "the kills made the client resend: {resends:?}");
}

/// A client sending one batch at a time (no interval flush) through `endpoint`, with `events`
/// tracked and queued; returns it and the ids it accepted.
fn one_batch_at_a_time(key: &str, endpoint: &str, events: u64) -> (Client, HashSet<String>) {
    let mut c = config(key, endpoint);
    c.max_in_flight = 1;
    c.flush_interval = Duration::from_secs(3600);
    let client = Client::new(c).unwrap();
    let tracked = (0..events)
        .map(|i| {
            client
                .track("api.call", "c1", json!({"tokens": i}), None, None)
                .unwrap()
                .expect("queued")
        })
        .collect();
    (client, tracked)
}

#[test]
fn server_errors_and_rate_limits_are_retried_with_the_same_ids() {
    let rt = rt();
    let server = Server::start();
    let proxy = rt.block_on(Proxy::start(&server.url));
    let fault = |status, retry_after| Fault { status, retry_after };
    proxy.push_faults([
        fault(503, None),
        fault(500, None),
        fault(502, None),
        fault(429, Some("1")),
        fault(408, None),
    ]);
    let (client, tracked) = one_batch_at_a_time(server.sk(), &proxy.url, 300);
    let started = Instant::now();
    client.flush(Duration::from_secs(30)).unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );

    let attempts = proxy.attempts();
    assert_eq!(
        attempts.len(),
        6,
        "five faults, then success: {:?}",
        attempts.iter().map(|a| a.1).collect::<Vec<_>>()
    );
    for (ids, _) in &attempts {
        assert_eq!(
            ids, &attempts[0].0,
            "every retry resends the same ids in the same order"
        );
    }
    assert_eq!(attempts.last().unwrap().1, 202);
    let resends = assert_resent_only_after_failures(&attempts, |_| false);
    assert_eq!((resends.sends, resends.resent_ids), (6 * 300, 300), "{resends:?}");
    let stats = client.stats();
    assert_eq!((stats.retried, stats.sent, stats.dropped), (5, 300, 0));
    assert_exactly_once(&stored_ids(&rt, &server, server.sk()), &tracked);
}

#[test]
fn a_503_overloaded_with_retry_after_is_retried_after_the_pause_it_asks_for() {
    let rt = rt();
    let server = Server::start();
    let proxy = rt.block_on(Proxy::start(&server.url));
    // As the server answers a full writer queue, with a longer pause than any backoff here.
    proxy.push_faults([Fault {
        status: 503,
        retry_after: Some("2"),
    }]);
    let (client, tracked) = one_batch_at_a_time(server.sk(), &proxy.url, 50);
    let started = Instant::now();
    client.flush(Duration::from_secs(30)).unwrap();
    let took = started.elapsed();
    // The backoff alone is at most `retry.max_delay` (200 ms here).
    assert!(
        took >= Duration::from_secs(2),
        "Retry-After: 2 was not honoured: {took:?}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    let statuses: Vec<u16> = proxy.attempts().iter().map(|a| a.1).collect();
    assert_eq!(statuses, [503, 202]);
    assert_resent_only_after_failures(&proxy.attempts(), |_| false);
    assert_exactly_once(&stored_ids(&rt, &server, server.sk()), &tracked);
}

#[test]
fn client_errors_are_not_retried_and_are_reported() {
    let rt = rt();
    let server = Server::start();
    let proxy = rt.block_on(Proxy::start(&server.url));
    proxy.push_faults([Fault {
        status: 400,
        retry_after: Some("0"),
    }]);
    let mut c = config(server.sk(), &proxy.url);
    c.flush_interval = Duration::from_secs(3600);
    let (client, errors) = recording_client(c);
    for i in 0..10 {
        client
            .track("api.call", "c1", json!({"tokens": i}), None, None)
            .unwrap();
    }
    client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(proxy.attempts().len(), 1, "a 400 is never retried");
    let stats = client.stats();
    assert_eq!((stats.dropped, stats.sent, stats.retried), (10, 0, 0));
    assert!(
        matches!(&errors.lock().unwrap()[..], [Error::Http { status: 400, .. }]),
        "{:?}",
        errors.lock().unwrap()
    );

    // A well-formed key the server does not know: 401, reported, not retried.
    let mut c = config("ml_sk_unknown1_0123456789abcdef0123", &proxy.url);
    c.fetch_schemas = false;
    let (client, errors) = recording_client(c);
    client
        .track("api.call", "c1", json!({"tokens": 1}), None, None)
        .unwrap();
    client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(proxy.attempts().len(), 2);
    assert_eq!(client.stats().dropped, 1);
    assert!(matches!(&errors.lock().unwrap()[..], [Error::Unauthorized { .. }]));
    assert!(stored_ids(&rt, &server, server.sk()).is_empty());
}

#[test]
fn server_side_rejections_are_reported_and_valid_events_of_the_batch_stored() {
    let rt = rt();
    let server = Server::start();
    let schema = json!({"type":"object","required":["tokens"],"properties":{"tokens":{"type":"integer"}}});
    let (status, body) = rt.block_on(server.call("PUT", "/v1/admin/schemas/api.call", server.ak(), Some(schema)));
    assert!(status.is_success(), "{status} {body}");

    // Without the server's schemas the client cannot know; the server refuses one event.
    let mut c = config(server.sk(), &server.url);
    c.fetch_schemas = false;
    let (client, errors) = recording_client(c);
    let good = client
        .track("api.call", "c1", json!({"tokens": 1}), None, None)
        .unwrap()
        .expect("queued");
    let bad = client
        .track("api.call", "c1", json!({"tokens": "x"}), None, None)
        .unwrap()
        .expect("queued");
    client.flush(Duration::from_secs(10)).unwrap();
    let stats = client.stats();
    assert_eq!((stats.sent, stats.rejected, stats.retried), (1, 1, 0));
    match &errors.lock().unwrap()[..] {
        [Error::Rejected(r)] => {
            assert_eq!(
                (r.code.as_str(), r.path.as_str(), r.id.as_deref()),
                ("schema_violation", "/data/tokens", Some(bad.as_str()))
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(stored_ids(&rt, &server, server.sk()), vec![good]);

    // With the server's schemas fetched, the same event fails at track() and is never queued.
    let client = Client::new(config(server.sk(), &server.url)).unwrap();
    client.refresh_schemas(Duration::from_secs(5)).unwrap();
    let err = client
        .track("api.call", "c1", json!({"tokens": "x"}), None, None)
        .unwrap_err();
    assert_eq!((err.code(), client.stats().enqueued), ("schema_violation", 0));
}

#[test]
fn a_full_queue_applies_the_overflow_policy_while_the_server_is_down() {
    let dead = "http://127.0.0.1:9"; // nothing listens on the discard port
    let mut c = config("ml_sk_offline1_0123456789abcdef0123", dead);
    c.fetch_schemas = false;
    c.max_queue_size = 10;
    c.flush_interval = Duration::from_secs(3600);
    c.flush_at = 1_000;
    // The default drops the new event without raising: no id, counted.
    let client = Client::new(c.clone()).unwrap();
    for i in 0..10 {
        client.track("t", "c", json!({"i": i}), None, None).unwrap();
    }
    assert_eq!(client.track("t", "c", json!({"i": 10}), None, None).unwrap(), None);
    assert_eq!(client.stats().dropped, 1);
    drop(client);

    c.overflow = OverflowPolicy::Reject;
    let client = Client::new(c.clone()).unwrap();
    for i in 0..10 {
        client.track("t", "c", json!({"i": i}), None, None).unwrap();
    }
    let err = client.track("t", "c", json!({"i": 10}), None, None).unwrap_err();
    assert_eq!(err.code(), "queue_full");
    assert_eq!(client.stats().dropped, 1);
    let err = client.shutdown(Duration::from_millis(200)).unwrap_err();
    assert_eq!(err.code(), "timeout");
    assert_eq!(
        client.stats().dropped,
        11,
        "undelivered events are counted when shutdown gives up"
    );
    assert_eq!(
        client.track("t", "c", json!({}), None, None).unwrap_err().code(),
        "client_closed"
    );

    c.overflow = OverflowPolicy::DropOldest;
    let client = Client::new(c.clone()).unwrap();
    for i in 0..15 {
        client.track("t", "c", json!({"i": i}), None, None).unwrap();
    }
    let stats = client.stats();
    assert_eq!((stats.enqueued, stats.dropped, stats.queue_length), (15, 5, 10));

    c.overflow = OverflowPolicy::Block;
    c.block_timeout = Duration::from_millis(100);
    let client = Client::new(c).unwrap();
    for i in 0..10 {
        client.track("t", "c", json!({"i": i}), None, None).unwrap();
    }
    let started = Instant::now();
    assert_eq!(client.track("t", "c", json!({}), None, None).unwrap(), None);
    assert!(started.elapsed() >= Duration::from_millis(100), "block waited for room");
    assert_eq!(client.stats().dropped, 1);
}
