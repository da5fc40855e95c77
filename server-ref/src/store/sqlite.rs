//! SQL of everything but the event writer: projects, keys, schemas and event reads.
//! Every query about a project's data filters by its id.

use meterline_core::{event::Event, key::KeyKind};
use serde_json::{Map, Value};
use sqlx::{Connection, Row, sqlite::SqliteRow};

use super::{NewKey, Store, StoreError, now_rfc3339};

/// A project: the unit of isolation (keys, events and schemas belong to one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Internal id.
    pub id: i64,
    /// Unique name (`default` for the one created at first start).
    pub name: String,
    /// Whether event types without a schema are rejected.
    pub strict_types: bool,
    /// Event types a publishable key with a customer token may send (sorted, no repeats).
    pub client_event_types: Vec<String>,
    /// Browser origins served CORS (`https://app.example.com`; sorted, no repeats).
    pub allowed_origins: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// A stored API key (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The public id (the `<id>` part of `ml_<kind>_<id>_<secret>`).
    pub id: String,
    /// Owning project.
    pub project_id: i64,
    /// What it may do.
    pub kind: KeyKind,
    /// SHA-256 of the secret part.
    pub secret_hash: Vec<u8>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339 when revoked.
    pub revoked_at: Option<String>,
}

/// One event type's JSON Schema.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaRecord {
    /// The event type.
    pub event_type: String,
    /// The JSON Schema of its `data`.
    pub schema: Value,
    /// RFC 3339.
    pub updated_at: String,
}

/// Which events `GET /v1/events` reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this `type`.
    pub event_type: Option<String>,
    /// Only this `subject`.
    pub subject: Option<String>,
    /// Event time ≥ this (µs since the epoch).
    pub from_us: Option<i64>,
    /// Event time < this (µs since the epoch).
    pub to_us: Option<i64>,
    /// Only events stored after this sequence number (the cursor).
    pub after_seq: i64,
    /// Most events returned.
    pub limit: u32,
}

/// A stored event and its position.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Per-database sequence number (increasing in storage order).
    pub seq: i64,
    /// The event as it arrived.
    pub event: Event,
}

fn project_from_row(row: &SqliteRow) -> Result<Project, sqlx::Error> {
    Ok(Project {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        strict_types: row.try_get("strict_types")?,
        client_event_types: json_list(row, "client_event_types")?,
        allowed_origins: json_list(row, "allowed_origins")?,
        created_at: row.try_get("created_at")?,
    })
}

/// A column holding a JSON array of strings.
fn json_list(row: &SqliteRow, column: &str) -> Result<Vec<String>, sqlx::Error> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(format!("projects.{column}: {e}").into()))
}

