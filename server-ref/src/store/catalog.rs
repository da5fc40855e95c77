//! SQL reads of the entitlement catalog (features, plans, customers), the admin views, and
//! the `entitlements.updated` message with the version it gives a subject. Changes are in
//! `catalog_change.rs`, usage counters in `usage.rs`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use meterline_core::{entitlement::Entitlements, stream::ServerMessage};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::{Store, StoreError, StreamFrame, append_message, stream_log::reserve_seqs, usage};
use crate::entitlements::{
    answer::{self, Catalog, UsageRead},
    catalog::{CustomerDef, FeatureDef, PlanDef},
    change::Collection,
};

pub(super) fn decode<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Database(sqlx::Error::Encode(Box::new(e))))
}

/// A stored customer.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRecord {
    /// The definition (its `billing_anchor` is always set once stored).
    pub def: CustomerDef,
    /// The billing anchor, parsed.
    pub anchor: DateTime<Utc>,
}

impl CustomerRecord {
    pub(super) fn from_text(text: &str) -> Result<CustomerRecord, StoreError> {
        let def: CustomerDef = decode(text)?;
        let anchor = def
            .billing_anchor
            .as_deref()
            .and_then(|a| DateTime::parse_from_rfc3339(a).ok())
            .map(|a| a.with_timezone(&Utc))
            .ok_or_else(|| {
                StoreError::Database(sqlx::Error::Decode(
                    "a stored customer has no valid billing_anchor".into(),
                ))
            })?;
        Ok(CustomerRecord { def, anchor })
    }
}

async fn definitions<T: DeserializeOwned>(
    conn: &mut SqliteConnection,
    sql: &'static str,
    project_id: i64,
) -> Result<BTreeMap<String, T>, StoreError> {
    let rows = sqlx::query(sql).bind(project_id).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, decode(r.try_get::<&str, _>(1)?)?)))
        .collect()
}

/// Every feature of a project, by key.
pub async fn features(
    conn: &mut SqliteConnection,
    project_id: i64,
) -> Result<BTreeMap<String, FeatureDef>, StoreError> {
    definitions(
        conn,
        "SELECT key, definition FROM features WHERE project_id = ?",
        project_id,
    )
    .await
}

/// Every plan of a project, by key.
pub async fn plans(conn: &mut SqliteConnection, project_id: i64) -> Result<BTreeMap<String, PlanDef>, StoreError> {
    definitions(
        conn,
        "SELECT key, definition FROM plans WHERE project_id = ?",
        project_id,
    )
    .await
}

/// One customer, or `None` when `subject` is not a customer.
pub async fn customer(
    conn: &mut SqliteConnection,
    project_id: i64,
    subject: &str,
) -> Result<Option<CustomerRecord>, StoreError> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT definition FROM customers WHERE project_id = ? AND subject = ?")
            .bind(project_id)
            .bind(subject)
            .fetch_optional(&mut *conn)
            .await?;
    text.as_deref().map(CustomerRecord::from_text).transpose()
}

/// The customers among `subjects` (one statement however many subjects).
pub async fn customers_among(
    conn: &mut SqliteConnection,
    project_id: i64,
    subjects: &[&str],
) -> Result<Vec<(String, CustomerRecord)>, StoreError> {
    let list = encode(&subjects)?;
    let rows = sqlx::query(
        "SELECT subject, definition FROM customers
         WHERE project_id = ? AND subject IN (SELECT value FROM json_each(?))",
    )
    .bind(project_id)
    .bind(list)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let record = CustomerRecord::from_text(r.try_get::<&str, _>(1)?)?;
            Ok((r.try_get(0)?, record))
        })
        .collect()
}

/// The subject's entitlement version: the seq of its latest `entitlements.updated`
/// message, 0 when it never had one.
pub async fn version(conn: &mut SqliteConnection, project_id: i64, subject: &str) -> Result<u64, StoreError> {
    let v: Option<i64> =
        sqlx::query_scalar("SELECT version FROM entitlement_versions WHERE project_id = ? AND subject = ?")
            .bind(project_id)
            .bind(subject)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(v.map_or(0, |v| u64::try_from(v).unwrap_or(0)))
}

