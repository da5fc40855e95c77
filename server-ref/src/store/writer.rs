//! The event writer: one task owns the write connection and commits many ingest requests
//! per transaction (group commit).
//!
//! Handlers [`Writer::submit`] a validated batch over a bounded channel and await the
//! answer, which is sent only after the transaction holding the batch has committed. While
//! one commit is being synced, new batches queue up and go into the next transaction, so
//! the number of commits (fsyncs) grows much slower than the number of requests.
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
        commit_group(&mut conn, &mut inserts, &mut metering, group).await;
    }
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
        let after_seq = if touched.is_empty() {
            0
        } else {
            usage::last_event_seq(conn).await?
        };
        let outcomes = {
            let mut locked = conn.lock_handle().await?;
            let inserts = match inserts {
                Some(inserts) => inserts,
                None => inserts.insert(Inserts::new(&mut locked)?),
            };
            batches
                .iter()
                .map(|batch| inserts.insert_batch(&mut locked, batch))
                .collect::<Result<Vec<_>, _>>()?
        };
        let frames = if touched.is_empty() {
            Vec::new()
        } else {
            metering.count(conn, &touched, after_seq).await?
        };
        conn.execute("COMMIT").await?;
        Ok::<_, CommitError>((outcomes, frames))
    }
    .await;
    match result {
        Ok((outcomes, frames)) => {
            tracing::debug!(requests = replies.len(), events, elapsed = ?started.elapsed(), "committed");
            metrics::histogram!(crate::health::COMMIT_SIZE).record(events as f64);
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
            if let Some(order) = order {
                order.publish(frames);
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

    /// Finalizes the cached statements (the connection cannot close while they live).
    fn close(self, _locked: &mut LockedSqliteHandle<'_>) {
        drop(self.db);
    }
}
