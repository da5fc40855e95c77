//! The storage backends' write path alone: durable events/s of [`EventLog::write`] on SQLite
//! (the group-committing writer) and on PostgreSQL with one and with two nodes (two pools on
//! one database), under the ingest bench's workload without HTTP and JSON parsing: 200,000
//! events of ~309 bytes in batches of 500, 8 concurrent writers, no metered features.
//!
//! `METERLINE_BENCH_DATABASE_URL=postgres://… cargo bench -p meterline-server --bench store_write`
//! (a database the bench may fill; without the variable only SQLite runs). Knobs:
//! `BENCH_EVENTS` (200000), `BENCH_BATCH` (500), `BENCH_CONNECTIONS` (8).
//!
//! With PostgreSQL it also measures propagation between nodes: node A commits a stream
//! message (its own transaction, `BENCH_MESSAGES`, default 500, one at a time), node B's
//! `StreamFollower` (LISTEN/NOTIFY, then the log) returns it; p50/p99 of commit start →
//! frame on B.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use meterline_core::stream::{SchemaUpdated, ServerMessage};
use meterline_server::{
    entitlements::metering::Metering,
    store::{EventLog, EventRow, PgSettings, PgStore, SqliteEventLog, Store, WriteBatch, Writer, pg_append_message},
    stream::Hub,
};
use serde_json::json;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Batch `b` of the ingest bench's events (same fields and sizes), as the writer gets them.
fn batch(project_id: i64, b: usize, size: usize) -> WriteBatch {
    let models = ["m-small", "m-large", "m-xl"];
    let regions = ["eu-west-1", "us-east-1", "ap-south-1"];
    let rows = (0..size)
        .map(|i| {
            let n = b * size + i;
            let data = json!({
                "tokens": (n * 37) % 5000,
                "model": models[n % 3],
                "region": regions[(n / 3) % 3],
                "latency_ms": (n % 997) as f64 / 3.0,
                "cached": n.is_multiple_of(4)
            });
            EventRow {
                source: "billing-api".into(),
                id: format!(
                    "0193{:04x}-{:04x}-7{:03x}-8{:03x}-{:012x}",
                    b % 0xffff,
                    i,
                    n % 0xfff,
                    (n * 7) % 0xfff,
                    n
                ),
                event_type: if n.is_multiple_of(5) {
                    "storage.gb"
                } else {
                    "api.request"
                }
                .into(),
                subject: format!("customer-{}", n % 1000),
                time: Some(format!(
                    "2026-11-24T10:{:02}:{:02}.{:03}Z",
                    (n / 60) % 60,
                    n % 60,
                    n % 1000
                )),
                time_us: 1_795_600_000_000_000 + n as i64,
                datacontenttype: Some("application/json".into()),
                data: Some(data.to_string()),
            }
        })
        .collect();
    WriteBatch {
        project_id,
        received_at: "2026-11-24T10:00:00.000Z".into(),
        rows,
    }
}

/// Writes every batch through `logs` (writer `w` uses `logs[w % len]`) from `writers`
/// concurrent tasks; returns the elapsed time.
async fn run<L: EventLog + Clone + 'static>(logs: &[L], batches: Arc<Vec<WriteBatch>>, writers: usize) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (log, batches) = (logs[w % logs.len()].clone(), batches.clone());
            tokio::spawn(async move {
                let mut accepted = 0;
                for batch in batches.iter().skip(w).step_by(writers) {
                    accepted += log.write(batch.clone()).await.unwrap().accepted;
                }
                accepted
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let total: usize = batches.iter().map(|b| b.rows.len()).sum();
    assert_eq!(accepted as usize, total, "every event stored once");
    elapsed
}

fn report(name: &str, events: usize, elapsed: Duration) {
    println!(
        "{name:<28} {events} events in {:>6.2} s = {:>8.0} events/s",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with("--") && a != "store_write")
    {
        return;
    }
    let total = env_usize("BENCH_EVENTS", 200_000);
    let size = env_usize("BENCH_BATCH", 500);
    let writers = env_usize("BENCH_CONNECTIONS", 8);
    let count = total.div_ceil(size);

    let dir = tempfile::tempdir().unwrap();
    let config = meterline_server::config::StorageConfig {
        database_url: format!("sqlite://{}", dir.path().join("bench.db").display()),
        ..Default::default()
    };
    let (store, conn) = Store::open(&config).await.unwrap();
    let writer = Writer::spawn(
        conn,
        config.writer_queue,
        config.max_commit_events,
        Metering::new(Arc::new(Hub::new(64)), 60_000),
    );
    let sqlite = SqliteEventLog {
        store,
        writer: Arc::new(writer),
    };
    let project = sqlite.create_project("bench", &[]).await.unwrap().id;
    let batches = Arc::new((0..count).map(|b| batch(project, b, size)).collect::<Vec<_>>());
    let events = count * size;
    report(
        "sqlite (synchronous=full)",
        events,
        run(std::slice::from_ref(&sqlite), batches, writers).await,
    );
    sqlite.writer.shutdown().await;

    let Ok(url) = std::env::var("METERLINE_BENCH_DATABASE_URL") else {
        println!("postgres: skipped (METERLINE_BENCH_DATABASE_URL is not set)");
        return;
    };
    let settings = PgSettings {
        max_connections: writers as u32,
        ..PgSettings::default()
    };
    for nodes in [1, 2] {
        let logs: Vec<PgStore> = {
            let mut logs = Vec::new();
            for _ in 0..nodes {
                logs.push(PgStore::open(&url, &settings).await.unwrap());
            }
            logs
        };
        // A project of its own per run, so every event is new.
        let project = logs[0]
            .create_project(&format!("bench-{}-{nodes}", std::process::id()), &[])
            .await
            .unwrap()
            .id;
        let batches = Arc::new((0..count).map(|b| batch(project, b, size)).collect::<Vec<_>>());
        let elapsed = run(&logs, batches, writers).await;
        report(&format!("postgres, {nodes} node(s)"), events, elapsed);
        for log in logs {
            log.close().await;
        }
    }
    propagation(&url, env_usize("BENCH_MESSAGES", 500)).await;
}

/// Commit → follower latency of `messages` stream messages from node A to node B.
async fn propagation(url: &str, messages: usize) {
    let a = PgStore::open(url, &PgSettings::default()).await.unwrap();
    let b = PgStore::open(url, &PgSettings::default()).await.unwrap();
    let project = a
        .create_project(&format!("propagation-{}", std::process::id()), &[])
        .await
        .unwrap()
        .id;
    let mut follower = b.follow().await.unwrap();
    let mut micros = Vec::with_capacity(messages);
    for _ in 0..messages {
        let started = Instant::now();
        let mut tx = a.begin().await.unwrap();
        let sent = pg_append_message(&mut tx, project, None, |seq| ServerMessage::SchemaUpdated {
            seq,
            data: SchemaUpdated {
                etag: format!("\"{seq}\""),
            },
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        loop {
            let frames = follower.next().await.unwrap();
            if frames.iter().any(|f| f.project_id == project && f.seq == sent.seq) {
                break;
            }
        }
        micros.push(started.elapsed().as_micros() as u64);
    }
    micros.sort_unstable();
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    println!(
        "propagation A -> B (PostgreSQL NOTIFY + log read), {messages} messages: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
