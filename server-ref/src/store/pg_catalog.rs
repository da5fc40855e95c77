//! The entitlement catalog on PostgreSQL: reads of features, plans and customers, the admin
//! views, the entitlement and usage answers, and the `entitlements.updated` messages a change
//! appends. Same tables, definitions (compact JSON text) and answers as the SQLite store's
//! `catalog.rs`; the answers are built by the same pure code ([`answer::build_answer`]).
//!
//! Messages take their seqs under the project's `stream_seq` row lock, held to commit
//! (DR-99), and one `NOTIFY` names the last of them: every node's stream follower reads them
//! from the log (see [`super::pg_stream`]).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use meterline_core::{
    entitlement::{Entitlements, FeatureKind, FeatureUsage, PeriodUsage, UsageReport},
    stream::ServerMessage,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::{PgConnection, Row};

use super::{
    CustomerRecord, PgStore, StoreError, StreamFrame,
    catalog::{decode, view},
    pg_stream::{CHANNEL as STREAM_CHANNEL, reserve_seqs},
    usage::Meter,
};
use crate::entitlements::{
    answer::{self, Catalog, UsageRead},
    catalog::{FeatureDef, PlanDef},
    change::Collection,
    period,
};

async fn definitions<T: DeserializeOwned>(
    conn: &mut PgConnection,
    sql: &'static str,
    project_id: i64,
) -> Result<BTreeMap<String, T>, StoreError> {
    let rows = sqlx::query(sql).bind(project_id).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, decode(r.try_get::<&str, _>(1)?)?)))
        .collect()
}

/// Every feature of a project, by key.
pub(super) async fn features(
    conn: &mut PgConnection,
    project_id: i64,
) -> Result<BTreeMap<String, FeatureDef>, StoreError> {
    definitions(
        conn,
        "SELECT key, definition FROM features WHERE project_id = $1",
        project_id,
    )
    .await
}

/// Every plan of a project, by key.
pub(super) async fn plans(conn: &mut PgConnection, project_id: i64) -> Result<BTreeMap<String, PlanDef>, StoreError> {
    definitions(
        conn,
        "SELECT key, definition FROM plans WHERE project_id = $1",
        project_id,
    )
    .await
}

/// A project's features and plans, as `conn` sees them.
pub(super) async fn load_catalog(conn: &mut PgConnection, project_id: i64) -> Result<Catalog, StoreError> {
    Ok(Catalog {
        features: features(conn, project_id).await?,
        plans: plans(conn, project_id).await?,
    })
}

/// One customer, or `None` when `subject` is not a customer.
pub(super) async fn customer(
    conn: &mut PgConnection,
    project_id: i64,
    subject: &str,
) -> Result<Option<CustomerRecord>, StoreError> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT definition FROM customers WHERE project_id = $1 AND subject = $2")
            .bind(project_id)
            .bind(subject)
            .fetch_optional(&mut *conn)
            .await?;
    text.as_deref().map(CustomerRecord::from_text).transpose()
}

/// The customers among `subjects`.
pub(super) async fn customers_among(
    conn: &mut PgConnection,
    project_id: i64,
    subjects: &[&str],
) -> Result<Vec<(String, CustomerRecord)>, StoreError> {
    let rows = sqlx::query("SELECT subject, definition FROM customers WHERE project_id = $1 AND subject = ANY($2)")
        .bind(project_id)
        .bind(subjects)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, CustomerRecord::from_text(r.try_get::<&str, _>(1)?)?)))
        .collect()
}

/// The subject's entitlement version (the seq of its latest `entitlements.updated`), 0 when
/// it never had one.
async fn version(conn: &mut PgConnection, project_id: i64, subject: &str) -> Result<u64, StoreError> {
    let v: Option<i64> =
        sqlx::query_scalar("SELECT version FROM entitlement_versions WHERE project_id = $1 AND subject = $2")
            .bind(project_id)
            .bind(subject)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(v.map_or(0, |v| u64::try_from(v).unwrap_or(0)))
}

