//! Storage on PostgreSQL, for several server nodes sharing one database (DESIGN §8).
//!
//! Same tables as the SQLite store (`migrations/postgres/`), and the same guarantees made
//! safe for concurrent writers on any number of nodes:
//! - exactly-once: an event is inserted with `ON CONFLICT (project_id, source, id) DO
//!   NOTHING`, so a resend through any node stores nothing and counts nothing;
//! - usage counters are added in the transaction that stores the events, by an upsert that
//!   adds to the latest committed value under the row's lock (no lost update), and the
//!   threshold crossings they make are sent from that transaction too, under per-customer
//!   locks (see [`super::pg_metering`]);
//! - stream seqs are taken under the project's `stream_seq` row lock, held to commit, so
//!   seqs become visible in order (see [`super::pg_stream`]).
//!
//! Opening checks the URL, connects, takes an advisory lock so that nodes starting together
//! migrate one at a time, applies the missing migrations and refuses a database migrated by
//! a newer binary.

use std::{str::FromStr, time::Duration};

use meterline_core::event::Event;
use serde_json::{Map, Value};
use sqlx::{
    Connection, PgConnection, PgPool, Row,
    postgres::{PgConnectOptions, PgPoolOptions, PgRow},
};

use super::{
    EventFilter, NewKey, Project, StoreError, StoredEvent, WriteBatch, WriteOutcome, now_rfc3339,
    pg_metering::{lock_meters, lock_subjects, threshold_messages},
    usage::{DayUsage, Meter},
};

/// The checked-in PostgreSQL migrations, in order: (version, description, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        "server nodes",
        include_str!("../../migrations/postgres/0002_server_nodes.sql"),
    ),
];

/// The advisory lock key nodes take while migrating ("meterlin" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d65_7465_726c_696e;

/// How many times a transaction that lost a deadlock or serialization race is retried.
pub(super) const RETRIES: usize = 5;

/// Connection settings of the PostgreSQL store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSettings {
    /// Most connections the node's pool opens.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection (also the connect timeout).
    pub acquire_timeout: Duration,
    /// `statement_timeout` of every connection; 0 = none.
    pub statement_timeout: Duration,
    /// `ttl_ms` of the entitlement answers the event path's threshold messages carry.
    pub answer_ttl_ms: u64,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            answer_ttl_ms: 60_000,
        }
    }
}

/// Handle to a PostgreSQL database: a pool of connections. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
    /// `ttl_ms` of the answers in threshold messages.
    answer_ttl_ms: u64,
}

/// `url` with any password replaced by `***`, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!("{}{}:***{}", &url[..scheme_end], &rest[..colon], &rest[at..]),
        None => url.to_owned(),
    }
}

