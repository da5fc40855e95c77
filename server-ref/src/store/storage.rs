//! The backend-neutral store the server holds (DR-105): an enum over the SQLite store with
//! its group-committing writer, and the PostgreSQL store. Each operation is one `match`
//! that calls the backend's own method — the SQLite SQL and hot path are untouched.
//!
//! On PostgreSQL the stream hub is fed by the [`super::StreamFollower`], not by the code
//! that commits a message (every node must see it, in seq order), so callers publish on the
//! hub only what [`Storage::publishes_locally`] says.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use meterline_core::entitlement::{Entitlements, UsageReport};
use serde_json::Value;

use super::{
    EventFilter, KeyRecord, LogRead, NewKey, PgStore, Project, SchemaChange, SchemaChanged, SchemaRecord, Store,
    StoreError, StoredEvent, StreamFrame, TokenSigner, WriteBatch, WriteError, WriteOutcome, Writer,
};
use crate::{
    config::StorageConfig,
    entitlements::{
        answer,
        change::{Applied, CatalogError, Change, Collection},
    },
};

/// The database the server runs on. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Storage {
    /// One SQLite file: the read/admin pool and the event writer (`None` for a CLI command).
    Sqlite(Store, Option<Arc<Writer>>),
    /// PostgreSQL, possibly shared by several nodes.
    Postgres(PgStore),
}

impl Storage {
    /// Opens the configured database for a one-off CLI command (no event writer).
    pub async fn open_for_cli(config: &StorageConfig) -> Result<Storage, StoreError> {
        if config.is_postgres() {
            Ok(Storage::Postgres(
                PgStore::open(&config.database_url, &config.pg_settings()).await?,
            ))
        } else {
            Ok(Storage::Sqlite(Store::open_for_cli(config).await?, None))
        }
    }

    /// Whether the code that commits a stream message publishes it on this node's hub
    /// (SQLite), rather than every node's stream follower (PostgreSQL).
    pub fn publishes_locally(&self) -> bool {
        matches!(self, Storage::Sqlite(..))
    }

    /// The SQLite store, when that is the backend.
    pub fn sqlite(&self) -> Option<&Store> {
        match self {
            Storage::Sqlite(store, _) => Some(store),
            Storage::Postgres(_) => None,
        }
    }

    /// Whether the database answers (`/readyz`).
    pub async fn ping(&self) -> bool {
        match self {
            Storage::Sqlite(s, _) => s.ping().await,
            Storage::Postgres(p) => p.ping().await,
        }
    }

    /// Closes the pool(s), waiting for the connections to finish.
    pub async fn close(&self) {
        match self {
            Storage::Sqlite(s, _) => s.close().await,
            Storage::Postgres(p) => p.close().await,
        }
    }

    /// Stores a batch's new events exactly once and answers once it is durable.
    pub async fn write(&self, batch: WriteBatch) -> Result<WriteOutcome, WriteError> {
        match self {
            Storage::Sqlite(_, Some(writer)) => writer.write(batch).await,
            Storage::Sqlite(_, None) => Err(WriteError::Closed),
            Storage::Postgres(p) => p.write(&batch).await.map_err(|e| match e.is_contention() {
                true => WriteError::Contended(e.to_string()),
                false => WriteError::Database(e.to_string()),
            }),
        }
    }

