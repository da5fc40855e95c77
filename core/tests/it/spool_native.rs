//! The disk spool (`spool_dir`) without a server (a port nobody listens on, so events stay
//! spooled): bound and overflow policies, replay at the next start, one client per
//! directory, and stores that are truncated, filled with garbage or hold entries that are
//! not events. Delivery, removal after the server's answer and SIGKILL survival are tested
//! against the real server in `server-ref/tests/it/spool_crash.rs`.
#![cfg(feature = "native")]
#![allow(clippy::unwrap_used, missing_docs)]

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use meterline_core::{Client, Config, Error, OverflowPolicy, SpoolFsync};
use serde_json::json;

use crate::common::{recording, refused_endpoint};

const KEY: &str = "ml_sk_native_0123456789abcdef0123";

fn config(spool: &Path) -> Config {
    let mut c = Config::new(KEY, refused_endpoint());
    c.fetch_schemas = false;
    c.stream = false;
    c.spool_dir = Some(spool.to_owned());
    c.spool_fsync = SpoolFsync::Never;
    c
}

fn track(client: &Client, i: u64) -> Result<Option<String>, Error> {
    client.track("api.call", "c1", json!({"i": i}), Some(format!("ev-{i}")), None)
}

/// Tracks `n` events with the server down and stops: they stay in the spool.
fn spool_events(dir: &Path, n: u64) {
    let client = Client::new(config(dir)).unwrap();
    for i in 0..n {
        track(&client, i).unwrap();
    }
    assert_eq!(client.stats().spool_length, n);
    stop(client);
}

/// Opens a client on `dir`, takes its stats and stops it (the server is down: without the
/// short shutdown, dropping it would wait 5 s trying to deliver).
fn stats_at_start(c: Config) -> meterline_core::Stats {
    let client = Client::new(c).unwrap();
    let stats = client.stats();
    let _ = client.shutdown(Duration::from_millis(100));
    stats
}

/// Stops a client whose events cannot be delivered.
fn stop(client: Client) {
    assert!(client.shutdown(Duration::from_millis(100)).is_err());
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn events_stay_spooled_while_the_server_is_down_and_are_found_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    spool_events(dir.path(), 120);
    let client = Client::new(config(dir.path())).unwrap();
    let stats = client.stats();
    assert_eq!((stats.spool_length, stats.queue_length, stats.enqueued), (120, 120, 0));
    // New keys continue after the replayed ones: nothing is overwritten.
    track(&client, 120).unwrap();
    assert_eq!(client.stats().spool_length, 121);
    stop(client);
    assert_eq!(stats_at_start(config(dir.path())).spool_length, 121);
}

#[test]
fn every_fsync_policy_spools() {
    for policy in [SpoolFsync::Always, SpoolFsync::Interval, SpoolFsync::Never] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.spool_fsync = policy;
        let client = Client::new(c).unwrap();
        for i in 0..20 {
            track(&client, i).unwrap();
        }
        assert_eq!(client.stats().spool_length, 20, "{policy:?}");
        stop(client);
        assert_eq!(stats_at_start(config(dir.path())).spool_length, 20);
    }
}

#[test]
fn the_spool_is_bounded_by_max_queue_size_with_the_overflow_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.max_queue_size = 5;
    c.overflow = OverflowPolicy::Reject;
    let client = Client::new(c.clone()).unwrap();
    for i in 0..5 {
        track(&client, i).unwrap();
    }
    assert!(matches!(track(&client, 5), Err(Error::QueueFull { capacity: 5, .. })));
    let stats = client.stats();
    assert_eq!((stats.spool_length, stats.dropped), (5, 1));
    stop(client);

    c.overflow = OverflowPolicy::DropOldest;
    let client = Client::new(c.clone()).unwrap();
    assert_eq!(client.stats().spool_length, 5);
    for i in 10..13 {
        track(&client, i).unwrap();
    }
    let stats = client.stats();
    assert_eq!((stats.spool_length, stats.queue_length, stats.dropped), (5, 5, 3));
    stop(client);

    // A smaller bound at the next start: the replay keeps what the policy keeps.
    c.max_queue_size = 2;
    c.overflow = OverflowPolicy::DropNewest;
    let stats = stats_at_start(c);
    assert_eq!((stats.spool_length, stats.queue_length, stats.dropped), (2, 2, 3));
}

