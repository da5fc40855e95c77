//! Schema and settings changes that announce themselves on the stream: the change, the new
//! `/v1/schema` ETag and the `schema.updated` message commit in one transaction, so a
//! client that sees the message can fetch the document it names.

use meterline_core::stream::{SchemaUpdated, ServerMessage};
use serde_json::Value;
use sqlx::{Connection, SqliteConnection};

use super::{SchemaRecord, Store, StoreError, StreamFrame, append_message, now_rfc3339, sqlite::schema_from_row};

/// A change to what `GET /v1/schema` serves.
#[derive(Debug, Clone, Copy)]
pub enum SchemaChange<'a> {
    /// Create or replace an event type's JSON Schema.
    Put {
        /// The event type.
        event_type: &'a str,
        /// Its JSON Schema (already checked to compile).
        schema: &'a Value,
    },
    /// Remove an event type's schema.
    Delete {
        /// The event type.
        event_type: &'a str,
    },
    /// Change the project's settings (`PUT /v1/admin/settings`).
    Settings(&'a SettingsUpdate),
}

/// New values of a project's settings; `None` keeps a setting as it is. The lists must
/// already be checked and normalised (sorted, no repeats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsUpdate {
    /// Reject events whose type has no schema.
    pub strict_types: Option<bool>,
    /// Event types a publishable key with a customer token may send.
    pub client_event_types: Option<Vec<String>>,
    /// Browser origins served CORS.
    pub allowed_origins: Option<Vec<String>>,
}

/// What a [`SchemaChange`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaOutcome {
    /// A schema was stored for a type that had none.
    Created(SchemaRecord),
    /// A type's schema was replaced.
    Replaced(SchemaRecord),
    /// A type's schema was removed.
    Deleted,
    /// `Delete` of a type without a schema: nothing changed.
    NotFound,
    /// Settings were set.
    Settings,
}

/// The outcome and, when the document's ETag changed, the committed `schema.updated`
/// frame to publish on the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaChanged {
    /// What happened.
    pub outcome: SchemaOutcome,
    /// `schema.updated` with the new ETag; `None` when the ETag did not change.
    pub frame: Option<StreamFrame>,
}

impl Store {
    /// Applies `change` and, if the `/v1/schema` ETag (computed by `etag_of` from
    /// `strict_types`, `client_event_types` and every schema) changes, appends `schema.updated` in the same
    /// transaction. Call while holding the hub's sequencing guard and publish the frame
    /// after this returns — or, from another process (`relay`), have the message marked
    /// in the same transaction for the running server to relay.
    pub async fn change_schema(
        &self,
        project_id: i64,
        change: SchemaChange<'_>,
        etag_of: impl Fn(bool, &[String], Vec<SchemaRecord>) -> String,
        relay: bool,
    ) -> Result<SchemaChanged, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let before = current_etag(&mut tx, project_id, &etag_of).await?;
        let outcome = match change {
            SchemaChange::Put { event_type, schema } => {
                let existed = sqlx::query("SELECT 1 FROM schemas WHERE project_id = ? AND type = ?")
                    .bind(project_id)
                    .bind(event_type)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                let now = now_rfc3339();
                sqlx::query(
                    "INSERT INTO schemas (project_id, type, schema, updated_at) VALUES (?, ?, ?, ?)
                     ON CONFLICT (project_id, type) DO UPDATE
                     SET schema = excluded.schema, updated_at = excluded.updated_at",
                )
                .bind(project_id)
                .bind(event_type)
                .bind(schema.to_string())
                .bind(&now)
                .execute(&mut *tx)
                .await?;
                let record = SchemaRecord {
                    event_type: event_type.to_owned(),
                    schema: schema.clone(),
                    updated_at: now,
                };
                if existed {
                    SchemaOutcome::Replaced(record)
                } else {
                    SchemaOutcome::Created(record)
                }
            }
            SchemaChange::Delete { event_type } => {
                let done = sqlx::query("DELETE FROM schemas WHERE project_id = ? AND type = ?")
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
                    "UPDATE projects SET strict_types = coalesce(?, strict_types),
                         client_event_types = coalesce(?, client_event_types),
                         allowed_origins = coalesce(?, allowed_origins)
                     WHERE id = ?",
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
            let frame = append_message(&mut tx, project_id, None, message).await?;
            if relay {
                sqlx::query("INSERT INTO stream_relay (project_id, seq) VALUES (?, ?)")
                    .bind(project_id)
                    .bind(i64::try_from(frame.seq).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await?;
            }
            Some(frame)
        };
        tx.commit().await?;
        Ok(SchemaChanged { outcome, frame })
    }
}

async fn current_etag(
    conn: &mut SqliteConnection,
    project_id: i64,
    etag_of: &impl Fn(bool, &[String], Vec<SchemaRecord>) -> String,
) -> Result<String, StoreError> {
    let (strict, client_types): (bool, String) =
        sqlx::query_as("SELECT strict_types, client_event_types FROM projects WHERE id = ?")
            .bind(project_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("project {project_id} does not exist")))?;
    let client_types: Vec<String> =
        serde_json::from_str(&client_types).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let rows = sqlx::query("SELECT type, schema, updated_at FROM schemas WHERE project_id = ? ORDER BY type")
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
    let records = rows.iter().map(schema_from_row).collect::<Result<_, _>>()?;
    Ok(etag_of(strict, &client_types, records))
}