/// Each subject's total of a counter over days `[from, to)`; subjects without usage are
/// left out.
pub(super) async fn usage_of_subjects(
    conn: &mut PgConnection,
    project_id: i64,
    (event_type, property): Meter<'_>,
    subjects: &[&str],
    (from, to): (i64, i64),
) -> Result<Vec<(String, f64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT subject, SUM(value) FROM usage_daily WHERE project_id = $1 AND event_type = $2 AND property = $3
         AND subject = ANY($4) AND day >= $5 AND day < $6 GROUP BY subject",
    )
    .bind(project_id)
    .bind(event_type)
    .bind(property)
    .bind(subjects)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

/// The usage each of `affected`'s answers reads at `now`, by (subject, read): a few
/// set-based statements, one per (counter, day range).
pub(super) async fn usage_of(
    conn: &mut PgConnection,
    project_id: i64,
    affected: &[(String, Option<CustomerRecord>)],
    catalog: &Catalog,
    now: DateTime<Utc>,
) -> Result<HashMap<(String, UsageRead), f64>, StoreError> {
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
    let mut used = HashMap::new();
    for (read, members) in groups {
        let meter = (read.event_type.as_str(), read.property.as_str());
        for (subject, total) in usage_of_subjects(conn, project_id, meter, &members, read.days).await? {
            used.insert((subject, read.clone()), total);
        }
    }
    Ok(used)
}

