//! The realtime stream's message log on PostgreSQL: seqs from the database, one order for
//! every node.
//!
//! Invariant (the commit-order trap): a seq is taken by updating the project's `stream_seq`
//! row, and that row lock is held until the transaction ends. A second transaction taking
//! a seq of the same project waits for the first to commit (or roll back) and then reads
//! its value, so a project's seqs commit in increasing order: whoever sees seq N committed
//! sees every seq below N committed too, and a client resuming at `since = N` misses
//! nothing that will ever be given a seq ≤ N. A rolled-back transaction gives its seq back
//! (the next one takes it), so the log has no holes either.

use meterline_core::stream::ServerMessage;
use sqlx::{PgConnection, Row};

use super::{LogRead, PgStore, StoreError, StreamFrame};

/// Takes the project's next `n` seqs inside the caller's transaction; returns the last. The
/// row lock it takes is what orders the project's commits (see the module doc).
pub async fn reserve_seqs(conn: &mut PgConnection, project_id: i64, n: usize) -> Result<u64, StoreError> {
    let last: i64 = sqlx::query_scalar(
        "INSERT INTO stream_seq (project_id, seq) VALUES ($1, $2)
         ON CONFLICT (project_id) DO UPDATE SET seq = stream_seq.seq + excluded.seq RETURNING seq",
    )
    .bind(project_id)
    .bind(i64::try_from(n).unwrap_or(i64::MAX))
    .fetch_one(&mut *conn)
    .await?;
    u64::try_from(last).map_err(|_| StoreError::Conflict(format!("stream seq {last} is negative")))
}

/// Appends a message inside the caller's transaction: takes the project's next seq, lets
/// `build` make the message with it, stores the frame and returns it.
pub async fn append_message(
    conn: &mut PgConnection,
    project_id: i64,
    subject: Option<&str>,
    build: impl FnOnce(u64) -> ServerMessage,
) -> Result<StreamFrame, StoreError> {
    let seq = reserve_seqs(conn, project_id, 1).await?;
    let frame = serde_json::to_string(&build(seq))
        .map_err(|e| StoreError::Conflict(format!("stream message does not serialize: {e}")))?;
    sqlx::query("INSERT INTO stream_log (project_id, seq, subject, frame, created_at_ms) VALUES ($1, $2, $3, $4, $5)")
        .bind(project_id)
        .bind(seq as i64)
        .bind(subject)
        .bind(&frame)
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(&mut *conn)
        .await?;
    Ok(StreamFrame {
        project_id,
        seq,
        subject: subject.map(str::to_owned),
        frame: frame.into(),
    })
}

impl PgStore {
    /// Begins a transaction on a pooled connection (to append messages in, with
    /// [`append_message`]).
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// The project's current stream seq (0 before the first message).
    pub async fn stream_seq(&self, project_id: i64) -> Result<u64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM stream_seq WHERE project_id = $1")
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(seq.map_or(0, |s| s.max(0) as u64))
    }

    /// The retained messages with `seq > since` for `subjects` and the project-wide ones,
    /// oldest first, at most `limit` of them (more → [`LogRead::Resync`]); or `Resync` when
    /// the log no longer covers `since` or `since` is ahead of the current seq. Both reads
    /// see one snapshot (`REPEATABLE READ`), so `current` and the frames agree.
    pub async fn stream_since(
        &self,
        project_id: i64,
        since: u64,
        subjects: &[String],
        limit: usize,
    ) -> Result<LogRead, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query("SELECT seq, pruned_through FROM stream_seq WHERE project_id = $1")
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
        let rows = sqlx::query(
            "SELECT seq, subject, frame FROM stream_log
             WHERE project_id = $1 AND seq > $2 AND (subject IS NULL OR subject = ANY($3))
             ORDER BY seq LIMIT $4",
        )
        .bind(project_id)
        .bind(since as i64)
        .bind(subjects)
        .bind(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        if rows.len() > limit {
            return Ok(LogRead::Resync { current });
        }
        let frames = rows
            .iter()
            .map(|row| {
                Ok(StreamFrame {
                    project_id,
                    seq: row.try_get::<i64, _>(0)?.max(0) as u64,
                    subject: row.try_get(1)?,
                    frame: row.try_get::<String, _>(2)?.into(),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(LogRead::Covered { frames, current })
    }
}