/// Every project's catalog version (bumped by each feature or plan change).
pub async fn catalog_versions(conn: &mut SqliteConnection) -> Result<HashMap<i64, i64>, StoreError> {
    let rows = sqlx::query("SELECT project_id, version FROM catalog_versions")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

/// Appends an `entitlements.updated` message with the subject's full answer (its `version`
/// is the message's seq) and records that version. `customer` is the subject's record
/// (`None` when it is no longer a customer) and `catalog` the project's features and plans,
/// both as this transaction sees them.
pub async fn emit_update(
    conn: &mut SqliteConnection,
    project_id: i64,
    subject: &str,
    customer: Option<&CustomerRecord>,
    catalog: &Catalog,
    ttl_ms: u64,
) -> Result<StreamFrame, StoreError> {
    let data = answer::answer(conn, project_id, subject, customer, catalog, Utc::now(), ttl_ms, 0).await?;
    let frame = append_message(conn, project_id, Some(subject), |seq| {
        ServerMessage::EntitlementsUpdated {
            seq,
            subject: subject.to_owned(),
            data: Entitlements { version: seq, ..data },
        }
    })
    .await?;
    sqlx::query(
        "INSERT INTO entitlement_versions (project_id, subject, version) VALUES (?, ?, ?)
         ON CONFLICT (project_id, subject) DO UPDATE SET version = excluded.version",
    )
    .bind(project_id)
    .bind(subject)
    .bind(i64::try_from(frame.seq).unwrap_or(i64::MAX))
    .execute(&mut *conn)
    .await?;
    Ok(frame)
}

/// [`emit_update`] for many subjects at once, in the order given (their messages take
/// consecutive seqs in that order): `affected` holds each subject with its record (`None`
/// when it is no longer a customer); the usage counters their answers read and the seq
/// range are read with a few set-based statements, the answers built in memory
/// ([`answer::build_answer`]), and the log rows, versions and (with `relay`) relay marks
/// written with one statement each. `catalog` is the project's features and plans as this
/// transaction sees them.
pub async fn emit_updates(
    conn: &mut SqliteConnection,
    project_id: i64,
    affected: &[(String, Option<CustomerRecord>)],
    catalog: &Catalog,
    ttl_ms: u64,
    relay: bool,
) -> Result<Vec<StreamFrame>, StoreError> {
    if affected.is_empty() {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    // Which subjects read each counter over each day range: one statement per group.
    let mut groups: HashMap<UsageRead, Vec<&str>> = HashMap::new();
    for (subject, customer) in affected {
        if let Some(customer) = customer {
            for read in answer::usage_reads(catalog, customer, now) {
                let members = groups.entry(read).or_default();
                if members.last() != Some(&subject.as_str()) {
                    members.push(subject);
                }
            }
        }
    }
    let mut used: HashMap<(&str, &UsageRead), f64> = HashMap::new();
    let mut totals = Vec::with_capacity(groups.len());
    for (read, members) in &groups {
        let meter = (read.event_type.as_str(), read.property.as_str());
        totals.push((
            read,
            usage::usage_of_subjects(conn, project_id, meter, members, read.days).await?,
        ));
    }
    for (read, found) in &totals {
        for (subject, total) in found {
            used.insert((subject.as_str(), *read), *total);
        }
    }
    let last = reserve_seqs(conn, project_id, affected.len()).await?;
    let first = last + 1 - affected.len() as u64;
    let mut frames = Vec::with_capacity(affected.len());
    for (seq, (subject, customer)) in (first..=last).zip(affected) {
        let usage = |read: &UsageRead| used.get(&(subject.as_str(), read)).copied().unwrap_or_default();
        let data = answer::build_answer(subject, customer.as_ref(), catalog, now, ttl_ms, seq, usage);
        let message = ServerMessage::EntitlementsUpdated {
            seq,
            subject: subject.clone(),
            data,
        };
        let frame: axum::extract::ws::Utf8Bytes = serde_json::to_string(&message)
            .map_err(|e| StoreError::Conflict(format!("stream message does not serialize: {e}")))?
            .into();
        frames.push(StreamFrame {
            project_id,
            seq,
            subject: Some(subject.clone()),
            frame,
        });
    }
    write_frames(conn, project_id, &frames, relay).await?;
    Ok(frames)
}

/// Rows per multi-row `INSERT` of [`write_frames`]: 5 variables a row, far under SQLite's
/// 32,766, and a fixed size so the prepared statement is reused.
const ROWS_PER_INSERT: usize = 256;

/// Stores `entitlements.updated` frames: their log rows, their subjects' versions and (with
/// `relay`) their relay marks, with multi-row `INSERT`s of [`ROWS_PER_INSERT`] rows (bound
/// values: the frames are not re-encoded as JSON to pass them in).
async fn write_frames(
    conn: &mut SqliteConnection,
    project_id: i64,
    frames: &[StreamFrame],
    relay: bool,
) -> Result<(), StoreError> {
    let created_at_ms = Utc::now().timestamp_millis();
    let seq = |f: &StreamFrame| i64::try_from(f.seq).unwrap_or(i64::MAX);
    for chunk in frames.chunks(ROWS_PER_INSERT) {
        let mut log =
            QueryBuilder::<Sqlite>::new("INSERT INTO stream_log (project_id, seq, subject, frame, created_at_ms) ");
        log.push_values(chunk, |mut row, f| {
            row.push_bind(project_id)
                .push_bind(seq(f))
                .push_bind(f.subject.as_deref())
                .push_bind(&*f.frame)
                .push_bind(created_at_ms);
        });
        log.build().execute(&mut *conn).await?;
        let mut versions =
            QueryBuilder::<Sqlite>::new("INSERT INTO entitlement_versions (project_id, subject, version) ");
        versions.push_values(chunk, |mut row, f| {
            row.push_bind(project_id)
                .push_bind(f.subject.as_deref())
                .push_bind(seq(f));
        });
        versions.push(" ON CONFLICT (project_id, subject) DO UPDATE SET version = excluded.version");
        versions.build().execute(&mut *conn).await?;
        if relay {
            let mut marks = QueryBuilder::<Sqlite>::new("INSERT INTO stream_relay (project_id, seq) ");
            marks.push_values(chunk, |mut row, f| {
                row.push_bind(project_id).push_bind(seq(f));
            });
            marks.build().execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// The admin view of a definition: its fields plus its key (or subject).
pub(super) fn view(collection: Collection, id: &str, def: Value) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(collection.id_field().to_owned(), Value::String(id.to_owned()));
    if let Value::Object(fields) = def {
        out.extend(fields);
    }
    Value::Object(out)
}

fn table(collection: Collection) -> (&'static str, &'static str) {
    match collection {
        Collection::Features => ("features", "key"),
        Collection::Plans => ("plans", "key"),
        Collection::Customers => ("customers", "subject"),
    }
}

impl Store {
    /// A page of a collection's admin views, ordered by key (or subject): at most `limit`
    /// items after `after`.
    pub async fn catalog_list(
        &self,
        project_id: i64,
        collection: Collection,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Value>, StoreError> {
        let (table, id) = table(collection);
        let sql =
            format!("SELECT {id}, definition FROM {table} WHERE project_id = ? AND {id} > ? ORDER BY {id} LIMIT ?");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(after.unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(view(collection, r.try_get(0)?, decode(r.try_get::<&str, _>(1)?)?)))
            .collect()
    }

    /// One item's admin view, or `None`.
    pub async fn catalog_get(
        &self,
        project_id: i64,
        collection: Collection,
        id: &str,
    ) -> Result<Option<Value>, StoreError> {
        let (table, id_column) = table(collection);
        let sql = format!("SELECT definition FROM {table} WHERE project_id = ? AND {id_column} = ?");
        let text: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        text.map(|t| Ok(view(collection, id, decode(&t)?))).transpose()
    }

    /// A connection of the read pool (entitlement answers read through one connection).
    pub async fn read_connection(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, StoreError> {
        Ok(self.pool.acquire().await?)
    }
}
