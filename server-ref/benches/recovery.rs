//! Recovery after a server outage, timed (issue 19: ≤ 1 s from the server's return to every
//! queued event stored when `flush()` is called, ≤ 5 s without). The core SDK client with its
//! default options delivers to the real `meterline-server` (release) on a fresh SQLite file;
//! the server is killed (`kill -9`), `BENCH_EVENTS` events (default 2,000) are tracked while
//! it is down, and after `RECOVERY_OUTAGE_SECS` (default 20: the backoff is at its cap) it is
//! started again on the same port. Timed from the moment the restarted server prints its
//! listening line until the client counts the last event sent (the server committed it):
//! once with `flush()` called at the return, once without any call. `BENCH_RUNS` runs
//! (default 3), each with a fresh server and client; prints each run, then the median and
//! the largest of each case (the lines `scripts/results.py recovery` reads).
//!
//! `cargo bench -p meterline-server --bench recovery`. The tests in
//! server-ref/tests/it/sdk_delivery/recovery.rs assert the behaviour (the backoff cut short,
//! every event stored once); this measures how long it takes on this machine.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use meterline_core::{Client, Config};
use serde_json::json;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The server on the SQLite file in `dir`, listening on `bind`: the process, its base URL
/// and, on the first start, the secret key it printed.
fn start(dir: &Path, bind: &str) -> (Child, String, Option<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meterline-server"))
        .args(["--bind", bind, "--database-url"])
        .arg(format!("sqlite://{}", dir.join("recovery.db").display()))
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start meterline-server");
    let mut secret = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(k) = line.strip_prefix("secret key: ") {
            secret = Some(k.to_owned());
        } else if let Some(base) = line.strip_prefix("meterline-server listening on ") {
            return (child, base.to_owned(), secret);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("meterline-server on {bind} did not start (its error is above)");
}

fn kill9(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// One outage and return; the time from the return to every event sent, in ms.
fn run_once(events: u64, outage: Duration, flush: bool) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (server, base, secret) = start(dir.path(), "127.0.0.1:0");
    let mut c = Config::new(secret.expect("a first start prints the secret key"), &base);
    c.source = "recovery-bench".into();
    c.fetch_schemas = false;
    c.stream = false;
    let client = Client::new(c).unwrap();
    client.track("api.call", "c1", json!({"i": -1}), None, None).unwrap();
    client.flush(Duration::from_secs(30)).unwrap();

    kill9(server);
    for i in 0..events {
        client
            .track("api.call", "c1", json!({"i": i}), None, None)
            .unwrap()
            .expect("queued");
    }
    std::thread::sleep(outage);
    let stats = client.stats();
    assert!(stats.retried > 0 && stats.queue_length == events, "{stats:?}");

    let port = base.rsplit(':').next().unwrap();
    let (server, _, _) = start(dir.path(), &format!("127.0.0.1:{port}"));
    let back = Instant::now();
    if flush {
        client.flush(Duration::from_secs(120)).unwrap();
    } else {
        while client.stats().sent < events + 1 {
            assert!(back.elapsed() < Duration::from_secs(120), "not delivered within 120 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let ms = back.elapsed().as_secs_f64() * 1e3;
    let stats = client.stats();
    assert_eq!(
        (stats.sent, stats.dropped, stats.queue_length),
        (events + 1, 0, 0),
        "{stats:?}"
    );
    client.shutdown(Duration::from_secs(5)).unwrap();
    kill9(server);
    ms
}

fn summary(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "recovery {label}: median {:.0} ms, max {:.0} ms ({} runs)",
        ms[ms.len() / 2],
        ms[ms.len() - 1],
        ms.len()
    );
}

fn main() {
    let events = knob("BENCH_EVENTS", 2_000);
    let outage = Duration::from_secs(knob("RECOVERY_OUTAGE_SECS", 20));
    let runs = knob("BENCH_RUNS", 3).max(1);
    println!("{events} events tracked during a {outage:?} outage (kill -9), default client options, {runs} runs");
    let (mut with, mut without) = (vec![], vec![]);
    for run in 1..=runs {
        with.push(run_once(events, outage, true));
        without.push(run_once(events, outage, false));
        println!(
            "run {run}: with flush() {:.0} ms, without flush() {:.0} ms",
            with[with.len() - 1],
            without[without.len() - 1]
        );
    }
    summary("with flush()", with);
    summary("without flush()", without);
}
