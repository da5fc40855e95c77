//! Stream messages appended by another process (the admin CLI), which has no way to reach
//! the server's in-process hub: it marks them in `stream_relay`, and the server takes them
//! from there and publishes them (`entitlements::relay`).

use sqlx::{Connection, Row};

use super::{Store, StoreError, StreamFrame};

impl Store {
    /// Takes (reads and unmarks) the messages other processes marked for relay, in
    /// (project, seq) order. Messages already pruned from the log are dropped.
    pub async fn take_relayed(&self) -> Result<Vec<StreamFrame>, StoreError> {
        let waiting: Option<i64> = sqlx::query_scalar("SELECT 1 FROM stream_relay LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        if waiting.is_none() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query(
            "SELECT r.project_id, r.seq, l.subject, l.frame FROM stream_relay AS r
             JOIN stream_log AS l ON l.project_id = r.project_id AND l.seq = r.seq
             ORDER BY r.project_id, r.seq",
        )
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM stream_relay").execute(&mut *tx).await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(StreamFrame {
                    project_id: row.try_get(0)?,
                    seq: u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or_default(),
                    subject: row.try_get(2)?,
                    frame: row.try_get::<String, _>(3)?.into(),
                })
            })
            .collect()
    }
}
