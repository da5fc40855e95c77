//! The event writer: one task owns the write connection and commits many ingest requests
//! per transaction (group commit).
//!
//! Handlers [`Writer::submit`] a validated batch over a bounded channel and await the
//! answer, which is sent only after the transaction holding the batch has committed and the
//! commit is on disk. While one transaction is being written, new batches queue up and go
//! into the next, so the number of commits (fsyncs) grows much slower than the number of
//! requests; with `synchronous = full` the fsync itself runs on a thread of its own
//! (`Syncer`), overlapping the next transaction.
//!
//! The same transaction adds the new events to the usage counters that metered features
//! read and appends the stream messages of the limits they cross
//! ([`crate::entitlements::metering`]); those are published after the commit.

use std::sync::{Arc, Mutex};

use sqlx::{Executor, SqliteConnection, sqlite::LockedSqliteHandle};
use tokio::sync::{mpsc, oneshot, watch};

use super::{StoreError, usage};
use crate::{entitlements::metering::Metering, stream::Hub};

/// One validated event, ready to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// CloudEvents `source`.
    pub source: String,
    /// CloudEvents `id`.
    pub id: String,
    /// CloudEvents `type`.
    pub event_type: String,
    /// CloudEvents `subject`.
    pub subject: String,
    /// `time` exactly as sent.
    pub time: Option<String>,
    /// Event time (or receive time) in µs since the epoch, for range filters.
    pub time_us: i64,
    /// `datacontenttype` exactly as sent.
    pub datacontenttype: Option<String>,
    /// `data` as compact JSON.
    pub data: Option<String>,
}

/// The valid events of one ingest request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBatch {
    /// Owning project.
    pub project_id: i64,
    /// When the request arrived (RFC 3339).
    pub received_at: String,
    /// Events in request order.
    pub rows: Vec<EventRow>,
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Events stored for the first time.
    pub accepted: u64,
    /// Events already stored (or repeated earlier in the same batch).
    pub duplicates: u64,
}

/// Why a batch was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The writer's queue is full; the caller should retry shortly.
    #[error("the event writer is busy ({0} requests queued)")]
    Overloaded(usize),
    /// The server is shutting down.
    #[error("the event writer has stopped")]
    Closed,
    /// The transaction failed and was rolled back; nothing of the batch was stored.
    #[error("storing the events failed: {0}")]
    Database(String),
    /// The transaction lost a deadlock or serialization race to concurrent writers each time
    /// it was tried (PostgreSQL); nothing of the batch was stored, and it may be sent again.
    #[error("storing the events kept losing to concurrent writers: {0}")]
    Contended(String),
}

type Reply = oneshot::Sender<Result<WriteOutcome, WriteError>>;

struct Job {
    batch: WriteBatch,
    reply: Reply,
}

/// Handle to the writer thread. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    capacity: usize,
    stop: watch::Sender<bool>,
    done: Mutex<Option<oneshot::Receiver<()>>>,
    hub: Arc<Hub>,
}

impl Writer {
    /// Starts the writer on `conn`, on a thread of its own (its inserts run SQLite on that
    /// thread, not on the server's async workers). `queue` bounds the waiting requests;
    /// `max_commit_events` bounds the events of one transaction; `metering` counts usage
    /// and publishes on its hub.
    ///
    /// # Panics
    /// When the thread or its single-threaded runtime cannot be created (out of resources
    /// at start-up).
    pub fn spawn(conn: SqliteConnection, queue: usize, max_commit_events: usize, metering: Metering) -> Writer {
        let (jobs, rx) = mpsc::channel(queue);
        let (stop, stopped) = watch::channel(false);
        let (finished, done) = oneshot::channel();
        let hub = metering.hub().clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the event writer's runtime");
        std::thread::Builder::new()
            .name("meterline-writer".into())
            .spawn(move || {
                runtime.block_on(run(conn, rx, stopped, max_commit_events, metering));
                let _ = finished.send(());
            })
            .expect("the event writer thread");
        Writer {
            jobs,
            capacity: queue,
            stop,
            done: Mutex::new(Some(done)),
            hub,
        }
    }

