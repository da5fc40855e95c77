//! Schemas, settings and the stream log's upkeep on PostgreSQL: what `schema_change.rs`
//! and `stream_log.rs` do on SQLite. A change commits with its `schema.updated` message
//! (delivered to every node by the [`super::StreamFollower`]) and a config notification
//! ([`super::pg_config`]) that makes every node drop its cached schemas and settings.

use meterline_core::stream::{SchemaUpdated, ServerMessage};
use serde_json::Value;
use sqlx::{PgConnection, Row, postgres::PgRow};

use super::{
    PgStore, SchemaChange, SchemaChanged, SchemaOutcome, SchemaRecord, StoreError, now_rfc3339,
    pg_config::{ConfigChange, notify},
    pg_stream::append_message,
};

fn schema_from_row(row: &PgRow) -> Result<SchemaRecord, sqlx::Error> {
    let text: String = row.try_get("schema")?;
    Ok(SchemaRecord {
        event_type: row.try_get("type")?,
        schema: serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn schemas_of(conn: &mut PgConnection, project_id: i64) -> Result<Vec<SchemaRecord>, StoreError> {
    let rows = sqlx::query("SELECT type, schema, updated_at FROM schemas WHERE project_id = $1 ORDER BY type")
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.iter().map(schema_from_row).collect::<Result<_, _>>()?)
}

async fn current_etag(
    conn: &mut PgConnection,
    project_id: i64,
    etag_of: &impl Fn(bool, &[String], Vec<SchemaRecord>) -> String,
) -> Result<String, StoreError> {
    let (strict, client_types): (bool, String) =
        sqlx::query_as("SELECT strict_types, client_event_types FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("project {project_id} does not exist")))?;
    let client_types: Vec<String> =
        serde_json::from_str(&client_types).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let records = schemas_of(conn, project_id).await?;
    Ok(etag_of(strict, &client_types, records))
}

impl PgStore {
    /// Every schema of a project, by type.
    pub async fn schemas(&self, project_id: i64) -> Result<Vec<SchemaRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        schemas_of(&mut conn, project_id).await
    }

    /// One event type's schema.
    pub async fn schema(&self, project_id: i64, event_type: &str) -> Result<Option<SchemaRecord>, StoreError> {
        let row = sqlx::query("SELECT type, schema, updated_at FROM schemas WHERE project_id = $1 AND type = $2")
            .bind(project_id)
            .bind(event_type)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(schema_from_row).transpose()?)
    }

    /// Applies `change` as [`super::Store::change_schema`] does. The project's row is
    /// locked first, so two nodes changing one project's schemas compute their ETags one
    /// after the other. There is nothing to relay on PostgreSQL: every node's follower
    /// delivers the committed message.
    pub async fn change_schema(
        &self,
        project_id: i64,
        change: SchemaChange<'_>,
        etag_of: impl Fn(bool, &[String], Vec<SchemaRecord>) -> String,
    ) -> Result<SchemaChanged, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM projects WHERE id = $1 FOR UPDATE")
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
        let before = current_etag(&mut tx, project_id, &etag_of).await?;
        let outcome = match change {
            SchemaChange::Put { event_type, schema } => {
                let now = now_rfc3339();
                // xmax = 0 only on a freshly inserted row.
                let created: bool = sqlx::query_scalar(
                    "INSERT INTO schemas (project_id, type, schema, updated_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (project_id, type) DO UPDATE
                     SET schema = excluded.schema, updated_at = excluded.updated_at
                     RETURNING (xmax = 0)",
                )
                .bind(project_id)
                .bind(event_type)
                .bind(schema.to_string())
                .bind(&now)
                .fetch_one(&mut *tx)
                .await?;
                let record = SchemaRecord {
                    event_type: event_type.to_owned(),
                    schema: schema.clone(),
                    updated_at: now,
                };
                if created {
                    SchemaOutcome::Created(record)
                } else {
                    SchemaOutcome::Replaced(record)
                }
            }
            SchemaChange::Delete { event_type } => {
                let done = sqlx::query("DELETE FROM schemas WHERE project_id = $1 AND type = $2")
                    .bind(project_id)
                    .bind(event_type)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(SchemaChanged {
                        outcome: SchemaOutcome::NotFound,
                        frame: None,
                    });
                }
                SchemaOutcome::Deleted
            }
            SchemaChange::Settings(update) => {
                let list = |items: &Option<Vec<String>>| items.as_ref().map(|i| Value::from(i.clone()).to_string());
                sqlx::query(
                    "UPDATE projects SET strict_types = coalesce($1, strict_types),
                         client_event_types = coalesce($2, client_event_types),
                         allowed_origins = coalesce($3, allowed_origins)
                     WHERE id = $4",
                )
                .bind(update.strict_types)
                .bind(list(&update.client_event_types))
                .bind(list(&update.allowed_origins))
                .bind(project_id)
                .execute(&mut *tx)
                .await?;
                SchemaOutcome::Settings
            }
        };
        let after = current_etag(&mut tx, project_id, &etag_of).await?;
        let frame = if after == before {
            None
        } else {
            let message = |seq| ServerMessage::SchemaUpdated {
                seq,
                data: SchemaUpdated { etag: after },
            };
            Some(append_message(&mut tx, project_id, None, message).await?)
        };
        notify(&mut tx, ConfigChange::Project(project_id)).await?;
        tx.commit().await?;
        Ok(SchemaChanged { outcome, frame })
    }

    /// Deletes messages created before `before_ms` (Unix ms) and records, per project, the
    /// highest seq deleted, so older resumes get `resync`. Returns how many were deleted.
    pub async fn prune_stream_log(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE stream_seq SET pruned_through = GREATEST(pruned_through, old.through)
             FROM (SELECT project_id, MAX(seq) AS through FROM stream_log
                   WHERE created_at_ms < $1 GROUP BY project_id) AS old
             WHERE stream_seq.project_id = old.project_id",
        )
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query("DELETE FROM stream_log WHERE created_at_ms < $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }
}
