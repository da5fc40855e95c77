//! The `server_nodes` table (DR-115): each node on PostgreSQL registers, heartbeats and
//! counts the live nodes, by the database's clock; it deletes its row when it stops.

use std::time::Duration;

use super::{PgStore, StoreError};

/// Rows not seen for this long are deleted by the next heartbeat of any node (they stopped
/// counting long before, at the live window).
const PRUNE_AFTER: Duration = Duration::from_secs(60);

impl PgStore {
    /// Records that `node_id` is alive now (inserting its row on the first beat, or again
    /// after it was pruned), deletes rows stale for [`PRUNE_AFTER`], and returns how many
    /// nodes were seen within `window`, this one included. One round trip.
    pub async fn node_heartbeat(&self, node_id: &str, window: Duration) -> Result<u32, StoreError> {
        let others: i64 = sqlx::query_scalar(
            "WITH beat AS (
                 INSERT INTO server_nodes (node_id, started_at, last_seen)
                 VALUES ($1, clock_timestamp(), clock_timestamp())
                 ON CONFLICT (node_id) DO UPDATE SET last_seen = excluded.last_seen
                 RETURNING node_id),
             pruned AS (
                 DELETE FROM server_nodes
                 WHERE last_seen < clock_timestamp() - make_interval(secs => $3) AND node_id <> $1
                 RETURNING node_id)
             SELECT count(*) FROM server_nodes
             WHERE node_id <> $1 AND last_seen >= clock_timestamp() - make_interval(secs => $2)",
        )
        .bind(node_id)
        .bind(window.as_secs_f64())
        .bind(PRUNE_AFTER.as_secs_f64())
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(others).unwrap_or(u32::MAX - 1) + 1)
    }

    /// Deletes `node_id`'s row (a node stopping): the others count one node fewer at their
    /// next heartbeat instead of after the live window.
    pub async fn node_leave(&self, node_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM server_nodes WHERE node_id = $1")
            .bind(node_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