    /// Number of projects.
    pub async fn project_count(&self) -> Result<i64, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.project_count().await,
            Storage::Postgres(p) => p.project_count().await,
        }
    }

    /// Creates a project with its first keys (`Conflict` when the name is taken).
    pub async fn create_project(&self, name: &str, keys: &[NewKey]) -> Result<Project, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.create_project(name, keys).await,
            Storage::Postgres(p) => p.create_project(name, keys).await,
        }
    }

    /// Looks a project up by name.
    pub async fn project_by_name(&self, name: &str) -> Result<Option<Project>, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.project_by_name(name).await,
            Storage::Postgres(p) => p.project_by_name(name).await,
        }
    }

    /// Looks a project up by id.
    pub async fn project(&self, project_id: i64) -> Result<Project, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.project(project_id).await,
            Storage::Postgres(p) => p.project(project_id).await,
        }
    }

    /// Stores a new key.
    pub async fn insert_key(&self, project_id: i64, key: &NewKey) -> Result<KeyRecord, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.insert_key(project_id, key).await,
            Storage::Postgres(p) => p.insert_key(project_id, key).await,
        }
    }

    /// Finds a key by its public id (revoked ones included).
    pub async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.key(id).await,
            Storage::Postgres(p) => p.key(id).await,
        }
    }

    /// A project's keys, oldest first.
    pub async fn keys(&self, project_id: i64) -> Result<Vec<KeyRecord>, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.keys(project_id).await,
            Storage::Postgres(p) => p.keys(project_id).await,
        }
    }

    /// Revokes a key (see [`Store::revoke_key`]).
    pub async fn revoke_key(&self, project_id: Option<i64>, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.revoke_key(project_id, id).await,
            Storage::Postgres(p) => p.revoke_key(project_id, id).await,
        }
    }

    /// The key `kid` as a customer-token signer.
    pub async fn token_signer(&self, kid: &str) -> Result<Option<TokenSigner>, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.token_signer(kid).await,
            Storage::Postgres(p) => p.token_signer(kid).await,
        }
    }

    /// Keys revoked at or after `since`, as `(id, revoked_at)`.
    pub async fn keys_revoked_since(&self, since: &str) -> Result<Vec<(String, String)>, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.keys_revoked_since(since).await,
            Storage::Postgres(p) => p.keys_revoked_since(since).await,
        }
    }

    /// Every schema of a project, by type.
    pub async fn schemas(&self, project_id: i64) -> Result<Vec<SchemaRecord>, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.schemas(project_id).await,
            Storage::Postgres(p) => p.schemas(project_id).await,
        }
    }

    /// One event type's schema.
    pub async fn schema(&self, project_id: i64, event_type: &str) -> Result<Option<SchemaRecord>, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.schema(project_id, event_type).await,
            Storage::Postgres(p) => p.schema(project_id, event_type).await,
        }
    }

    /// Applies a schema or settings change with its `schema.updated` message (see
    /// [`Store::change_schema`]; `relay` matters on SQLite only).
    pub async fn change_schema(
        &self,
        project_id: i64,
        change: SchemaChange<'_>,
        etag_of: impl Fn(bool, &[String], Vec<SchemaRecord>) -> String,
        relay: bool,
    ) -> Result<SchemaChanged, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.change_schema(project_id, change, etag_of, relay).await,
            Storage::Postgres(p) => p.change_schema(project_id, change, etag_of).await,
        }
    }

    /// A page of a project's events, oldest first.
    pub async fn events(&self, project_id: i64, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.events(project_id, filter).await,
            Storage::Postgres(p) => p.events(project_id, filter).await,
        }
    }

    /// The project's current stream seq.
    pub async fn stream_seq(&self, project_id: i64) -> Result<u64, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.stream_seq(project_id).await,
            Storage::Postgres(p) => p.stream_seq(project_id).await,
        }
    }

    /// The stream messages after `since` for `subjects` (see [`Store::stream_since`]).
    pub async fn stream_since(
        &self,
        project_id: i64,
        since: u64,
        subjects: &[String],
        limit: usize,
    ) -> Result<LogRead, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.stream_since(project_id, since, subjects, limit).await,
            Storage::Postgres(p) => p.stream_since(project_id, since, subjects, limit).await,
        }
    }

    /// Deletes stream messages created before `before_ms`.
    pub async fn prune_stream_log(&self, before_ms: i64) -> Result<u64, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.prune_stream_log(before_ms).await,
            Storage::Postgres(p) => p.prune_stream_log(before_ms).await,
        }
    }

    /// Takes the messages other processes marked for relay (SQLite); nothing on PostgreSQL,
    /// where every node's follower delivers every committed message.
    pub async fn take_relayed(&self) -> Result<Vec<StreamFrame>, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.take_relayed().await,
            Storage::Postgres(_) => Ok(Vec::new()),
        }
    }

    /// A page of a catalog collection.
    pub async fn catalog_list(
        &self,
        project_id: i64,
        collection: Collection,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Value>, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.catalog_list(project_id, collection, after, limit).await,
            Storage::Postgres(p) => p.catalog_list(project_id, collection, after, limit).await,
        }
    }

    /// One catalog item's admin view.
    pub async fn catalog_get(
        &self,
        project_id: i64,
        collection: Collection,
        id: &str,
    ) -> Result<Option<Value>, StoreError> {
        match self {
            Storage::Sqlite(s, _) => s.catalog_get(project_id, collection, id).await,
            Storage::Postgres(p) => p.catalog_get(project_id, collection, id).await,
        }
    }

    /// The current entitlement answer of `subject` with its version, read together.
    pub async fn entitlements(&self, project_id: i64, subject: &str, ttl_ms: u64) -> Result<Entitlements, StoreError> {
        match self {
            Storage::Sqlite(s, _) => {
                let mut conn = s.read_connection().await?;
                answer::current(&mut conn, project_id, subject, ttl_ms).await
            }
            Storage::Postgres(p) => p.entitlements(project_id, subject, ttl_ms).await,
        }
    }

    /// Every metered feature's usage in the current and the previous period at `now`.
    pub async fn usage_report(
        &self,
        project_id: i64,
        subject: &str,
        now: DateTime<Utc>,
    ) -> Result<UsageReport, StoreError> {
        match self {
            Storage::Sqlite(s, _) => {
                let mut conn = s.read_connection().await?;
                answer::usage_report(&mut conn, project_id, subject, now).await
            }
            Storage::Postgres(p) => p.usage_report(project_id, subject, now).await,
        }
    }

    /// Applies a catalog change with the `entitlements.updated` messages of the customers
    /// it affects (see [`Store::apply_catalog_change`]; `relay` matters on SQLite only).
    pub async fn apply_catalog_change(
        &self,
        project_id: i64,
        change: Change,
        ttl_ms: u64,
        relay: bool,
    ) -> Result<Applied, CatalogError> {
        match self {
            Storage::Sqlite(s, _) => s.apply_catalog_change(project_id, change, ttl_ms, relay).await,
            Storage::Postgres(p) => p.apply_catalog_change(project_id, change, ttl_ms).await,
        }
    }
}
