//! Storage: one SQLite file in WAL mode.
//!
//! - A single [`Writer`], on a thread of its own, owns the connection that stores events
//!   and commits many ingest requests per transaction (group commit).
//! - A small pool serves reads and the rare admin writes (projects, keys, schemas), which
//!   SQLite serialises with the writer through its lock and `busy_timeout`.
//! - Migrations are the checked-in files of `migrations/`, applied in order at open.
//! - [`PgStore`] (`pg.rs`, `pg_stream.rs`, the catalog in `pg_catalog*.rs`) keeps the same tables on PostgreSQL
//!   (`migrations/postgres/`) for several nodes; [`EventLog`] is the event path both
//!   backends implement; [`Storage`] is the one store the server holds, over either.
//! - The entitlement catalog ([`catalog`], changes in `catalog_change.rs`) and the daily
//!   usage counters ([`usage`]) that the writer keeps in step with the events.

mod backend;
pub mod catalog;
mod catalog_change;
mod keys;
mod pg;
mod pg_catalog;
mod pg_catalog_change;
mod pg_config;
mod pg_keys;
mod pg_metering;
mod pg_nodes;
mod pg_schemas;
mod pg_stream;
mod relay;
mod schema_change;
mod sqlite;
mod storage;
mod stream_log;
pub mod usage;
mod writer;

use std::{str::FromStr, time::Duration};

pub use backend::{EventLog, SqliteEventLog};
pub use catalog::CustomerRecord;
pub use keys::{NewKey, TokenSigner};
pub use pg::{PgSettings, PgStore, newest_migration as newest_pg_migration, redact_url};
pub use pg_config::{ConfigFollower, ConfigNotice};
pub use pg_stream::{StreamFollower, append_message as pg_append_message, reserve_seqs as pg_reserve_seqs};
pub use schema_change::{SchemaChange, SchemaChanged, SchemaOutcome, SettingsUpdate};
pub use sqlite::{EventFilter, KeyRecord, Project, SchemaRecord, StoredEvent};
use sqlx::{
    Connection, Executor, SqliteConnection, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
pub use storage::Storage;
pub use stream_log::{LogRead, StreamFrame, append_message};
pub use writer::{EventRow, WriteBatch, WriteError, WriteOutcome, Writer};

use crate::config::{StorageConfig, Synchronous};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique name or id is already taken.
    #[error("{0}")]
    Conflict(String),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The database cannot be used at all (bad URL, unreachable, migrated by a newer
    /// binary); the message names it and what is wrong.
    #[error("{0}")]
    Unusable(String),
}

impl StoreError {
    /// A PostgreSQL deadlock (40P01) or serialization failure (40001) still failing after the
    /// retries: the transaction was rolled back whole, and the request may simply be sent
    /// again (`503` with `Retry-After`, not `500`).
    pub fn is_contention(&self) -> bool {
        matches!(self, StoreError::Database(e) if pg::is_retryable(e))
    }
}

/// The checked-in migrations, in order: (version, description, SQL). Each version missing
/// from `meterline_migrations` is applied, so versions need not be contiguous.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/0001_init.sql")),
    (2, "stream", include_str!("../../migrations/0002_stream.sql")),
    (
        3,
        "entitlements",
        include_str!("../../migrations/0003_entitlements.sql"),
    ),
    (4, "token_keys", include_str!("../../migrations/0004_token_keys.sql")),
    (
        5,
        "events_type_index",
        include_str!("../../migrations/0005_events_type_index.sql"),
    ),
    (
        6,
        "client_settings",
        include_str!("../../migrations/0006_client_settings.sql"),
    ),
];

/// Handle to the database: the read/admin pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if missing) the database, applies pending migrations and returns the
    /// store plus the dedicated connection for the event [`Writer`].
    pub async fn open(config: &StorageConfig) -> Result<(Store, SqliteConnection), StoreError> {
        let options = connect_options(config)?;
        // The writer never checkpoints: copying WAL pages into the database (and syncing it)
        // would stall every commit behind it. `Store::checkpoint` does it from the pool.
        let writer_options = options.clone().pragma("wal_autocheckpoint", "0");
        let mut writer = SqliteConnection::connect_with(&writer_options).await?;
        migrate(&mut writer).await.map_err(|e| match e {
            StoreError::Unusable(why) => StoreError::Unusable(format!("the database {} {why}", config.database_url)),
            other => other,
        })?;
        let pool = SqlitePoolOptions::new()
            .max_connections(config.read_connections)
            .min_connections(1)
            .connect_with(options)
            .await?;
        Ok((Store { pool }, writer))
    }

    /// Opens the database for a one-off CLI command (no writer task).
    pub async fn open_for_cli(config: &StorageConfig) -> Result<Store, StoreError> {
        let (store, writer) = Store::open(config).await?;
        writer.close().await?;
        Ok(store)
    }

    /// Whether the database answers (`/readyz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Copies committed WAL pages into the database file without blocking the writer
    /// (`PRAGMA wal_checkpoint(PASSIVE)`); the server runs it every second.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Closes the pool, waiting for the connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn connect_options(config: &StorageConfig) -> Result<SqliteConnectOptions, StoreError> {
    let synchronous = match config.synchronous {
        Synchronous::Full => SqliteSynchronous::Full,
        Synchronous::Normal => SqliteSynchronous::Normal,
    };
    let options = SqliteConnectOptions::from_str(&config.database_url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .busy_timeout(Duration::from_millis(config.busy_timeout_ms))
        .foreign_keys(true)
        // Multi-row INSERTs inside a transaction (the catalog's batched writes) keep a
        // statement journal; in memory it costs no file writes. A larger page cache keeps
        // the event indexes' hot pages.
        .pragma("temp_store", "memory")
        .pragma("cache_size", "-65536")
        // The writer restarts the WAL once the checkpoints have caught up; its commit then cuts
        // the file back to this size, so a burst does not leave a WAL of its own size behind.
        .pragma(
            "journal_size_limit",
            config.wal_size_limit_bytes.min(i64::MAX as u64).to_string(),
        )
        .statement_cache_capacity(128);
    Ok(options)
}

async fn migrate(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS meterline_migrations (
             version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .await?;
    let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM meterline_migrations")
        .fetch_one(&mut *conn)
        .await?;
    let known = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
    if let Some(newest) = newest.filter(|&v| v > known) {
        return Err(StoreError::Unusable(format!(
            "is at migration {newest}, newer than this meterline-server's {known}: \
             run a meterline-server release that knows migration {newest}"
        )));
    }
    for (version, description, sql) in MIGRATIONS {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let applied: Option<i64> = sqlx::query_scalar("SELECT version FROM meterline_migrations WHERE version = ?")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
        if applied.is_none() {
            tracing::info!(version, description, "applying migration");
            tx.execute(sqlx::AssertSqlSafe(*sql)).await?;
            sqlx::query("INSERT INTO meterline_migrations (version, description, applied_at) VALUES (?, ?, ?)")
                .bind(version)
                .bind(description)
                .bind(now_rfc3339())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// The current time as RFC 3339 UTC with milliseconds (`2026-11-24T10:00:00.123Z`).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
