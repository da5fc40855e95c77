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

use sqlx::{Executor, SqliteConnection};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
};

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

/// Handle to the writer task. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    capacity: usize,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
    hub: Arc<Hub>,
}

/// Columns bound per row. Parameters are anonymous (`?`): with numbered ones (`?NNN`)
/// sqlx looks every parameter's name up, which SQLite answers by a linear scan — quadratic
/// in the statement size, and measured at a third of the writer's time.
const BINDS_PER_ROW: usize = 10;
/// Rows per INSERT statement: powers of two up to this, so a handful of cached prepared
/// statements cover any batch size while staying far below SQLite's 32,766 variables.
const MAX_ROWS_PER_STATEMENT: usize = 1024;

impl Writer {
    /// Starts the writer task on `conn`. `queue` bounds the waiting requests;
    /// `max_commit_events` bounds the events of one transaction; `metering` counts usage
    /// and publishes on its hub.
    pub fn spawn(conn: SqliteConnection, queue: usize, max_commit_events: usize, metering: Metering) -> Writer {
        let (jobs, rx) = mpsc::channel(queue);
        let (stop, stopped) = watch::channel(false);
        let hub = metering.hub().clone();
        let task = tokio::spawn(run(conn, rx, stopped, max_commit_events, metering));
        Writer {
            jobs,
            capacity: queue,
            stop,
            task: Mutex::new(Some(task)),
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
    /// (checkpointing the WAL) and waits for the task to end.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "event writer task failed");
        }
    }
}

async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Job>,
    mut stop: watch::Receiver<bool>,
    max_commit_events: usize,
    mut metering: Metering,
) {
    let statements = InsertStatements::new();
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
        commit_group(&mut conn, &statements, &mut metering, group).await;
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
    statements: &InsertStatements,
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
        let mut outcomes = Vec::with_capacity(batches.len());
        for batch in batches {
            outcomes.push(insert_batch(conn, statements, batch).await?);
        }
        let frames = if touched.is_empty() {
            Vec::new()
        } else {
            metering.count(conn, &touched, after_seq).await?
        };
        conn.execute("COMMIT").await?;
        Ok::<_, StoreError>((outcomes, frames))
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

async fn insert_batch(
    conn: &mut SqliteConnection,
    statements: &InsertStatements,
    batch: WriteBatch,
) -> Result<WriteOutcome, sqlx::Error> {
    let total = batch.rows.len() as u64;
    let mut accepted = 0;
    // One shared copy of the receive time for every row of the batch.
    let received_at: Arc<str> = Arc::from(batch.received_at.as_str());
    let mut rows = batch.rows.into_iter();
    let mut remaining = rows.len();
    while remaining > 0 {
        let size = statement_rows(remaining);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statements.sql(size)));
        for row in rows.by_ref().take(size) {
            query = query
                .bind(batch.project_id)
                .bind(received_at.clone())
                .bind(row.source)
                .bind(row.id)
                .bind(row.event_type)
                .bind(row.subject)
                .bind(row.time)
                .bind(row.time_us)
                .bind(row.datacontenttype)
                .bind(row.data);
        }
        accepted += conn.execute(query).await?.rows_affected();
        remaining -= size;
    }
    Ok(WriteOutcome {
        accepted,
        duplicates: total - accepted,
    })
}

/// The largest statement size (a power of two ≤ [`MAX_ROWS_PER_STATEMENT`]) that fits.
fn statement_rows(remaining: usize) -> usize {
    let pow = 1usize << (usize::BITS - 1 - remaining.leading_zeros());
    pow.min(MAX_ROWS_PER_STATEMENT)
}

/// The multi-row INSERT text for every power-of-two size, built once.
struct InsertStatements {
    by_log2: Vec<Arc<str>>,
}

impl InsertStatements {
    fn new() -> Self {
        let mut by_log2 = Vec::new();
        let mut rows = 1;
        while rows <= MAX_ROWS_PER_STATEMENT {
            by_log2.push(Arc::from(insert_sql(rows)));
            rows *= 2;
        }
        InsertStatements { by_log2 }
    }

    fn sql(&self, rows: usize) -> Arc<str> {
        self.by_log2[rows.trailing_zeros() as usize].clone()
    }
}

fn insert_sql(rows: usize) -> String {
    let row = format!("({})", ["?"; BINDS_PER_ROW].join(","));
    let mut sql = String::with_capacity(160 + rows * (row.len() + 1));
    sql.push_str(
        "INSERT INTO events (project_id, received_at, source, id, type, subject, time, time_us, datacontenttype, data) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push_str(&row);
    }
    sql.push_str(" ON CONFLICT (project_id, source, id) DO NOTHING");
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_sizes_are_powers_of_two() {
        assert_eq!(statement_rows(1), 1);
        assert_eq!(statement_rows(500), 256);
        assert_eq!(statement_rows(3), 2);
        assert_eq!(statement_rows(100_000), MAX_ROWS_PER_STATEMENT);
    }

    #[test]
    fn parameters_stay_under_sqlite_limit() {
        let sql = insert_sql(2);
        assert!(
            sql.contains("VALUES (?,?,?,?,?,?,?,?,?,?),(?,?,?,?,?,?,?,?,?,?) ON CONFLICT"),
            "{sql}"
        );
        assert_eq!(sql.matches('?').count(), 2 * BINDS_PER_ROW);
        const { assert!(MAX_ROWS_PER_STATEMENT * BINDS_PER_ROW < 32_766) };
    }
}