fn key_from_row(row: &SqliteRow) -> Result<KeyRecord, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    Ok(KeyRecord {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        kind: KeyKind::from_name(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown key kind {kind:?}").into()))?,
        secret_hash: row.try_get("secret_hash")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

pub(super) fn schema_from_row(row: &SqliteRow) -> Result<SchemaRecord, sqlx::Error> {
    let text: String = row.try_get("schema")?;
    Ok(SchemaRecord {
        event_type: row.try_get("type")?,
        schema: serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Number of projects (0 on a fresh database).
    pub async fn project_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM projects")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Creates a project together with its first keys, atomically. Errors with `Conflict`
    /// when the name is taken.
    pub async fn create_project(&self, name: &str, keys: &[NewKey]) -> Result<Project, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let now = now_rfc3339();
        let inserted = sqlx::query(
            "INSERT INTO projects (name, strict_types, created_at) VALUES (?, 0, ?)
             ON CONFLICT (name) DO NOTHING
             RETURNING id, name, strict_types, client_event_types, allowed_origins, created_at",
        )
        .bind(name)
        .bind(&now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = inserted else {
            return Err(StoreError::Conflict(format!("a project named {name:?} already exists")));
        };
        let project = project_from_row(&row)?;
        for key in keys {
            insert_key(&mut tx, project.id, key, &now).await?;
        }
        tx.commit().await?;
        Ok(project)
    }

    /// Looks a project up by name.
    pub async fn project_by_name(&self, name: &str) -> Result<Option<Project>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, strict_types, client_event_types, allowed_origins, created_at
             FROM projects WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(project_from_row).transpose()?)
    }

    /// Looks a project up by id.
    pub async fn project(&self, project_id: i64) -> Result<Project, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, strict_types, client_event_types, allowed_origins, created_at
             FROM projects WHERE id = ?",
        )
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("project {project_id} does not exist")))?;
        Ok(project_from_row(&row)?)
    }

    /// Stores a new key's hash (and, for a secret key, its customer-token signing key).
    pub async fn insert_key(&self, project_id: i64, key: &NewKey) -> Result<KeyRecord, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let now = now_rfc3339();
        insert_key(&mut conn, project_id, key, &now).await?;
        Ok(KeyRecord {
            id: key.id.clone(),
            project_id,
            kind: key.kind,
            secret_hash: key.secret_hash.clone(),
            created_at: now,
            revoked_at: None,
        })
    }

    /// Finds a key by its public id (revoked ones included).
    pub async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row =
            sqlx::query("SELECT id, project_id, kind, secret_hash, created_at, revoked_at FROM api_keys WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(key_from_row).transpose()?)
    }

    /// A project's keys, oldest first.
    pub async fn keys(&self, project_id: i64) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, project_id, kind, secret_hash, created_at, revoked_at FROM api_keys
             WHERE project_id = ? ORDER BY created_at, id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
    }

    /// Revokes a key. With `project_id`, only a key of that project is found. Returns the
    /// key (already revoked ones keep their first revocation time), or `None` when unknown.
    pub async fn revoke_key(&self, project_id: Option<i64>, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL AND (?3 IS NULL OR project_id = ?3)")
            .bind(now_rfc3339())
            .bind(id)
            .bind(project_id)
            .execute(&self.pool)
            .await?;
        let key = self.key(id).await?;
        Ok(key.filter(|k| project_id.is_none_or(|p| p == k.project_id)))
    }

    /// Every schema of a project, by type.
    pub async fn schemas(&self, project_id: i64) -> Result<Vec<SchemaRecord>, StoreError> {
        let rows = sqlx::query("SELECT type, schema, updated_at FROM schemas WHERE project_id = ? ORDER BY type")
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(schema_from_row).collect::<Result<_, _>>()?)
    }

    /// One event type's schema.
    pub async fn schema(&self, project_id: i64, event_type: &str) -> Result<Option<SchemaRecord>, StoreError> {
        let row = sqlx::query("SELECT type, schema, updated_at FROM schemas WHERE project_id = ? AND type = ?")
            .bind(project_id)
            .bind(event_type)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(schema_from_row).transpose()?)
    }

    /// A page of a project's events, oldest first.
    pub async fn events(&self, project_id: i64, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(events_sql(filter)))
            .bind(project_id)
            .bind(filter.after_seq);
        if let Some(t) = &filter.event_type {
            query = query.bind(t);
        }
        if let Some(s) = &filter.subject {
            query = query.bind(s);
        }
        if let Some(f) = filter.from_us {
            query = query.bind(f);
        }
        if let Some(t) = filter.to_us {
            query = query.bind(t);
        }
        let rows = query.bind(i64::from(filter.limit)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(event_from_row)
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)
    }
}