#[test]
fn a_second_client_on_the_same_directory_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let first = Client::new(config(dir.path())).unwrap();
    match Client::new(config(dir.path())) {
        Err(Error::Config { field, message }) => {
            assert_eq!(field, "spool_dir");
            assert!(message.contains("in use by another client"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    first.shutdown(Duration::from_millis(200)).unwrap();
    drop(first);
    Client::new(config(dir.path())).unwrap();
}

#[test]
fn a_spool_dir_that_is_a_file_is_a_config_error() {
    let file = tempfile::NamedTempFile::new().unwrap();
    match Client::new(config(file.path())) {
        Err(Error::Config { field, message }) => {
            assert_eq!(field, "spool_dir");
            assert!(message.contains(&file.path().display().to_string()), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_store_filled_with_garbage_is_moved_aside_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    spool_events(dir.path(), 50);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for file in files_under(&dir.path().join("store")) {
        let len = std::fs::metadata(&file).unwrap().len().max(64);
        let garbage: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        std::fs::write(&file, garbage).unwrap();
    }
    let (client, errors) = recording(config(dir.path()));
    assert_eq!(client.stats().spool_length, 0);
    match &errors.lock().unwrap().clone()[..] {
        [Error::Config { field, message }] => {
            assert_eq!(*field, "spool_dir");
            assert!(message.contains("moved it to"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    // The fresh store works.
    track(&client, 1).unwrap();
    assert_eq!(client.stats().spool_length, 1);
    stop(client);
}

#[test]
fn truncated_store_files_never_crash_the_client() {
    for keep in [0.0, 0.5, 0.9] {
        let dir = tempfile::tempdir().unwrap();
        spool_events(dir.path(), 200);
        for file in files_under(&dir.path().join("store")) {
            let len = std::fs::metadata(&file).unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
            f.set_len((len as f64 * keep) as u64).unwrap();
        }
        let (client, errors) = recording(config(dir.path()));
        let spooled = client.stats().spool_length;
        assert!(spooled <= 200, "{keep}: {spooled}");
        // Either what survived was recovered, or the store was moved aside and reported.
        let reported = errors.lock().unwrap().clone();
        assert!(
            reported.is_empty() || matches!(&reported[..], [Error::Config { field, .. }] if field == "spool_dir"),
            "{keep}: {reported:?}"
        );
        track(&client, 1000).unwrap();
        assert_eq!(client.stats().spool_length, spooled + 1);
        stop(client);
    }
}

#[test]
fn entries_that_are_not_events_are_skipped_counted_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    spool_events(dir.path(), 3);
    {
        let keyspace = fjall::Config::new(dir.path().join("store")).open().unwrap();
        let events = keyspace
            .open_partition("events", fjall::PartitionCreateOptions::default())
            .unwrap();
        events.insert(100u64.to_be_bytes(), b"not json".as_slice()).unwrap();
        events
            .insert(101u64.to_be_bytes(), br#"{"no":"id"}"#.as_slice())
            .unwrap();
        events.insert(b"short".as_slice(), br#"{"id":"x"}"#.as_slice()).unwrap();
        keyspace.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let client = Client::new(config(dir.path())).unwrap();
    let stats = client.stats();
    assert_eq!((stats.spool_length, stats.queue_length, stats.dropped), (3, 3, 3));
    stop(client);
    // Removed from the store: not counted again.
    let stats = stats_at_start(config(dir.path()));
    assert_eq!((stats.spool_length, stats.dropped), (3, 0));
}

#[test]
fn shutdown_keeps_undelivered_events_spooled_not_dropped_and_releases_the_directory() {
    // `queued`: the events never left the queue; `in flight`: a flush put them in batches
    // that were retrying when shutdown's deadline aborted them.
    for in_flight in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::new(config(dir.path())).unwrap();
        for i in 0..30 {
            track(&client, i).unwrap();
        }
        if in_flight {
            assert!(matches!(
                client.flush(Duration::from_millis(200)),
                Err(Error::Timeout(_))
            ));
            assert!(client.stats().queue_length > 0);
        }
        assert!(matches!(
            client.shutdown(Duration::from_millis(100)),
            Err(Error::Timeout(_))
        ));
        let stats = client.stats();
        assert_eq!((stats.dropped, stats.spool_length), (0, 30), "in flight: {in_flight}");
        assert!(matches!(track(&client, 99), Err(Error::Closed)));
        // The old handle still exists: shutdown alone released the store and the lock.
        let next = Client::new(config(dir.path())).unwrap();
        let stats = next.stats();
        assert_eq!(
            (stats.spool_length, stats.queue_length),
            (30, 30),
            "in flight: {in_flight}"
        );
        stop(next);
        drop(client);
        assert_eq!(stats_at_start(config(dir.path())).spool_length, 30);
    }
}

#[test]
fn a_batch_given_up_on_for_network_errors_stays_spooled_and_is_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.retry.initial_delay = Duration::from_millis(1);
    c.retry.max_delay = Duration::from_millis(5);
    c.retry.max_retries = Some(2);
    let (client, errors) = recording(c);
    for i in 0..10 {
        track(&client, i).unwrap();
    }
    // Settles once the retries are exhausted.
    client.flush(Duration::from_secs(30)).unwrap();
    let stats = client.stats();
    assert_eq!((stats.dropped, stats.spool_length, stats.queue_length), (0, 10, 0));
    assert!(
        matches!(&errors.lock().unwrap()[..], [Error::Network(_)]),
        "{:?}",
        errors.lock().unwrap()
    );
    client.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(client.stats().spool_length, 10);
    assert_eq!(stats_at_start(config(dir.path())).spool_length, 10);
}

#[test]
fn a_clean_shutdown_releases_the_directory_while_the_handle_lives() {
    let dir = tempfile::tempdir().unwrap();
    let first = Client::new(config(dir.path())).unwrap();
    first.shutdown(Duration::from_millis(200)).unwrap();
    let second = Client::new(config(dir.path())).unwrap();
    assert_eq!(second.stats().spool_length, 0);
    // A second shutdown of the first handle does not touch the second client's spool.
    first.shutdown(Duration::from_millis(200)).unwrap();
    track(&second, 1).unwrap();
    assert_eq!(second.stats().spool_length, 1);
    stop(second);
    drop(first);
}
