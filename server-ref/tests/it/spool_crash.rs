//! The core client's disk spool (`spool_dir`) against the real server: a child process
//! tracking 100,000 events is killed with SIGKILL at random points and restarted; in the end
//! the server holds every event `track()` accepted, exactly once, and the spool is empty.
//! Also: events the server refuses for good (401) leave the spool, and what was spooled while
//! the server was down goes out first at the next start.
//!
//! Every child sends through its own recording proxy, so what each run sent is known: within
//! a run an id goes out again only after a failed or unanswered attempt, and what a run sends
//! of earlier runs' ids (the replay) is at most what the spool held when it started.
//!
//! The child is this test binary itself, re-run with `--ignored --exact spool_crash::spool_child` and its
//! instructions in environment variables; it prints `accepted <id>` (line-buffered, so each
//! line is out before the next `track()`) for every id `track()` accepted.

#![allow(clippy::unwrap_used, missing_docs)]

// The recording HTTP proxy of the delivery tests (only its recording is used here).
use crate::{common, sdk_delivery::proxy};

use std::{
    collections::HashSet,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use common::{
    Server,
    delivery::{assert_resent_only_after_failures, rt},
};
use meterline_core::{Client, Config, Error, SpoolFsync, runtime::native::Callbacks};
use serde_json::json;

const TOTAL: u64 = 100_000;
const KILLS: usize = 5;
const EVENT_TYPE: &str = "spool.test";

fn config(key: &str, endpoint: &str, spool: &Path) -> Config {
    let mut c = Config::new(key, endpoint);
    c.source = "spool-crash-test".into();
    c.fetch_schemas = false;
    c.stream = false;
    c.flush_interval = Duration::from_millis(50);
    c.max_in_flight = 4;
    c.retry.initial_delay = Duration::from_millis(10);
    c.retry.max_delay = Duration::from_millis(200);
    c.spool_dir = Some(spool.to_owned());
    c.spool_fsync = SpoolFsync::Never;
    c
}

fn event_id(i: u64) -> String {
    format!("spool-{i:06}")
}

/// The child: tracks ids `SPOOL_FROM..SPOOL_TO`, printing each accepted one, then flushes.
#[test]
#[ignore = "the child process of `sigkilled_client_loses_nothing_and_sends_nothing_twice`"]
fn spool_child() {
    let var = |name: &str| std::env::var(name).unwrap();
    let from: u64 = var("SPOOL_FROM").parse().unwrap();
    let to: u64 = var("SPOOL_TO").parse().unwrap();
    let c = config(&var("SPOOL_KEY"), &var("SPOOL_ENDPOINT"), Path::new(&var("SPOOL_DIR")));
    let client = Client::new(c).unwrap();
    println!("replaying {}", client.stats().spool_length);
    for i in from..to {
        let id = client
            .track(
                EVENT_TYPE,
                &format!("customer-{}", i % 31),
                json!({"i": i}),
                Some(event_id(i)),
                None,
            )
            .unwrap()
            .expect("queued");
        println!("accepted {id}");
    }
    client.flush(Duration::from_secs(120)).unwrap();
    println!("spool_length {}", client.stats().spool_length);
}

struct Run {
    /// Indices the child reported accepted.
    accepted: Vec<u64>,
    finished: bool,
}

/// Runs the child over `from..to`, sending to `endpoint`; with `kill_after`, SIGKILLs it
/// once it reported that many.
fn run_child(server: &Server, endpoint: &str, spool: &Path, from: u64, to: u64, kill_after: Option<u64>) -> Run {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "spool_crash::spool_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SPOOL_FROM", from.to_string())
        .env("SPOOL_TO", to.to_string())
        .env("SPOOL_KEY", server.sk())
        .env("SPOOL_ENDPOINT", endpoint)
        .env("SPOOL_DIR", spool)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut accepted = Vec::new();
        let mut finished = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(id) = line.strip_prefix("accepted ") {
                accepted.push(id.trim_start_matches("spool-").parse::<u64>().unwrap());
                let _ = tx.send(accepted.len() as u64);
            } else if let Some(n) = line.strip_prefix("spool_length ") {
                assert_eq!(n, "0", "the spool is not empty after the final flush");
                finished = true;
            }
        }
        Run { accepted, finished }
    });
    if let Some(kill_after) = kill_after {
        while let Ok(n) = rx.recv_timeout(Duration::from_secs(60)) {
            if n >= kill_after {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
    }
    let status = child.wait().unwrap();
    let run = reader.join().unwrap();
    if kill_after.is_none() {
        assert!(status.success(), "the final child failed: {status}");
    }
    run
}

/// How many events the spool in `dir` holds, read by a client that cannot send (it gives
/// up at once, and what it found stays spooled).
fn spooled(dir: &Path) -> u64 {
    let client = Client::new(config("ml_sk_nosend_0123456789abcdef0123", "http://127.0.0.1:9", dir)).unwrap();
    let held = client.stats().spool_length;
    assert!(client.shutdown(Duration::ZERO).is_err() || held == 0);
    assert_eq!(client.stats().spool_length, held, "the counting client sent nothing");
    held
}

/// What one run sent through its proxy: `attempts` checked by the resend bound, and how many
/// distinct ids of earlier runs (below `from`) it sent — its replay.
fn replayed(proxy: &proxy::Proxy, from: u64) -> usize {
    let attempts = proxy.attempts();
    assert_resent_only_after_failures(&attempts, |_| false);
    let ids: HashSet<&str> = attempts
        .iter()
        .flat_map(|(ids, _)| ids.iter().map(String::as_str))
        .collect();
    ids.iter()
        .filter(|id| id.trim_start_matches("spool-").parse::<u64>().unwrap() < from)
        .count()
}

#[test]
fn sigkilled_client_loses_nothing_and_sends_nothing_twice() {
    let rt = rt();
    let server = Server::start();
    let spool = tempfile::tempdir().unwrap();
    // (spooled at the start, replayed) of each run after the first.
    let mut replays: Vec<(u64, usize)> = Vec::new();
    let mut accepted: HashSet<u64> = HashSet::new();
    // Every index a child may have tried: all reported ones, plus the one it was in when
    // killed (it may be spooled without being reported).
    let mut attempted: HashSet<u64> = HashSet::new();
    let mut next = 0;
    let mut seed = fastrand_seed();
    for round in 0..KILLS {
        let kill_after = 2_000 + next_random(&mut seed) % 20_000;
        let held = spooled(spool.path());
        let proxy = rt.block_on(proxy::Proxy::start(&server.url));
        let run = run_child(&server, &proxy.url, spool.path(), next, TOTAL, Some(kill_after));
        let last = run.accepted.last().copied().unwrap_or(next);
        assert!(
            run.accepted.len() as u64 >= kill_after.min(TOTAL - next),
            "round {round}: killed early"
        );
        assert!(!run.finished, "round {round}: the child finished before the kill");
        if round > 0 {
            replays.push((held, replayed(&proxy, next)));
        }
        accepted.extend(&run.accepted);
        attempted.extend(next..=last + 1);
        // Skip the index the child may have been in: each id is tracked by one run only.
        next = last + 2;
        eprintln!(
            "round {round}: killed after {} accepted (next {next})",
            run.accepted.len()
        );
    }
    let held = spooled(spool.path());
    let proxy = rt.block_on(proxy::Proxy::start(&server.url));
    let run = run_child(&server, &proxy.url, spool.path(), next, TOTAL, None);
    assert!(run.finished, "the final child did not flush");
    // The final run is not killed: it replays all that the last kill left.
    assert_eq!(
        replayed(&proxy, next),
        held as usize,
        "the final run replays the whole spool"
    );
    replays.push((held, held as usize));
    eprintln!("(spooled at start, replayed) per restart: {replays:?}");
    for (held, sent) in &replays {
        assert!(
            *sent as u64 <= *held,
            "a run sent {sent} earlier ids with {held} spooled"
        );
    }
    assert!(
        replays.iter().any(|&(held, sent)| held > 0 && sent > 0),
        "no kill left events in the spool to replay: {replays:?}"
    );
    accepted.extend(&run.accepted);
    attempted.extend(next..TOTAL);

    let stored: Vec<u64> = rt
        .block_on(server.all_events(server.sk(), &format!("type={EVENT_TYPE}")))
        .iter()
        .map(|e| e["id"].as_str().unwrap().trim_start_matches("spool-").parse().unwrap())
        .collect();
    let unique: HashSet<u64> = stored.iter().copied().collect();
    assert_eq!(unique.len(), stored.len(), "an event was stored twice");
    let lost: Vec<&u64> = accepted.difference(&unique).take(10).collect();
    assert!(lost.is_empty(), "accepted events never stored (first 10): {lost:?}");
    let stray: Vec<&u64> = unique.difference(&attempted).take(10).collect();
    assert!(stray.is_empty(), "stored events never tracked: {stray:?}");
    assert!(accepted.len() as u64 > TOTAL - 2 * KILLS as u64);

    // A new client on the same directory finds nothing to replay.
    let client = Client::new(config(server.sk(), &server.url, spool.path())).unwrap();
    assert_eq!(client.stats().spool_length, 0);
}

/// Events spooled while the server is down are sent at the next start, before new ones, with
/// their ids (the server stores each once).
#[test]
fn events_spooled_while_the_server_is_down_go_out_first_at_the_next_start() {
    let rt = rt();
    let server = Server::start();
    let spool = tempfile::tempdir().unwrap();
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let client = Client::new(config(server.sk(), &down, spool.path())).unwrap();
    for i in 0..300 {
        client
            .track(EVENT_TYPE, "c", json!({"i": i}), Some(event_id(i)), None)
            .unwrap();
    }
    assert_eq!(client.stats().spool_length, 300);
    // The server is unreachable: shutdown gives up, the events stay spooled (not dropped),
    // and the directory is released at once: the next client opens it while this handle lives.
    assert!(client.shutdown(Duration::from_millis(300)).is_err());
    let stats = client.stats();
    assert_eq!((stats.dropped, stats.spool_length), (0, 300));
    let down_client = client;

    // One batch in flight at a time, so the server's order is the client's sending order.
    let mut c = config(server.sk(), &server.url, spool.path());
    c.max_in_flight = 1;
    let client = Client::new(c).unwrap();
    assert_eq!(client.stats().spool_length, 300);
    for i in 300..400 {
        client
            .track(EVENT_TYPE, "c", json!({"i": i}), Some(event_id(i)), None)
            .unwrap();
    }
    client.flush(Duration::from_secs(30)).unwrap();
    let stats = client.stats();
    assert_eq!((stats.sent, stats.spool_length, stats.queue_length), (400, 0, 0));
    let events = rt.block_on(server.all_events(server.sk(), &format!("type={EVENT_TYPE}")));
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 400);
    // Replayed first: the server's ingest order puts every spooled event before the new ones.
    let first_new = events
        .iter()
        .position(|e| e["data"]["i"].as_u64().unwrap() >= 300)
        .unwrap();
    let last_old = events
        .iter()
        .rposition(|e| e["data"]["i"].as_u64().unwrap() < 300)
        .unwrap();
    assert!(last_old < first_new, "a new event was stored before a replayed one");
    drop(down_client);
}