/// Why the database at `url` cannot be used, as one line naming it.
fn unusable(url: &str, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unusable(format!("{what} {}: {e}", redact_url(url)))
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`), applies the
    /// missing migrations and opens the pool. Errors name the URL (password redacted) and
    /// what failed: a malformed URL, a server that does not answer, or a database that a
    /// newer meterline-server has migrated.
    pub async fn open(url: &str, settings: &PgSettings) -> Result<PgStore, StoreError> {
        let mut options = PgConnectOptions::from_str(url).map_err(|e| unusable(url, "invalid PostgreSQL URL", e))?;
        if !settings.statement_timeout.is_zero() {
            let ms = settings.statement_timeout.as_millis().to_string();
            options = options.options([("statement_timeout", ms.as_str())]);
        }
        let mut conn = tokio::time::timeout(settings.acquire_timeout, PgConnection::connect_with(&options))
            .await
            .map_err(|_| {
                unusable(
                    url,
                    "no answer within the connect timeout from PostgreSQL at",
                    "timed out",
                )
            })?
            .map_err(|e| unusable(url, "cannot connect to PostgreSQL at", e))?;
        migrate(&mut conn).await.map_err(|e| match e {
            StoreError::Unusable(why) => StoreError::Unusable(format!("the database {} {why}", redact_url(url))),
            other => unusable(url, "migrating the database at", other),
        })?;
        conn.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .min_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(|e| unusable(url, "cannot connect to PostgreSQL at", e))?;
        Ok(PgStore {
            pool,
            answer_ttl_ms: settings.answer_ttl_ms,
        })
    }

    /// The `statement_timeout` a pooled connection runs with, as PostgreSQL shows it
    /// (`30s`, `250ms`, `0`).
    pub async fn statement_timeout(&self) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Whether the database answers (`/readyz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Closes the pool, waiting for the connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Creates a project together with its first keys, atomically. Errors with `Conflict`
    /// when the name is taken.
    pub async fn create_project(&self, name: &str, keys: &[NewKey]) -> Result<Project, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = now_rfc3339();
        let row = sqlx::query(
            "INSERT INTO projects (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING
             RETURNING id, name, strict_types, client_event_types, allowed_origins, created_at",
        )
        .bind(name)
        .bind(&now)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("a project named {name:?} already exists")))?;
        let project = project_from_row(&row)?;
        for key in keys {
            let done = sqlx::query(
                "INSERT INTO api_keys (id, project_id, kind, secret_hash, token_signing_key, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&key.id)
            .bind(project.id)
            .bind(key.kind.as_str())
            .bind(&key.secret_hash)
            .bind(key.token_signing_key.map(|k| k.to_vec()))
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict(format!("key id {:?} is already taken", key.id)));
            }
        }
        tx.commit().await?;
        Ok(project)
    }

    /// Stores a batch in one transaction: its new events (a repeated (project, source, id)
    /// stores nothing), added to the usage counters that the project's metered features
    /// read. Commits before returning (`synchronous_commit` as the server is configured).
    /// A transaction that loses a deadlock to another writer is retried.
    pub async fn write(&self, batch: &WriteBatch) -> Result<WriteOutcome, StoreError> {
        if batch.rows.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let mut attempt = 0;
        loop {
            match self.write_once(batch).await {
                Err(StoreError::Database(e)) if attempt < RETRIES && is_retryable(&e) => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "event transaction lost a race; retrying");
                }
                other => return other,
            }
        }
    }

    async fn write_once(&self, batch: &WriteBatch) -> Result<WriteOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = &batch.rows;
        let inserted = sqlx::query(
            "INSERT INTO events (project_id, received_at, source, id, type, subject, time, time_us,
                 datacontenttype, data)
             SELECT $1, $2, r.source, r.id, r.type, r.subject, r.time, r.time_us, r.datacontenttype, r.data
             FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int8[],
                 $9::text[], $10::text[])
                 WITH ORDINALITY AS r(source, id, type, subject, time, time_us, datacontenttype, data, n)
             ORDER BY r.n
             ON CONFLICT (project_id, source, id) DO NOTHING
             RETURNING seq, type, subject",
        )
        .bind(batch.project_id)
        .bind(&batch.received_at)
        .bind(rows.iter().map(|r| r.source.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.event_type.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.subject.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.time.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.time_us).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.datacontenttype.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.data.as_deref()).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        let accepted = inserted.len() as u64;
        if accepted > 0 {
            let inserted: Vec<(i64, String, String)> = inserted
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                .collect::<Result<_, sqlx::Error>>()?;
            let (meters, rows): (Vec<(String, String)>, Vec<Vec<DayUsage>>) =
                add_usage(&mut tx, batch.project_id, &inserted)
                    .await?
                    .into_iter()
                    .unzip();
            if !meters.is_empty() {
                let added: Vec<(Meter<'_>, Vec<DayUsage>)> =
                    meters.iter().map(|(t, p)| (t.as_str(), p.as_str())).zip(rows).collect();
                threshold_messages(&mut tx, batch.project_id, &added, self.answer_ttl_ms).await?;
            }
        }
        tx.commit().await?;
        Ok(WriteOutcome {
            accepted,
            duplicates: rows.len() as u64 - accepted,
        })
    }

    /// A page of a project's events, oldest first.
    pub async fn events(&self, project_id: i64, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, source, id, type, subject, time, datacontenttype, data FROM events
             WHERE project_id = $1 AND seq > $2 AND ($3::text IS NULL OR type = $3)
               AND ($4::text IS NULL OR subject = $4) AND ($5::int8 IS NULL OR time_us >= $5)
               AND ($6::int8 IS NULL OR time_us < $6)
             ORDER BY seq LIMIT $7",
        )
        .bind(project_id)
        .bind(filter.after_seq)
        .bind(filter.event_type.as_deref())
        .bind(filter.subject.as_deref())
        .bind(filter.from_us)
        .bind(filter.to_us)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(event_from_row).collect::<Result<_, _>>()?)
    }

    /// A counter's total for `subject` over all days: (event type, property) as in
    /// [`super::usage`], property `""` counting events.
    pub async fn usage_total(
        &self,
        project_id: i64,
        subject: &str,
        (event_type, property): super::usage::Meter<'_>,
    ) -> Result<f64, StoreError> {
        let total: Option<f64> = sqlx::query_scalar(
            "SELECT SUM(value) FROM usage_daily
             WHERE project_id = $1 AND event_type = $2 AND property = $3 AND subject = $4",
        )
        .bind(project_id)
        .bind(event_type)
        .bind(property)
        .bind(subject)
        .fetch_one(&self.pool)
        .await?;
        Ok(total.unwrap_or(0.0))
    }
}