/// The `SELECT` of [`Store::events`] for `filter`, binding in this order: project, cursor,
/// then each filter present (type, subject, from, to), then the limit.
///
/// Every variant walks events in seq order and stops at the limit (no sort): by the
/// `events_type (project_id, type, seq)` index when a type is given, else by seq.
/// `NOT INDEXED` (which still allows the seq range) is needed for the latter: left alone,
/// SQLite takes the index for `project_id = ?` and sorts every event of the project.
fn events_sql(filter: &EventFilter) -> String {
    let mut sql = String::from("SELECT seq, source, id, type, subject, time, datacontenttype, data FROM events");
    if filter.event_type.is_none() {
        sql.push_str(" NOT INDEXED");
    }
    sql.push_str(" WHERE project_id = ? AND seq > ?");
    if filter.event_type.is_some() {
        sql.push_str(" AND type = ?");
    }
    if filter.subject.is_some() {
        sql.push_str(" AND subject = ?");
    }
    if filter.from_us.is_some() {
        sql.push_str(" AND time_us >= ?");
    }
    if filter.to_us.is_some() {
        sql.push_str(" AND time_us < ?");
    }
    sql.push_str(" ORDER BY seq LIMIT ?");
    sql
}

fn event_from_row(row: &SqliteRow) -> Result<StoredEvent, sqlx::Error> {
    let data: Option<String> = row.try_get("data")?;
    let data = data
        .map(|text| serde_json::from_str::<Map<String, Value>>(&text))
        .transpose()
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(StoredEvent {
        seq: row.try_get("seq")?,
        event: Event {
            specversion: meterline_core::event::SPEC_VERSION.to_owned(),
            id: row.try_get("id")?,
            source: row.try_get("source")?,
            event_type: row.try_get("type")?,
            subject: row.try_get("subject")?,
            time: row.try_get("time")?,
            datacontenttype: row.try_get("datacontenttype")?,
            data,
        },
    })
}

async fn insert_key(
    conn: &mut sqlx::SqliteConnection,
    project_id: i64,
    key: &NewKey,
    now: &str,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "INSERT INTO api_keys (id, project_id, kind, secret_hash, token_signing_key, created_at)
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&key.id)
    .bind(project_id)
    .bind(key.kind.as_str())
    .bind(&key.secret_hash)
    .bind(key.token_signing_key.as_ref().map(|k| k.as_slice()))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!("key id {:?} is already taken", key.id)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::StorageConfig;

    /// Every `GET /v1/events` variant walks events in seq order and stops at the limit:
    /// by the `events_type` index when a type is given, else by seq, never sorting the
    /// matches (EXPLAIN QUERY PLAN on the migrated schema).
    #[tokio::test]
    async fn event_reads_walk_in_seq_order_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig {
            database_url: format!("sqlite://{}", dir.path().join("plan.db").display()),
            ..StorageConfig::default()
        };
        let (store, writer) = Store::open(&config).await.unwrap();
        writer.close().await.unwrap();
        for mask in 0..16u8 {
            let filter = EventFilter {
                event_type: (mask & 1 != 0).then(|| "api.call".to_owned()),
                subject: (mask & 2 != 0).then(|| "c1".to_owned()),
                from_us: (mask & 4 != 0).then_some(1),
                to_us: (mask & 8 != 0).then_some(2),
                after_seq: 0,
                limit: 100,
            };
            let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
                "EXPLAIN QUERY PLAN {}",
                events_sql(&filter)
            )))
            .bind(1_i64)
            .bind(0_i64);
            for text in [&filter.event_type, &filter.subject].into_iter().flatten() {
                query = query.bind(text.clone());
            }
            for us in [filter.from_us, filter.to_us].into_iter().flatten() {
                query = query.bind(us);
            }
            let rows = query.bind(100_i64).fetch_all(&store.pool).await.unwrap();
            let plan = rows
                .iter()
                .map(|r| r.try_get::<String, _>(3).unwrap())
                .collect::<Vec<_>>()
                .join("; ");
            assert!(!plan.contains("TEMP B-TREE"), "{filter:?}: {plan}");
            let want = if filter.event_type.is_some() {
                "INDEX events_type (project_id=? AND type=? AND seq>?)"
            } else {
                "INTEGER PRIMARY KEY (rowid>?)"
            };
            assert!(plan.contains(want), "{filter:?}: {plan}");
        }
        store.close().await;
    }
}