/// Appends an `entitlements.updated` message with the full answer for each of `affected`
/// (subject and record, `None`: no longer a customer), in that order, and records each
/// subject's version; one `NOTIFY` names the last seq. Inside the caller's transaction,
/// which holds the project's seq lock from here to commit.
pub(super) async fn emit_updates(
    conn: &mut PgConnection,
    project_id: i64,
    affected: &[(String, Option<CustomerRecord>)],
    catalog: &Catalog,
    ttl_ms: u64,
) -> Result<Vec<StreamFrame>, StoreError> {
    if affected.is_empty() {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    let used = usage_of(conn, project_id, affected, catalog, now).await?;
    let last = reserve_seqs(conn, project_id, affected.len()).await?;
    let first = last + 1 - affected.len() as u64;
    let mut frames = Vec::with_capacity(affected.len());
    for (seq, (subject, customer)) in (first..=last).zip(affected) {
        let usage = |read: &UsageRead| used.get(&(subject.clone(), read.clone())).copied().unwrap_or_default();
        let data = answer::build_answer(subject, customer.as_ref(), catalog, now, ttl_ms, seq, usage);
        let message = ServerMessage::EntitlementsUpdated {
            seq,
            subject: subject.clone(),
            data,
        };
        let frame = serde_json::to_string(&message)
            .map_err(|e| StoreError::Conflict(format!("stream message does not serialize: {e}")))?;
        frames.push(StreamFrame {
            project_id,
            seq,
            subject: Some(subject.clone()),
            frame: frame.into(),
        });
    }
    write_frames(conn, project_id, &frames).await?;
    record_versions(conn, project_id, &frames).await?;
    Ok(frames)
}

/// Stores frames in the log (one statement) and notifies every node of the last seq,
/// delivered at commit.
pub(super) async fn write_frames(
    conn: &mut PgConnection,
    project_id: i64,
    frames: &[StreamFrame],
) -> Result<(), StoreError> {
    let Some(last) = frames.last() else {
        return Ok(());
    };
    let seqs: Vec<i64> = frames.iter().map(|f| f.seq as i64).collect();
    let subjects: Vec<Option<&str>> = frames.iter().map(|f| f.subject.as_deref()).collect();
    let texts: Vec<&str> = frames.iter().map(|f| f.frame.as_str()).collect();
    sqlx::query(
        "INSERT INTO stream_log (project_id, seq, subject, frame, created_at_ms)
         SELECT $1, r.seq, r.subject, r.frame, $5 FROM UNNEST($2::int8[], $3::text[], $4::text[]) AS r(seq, subject, frame)",
    )
    .bind(project_id)
    .bind(&seqs)
    .bind(&subjects)
    .bind(&texts)
    .bind(Utc::now().timestamp_millis())
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(STREAM_CHANNEL)
        .bind(format!("{project_id}:{}", last.seq))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records each `entitlements.updated` frame's seq as its subject's version (one subject
/// once in `frames`).
pub(super) async fn record_versions(
    conn: &mut PgConnection,
    project_id: i64,
    frames: &[StreamFrame],
) -> Result<(), StoreError> {
    let seqs: Vec<i64> = frames.iter().map(|f| f.seq as i64).collect();
    let subjects: Vec<Option<&str>> = frames.iter().map(|f| f.subject.as_deref()).collect();
    sqlx::query(
        "INSERT INTO entitlement_versions (project_id, subject, version)
         SELECT $1, r.subject, r.version FROM UNNEST($2::text[], $3::int8[]) AS r(subject, version)
         ON CONFLICT (project_id, subject) DO UPDATE SET version = excluded.version",
    )
    .bind(project_id)
    .bind(&subjects)
    .bind(&seqs)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn table(collection: Collection) -> (&'static str, &'static str) {
    match collection {
        Collection::Features => ("features", "key"),
        Collection::Plans => ("plans", "key"),
        Collection::Customers => ("customers", "subject"),
    }
}

impl PgStore {
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
        // `COLLATE "C"`: byte order, as SQLite sorts, whatever the database's collation.
        let sql = format!(
            "SELECT {id}, definition FROM {table} WHERE project_id = $1 AND {id} COLLATE \"C\" > $2
             ORDER BY {id} COLLATE \"C\" LIMIT $3"
        );
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
        let sql = format!("SELECT definition FROM {table} WHERE project_id = $1 AND {id_column} = $2");
        let text: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        text.map(|t| Ok(view(collection, id, decode(&t)?))).transpose()
    }

    /// The current entitlement answer of `subject` and its version, read in one snapshot
    /// (`REPEATABLE READ`) so they belong together; usage from the daily counters.
    pub async fn entitlements(&self, project_id: i64, subject: &str, ttl_ms: u64) -> Result<Entitlements, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let version = version(&mut tx, project_id, subject).await?;
        let customer = customer(&mut tx, project_id, subject).await?;
        let catalog = match customer {
            Some(_) => load_catalog(&mut tx, project_id).await?,
            None => Catalog::default(),
        };
        let now = Utc::now();
        let affected = [(subject.to_owned(), customer)];
        let used = usage_of(&mut tx, project_id, &affected, &catalog, now).await?;
        tx.commit().await?;
        let usage = |read: &UsageRead| {
            used.get(&(subject.to_owned(), read.clone()))
                .copied()
                .unwrap_or_default()
        };
        Ok(answer::build_answer(
            subject,
            affected[0].1.as_ref(),
            &catalog,
            now,
            ttl_ms,
            version,
            usage,
        ))
    }

    /// Every metered feature's usage in the current and the previous period at `now`.
    pub async fn usage_report(
        &self,
        project_id: i64,
        subject: &str,
        now: DateTime<Utc>,
    ) -> Result<UsageReport, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let mut features = BTreeMap::new();
        if let Some(customer) = customer(&mut tx, project_id, subject).await? {
            let catalog = load_catalog(&mut tx, project_id).await?;
            for (key, r) in catalog.resolve(&customer.def) {
                if r.feature.kind != FeatureKind::Metered {
                    continue;
                }
                let p = r.period();
                let current = period::bounds(p, customer.anchor, now);
                let previous = period::previous(p, customer.anchor, current.0);
                let mut period_usage = async |(start, end): (DateTime<Utc>, DateTime<Utc>)| {
                    let usage = match r.feature.meter() {
                        None => 0.0,
                        Some(meter) => {
                            let days = (period::day_of(start), period::day_of(end));
                            let found = usage_of_subjects(&mut tx, project_id, meter, &[subject], days).await?;
                            found.first().map_or(0.0, |f| f.1)
                        }
                    };
                    Ok::<_, StoreError>(PeriodUsage {
                        start: period::rfc3339(start),
                        end: period::rfc3339(end),
                        usage,
                    })
                };
                let (current, previous) = (period_usage(current).await?, period_usage(previous).await?);
                features.insert(
                    key,
                    FeatureUsage {
                        period: p,
                        current,
                        previous,
                    },
                );
            }
        }
        tx.commit().await?;
        Ok(UsageReport {
            subject: subject.to_owned(),
            features,
        })
    }
}
