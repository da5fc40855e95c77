//! Recovery after an outage: the server binary is stopped, 2,000 events are queued while it
//! is down (default retry policy: the backoff grows well past a second), and it is started
//! again on the same port. Once it is back, `flush()` delivers everything within 1 s (it cuts
//! the backoff short), and the client on its own within 5 s (the probe interval's cap).
//! `RECOVERY_OUTAGE_SECS` sets the outage (default 10; bench/RESULTS.md uses 20).

use std::time::{Duration, Instant};

use meterline_core::Client;
use serde_json::json;

use crate::common::{
    Server,
    delivery::{rt, stored_ids},
    tempdir,
};

const EVENTS: u64 = 2_000;

fn outage() -> Duration {
    let secs = std::env::var("RECOVERY_OUTAGE_SECS").map_or(10, |v| v.parse().unwrap());
    Duration::from_secs(secs)
}

/// Starts a server, a client with the default batching and retry options, stops the server,
/// queues [`EVENTS`] events, waits out the outage and restarts the server on its port.
/// Returns the client, the restarted server and when it was back.
fn outage_then_restart() -> (Client, Server, Instant) {
    let dir = tempdir();
    let server = Server::start_in(dir.clone(), &[]);
    let key = server.sk().to_owned();
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let mut c = meterline_core::Config::new(&key, &server.url);
    c.source = "recovery-test".into();
    c.fetch_schemas = false;
    c.stream = false;
    let client = Client::new(c).unwrap();
    client.track("api.call", "c1", json!({"i": -1}), None, None).unwrap();
    client.flush(Duration::from_secs(10)).unwrap();

    server.kill9();
    for i in 0..EVENTS {
        client
            .track("api.call", "c1", json!({"i": i}), None, None)
            .unwrap()
            .expect("queued");
    }
    std::thread::sleep(outage());
    let stats = client.stats();
    assert!(stats.retried > 0, "the client tried during the outage: {stats:?}");
    assert_eq!(stats.queue_length, EVENTS, "{stats:?}");
    let server = Server::start_bound(dir, &format!("127.0.0.1:{port}"), &[]);
    let back = Instant::now();
    (client, server, back)
}

fn assert_all_stored(client: &Client, server: &Server, key: &str) {
    let stats = client.stats();
    assert_eq!(
        (stats.sent, stats.dropped, stats.queue_length),
        (EVENTS + 1, 0, 0),
        "{stats:?}"
    );
    let stored = stored_ids(&rt(), server, key);
    assert_eq!(stored.len() as u64, EVENTS + 1);
}

/// One test, the two cases one after the other: each measures how fast the client delivers,
/// and two servers ingesting at once on two cores would measure the machine instead.
#[test]
fn after_an_outage_the_queue_is_delivered_promptly_once_the_server_is_back() {
    // With `flush()`: it cuts the backoff short, one probe at once.
    let (client, server, back) = outage_then_restart();
    client.flush(Duration::from_secs(30)).unwrap();
    let took = back.elapsed();
    eprintln!(
        "recovery with flush(): {EVENTS} events delivered {} ms after the server's return (outage {:?})",
        took.as_millis(),
        outage()
    );
    let key = client.config().api_key.clone();
    assert_all_stored(&client, &server, &key);
    client.shutdown(Duration::from_secs(5)).unwrap();
    drop(server);
    let with_flush = took;

    // Without it: the next probe (at most 5 s after the last) finds the server.
    let (client, server, back) = outage_then_restart();
    let deadline = back + Duration::from_secs(30);
    while client.stats().sent < EVENTS + 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = back.elapsed();
    eprintln!(
        "recovery without flush(): {EVENTS} events delivered {} ms after the server's return (outage {:?})",
        took.as_millis(),
        outage()
    );
    let key = client.config().api_key.clone();
    assert_all_stored(&client, &server, &key);
    client.shutdown(Duration::from_secs(5)).unwrap();
    // Both measured before either is judged.
    assert!(
        with_flush <= Duration::from_secs(1),
        "with flush(): took {with_flush:?}"
    );
    assert!(took <= Duration::from_secs(5), "without flush(): took {took:?}");
}
