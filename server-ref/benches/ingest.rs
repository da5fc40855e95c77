//! Ingest throughput: durable events/s through the real server binary versus the bare
//! `serde_json` parse of the same batches (the ceiling a JSON ingest path cannot beat).
//!
//! `cargo bench -p meterline-server --bench ingest` (optimised binary). Knobs, all optional:
//! `BENCH_EVENTS` (default 200000), `BENCH_BATCH` (500), `BENCH_CONNECTIONS` (8),
//! `BENCH_SYNCHRONOUS` (`full` | `normal`, default: the server's default), `BENCH_SUBJECTS`
//! (distinct customers, default 1000), `BENCH_METERED` (`none`, the default: no features;
//! `features`: metered features counting and summing the `api.request` events;
//! `customers`: those plus every subject a customer on a plan with limits, so each commit
//! also checks thresholds — `BENCH_LIMIT`, default 1000 per month, sets how soon they cross).
//! `BENCH_SERVER` runs another `meterline-server` binary (a copy of an earlier build, to
//! compare before and after with the same load generator).
//! `BENCH_DATABASE_URL=postgres://USER@HOST:PORT/DB` runs on PostgreSQL instead of a SQLite
//! file: the bench creates a fresh database next to `DB` (the URL's user must be allowed to)
//! and starts the server(s) on it; `BENCH_NODES` (default 1) starts that many nodes on it
//! and splits the connections between them (connection `i` talks to node `i % nodes`; no
//! load balancer in the way); the `[catalog]` of a metered run is applied on PostgreSQL too.
//! Talks only to 127.0.0.1, sends a bounded number of batches and stops by itself.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code)]
mod common;

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument other than ours means "not us".
    if std::env::args().skip(1).any(|a| !a.starts_with("--") && a != "ingest") {
        return;
    }
    let total = env_usize("BENCH_EVENTS", 200_000);
    let batch_size = env_usize("BENCH_BATCH", 500);
    let connections = env_usize("BENCH_CONNECTIONS", 8);
    let batches = total.div_ceil(batch_size);

    let dir = tempfile::tempdir().unwrap();
    let subjects = env_usize("BENCH_SUBJECTS", 1000).max(1);
    let mut config = String::new();
    if let Ok(sync) = std::env::var("BENCH_SYNCHRONOUS") {
        config.push_str(&format!("[storage]\nsynchronous = \"{sync}\"\n"));
    }
    let metered = std::env::var("BENCH_METERED").unwrap_or_else(|_| "none".into());
    config.push_str(&catalog(&metered, subjects, env_usize("BENCH_LIMIT", 1000)));
    std::fs::write(dir.path().join("meterline.toml"), config).unwrap();
    let store = Store::new(&dir);
    let nodes = env_usize("BENCH_NODES", 1).max(1);
    assert!(
        nodes == 1 || matches!(store, Store::Postgres(_)),
        "BENCH_NODES={nodes} needs BENCH_DATABASE_URL (several nodes share a PostgreSQL database)"
    );
    let server = std::env::var("BENCH_SERVER").unwrap_or_else(|_| env!("CARGO_BIN_EXE_meterline-server").to_owned());
    let mut children = Vec::new();
    let mut urls = Vec::new();
    let mut secret = String::new();
    for node in 0..nodes {
        let mut child = Command::new(&server)
            .args(["--bind", "127.0.0.1:0", "--database-url", &store.url()])
            .current_dir(dir.path())
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start meterline-server");
        let mut url = String::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(k) = line.strip_prefix("secret key: ") {
                secret = k.to_owned();
            }
            if let Some(u) = line.strip_prefix("meterline-server listening on ") {
                url = u.to_owned();
                break;
            }
        }
        assert!(
            !url.is_empty(),
            "node {node} of {nodes} did not start (its error is above)"
        );
        children.push(child);
        urls.push(url);
    }
    assert!(
        !secret.is_empty(),
        "the first node printed no secret key: not a fresh database?"
    );

    println!("preparing {batches} gzip batches of {batch_size} events (metered: {metered})…");
    let raw: Vec<Vec<u8>> = (0..batches).map(|b| batch_json(b, batch_size, subjects)).collect();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(raw.iter().map(|r| gzip(r)).collect());
    let body_bytes: usize = bodies.iter().map(Vec::len).sum();
    let raw_bytes: usize = raw.iter().map(Vec::len).sum();
    println!(
        "  {:.1} MB JSON, {:.1} MB gzip ({:.0} bytes/event raw)",
        raw_bytes as f64 / 1e6,
        body_bytes as f64 / 1e6,
        raw_bytes as f64 / (batches * batch_size) as f64
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (elapsed, accepted) = runtime.block_on(send_all(&urls, &secret, bodies.clone(), connections));
    // Where the time went: CPU seconds of the server node(s) and of this load generator
    // (PostgreSQL's own is read by scripts/bench-postgres.sh).
    let server_cpu: Vec<String> = children
        .iter()
        .map(|c| format!("{:.1} s", cpu_seconds(&c.id().to_string())))
        .collect();
    println!(
        "cpu            : server node(s) {}, load generator {:.1} s, over {:.1} s of wall time",
        server_cpu.join(" + "),
        cpu_seconds("self"),
        elapsed.as_secs_f64()
    );
    let stored = runtime.block_on(store.count_events());
    for child in &mut children {
        let _ = Command::new("kill").arg("-15").arg(child.id().to_string()).status();
        let _ = child.wait();
    }
    assert_eq!(accepted as usize, batches * batch_size, "every event acknowledged");
    assert_eq!(stored as usize, batches * batch_size, "every acknowledged event stored");
    let durable = accepted as f64 / elapsed.as_secs_f64();

    // The ceiling: parsing the same decompressed batches into serde_json values, one thread.
    let started = Instant::now();
    let mut parsed = 0usize;
    for r in &raw {
        let v: Vec<Value> = serde_json::from_slice(r).unwrap();
        parsed += v.len();
    }
    let parse = parsed as f64 / started.elapsed().as_secs_f64();

    println!(
        "durable ingest : {durable:>10.0} events/s  ({accepted} events, {connections} connections, {nodes} node(s) on {}, {elapsed:.2?}; stored count verified)",
        store.kind()
    );
    println!("serde_json parse: {parse:>10.0} events/s  (single thread, same batches decompressed)");
    println!(
        "ratio           : {:>10.2}x slower than the bare parse",
        parse / durable
    );
}

