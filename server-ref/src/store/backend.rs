//! The event path of a storage backend — storing batches exactly once and reading events
//! and the stream log back — as one interface with two implementations: SQLite (the
//! embedded default: [`Store`] and its group-committing [`Writer`], unchanged) and
//! PostgreSQL ([`PgStore`], for several nodes sharing one database). The store tests run
//! every case against both.

use std::{future::Future, sync::Arc};

use super::{
    EventFilter, LogRead, NewKey, PgStore, Project, Store, StoreError, StoredEvent, WriteBatch, WriteError,
    WriteOutcome, Writer,
};

/// What ingest and the event and stream reads need from storage.
pub trait EventLog: Send + Sync {
    /// Creates a project with its first keys (`Conflict` when the name is taken).
    fn create_project(&self, name: &str, keys: &[NewKey]) -> impl Future<Output = Result<Project, StoreError>> + Send;
    /// Stores a batch's new events (repeats store nothing) and answers once it is durable.
    fn write(&self, batch: WriteBatch) -> impl Future<Output = Result<WriteOutcome, WriteError>> + Send;
    /// A page of a project's events, oldest first.
    fn events(
        &self,
        project_id: i64,
        filter: &EventFilter,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;
    /// The stream messages after `since` for `subjects` (see [`Store::stream_since`]).
    fn stream_since(
        &self,
        project_id: i64,
        since: u64,
        subjects: &[String],
        limit: usize,
    ) -> impl Future<Output = Result<LogRead, StoreError>> + Send;
}

/// The SQLite backend: the read/admin pool and the event writer.
#[derive(Debug, Clone)]
pub struct SqliteEventLog {
    /// Reads and admin writes.
    pub store: Store,
    /// The group-committing event writer.
    pub writer: Arc<Writer>,
}

impl EventLog for SqliteEventLog {
    async fn create_project(&self, name: &str, keys: &[NewKey]) -> Result<Project, StoreError> {
        self.store.create_project(name, keys).await
    }

    async fn write(&self, batch: WriteBatch) -> Result<WriteOutcome, WriteError> {
        self.writer.write(batch).await
    }

    async fn events(&self, project_id: i64, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        self.store.events(project_id, filter).await
    }

    async fn stream_since(
        &self,
        project_id: i64,
        since: u64,
        subjects: &[String],
        limit: usize,
    ) -> Result<LogRead, StoreError> {
        self.store.stream_since(project_id, since, subjects, limit).await
    }
}

impl EventLog for PgStore {
    async fn create_project(&self, name: &str, keys: &[NewKey]) -> Result<Project, StoreError> {
        PgStore::create_project(self, name, keys).await
    }

    async fn write(&self, batch: WriteBatch) -> Result<WriteOutcome, WriteError> {
        PgStore::write(self, &batch)
            .await
            .map_err(|e| WriteError::Database(e.to_string()))
    }

    async fn events(&self, project_id: i64, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        PgStore::events(self, project_id, filter).await
    }

    async fn stream_since(
        &self,
        project_id: i64,
        since: u64,
        subjects: &[String],
        limit: usize,
    ) -> Result<LogRead, StoreError> {
        PgStore::stream_since(self, project_id, since, subjects, limit).await
    }
}