/// A batch the server refuses for good (an unknown key: 401) is not kept for a later start.
#[test]
fn a_batch_refused_with_a_4xx_leaves_the_spool() {
    let server = Server::start();
    let spool = tempfile::tempdir().unwrap();
    let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = errors.clone();
    let callbacks = Callbacks {
        on_error: Some(std::sync::Arc::new(move |e: &Error| {
            sink.lock().unwrap().push(e.clone())
        })),
        ..Callbacks::default()
    };
    let unknown_key = "ml_sk_nosuch_0123456789abcdef0123";
    let client = Client::with_callbacks(config(unknown_key, &server.url, spool.path()), callbacks).unwrap();
    for i in 0..10 {
        client
            .track(EVENT_TYPE, "c", json!({"i": i}), Some(event_id(i)), None)
            .unwrap();
    }
    client.flush(Duration::from_secs(30)).unwrap();
    let stats = client.stats();
    assert_eq!((stats.dropped, stats.spool_length), (10, 0));
    assert!(
        matches!(&errors.lock().unwrap()[..], [Error::Unauthorized { .. }]),
        "{:?}",
        errors.lock().unwrap()
    );
    drop(client);
    let client = Client::new(config(unknown_key, &server.url, spool.path())).unwrap();
    assert_eq!(client.stats().spool_length, 0);
}

fn fastrand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1
}

/// xorshift64: kill points differ from run to run (the seed is printed on failure).
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    eprintln!("kill point from seed state {state}");
    *state
}