/// The `[catalog]` of `BENCH_METERED`.
fn catalog(metered: &str, subjects: usize, limit: usize) -> String {
    let features = "[catalog.features.requests]\nkind = \"metered\"\nevent_type = \"api.request\"\n\
        [catalog.features.tokens]\nkind = \"metered\"\nevent_type = \"api.request\"\naggregation = \"sum\"\nproperty = \"tokens\"\n";
    match metered {
        "none" => String::new(),
        "features" => format!("[catalog]\n{features}"),
        "customers" => {
            let mut out = format!(
                "[catalog]\n{features}[catalog.plans.p.features.requests]\nlimit = {limit}\n[catalog.plans.p.features.tokens]\n"
            );
            for s in 0..subjects {
                out.push_str(&format!("[catalog.customers.customer-{s}]\nplan = \"p\"\n"));
            }
            out
        }
        other => panic!("BENCH_METERED must be none, features or customers, not {other:?}"),
    }
}

fn batch_json(batch: usize, size: usize, subjects: usize) -> Vec<u8> {
    let models = ["m-small", "m-large", "m-xl"];
    let regions = ["eu-west-1", "us-east-1", "ap-south-1"];
    let events: Vec<Value> = (0..size)
        .map(|i| {
            let n = batch * size + i;
            json!({
                "specversion": "1.0",
                "id": format!("0193{:04x}-{:04x}-7{:03x}-8{:03x}-{:012x}", batch % 0xffff, i, n % 0xfff, (n * 7) % 0xfff, n),
                "source": "billing-api",
                "type": if n.is_multiple_of(5) { "storage.gb" } else { "api.request" },
                "subject": format!("customer-{}", n % subjects),
                "time": format!("2026-11-24T10:{:02}:{:02}.{:03}Z", (n / 60) % 60, n % 60, n % 1000),
                "datacontenttype": "application/json",
                "data": {
                    "tokens": (n * 37) % 5000,
                    "model": models[n % 3],
                    "region": regions[(n / 3) % 3],
                    "latency_ms": (n % 997) as f64 / 3.0,
                    "cached": n.is_multiple_of(4)
                }
            })
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Sends every body, `connections` at a time; connection `c` talks to `urls[c % urls.len()]`.
async fn send_all(urls: &[String], secret: &str, bodies: Arc<Vec<Vec<u8>>>, connections: usize) -> (Duration, u64) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let url = urls[c % urls.len()].clone();
        let (secret, bodies, next) = (secret.to_owned(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut accepted = 0u64;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                loop {
                    let resp = http
                        .post(format!("{url}/v1/events"))
                        .bearer_auth(&secret)
                        .header("content-type", "application/cloudevents-batch+json")
                        .header("content-encoding", "gzip")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("send");
                    let status = resp.status();
                    let answer: Value = resp.json().await.expect("json answer");
                    if status == 503 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    assert_eq!(status, 202, "{answer}");
                    accepted += answer["accepted"].as_u64().unwrap();
                    break;
                }
            }
            accepted
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap();
    }
    (started.elapsed(), accepted)
}

/// User + system CPU seconds of process `pid` (`self` for this one) so far, from
/// `/proc/PID/stat` (Linux, 100 ticks a second); 0 where it cannot be read.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Where the bench's server(s) store: a SQLite file in the bench's directory, or a fresh
/// PostgreSQL database created next to `BENCH_DATABASE_URL`'s.
enum Store {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Store {
    fn new(dir: &tempfile::TempDir) -> Store {
        let Ok(admin) = std::env::var("BENCH_DATABASE_URL") else {
            return Store::Sqlite(dir.path().join("bench.db"));
        };
        Store::Postgres(common::fresh_pg_database(&admin))
    }

    fn url(&self) -> String {
        match self {
            Store::Sqlite(db) => format!("sqlite://{}", db.display()),
            Store::Postgres(url) => url.clone(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "SQLite",
            Store::Postgres(_) => "PostgreSQL",
        }
    }

    async fn count_events(&self) -> i64 {
        use sqlx::Connection;
        let count = "SELECT count(*) FROM events";
        match self {
            Store::Sqlite(_) => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url()).await.unwrap();
                let n = sqlx::query_scalar(count).fetch_one(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                n
            }
            Store::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let n = sqlx::query_scalar(count).fetch_one(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                n
            }
        }
    }
}
