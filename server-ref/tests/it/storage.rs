//! The storage backends behind one interface ([`EventLog`]): each common case runs on SQLite
//! (`*_sqlite`) and on PostgreSQL (`*_postgres`); the PostgreSQL-only cases prove what
//! several nodes sharing one database need (exactly-once and usage under concurrent writers,
//! stream seqs in commit order, migrations, bad URLs).
//!
//! The PostgreSQL cases are `#[ignore]`d in a plain `cargo test` (counted as skipped):
//! `make test-postgres` (scripts/test-postgres.sh) starts a throwaway cluster, sets
//! `METERLINE_TEST_DATABASE_URL` and runs them. Each case gets a database of its own.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use meterline_core::stream::{SchemaUpdated, ServerMessage};
use meterline_server::{
    entitlements::metering::Metering,
    store::{
        EventFilter, EventLog, EventRow, LogRead, PgSettings, PgStore, SqliteEventLog, Store, StoreError, WriteBatch,
        Writer, pg_append_message,
    },
    stream::Hub,
};
use serde_json::json;
use sqlx::{Connection, PgConnection};

/// The SQLite backend on a fresh file (the writer as the server runs it).
async fn sqlite() -> (SqliteEventLog, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = meterline_server::config::StorageConfig {
        database_url: crate::common::db_url(dir.path()),
        ..Default::default()
    };
    let (store, conn) = Store::open(&config).await.unwrap();
    let metering = Metering::new(Arc::new(Hub::new(64)), 60_000);
    let writer = Arc::new(Writer::spawn(conn, 1024, 10_000, metering));
    (SqliteEventLog { store, writer }, dir)
}

