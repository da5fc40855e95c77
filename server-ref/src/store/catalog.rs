//! SQL reads of the entitlement catalog (features, plans, customers), the admin views, and
//! the `entitlements.updated` message with the version it gives a subject. Changes are in
//! `catalog_change.rs`, usage counters in `usage.rs`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use meterline_core::{entitlement::Entitlements, stream::ServerMessage};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use sqlx::{Row, SqliteConnection};

use super::{Store, StoreError, StreamFrame, append_message};
use crate::entitlements::{
    answer::{self, Catalog},
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
    fn from_text(text: &str) -> Result<CustomerRecord, StoreError> {
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
