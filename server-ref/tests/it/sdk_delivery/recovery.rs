//! Recovery after an outage: the server binary is killed, 2,000 events are queued while it is
//! down, and it is started again on the same port. These tests assert *how* the client gets
//! out of the outage, which holds on any machine; how *fast* (issue 19: ≤ 1 s from the
//! server's return to everything stored with `flush()`, ≤ 5 s without) is measured with the
//! default options by `server-ref/benches/recovery.rs` (`make bench`), into
//! bench/results/core-recovery-*.json. The 4 s cap of the probe interval is checked by the
//! outbox vectors (tests/vectors/outbox.json, "connection failures: …").
//!
//! * `flush()` cuts the backoff short: behind a front that answers 502 while the server is
//!   down (as a load balancer does), the client's backoff after a failed attempt is a draw
//!   below a day. After the server's return `flush()` delivers everything within its 60 s
//!   timeout, and the first attempt after the return already finds the server (no attempt
//!   fails after it): the wait was cut, not waited out — a `flush()` that left the backoff
//!   alone would time out unless the day's draw fell below a minute (< 0.1 %).
//! * Without `flush()` the client's own probes find the server (connection refused during
//!   the outage, the default options) and deliver everything, once.
//!
//! `RECOVERY_OUTAGE_SECS` sets the second case's outage (default 10: long enough for the
//! backoff to reach its cap).

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use meterline_core::{Client, Config};
use serde_json::json;

use super::proxy::Proxy;
use crate::common::{
    Server,
    delivery::{assert_exactly_once, rt, stored_ids},
    tempdir,
};

const EVENTS: u64 = 2_000;

/// The backoff ceiling of the flush case: no draw below it elapses during the test.
const DAY: Duration = Duration::from_secs(24 * 3600);

fn outage() -> Duration {
    let secs = std::env::var("RECOVERY_OUTAGE_SECS").map_or(10, |v| v.parse().unwrap());
    Duration::from_secs(secs)
}

fn port(server: &Server) -> String {
    server.url.rsplit(':').next().unwrap().to_owned()
}

/// The default client options, as a user leaves them (no schema fetch, no stream).
fn default_config(key: &str, endpoint: &str) -> Config {
    let mut c = Config::new(key, endpoint);
    c.source = "recovery-test".into();
    c.fetch_schemas = false;
    c.stream = false;
    c
}

/// Tracks one event and flushes it (the path works), kills the server and queues [`EVENTS`]
/// events. Returns the ids of every event tracked.
fn deliver_one_then_kill(client: &Client, server: Server) -> HashSet<String> {
    let mut tracked = HashSet::new();
    tracked.insert(
        client
            .track("api.call", "c1", json!({"i": -1}), None, None)
            .unwrap()
            .expect("queued"),
    );
    client.flush(Duration::from_secs(30)).unwrap();
    server.kill9();
    for i in 0..EVENTS {
        tracked.insert(
            client
                .track("api.call", "c1", json!({"i": i}), None, None)
                .unwrap()
                .expect("queued"),
        );
    }
    tracked
}

fn assert_all_stored_once(client: &Client, server: &Server, tracked: &HashSet<String>) {
    let stats = client.stats();
    assert_eq!(
        (stats.sent, stats.dropped, stats.queue_length),
        (EVENTS + 1, 0, 0),
        "{stats:?}"
    );
    let key = client.config().api_key.clone();
    assert_exactly_once(&stored_ids(&rt(), server, &key), tracked);
}

#[test]
fn flush_ends_the_backoff_at_once_when_the_server_is_back() {
    let rt = rt();
    let dir = tempdir();
    let server = Server::start_in(dir.clone(), &[]);
    let key = server.sk().to_owned();
    let port = port(&server);
    let front = rt.block_on(Proxy::start(&server.url));
    let mut c = default_config(&key, &front.url);
    c.retry.initial_delay = DAY;
    c.retry.max_delay = DAY;
    // One request at a time: once the client counted its failed attempt no other is on its
    // way (one reaching the server after its return would end the outage by itself).
    c.max_in_flight = 1;
    let client = Client::new(c).unwrap();
    let tracked = deliver_one_then_kill(&client, server);

    // The front answers 502 for the dead server; wait until the client counted the failure:
    // it is in its backoff, and nothing is on its way.
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.stats().retried == 0 {
        assert!(
            Instant::now() < deadline,
            "no failed attempt within 60 s: {:?}",
            client.stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let attempts = front.attempts();
    let failed_at = attempts.len();
    assert!(
        failed_at == 2 && attempts[0].1 == 202 && attempts[1].1 == 502,
        "one delivered event, then one failed batch: {:?}",
        attempts
            .iter()
            .map(|(ids, status)| (ids.len(), *status))
            .collect::<Vec<_>>()
    );
    assert_eq!(client.stats().queue_length, EVENTS, "{:?}", client.stats());

    let server = Server::start_bound(dir, &format!("127.0.0.1:{port}"), &[]);
    let back = Instant::now();
    let flushed = client.flush(Duration::from_secs(60));
    let took = back.elapsed();
    eprintln!(
        "recovery with flush() (backoff below a day): {EVENTS} events delivered {} ms after the server's return",
        took.as_millis()
    );
    // Attempts made after the last failed one (the return came after it): none failed.
    let attempts = front.attempts();
    assert!(
        flushed.is_ok(),
        "flush() did not deliver within 60 s of the server's return (the backoff was not cut short): \
         {flushed:?}; {:?}; attempts after the failure: {:?}",
        client.stats(),
        attempts[failed_at..]
            .iter()
            .map(|(ids, status)| (ids.len(), *status))
            .collect::<Vec<_>>()
    );
    let after: Vec<_> = attempts[failed_at..]
        .iter()
        .filter(|(ids, _)| !ids.is_empty())
        .collect();
    assert!(
        after.iter().all(|(_, status)| (200..300).contains(status)),
        "an attempt after the return failed: {:?}",
        after
            .iter()
            .map(|(ids, status)| (ids.len(), *status))
            .collect::<Vec<_>>()
    );
    // Each queued id went out once after the return: the probe, then the rest; none again.
    let sent: Vec<&String> = after.iter().flat_map(|(ids, _)| ids).collect();
    let unique: HashSet<&String> = sent.iter().copied().collect();
    assert_eq!((sent.len(), unique.len()), (EVENTS as usize, EVENTS as usize));
    assert_all_stored_once(&client, &server, &tracked);
    client.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn without_flush_the_client_finds_the_server_by_its_own_probes() {
    let dir = tempdir();
    let server = Server::start_in(dir.clone(), &[]);
    let key = server.sk().to_owned();
    let port = port(&server);
    let client = Client::new(default_config(&key, &server.url)).unwrap();
    let tracked = deliver_one_then_kill(&client, server);
    std::thread::sleep(outage());
    let stats = client.stats();
    assert!(stats.retried > 0, "the client tried during the outage: {stats:?}");
    assert_eq!(stats.queue_length, EVENTS, "{stats:?}");

    let server = Server::start_bound(dir, &format!("127.0.0.1:{port}"), &[]);
    let back = Instant::now();
    // No call: the next probe (a draw below 4 s after the last) finds the server. 60 s is a
    // bound for "it happens", not the speed target (that is the bench's).
    while client.stats().sent < EVENTS + 1 && back.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "recovery without flush(): {EVENTS} events delivered {} ms after the server's return (outage {:?})",
        back.elapsed().as_millis(),
        outage()
    );
    assert_all_stored_once(&client, &server, &tracked);
    client.shutdown(Duration::from_secs(5)).unwrap();
}