/// The URL of a new, empty database on the test cluster.
pub(crate) async fn pg_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let admin = std::env::var("METERLINE_TEST_DATABASE_URL")
        .expect("METERLINE_TEST_DATABASE_URL is not set: run the PostgreSQL cases with make test-postgres");
    let name = format!(
        "meterline_t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// A node's store on `url`.
pub(crate) async fn pg_node(url: &str) -> PgStore {
    PgStore::open(url, &PgSettings::default()).await.unwrap()
}

fn row(id: &str, subject: &str, data: serde_json::Value) -> EventRow {
    EventRow {
        source: "test".into(),
        id: id.into(),
        event_type: "api.call".into(),
        subject: subject.into(),
        time: Some("2026-12-07T10:00:00Z".into()),
        time_us: 1_796_637_600_000_000,
        datacontenttype: None,
        data: Some(data.to_string()),
    }
}

fn batch(project_id: i64, rows: Vec<EventRow>) -> WriteBatch {
    WriteBatch {
        project_id,
        received_at: "2026-12-07T10:00:01.000Z".into(),
        rows,
    }
}

fn all(after_seq: i64) -> EventFilter {
    EventFilter {
        after_seq,
        limit: 1000,
        ..Default::default()
    }
}

// ---- The common cases, on both backends --------------------------------------------------

/// A batch stores its new events once: a repeat inside the batch, and the whole batch sent
/// again, store nothing; the events read back as sent, in request order.
async fn exactly_once(log: &impl EventLog) {
    let project = log.create_project("p", &[]).await.unwrap();
    let first = batch(
        project.id,
        vec![
            row("a", "c1", json!({"tokens": 3})),
            row("b", "c2", json!({"tokens": 4})),
            row("a", "c1", json!({"tokens": 3})),
        ],
    );
    let outcome = log.write(first.clone()).await.unwrap();
    assert_eq!((outcome.accepted, outcome.duplicates), (2, 1));
    let outcome = log.write(first).await.unwrap();
    assert_eq!((outcome.accepted, outcome.duplicates), (0, 3));
    let outcome = log
        .write(batch(
            project.id,
            vec![row("b", "c2", json!({})), row("c", "c1", json!({}))],
        ))
        .await
        .unwrap();
    assert_eq!((outcome.accepted, outcome.duplicates), (1, 1));
    let events = log.events(project.id, &all(0)).await.unwrap();
    let ids: Vec<&str> = events.iter().map(|e| e.event.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(events[1].event.subject, "c2");
    assert_eq!(events[1].event.time.as_deref(), Some("2026-12-07T10:00:00Z"));
    assert_eq!(events[1].event.data.as_ref().unwrap()["tokens"], json!(4));
    // The cursor and the filters.
    let after = log.events(project.id, &all(events[0].seq)).await.unwrap();
    assert_eq!(after.len(), 2);
    let filter = EventFilter {
        subject: Some("c1".into()),
        limit: 10,
        ..Default::default()
    };
    let c1 = log.events(project.id, &filter).await.unwrap();
    assert_eq!(c1.iter().map(|e| e.event.id.as_str()).collect::<Vec<_>>(), ["a", "c"]);
    // Another project's events are not this one's.
    let other = log.create_project("q", &[]).await.unwrap();
    assert!(log.events(other.id, &all(0)).await.unwrap().is_empty());
    assert!(matches!(
        log.create_project("p", &[]).await,
        Err(StoreError::Conflict(_))
    ));
}

/// Before the first message the log is empty at seq 0; a `since` ahead of it resyncs.
async fn empty_stream(log: &impl EventLog) {
    let project = log.create_project("p", &[]).await.unwrap();
    let read = log.stream_since(project.id, 0, &["c1".into()], 100).await.unwrap();
    assert_eq!(
        read,
        LogRead::Covered {
            frames: vec![],
            current: 0
        }
    );
    let ahead = log.stream_since(project.id, 5, &[], 100).await.unwrap();
    assert_eq!(ahead, LogRead::Resync { current: 0 });
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_sqlite() {
    let (log, _dir) = sqlite().await;
    exactly_once(&log).await;
    log.writer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn exactly_once_postgres() {
    exactly_once(&pg_node(&pg_database().await).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_stream_sqlite() {
    let (log, _dir) = sqlite().await;
    empty_stream(&log).await;
    log.writer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn empty_stream_postgres() {
    empty_stream(&pg_node(&pg_database().await).await).await;
}

// ---- PostgreSQL: several nodes on one database ------------------------------------------

/// Makes `api.call` a metered type of `project_id`: counted (`""`) and summed (`tokens`).
async fn meter_api_calls(url: &str, project_id: i64) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    for (key, property) in [("api_calls", ""), ("tokens", "tokens")] {
        sqlx::query(
            "INSERT INTO features (project_id, key, kind, event_type, property, definition, updated_at)
             VALUES ($1, $2, 'metered', 'api.call', $3, '{}', '2026-12-07T10:00:00Z')",
        )
        .bind(project_id)
        .bind(key)
        .bind(property)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    conn.close().await.unwrap();
}

/// The same batches, each sent twice to each of two nodes at once (a client retrying
/// through a load balancer): every event is stored once and counted once.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn two_nodes_store_and_count_resent_batches_once() {
    let url = pg_database().await;
    let (a, b) = (pg_node(&url).await, pg_node(&url).await);
    let project = a.create_project("p", &[]).await.unwrap();
    meter_api_calls(&url, project.id).await;
    let subjects = ["c1", "c2", "c3", "c4"];
    let batches: Vec<WriteBatch> = (0..50)
        .map(|b| {
            let rows = (0..20)
                .map(|i| row(&format!("e{b}-{i}"), subjects[i % 4], json!({"tokens": 2})))
                .collect();
            batch(project.id, rows)
        })
        .collect();
    let mut tasks = Vec::new();
    for batch in &batches {
        for node in [&a, &b, &a, &b] {
            let (node, batch) = (node.clone(), batch.clone());
            tasks.push(tokio::spawn(async move { node.write(&batch).await.unwrap() }));
        }
    }
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await.unwrap().accepted;
    }
    assert_eq!(accepted, 1000, "each event accepted by exactly one of its four writes");
    let stored = b.events(project.id, &all(0)).await.unwrap();
    assert_eq!(stored.len(), 1000);
    let ids: HashSet<&str> = stored.iter().map(|e| e.event.id.as_str()).collect();
    assert_eq!(ids.len(), 1000);
    for subject in subjects {
        assert_eq!(
            a.usage_total(project.id, subject, ("api.call", "")).await.unwrap(),
            250.0
        );
        assert_eq!(
            b.usage_total(project.id, subject, ("api.call", "tokens"))
                .await
                .unwrap(),
            500.0
        );
    }
}

/// Eight writers on two nodes count the same customer on the same day at once: no
/// addition is lost (the upsert adds to the latest committed value under the row lock).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn concurrent_writers_lose_no_usage() {
    let url = pg_database().await;
    let nodes = [pg_node(&url).await, pg_node(&url).await];
    let project = nodes[0].create_project("p", &[]).await.unwrap();
    meter_api_calls(&url, project.id).await;
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let node = nodes[writer % 2].clone();
        tasks.push(tokio::spawn(async move {
            for b in 0..30 {
                let rows = (0..10)
                    .map(|i| row(&format!("w{writer}-{b}-{i}"), "c1", json!({"tokens": 1.5})))
                    .collect();
                node.write(&batch(project.id, rows)).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let count = nodes[1].usage_total(project.id, "c1", ("api.call", "")).await.unwrap();
    let tokens = nodes[1]
        .usage_total(project.id, "c1", ("api.call", "tokens"))
        .await
        .unwrap();
    assert_eq!((count, tokens), (2400.0, 3600.0));
}

fn schema_message(seq: u64) -> ServerMessage {
    ServerMessage::SchemaUpdated {
        seq,
        data: SchemaUpdated {
            etag: format!("\"{seq}\""),
        },
    }
}

/// The commit-order trap: writer A takes a seq and commits late; writer B, on another
/// node, takes the next seq meanwhile. A reader polling the log must never see B's seq
/// without A's: seqs become visible in order, so a resume at `since = N` misses nothing.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn stream_seqs_become_visible_in_order_across_nodes() {
    let url = pg_database().await;
    let (a, b, reader) = (pg_node(&url).await, pg_node(&url).await, pg_node(&url).await);
    let project = a.create_project("p", &[]).await.unwrap().id;
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(Ordering::Relaxed) {
                let LogRead::Covered { frames, current } = reader.stream_since(project, 0, &[], 1000).await.unwrap()
                else {
                    panic!("since=0 resynced");
                };
                let seqs: Vec<u64> = frames.iter().map(|f| f.seq).collect();
                let want: Vec<u64> = (1..=current).collect();
                assert_eq!(seqs, want, "a later seq is visible before an earlier one");
                reads += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            reads
        })
    };
    for round in 0..3 {
        let slow = {
            let a = a.clone();
            tokio::spawn(async move {
                let mut tx = a.begin().await.unwrap();
                pg_append_message(&mut tx, project, None, schema_message).await.unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
                tx.commit().await.unwrap();
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut tx = b.begin().await.unwrap();
        let frame = pg_append_message(&mut tx, project, None, schema_message).await.unwrap();
        tx.commit().await.unwrap();
        slow.await.unwrap();
        assert_eq!(frame.seq, 2 * round + 2, "B's seq follows A's");
    }
    done.store(true, Ordering::Relaxed);
    assert!(watcher.await.unwrap() > 10, "the reader polled throughout");
    assert_eq!(a.stream_seq(project).await.unwrap(), 6);
}

/// Nodes starting together on an empty database migrate it once, between them.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn nodes_starting_together_migrate_once() {
    let url = pg_database().await;
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::open(&url, &PgSettings::default()).await })
        })
        .collect();
    for open in opens {
        assert!(open.await.unwrap().is_ok());
    }
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM meterline_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let newest = meterline_server::store::newest_pg_migration();
    assert_eq!(
        versions,
        (1..=newest).collect::<Vec<_>>(),
        "each migration applied once"
    );
}

/// A malformed URL, a server that does not answer, and a database migrated by a newer
/// binary each give one error naming the URL (password hidden) and what is wrong.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn unusable_databases_are_named_in_one_line() {
    let open = |url: String| async move {
        PgStore::open(&url, &PgSettings::default())
            .await
            .unwrap_err()
            .to_string()
    };
    let bad = open("postgres://u:secret@127.0.0.1:notaport/db".into()).await;
    assert!(
        bad.starts_with("invalid PostgreSQL URL postgres://u:***@127.0.0.1:notaport/db: "),
        "{bad}"
    );
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = open(format!("postgres://u:secret@127.0.0.1:{port}/db")).await;
    assert!(
        down.starts_with(&format!(
            "cannot connect to PostgreSQL at postgres://u:***@127.0.0.1:{port}/db: "
        )),
        "{down}"
    );
    let url = pg_database().await;
    pg_node(&url).await.close().await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::query("INSERT INTO meterline_migrations (version, description, applied_at) VALUES (999, 'future', 'x')")
        .execute(&mut conn)
        .await
        .unwrap();
    let newer = open(url).await;
    assert!(
        newer.contains(&format!(
            "is at migration 999, newer than this meterline-server's {}",
            meterline_server::store::newest_pg_migration()
        )),
        "{newer}"
    );
    for message in [bad, down, newer] {
        assert!(!message.contains('\n') && !message.contains("secret"), "{message}");
    }
}

/// The server binary on a SQLite database that a newer binary migrated: one error line
/// naming the database and both migrations, and a non-zero exit; nothing is served.
#[tokio::test(flavor = "multi_thread")]
async fn a_database_from_a_newer_binary_is_refused_sqlite() {
    let (log, dir) = sqlite().await;
    log.writer.shutdown().await;
    log.store.close().await;
    let url = crate::common::db_url(dir.path());
    let mut conn = <sqlx::SqliteConnection as Connection>::connect(&url).await.unwrap();
    sqlx::query("INSERT INTO meterline_migrations (version, description, applied_at) VALUES (999, 'future', 'x')")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let mut child = std::process::Command::new(crate::common::BIN)
        .args(["--bind", "127.0.0.1:0", "--database-url", &url])
        .current_dir(dir.path())
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the server still runs 20 s after starting on a newer database");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing is served or printed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!("meterline-server: the database {url} is at migration 999, newer than this meterline-server's ");
    assert!(
        stderr.starts_with(&want) && stderr.trim_end().lines().count() == 1,
        "{stderr}"
    );
}

/// Node B follows what writers on node A commit, through LISTEN/NOTIFY and the log: every
/// message of two projects, each once, in seq order per project, while A's writers append
/// concurrently (some holding their seq open for a while).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn a_node_follows_messages_committed_through_another() {
    let url = pg_database().await;
    let (a, b) = (pg_node(&url).await, pg_node(&url).await);
    let projects = [
        a.create_project("p", &[]).await.unwrap().id,
        a.create_project("q", &[]).await.unwrap().id,
    ];
    let mut follower = b.follow().await.unwrap();
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let a = a.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let mut tx = a.begin().await.unwrap();
                    pg_append_message(&mut tx, projects[w % 2], None, schema_message)
                        .await
                        .unwrap();
                    if i % 3 == 0 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    let mut seen: std::collections::HashMap<i64, Vec<u64>> = Default::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.values().map(Vec::len).sum::<usize>() < 60 {
        let frames = tokio::time::timeout_at(deadline, follower.next())
            .await
            .unwrap_or_else(|_| panic!("node B received every message within 20 s: {seen:?}"))
            .unwrap();
        for frame in frames {
            let text: serde_json::Value = serde_json::from_str(&frame.frame).unwrap();
            assert_eq!(text["seq"], json!(frame.seq), "the frame is the stored message");
            seen.entry(frame.project_id).or_default().push(frame.seq);
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    for project in projects {
        assert_eq!(seen[&project], (1..=30).collect::<Vec<u64>>(), "project {project}");
    }
}

/// PostgreSQL stopped (`pg_ctl stop -m fast`) for 3 s and started again under four writers
/// that retry a failed batch the way clients do: the pool reconnects by itself, writes
/// succeed again, and every batch that was acknowledged is stored, once. The outage outlasts
/// the pool's 2 s acquire timeout, so writes must fail during it (a quick `restart` could
/// fall between writes and test nothing). Run alone by scripts/test-postgres.sh (the stop
/// would cut the other cases' connections), which sets the stop and start commands.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn acknowledged_writes_survive_a_database_restart() {
    let command = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run this case with make test-postgres"))
    };
    let restart = format!(
        "{} && sleep 3 && {}",
        command("METERLINE_TEST_PG_STOP"),
        command("METERLINE_TEST_PG_START")
    );
    let url = pg_database().await;
    let settings = PgSettings {
        acquire_timeout: Duration::from_secs(2),
        ..PgSettings::default()
    };
    let node = PgStore::open(&url, &settings).await.unwrap();
    let project = node.create_project("p", &[]).await.unwrap().id;
    let restarted = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (node, restarted) = (node.clone(), restarted.clone());
            tokio::spawn(async move {
                let (mut acked, mut failures, mut after_restart) = (Vec::new(), 0, 0);
                for b in 0.. {
                    let ids: Vec<String> = (0..20).map(|i| format!("w{w}-{b}-{i}")).collect();
                    let rows = ids.iter().map(|id| row(id, "c1", json!({}))).collect();
                    let batch = batch(project, rows);
                    while let Err(e) = node.write(&batch).await {
                        failures += 1;
                        assert!(failures < 500, "writes never recovered: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    acked.extend(ids);
                    if restarted.load(Ordering::Relaxed) {
                        after_restart += 1;
                        if after_restart == 20 {
                            break;
                        }
                    }
                }
                (acked, failures)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = tokio::task::spawn_blocking(move || std::process::Command::new("sh").args(["-c", &restart]).status())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "restarting PostgreSQL failed: {status}");
    restarted.store(true, Ordering::Relaxed);
    let (mut acked, mut failures) = (HashSet::new(), 0);
    for writer in writers {
        let (ids, failed) = writer.await.unwrap();
        acked.extend(ids);
        failures += failed;
    }
    let stored = node
        .events(
            project,
            &EventFilter {
                limit: 1_000_000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ids: HashSet<String> = stored.iter().map(|e| e.event.id.clone()).collect();
    assert_eq!(ids.len(), stored.len(), "each event stored once");
    assert!(failures > 0, "the restart interrupted no write: it was not tested");
    let lost: Vec<&String> = acked.difference(&ids).take(5).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    eprintln!(
        "{} events acknowledged, {failures} failed writes retried across the restart",
        acked.len()
    );
}