    /// The hub the writer publishes its stream messages on.
    pub fn hub(&self) -> Arc<Hub> {
        self.hub.clone()
    }

    /// Queues a batch and waits until it is committed. Fails at once with
    /// [`WriteError::Overloaded`] when the queue is full.
    pub async fn write(&self, batch: WriteBatch) -> Result<WriteOutcome, WriteError> {
        if batch.rows.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let (reply, answer) = oneshot::channel();
        self.jobs.try_send(Job { batch, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => WriteError::Overloaded(self.capacity),
            mpsc::error::TrySendError::Closed(_) => WriteError::Closed,
        })?;
        answer.await.map_err(|_| WriteError::Closed)?
    }

    /// Stops taking batches, commits everything already queued, closes the connection
    /// (checkpointing the WAL) and waits for the writer to end.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(done) = done
            && done.await.is_err()
        {
            tracing::error!("event writer thread failed");
        }
    }
}

/// Why a group commit failed.
#[derive(Debug, thiserror::Error)]
enum CommitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Insert(#[from] rusqlite::Error),
}

impl From<sqlx::Error> for CommitError {
    fn from(e: sqlx::Error) -> Self {
        CommitError::Store(e.into())
    }
}

async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Job>,
    mut stop: watch::Receiver<bool>,
    max_commit_events: usize,
    mut metering: Metering,
) {
    let mut inserts = None;
    let mut syncer = match Syncer::start(&mut conn).await {
        Ok(syncer) => syncer,
        Err(e) => {
            // Nothing was switched (the pragma is the last step): SQLite syncs as configured.
            tracing::warn!(error = %e, "choosing how to sync commits failed; SQLite syncs each commit itself");
            Syncer { mode: SyncMode::Sqlite }
        }
    };
    loop {
        let first = tokio::select! {
            job = rx.recv() => job,
            () = async { let _ = stop.wait_for(|s| *s).await; } => {
                // No new batches from now on; the ones already queued are still committed.
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { break };
        let mut events = first.batch.rows.len();
        let mut group = vec![first];
        while events < max_commit_events {
            match rx.try_recv() {
                Ok(job) => {
                    events += job.batch.rows.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        commit_group(&mut conn, &mut inserts, &mut metering, &mut syncer, group).await;
    }
    syncer.stop();
    if let Some(inserts) = inserts.take() {
        match conn.lock_handle().await {
            Ok(mut locked) => inserts.close(&mut locked),
            Err(e) => tracing::warn!(error = %e, "locking the write connection to finalize statements failed"),
        }
    }
    if let Err(e) = sqlx::Connection::close(conn).await {
        tracing::warn!(error = %e, "closing the write connection failed");
    }
    tracing::debug!("event writer stopped");
}

/// Inserts every batch of `group` in one transaction, with its usage counting, then
/// answers each request and publishes the transaction's stream messages.
async fn commit_group(
    conn: &mut SqliteConnection,
    inserts: &mut Option<Inserts>,
    metering: &mut Metering,
    syncer: &mut Syncer,
    group: Vec<Job>,
) {
    let started = std::time::Instant::now();
    let (batches, replies): (Vec<WriteBatch>, Vec<Reply>) = group.into_iter().map(|j| (j.batch, j.reply)).unzip();
    let events: usize = batches.iter().map(|b| b.rows.len()).sum();
    let hub = metering.hub().clone();
    // Held from before BEGIN until the frames are published, when the commit may append
    // messages (see `Hub::sequence`); a commit of unmetered events never takes it.
    let mut order = None;
    let result = async {
        let touched = loop {
            let touched = metering.touched(&batches);
            if !touched.is_empty() && order.is_none() {
                order = Some(hub.sequence().await);
            }
            conn.execute("BEGIN IMMEDIATE").await?;
            if !metering.refresh(conn).await? {
                break touched;
            }
            let touched = metering.touched(&batches);
            if touched.is_empty() || order.is_some() {
                break touched;
            }
            // The catalog changed and now meters these events: begin again holding the order.
            conn.execute("ROLLBACK").await?;
        };
        let (outcomes, added) = {
            let mut locked = conn.lock_handle().await?;
            let inserts = match inserts {
                Some(inserts) => inserts,
                None => inserts.insert(Inserts::new(&mut locked)?),
            };
            let after_seq = if touched.is_empty() {
                0
            } else {
                usage::last_event_seq(inserts.db(&mut locked))?
            };
            let outcomes = batches
                .iter()
                .map(|batch| inserts.insert_batch(&mut locked, batch))
                .collect::<Result<Vec<_>, _>>()?;
            let added = if touched.is_empty() {
                Vec::new()
            } else {
                metering.add_usage(inserts.db(&mut locked), &touched, after_seq)?
            };
            (outcomes, added)
        };
        let frames = if added.is_empty() {
            Vec::new()
        } else {
            metering.messages(conn, &added).await?
        };
        conn.execute("COMMIT").await?;
        Ok::<_, CommitError>((outcomes, frames))
    }
    .await;
    match result {
        Ok((outcomes, frames)) => {
            tracing::debug!(requests = replies.len(), events, elapsed = ?started.elapsed(), "committed");
            metrics::histogram!(crate::health::COMMIT_SIZE).record(events as f64);
            let answers: Answers = replies.into_iter().zip(outcomes).collect();
            match order {
                // Stream messages go out only after their commit's sync: sync here. (Should
                // the sync fail, the commit is still what readers of the database see, so
                // its messages are published; its requests get the error and retry.)
                Some(order) if !frames.is_empty() => {
                    answer(answers, &syncer.sync_now());
                    order.publish(frames);
                }
                // Nothing to publish — no commit metered, or metered events that crossed no
                // threshold (most of them): the sync overlaps the next commit like any other.
                _ => syncer.sync_then_answer(answers),
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "event transaction failed; rolled back");
            if let Err(e) = conn.execute("ROLLBACK").await {
                tracing::warn!(error = %e, "rollback failed");
            }
            for reply in replies {
                let _ = reply.send(Err(WriteError::Database(e.to_string())));
            }
        }
    }
}

/// The single-row INSERT run once per event. `ON CONFLICT … DO NOTHING` makes a repeated
/// (project, source, id) change no row, which is how duplicates are told apart; being one
/// row, it needs no statement journal inside the transaction.
const INSERT_SQL: &str = "INSERT INTO events (project_id, received_at, source, id, type, subject, time, time_us, \
     datacontenttype, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, source, id) DO NOTHING";

/// The writer's hot inserts, made through `rusqlite` on the write connection's own SQLite
/// handle, inside the transaction sqlx began: a cached prepared statement bound and stepped
/// once per event, without sqlx's per-statement argument buffers and worker round trip.
struct Inserts {
    db: rusqlite::Connection,
}

impl Inserts {
    /// Wraps the handle of `locked` (never closed by `rusqlite`).
    #[allow(unsafe_code)]
    fn new(locked: &mut LockedSqliteHandle<'_>) -> Result<Inserts, rusqlite::Error> {
        // SAFETY: the handle stays open as long as the sqlx connection it belongs to, which
        // `run` closes only after dropping this wrapper; it is only used while the caller
        // holds that connection's lock (`LockedSqliteHandle`), so never concurrently with sqlx.
        let db = unsafe { rusqlite::Connection::from_handle(locked.as_raw_handle().as_ptr())? };
        Ok(Inserts { db })
    }

    /// Inserts `batch` row by row; `_locked` proves the sqlx side is not using the handle.
    fn insert_batch(
        &self,
        _locked: &mut LockedSqliteHandle<'_>,
        batch: &WriteBatch,
    ) -> Result<WriteOutcome, rusqlite::Error> {
        let mut insert = self.db.prepare_cached(INSERT_SQL)?;
        let mut accepted = 0;
        for row in &batch.rows {
            accepted += insert.execute(rusqlite::params![
                batch.project_id,
                batch.received_at,
                row.source,
                row.id,
                row.event_type,
                row.subject,
                row.time,
                row.time_us,
                row.datacontenttype,
                row.data,
            ])? as u64;
        }
        Ok(WriteOutcome {
            accepted,
            duplicates: batch.rows.len() as u64 - accepted,
        })
    }

    /// The handle, for other statements of the transaction; `_locked` proves the sqlx side
    /// is not using it.
    fn db(&self, _locked: &mut LockedSqliteHandle<'_>) -> &rusqlite::Connection {
        &self.db
    }

    /// Finalizes the cached statements (the connection cannot close while they live).
    fn close(self, _locked: &mut LockedSqliteHandle<'_>) {
        drop(self.db);
    }
}

/// Makes each commit durable before its requests are answered.
///
/// With `synchronous = full` SQLite fsyncs the WAL inside `COMMIT`, so the next
/// transaction's inserts wait for the disk. Instead, for a database file configured `full`,
/// the writer connection runs `synchronous = normal` (SQLite writes the commit's WAL frames
/// without syncing them) and the `meterline-sync` thread syncs the WAL file and only then
/// answers the requests of every commit the sync covers, while the writer already inserts
/// the next group. A 202 is still sent only after a sync that began after its commit wrote
/// its frames; the WAL is written in order, so that sync covers every earlier commit too.
/// A commit with stream messages is synced on the writer itself before they are published.
struct Syncer {
    mode: SyncMode,
}

/// Who makes commits durable.
enum SyncMode {
    /// SQLite, inside `COMMIT` (`synchronous = normal` configured, or no WAL file).
    Sqlite,
    /// The `meterline-sync` thread, by syncing the WAL file after the commit.
    Pipelined {
        wal: Arc<std::fs::File>,
        commits: Option<std::sync::mpsc::Sender<Answers>>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
}

/// The requests of one commit with what storing them did.
type Answers = Vec<(Reply, WriteOutcome)>;

/// Answers every request of a commit: its outcome once `synced`, else the sync's error.
fn answer(answers: Answers, synced: &Result<(), String>) {
    for (reply, outcome) in answers {
        let _ = reply.send(match synced {
            Ok(()) => Ok(outcome),
            Err(e) => Err(WriteError::Database(e.clone())),
        });
    }
}

fn sync_wal(wal: &std::fs::File) -> Result<(), String> {
    wal.sync_data()
        .map_err(|e| format!("syncing the write-ahead log failed: {e}"))
}

impl Syncer {
    /// Chooses the mode for `conn`: pipelined when it is a database file with
    /// `synchronous = full` (then switching the connection to `normal`).
    async fn start(conn: &mut SqliteConnection) -> Result<Syncer, sqlx::Error> {
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *conn).await?;
        let file: Option<String> = sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_optional(&mut *conn)
            .await?;
        // 2 = FULL (3 = EXTRA); an in-memory or temporary database has no file name.
        let Some(file) = file.filter(|f| synchronous >= 2 && !f.is_empty()) else {
            return Ok(Syncer { mode: SyncMode::Sqlite });
        };
        let wal = match std::fs::File::open(format!("{file}-wal")) {
            Ok(wal) => wal,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the write-ahead log; SQLite syncs each commit itself");
                return Ok(Syncer { mode: SyncMode::Sqlite });
            }
        };
        conn.execute("PRAGMA synchronous = NORMAL").await?;
        Ok(Syncer::pipelined(wal))
    }

    /// A syncer that syncs `wal` on its own thread.
    ///
    /// # Panics
    /// When the thread cannot be created (out of resources at start-up).
    fn pipelined(wal: std::fs::File) -> Syncer {
        let wal = Arc::new(wal);
        let (commits, rx) = std::sync::mpsc::channel::<Answers>();
        let file = wal.clone();
        let thread = std::thread::Builder::new()
            .name("meterline-sync".into())
            .spawn(move || {
                // One sync answers every commit queued while the previous one ran.
                while let Ok(first) = rx.recv() {
                    let mut waiting = vec![first];
                    waiting.extend(rx.try_iter());
                    let synced = sync_wal(&file);
                    if let Err(e) = &synced {
                        tracing::error!(error = %e, "event commits not acknowledged");
                    }
                    for answers in waiting {
                        answer(answers, &synced);
                    }
                }
            })
            .expect("the WAL sync thread");
        Syncer {
            mode: SyncMode::Pipelined {
                wal,
                commits: Some(commits),
                thread: Some(thread),
            },
        }
    }

    /// Makes every commit so far durable, on the calling thread.
    fn sync_now(&self) -> Result<(), String> {
        match &self.mode {
            SyncMode::Sqlite => Ok(()),
            SyncMode::Pipelined { wal, .. } => sync_wal(wal),
        }
    }

    /// Answers the requests of the commit that just ended once it is durable.
    fn sync_then_answer(&self, answers: Answers) {
        match &self.mode {
            SyncMode::Pipelined {
                commits: Some(commits), ..
            } => {
                if let Err(unsent) = commits.send(answers) {
                    answer(unsent.0, &self.sync_now());
                }
            }
            _ => answer(answers, &self.sync_now()),
        }
    }

    /// Answers what is queued and ends the thread.
    fn stop(&mut self) {
        if let SyncMode::Pipelined { commits, thread, .. } = &mut self.mode {
            drop(commits.take());
            if let Some(thread) = thread.take()
                && thread.join().is_err()
            {
                tracing::error!("the WAL sync thread failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(accepted: u64) -> (Answers, oneshot::Receiver<Result<WriteOutcome, WriteError>>) {
        let (reply, answer) = oneshot::channel();
        let outcome = WriteOutcome {
            accepted,
            duplicates: 0,
        };
        (vec![(reply, outcome)], answer)
    }

    #[test]
    fn a_commit_is_answered_after_the_wal_sync() {
        let dir = tempfile::tempdir().unwrap();
        let wal = std::fs::File::create(dir.path().join("db-wal")).unwrap();
        let mut syncer = Syncer::pipelined(wal);
        let (answers, mut first) = commit(3);
        syncer.sync_then_answer(answers);
        let (answers, second) = commit(4);
        syncer.sync_then_answer(answers);
        syncer.stop();
        assert_eq!(first.try_recv().unwrap().unwrap().accepted, 3);
        assert_eq!(second.blocking_recv().unwrap().unwrap().accepted, 4);
        // After stop, a commit is synced on the caller's thread.
        let (answers, third) = commit(5);
        syncer.sync_then_answer(answers);
        assert_eq!(third.blocking_recv().unwrap().unwrap().accepted, 5);
    }

    /// `full` on a database file: the server syncs the WAL (the connection runs `normal`);
    /// `normal`, or a database without a file: SQLite alone, as configured.
    #[tokio::test]
    async fn the_server_syncs_the_wal_of_a_full_database_file() {
        use sqlx::Connection;

        use crate::config::{StorageConfig, Synchronous};
        let dir = tempfile::tempdir().unwrap();
        for (name, synchronous, pipelined) in [
            ("full.db", Synchronous::Full, true),
            ("normal.db", Synchronous::Normal, false),
        ] {
            let config = StorageConfig {
                database_url: format!("sqlite://{}", dir.path().join(name).display()),
                synchronous,
                ..StorageConfig::default()
            };
            let (store, mut conn) = super::super::Store::open(&config).await.unwrap();
            let mut syncer = Syncer::start(&mut conn).await.unwrap();
            assert_eq!(matches!(syncer.mode, SyncMode::Pipelined { .. }), pipelined, "{name}");
            let now: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(now, 1, "{name}: the writer connection runs NORMAL");
            syncer.stop();
            conn.close().await.unwrap();
            store.close().await;
        }
        let mut memory = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let syncer = Syncer::start(&mut memory).await.unwrap();
        assert!(matches!(syncer.mode, SyncMode::Sqlite), "no file, no WAL to sync");
    }

    #[test]
    fn a_failed_wal_sync_answers_an_error_not_the_outcome() {
        // fdatasync of a character device fails (EINVAL): no 202 may follow.
        let Ok(wal) = std::fs::File::open("/dev/null") else {
            eprintln!("skipped: /dev/null is not available");
            return;
        };
        let mut syncer = Syncer::pipelined(wal);
        let (answers, pipelined) = commit(3);
        syncer.sync_then_answer(answers);
        let failed = syncer.sync_now();
        syncer.stop();
        let err = pipelined.blocking_recv().unwrap().unwrap_err();
        assert!(
            matches!(&err, WriteError::Database(m) if m.contains("syncing the write-ahead log failed")),
            "{err}"
        );
        assert!(failed.unwrap_err().contains("syncing the write-ahead log failed"));
    }
}
