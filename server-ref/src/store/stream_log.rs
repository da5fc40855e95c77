//! The realtime stream's retained message log (DESIGN §5): every published message gets the
//! project's next `seq` inside the caller's transaction, so a message exists exactly when
//! the change it announces was committed, and a reconnecting client can replay what it
//! missed with `since`.

use axum::extract::ws::Utf8Bytes;
use meterline_core::stream::ServerMessage;
use sqlx::{Row, SqliteConnection};

use super::{Store, StoreError};

/// One message as stored and sent: the exact JSON text frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFrame {
    /// Owning project.
    pub project_id: i64,
    /// Per-project, strictly increasing.
    pub seq: u64,
    /// The customer it concerns; `None` for project-wide messages (`schema.updated`).
    pub subject: Option<String>,
    /// The JSON text frame, serialized once: its bytes are shared (reference-counted) by
    /// every connection that sends it, so a message reaching 1,000 connections is not
    /// copied 1,000 times.
    pub frame: Utf8Bytes,
}

impl StreamFrame {
    /// The frames of `SELECT seq, subject, frame FROM stream_log …` rows, on either backend.
    pub(crate) fn from_rows<R>(project_id: i64, rows: &[R]) -> Result<Vec<StreamFrame>, sqlx::Error>
    where
        R: Row,
        usize: sqlx::ColumnIndex<R>,
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        rows.iter()
            .map(|row| {
                Ok(StreamFrame {
                    project_id,
                    seq: row.try_get::<i64, _>(0)?.max(0) as u64,
                    subject: row.try_get::<Option<String>, _>(1)?,
                    frame: row.try_get::<String, _>(2)?.into(),
                })
            })
            .collect()
    }
}

/// What a resume from `since` finds in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRead {
    /// Every message after `since` for the subjects (and project-wide ones), oldest first,
    /// and the project's current seq.
    Covered {
        /// The messages to replay.
        frames: Vec<StreamFrame>,
        /// The project's seq when read.
        current: u64,
    },
    /// `since` is older than the retained log or ahead of the current seq: refetch.
    Resync {
        /// The project's current seq.
        current: u64,
    },
}

/// Takes the project's next `n` seqs inside the caller's transaction; returns the last. One
/// statement (the project's row is created at its first message): each statement of a
/// transaction is a round trip to the connection's thread.
pub(super) async fn reserve_seqs(conn: &mut SqliteConnection, project_id: i64, n: usize) -> Result<u64, StoreError> {
    let last: i64 = sqlx::query_scalar(
        "INSERT INTO stream_seq (project_id, seq) VALUES (?, ?)
         ON CONFLICT (project_id) DO UPDATE SET seq = seq + excluded.seq RETURNING seq",
    )
    .bind(project_id)
    .bind(i64::try_from(n).unwrap_or(i64::MAX))
    .fetch_one(&mut *conn)
    .await?;
    u64::try_from(last).map_err(|_| StoreError::Conflict(format!("stream seq {last} is negative")))
}

/// Appends a message inside the caller's transaction: takes the project's next seq, lets
/// `build` make the message with it, stores the frame and returns it. Publish the frame on
/// the hub only after the transaction has committed, while still holding the hub's
/// sequencing guard (`stream::Hub::sequence`).
pub async fn append_message(
    conn: &mut SqliteConnection,
    project_id: i64,
    subject: Option<&str>,
    build: impl FnOnce(u64) -> ServerMessage,
) -> Result<StreamFrame, StoreError> {
    let seq = reserve_seqs(conn, project_id, 1).await?;
    let frame: Utf8Bytes = serde_json::to_string(&build(seq))
        .map_err(|e| StoreError::Conflict(format!("stream message does not serialize: {e}")))?
        .into();
    sqlx::query("INSERT INTO stream_log (project_id, seq, subject, frame, created_at_ms) VALUES (?, ?, ?, ?, ?)")
        .bind(project_id)
        .bind(seq as i64)
        .bind(subject)
        .bind(&*frame)
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(&mut *conn)
        .await?;
    Ok(StreamFrame {
        project_id,
        seq,
        subject: subject.map(str::to_owned),
        frame,
    })
}

impl Store {
    /// The project's current stream seq (0 before the first message).
    pub async fn stream_seq(&self, project_id: i64) -> Result<u64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM stream_seq WHERE project_id = ?")
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(seq.map_or(0, |s| s.max(0) as u64))
    }

    /// The retained messages with `seq > since` for `subjects` and the project-wide ones,
    /// oldest first, at most `limit` of them (more → [`LogRead::Resync`]); or `Resync` when
    /// the log no longer covers `since` or `since` is ahead of the current seq.
    pub async fn stream_since(
        &self,
        project_id: i64,
        since: u64,
        subjects: &[String],
        limit: usize,
    ) -> Result<LogRead, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let row = sqlx::query("SELECT seq, pruned_through FROM stream_seq WHERE project_id = ?")
            .bind(project_id)
            .fetch_optional(&mut *tx)
            .await?;
        let (current, pruned_through) = match row {
            Some(row) => (
                row.try_get::<i64, _>(0)?.max(0) as u64,
                row.try_get::<i64, _>(1)?.max(0) as u64,
            ),
            None => (0, 0),
        };
        if since > current || since < pruned_through {
            return Ok(LogRead::Resync { current });
        }
        // Subjects go in as one JSON array so the statement does not grow with them.
        let subjects_json = serde_json::to_string(subjects).unwrap_or_else(|_| "[]".to_owned());
        let rows = sqlx::query(
            "SELECT seq, subject, frame FROM stream_log
             WHERE project_id = ? AND seq > ?
               AND (subject IS NULL OR subject IN (SELECT value FROM json_each(?)))
             ORDER BY seq LIMIT ?",
        )
        .bind(project_id)
        .bind(since as i64)
        .bind(subjects_json)
        .bind(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        if rows.len() > limit {
            return Ok(LogRead::Resync { current });
        }
        let frames = StreamFrame::from_rows(project_id, &rows)?;
        Ok(LogRead::Covered { frames, current })
    }

    /// Deletes messages created before `before_ms` (Unix ms) and records, per project, the
    /// highest seq deleted, so older resumes get `resync`. Returns how many were deleted.
    pub async fn prune_stream_log(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::query(
            "UPDATE stream_seq SET pruned_through = MAX(pruned_through, (
                 SELECT MAX(seq) FROM stream_log
                 WHERE stream_log.project_id = stream_seq.project_id AND created_at_ms < ?))
             WHERE EXISTS (SELECT 1 FROM stream_log
                 WHERE stream_log.project_id = stream_seq.project_id AND created_at_ms < ?)",
        )
        .bind(before_ms)
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query("DELETE FROM stream_log WHERE created_at_ms < ?")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }
}