/// Adds the events stored in this transaction (`inserted`: seq, type, subject) to every
/// counter a metered feature of the project reads, and returns what it added to each, by
/// subject and day. First takes the per-subject locks of the metered events' subjects
/// (see [`super::pg_metering`]); counters go in (type, property) order and rows in
/// (subject, day) order, so two transactions lock shared rows in the same order (no
/// deadlock between them); the upsert adds to the latest committed value under the row lock.
async fn add_usage(
    conn: &mut PgConnection,
    project_id: i64,
    inserted: &[(i64, String, String)],
) -> Result<Vec<((String, String), Vec<DayUsage>)>, StoreError> {
    // Before reading the meters: a change of them waits for this commit, or this for its.
    lock_meters(conn, project_id, false).await?;
    let mut types: Vec<&str> = inserted.iter().map(|(_, t, _)| t.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    let meters: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT event_type, COALESCE(property, '') FROM features
         WHERE project_id = $1 AND event_type = ANY($2) ORDER BY 1, 2",
    )
    .bind(project_id)
    .bind(&types)
    .fetch_all(&mut *conn)
    .await?;
    if meters.is_empty() {
        return Ok(Vec::new());
    }
    let subjects: Vec<&str> = inserted
        .iter()
        .filter(|(_, t, _)| meters.iter().any(|(m, _)| m == t))
        .map(|(_, _, s)| s.as_str())
        .collect();
    lock_subjects(conn, project_id, &subjects).await?;
    let seqs: Vec<i64> = inserted.iter().map(|(seq, _, _)| *seq).collect();
    let mut out = Vec::with_capacity(meters.len());
    for (event_type, property) in meters {
        let rows: Vec<(String, i64, f64)> = sqlx::query_as(
            "WITH added AS (
                 SELECT subject,
                     time_us / 86400000000 - (CASE WHEN time_us % 86400000000 < 0 THEN 1 ELSE 0 END) AS day,
                     SUM(CASE WHEN $3 = '' THEN 1.0
                              WHEN jsonb_typeof(data::jsonb -> $3) = 'number' THEN (data::jsonb ->> $3)::float8
                              ELSE 0.0 END) AS value
                 FROM events WHERE seq = ANY($4) AND type = $2 GROUP BY subject, day),
             counted AS (
                 INSERT INTO usage_daily (project_id, event_type, property, subject, day, value)
                 SELECT $1, $2, $3, subject, day, value FROM added ORDER BY subject, day
                 ON CONFLICT (project_id, event_type, property, subject, day)
                 DO UPDATE SET value = usage_daily.value + excluded.value)
             SELECT subject, day, value FROM added",
        )
        .bind(project_id)
        .bind(&event_type)
        .bind(&property)
        .bind(&seqs)
        .fetch_all(&mut *conn)
        .await?;
        let rows = rows
            .into_iter()
            .map(|(subject, day, value)| DayUsage { subject, day, value })
            .collect();
        out.push(((event_type, property), rows));
    }
    Ok(out)
}

/// A deadlock (40P01) or serialization failure (40001): the transaction was rolled back and
/// may simply run again.
pub(super) fn is_retryable(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

/// Applies the missing migrations in one transaction holding [`MIGRATION_LOCK`].
async fn migrate(conn: &mut PgConnection) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS meterline_migrations (
             version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM meterline_migrations ORDER BY version")
        .fetch_all(&mut *tx)
        .await?;
    let known = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
    if let Some(&newest) = applied.iter().max().filter(|&&v| v > known) {
        return Err(StoreError::Unusable(format!(
            "is at migration {newest}, newer than this meterline-server's {known}: \
             run a meterline-server release that knows migration {newest}"
        )));
    }
    for (version, description, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tracing::info!(version, description, "applying migration");
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO meterline_migrations (version, description, applied_at) VALUES ($1, $2, $3)")
            .bind(version)
            .bind(description)
            .bind(now_rfc3339())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The newest migration this binary knows.
pub fn newest_migration() -> i64 {
    MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0)
}

pub(super) fn project_from_row(row: &PgRow) -> Result<Project, sqlx::Error> {
    let list = |column: &str| -> Result<Vec<String>, sqlx::Error> {
        let text: String = row.try_get(column)?;
        serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(format!("projects.{column}: {e}").into()))
    };
    Ok(Project {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        strict_types: row.try_get("strict_types")?,
        client_event_types: list("client_event_types")?,
        allowed_origins: list("allowed_origins")?,
        created_at: row.try_get("created_at")?,
    })
}

fn event_from_row(row: &PgRow) -> Result<StoredEvent, sqlx::Error> {
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
