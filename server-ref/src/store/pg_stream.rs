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
//!
//! Fan-out between nodes: the appending transaction also sends `NOTIFY meterline_stream,
//! '<project>:<seq>'`, which PostgreSQL delivers at commit, to every listening node. The
//! payload is only the position (far below NOTIFY's 8,000-byte limit); a node's
//! [`StreamFollower`] reads the frames themselves from the log, from the last seq it
//! delivered, so a lost or coalesced notification costs latency, never a message.

use std::collections::{BTreeSet, HashMap};

use meterline_core::stream::ServerMessage;
use sqlx::{PgConnection, Row, postgres::PgListener};

use super::{LogRead, PgStore, StoreError, StreamFrame};

/// The NOTIFY channel of committed stream messages.
pub(super) const CHANNEL: &str = "meterline_stream";

/// Most frames one log read returns (the follower reads again while there are more).
const READ_LIMIT: i64 = 1000;

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
    // Delivered to every listening node when (and if) the transaction commits.
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(format!("{project_id}:{seq}"))
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
        let frames = StreamFrame::from_rows(project_id, &rows)?;
        Ok(LogRead::Covered { frames, current })
    }
}

/// One node's view of the messages every node commits: waits for `NOTIFY`s and reads the
/// new frames from the log, per project in seq order, each exactly once.
#[derive(Debug)]
pub struct StreamFollower {
    store: PgStore,
    /// The listening connection; `None` after it failed, until it is made again.
    listener: Option<PgListener>,
    /// Per project, the last seq delivered.
    delivered: HashMap<i64, u64>,
    /// Projects notified but not read yet (a read failed): read first on the next call.
    pending: BTreeSet<i64>,
}

impl PgStore {
    /// Starts following the stream log of every project from its current seq: later
    /// messages, committed through any node, come out of [`StreamFollower::next`].
    pub async fn follow(&self) -> Result<StreamFollower, StoreError> {
        let listener = self.listen(CHANNEL).await?;
        // Read after LISTEN: a message committed in between is both notified and above
        // the recorded seq, one committed before is below it.
        let delivered = self.stream_seqs().await?.into_iter().collect();
        Ok(StreamFollower {
            store: self.clone(),
            listener: Some(listener),
            delivered,
            pending: BTreeSet::new(),
        })
    }

    /// A new connection listening on `channel`.
    pub(super) async fn listen(&self, channel: &str) -> Result<PgListener, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(channel).await?;
        Ok(listener)
    }

    /// Every project's current stream seq.
    async fn stream_seqs(&self) -> Result<Vec<(i64, u64)>, StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT project_id, seq FROM stream_seq")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(p, s)| (p, s.max(0) as u64)).collect())
    }

    /// Up to [`READ_LIMIT`] frames of the project after `after`, oldest first, all subjects.
    async fn frames_after(&self, project_id: i64, after: u64) -> Result<Vec<StreamFrame>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, subject, frame FROM stream_log WHERE project_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(project_id)
        .bind(after as i64)
        .bind(READ_LIMIT)
        .fetch_all(&self.pool)
        .await?;
        StreamFrame::from_rows(project_id, &rows).map_err(StoreError::from)
    }
}

impl StreamFollower {
    /// Waits for the next committed messages and returns them, in seq order per project.
    /// After the listening connection failed (it is made again on the next call), every
    /// project whose seq moved past what was delivered is read again, so nothing
    /// committed meanwhile is missed. A failed read is retried on the next call.
    pub async fn next(&mut self) -> Result<Vec<StreamFrame>, StoreError> {
        loop {
            if self.pending.is_empty() {
                self.wait().await?;
            }
            let mut out = Vec::new();
            // A project stays pending until its read succeeds.
            while let Some(&project) = self.pending.first() {
                let after = self.delivered.get(&project).copied().unwrap_or(0);
                let frames = self.store.frames_after(project, after).await?;
                self.pending.remove(&project);
                if let Some(last) = frames.last() {
                    self.delivered.insert(project, last.seq);
                    if frames.len() as i64 == READ_LIMIT {
                        // More of this project: hand out what we have first.
                        self.pending.insert(project);
                        out.extend(frames);
                        break;
                    }
                }
                out.extend(frames);
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    /// Waits for a notification (or a lost connection) and marks what to read.
    async fn wait(&mut self) -> Result<(), StoreError> {
        let listener = match &mut self.listener {
            Some(listener) => listener,
            None => {
                let listener = self.store.listen(CHANNEL).await?;
                tracing::info!("listening for stream messages again; reading what was missed");
                self.listener = Some(listener);
                return self.mark_missed().await;
            }
        };
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                let project = notification
                    .payload()
                    .split_once(':')
                    .and_then(|(p, _)| p.parse().ok())
                    .ok_or_else(|| {
                        StoreError::Conflict(format!("unexpected stream notification {:?}", notification.payload()))
                    })?;
                self.pending.insert(project);
                Ok(())
            }
            Ok(None) => {
                tracing::warn!("the stream's LISTEN connection was lost; reading the log again");
                self.mark_missed().await
            }
            Err(e) => {
                // sqlx reconnects only after some I/O errors: start over with a new listener.
                self.listener = None;
                Err(e.into())
            }
        }
    }

    /// Marks every project whose seq is past what was delivered.
    async fn mark_missed(&mut self) -> Result<(), StoreError> {
        for (project, seq) in self.store.stream_seqs().await? {
            if seq > self.delivered.get(&project).copied().unwrap_or(0) {
                self.pending.insert(project);
            }
        }
        Ok(())
    }
}
