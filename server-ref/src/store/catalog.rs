//! SQL of the entitlement catalog (features, plans, customers), the daily usage counters and
//! catalog changes: each change is one transaction that also appends an
//! `entitlements.updated` message for every customer whose answer it changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use meterline_core::{
    entitlement::FeatureKind,
    stream::{ServerMessage, UsageThreshold},
};
use serde::Serialize;
use serde_json::Value;
use sqlx::{Connection, Row, SqliteConnection};

use super::{Store, StoreError, StreamFrame, append_message, now_rfc3339};
use crate::entitlements::{
    answer,
    catalog::{CustomerDef, FeatureDef, PlanDef},
    period,
};

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))
}

fn encode<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A stored customer.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRecord {
    /// The definition (its `billing_anchor` always set).
    pub def: CustomerDef,
    /// Parsed billing anchor.
    pub anchor: DateTime<Utc>,
}

/// Every feature of a project.
pub async fn features(conn: &mut SqliteConnection, project_id: i64) -> Result<BTreeMap<String, FeatureDef>, StoreError> {
    let rows = sqlx::query("SELECT key, definition FROM features WHERE project_id = ?")
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("key")?, decode(r.try_get::<&str, _>("definition")?)?)))
        .collect()
}

/// One plan.
pub async fn plan(conn: &mut SqliteConnection, project_id: i64, key: &str) -> Result<Option<PlanDef>, StoreError> {
    let text: Option<String> = sqlx::query_scalar("SELECT definition FROM plans WHERE project_id = ? AND key = ?")
        .bind(project_id)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    text.as_deref().map(decode).transpose()
}

/// One customer.
pub async fn customer(
    conn: &mut SqliteConnection,
    project_id: i64,
    subject: &str,
) -> Result<Option<CustomerRecord>, StoreError> {
    let text: Option<String> = sqlx::query_scalar("SELECT definition FROM customers WHERE project_id = ? AND subject = ?")
        .bind(project_id)
        .bind(subject)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(text) = text else { return Ok(None) };
    let def: CustomerDef = decode(&text)?;
    let anchor = def
        .billing_anchor
        .as_deref()
        .and_then(|a| DateTime::parse_from_rfc3339(a).ok())
        .map_or_else(Utc::now, |a| a.with_timezone(&Utc));
    Ok(Some(CustomerRecord { def, anchor }))
}

/// The subject's entitlement version (0 when it never had an update).
pub async fn version(conn: &mut SqliteConnection, project_id: i64, subject: &str) -> Result<u64, StoreError> {
    let v: Option<i64> =
        sqlx::query_scalar("SELECT version FROM entitlement_versions WHERE project_id = ? AND subject = ?")
            .bind(project_id)
            .bind(subject)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(v.map_or(0, |v| v.max(0) as u64))
}

/// Usage of one counter over days `[from_day, to_day)`.
pub async fn usage(
    conn: &mut SqliteConnection,
    project_id: i64,
    subject: &str,
    event_type: &str,
    property: &str,
    from_day: i64,
    to_day: i64,
) -> Result<f64, StoreError> {
    let v: Option<f64> = sqlx::query_scalar(
        "SELECT SUM(value) FROM usage_daily WHERE project_id = ? AND subject = ? AND event_type = ?
         AND property = ? AND day >= ? AND day < ?",
    )
    .bind(project_id)
    .bind(subject)
    .bind(event_type)
    .bind(property)
    .bind(from_day)
    .bind(to_day)
    .fetch_one(&mut *conn)
    .await?;
    Ok(v.unwrap_or(0.0))
}

/// The counters a project maintains: event type → properties ('' = count).
pub type Meters = HashMap<String, Vec<String>>;

/// The project's meters version (bumped by every change of its set of counters).
pub async fn meters_version(conn: &mut SqliteConnection, project_id: i64) -> Result<i64, StoreError> {
    let v: Option<i64> = sqlx::query_scalar("SELECT meters_version FROM catalog_meta WHERE project_id = ?")
        .bind(project_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(v.unwrap_or(0))
}

/// The project's counters.
pub async fn meters(conn: &mut SqliteConnection, project_id: i64) -> Result<Meters, StoreError> {
    let rows = sqlx::query(
        "SELECT DISTINCT event_type, property FROM features WHERE project_id = ? AND kind = 'metered'",
    )
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Meters::new();
    for row in rows {
        out.entry(row.try_get("event_type")?)
            .or_default()
            .push(row.try_get("property")?);
    }
    Ok(out)
}

/// Adds `value` to a daily counter.
pub async fn add_usage(
    conn: &mut SqliteConnection,
    project_id: i64,
    (subject, event_type, property, day): (&str, &str, &str, i64),
    value: f64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO usage_daily (project_id, subject, event_type, property, day, value) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (project_id, subject, event_type, property, day) DO UPDATE SET value = value + excluded.value",
    )
    .bind(project_id)
    .bind(subject)
    .bind(event_type)
    .bind(property)
    .bind(day)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Recomputes one counter from the stored events (a metered feature was created or changed).
async fn backfill(conn: &mut SqliteConnection, project_id: i64, event_type: &str, property: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM usage_daily WHERE project_id = ? AND event_type = ? AND property = ?")
        .bind(project_id)
        .bind(event_type)
        .bind(property)
        .execute(&mut *conn)
        .await?;
    // Property keys are [A-Za-z0-9_.:-], so quoting them makes a one-member JSON path.
    let path = format!("$.\"{property}\"");
    sqlx::query(
        "INSERT INTO usage_daily (project_id, subject, event_type, property, day, value)
         SELECT project_id, subject, type, ?1,
                (time_us - (((time_us % 86400000000) + 86400000000) % 86400000000)) / 86400000000 AS d,
                SUM(CASE WHEN ?1 = '' THEN 1.0
                         WHEN json_valid(data) AND json_type(data, ?2) IN ('integer', 'real') THEN json_extract(data, ?2)
                         ELSE 0.0 END)
         FROM events WHERE project_id = ?3 AND type = ?4
         GROUP BY subject, d",
    )
    .bind(property)
    .bind(&path)
    .bind(project_id)
    .bind(event_type)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn bump_meters(conn: &mut SqliteConnection, project_id: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO catalog_meta (project_id, meters_version) VALUES (?, 1)
         ON CONFLICT (project_id) DO UPDATE SET meters_version = meters_version + 1",
    )
    .bind(project_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Appends an `entitlements.updated` with the subject's full answer (its `version` = the
/// message's seq) and records the version.
pub async fn emit_update(
    conn: &mut SqliteConnection,
    project_id: i64,
    subject: &str,
    ttl_ms: u64,
) -> Result<StreamFrame, StoreError> {
    let data = answer::answer(conn, project_id, subject, Utc::now(), ttl_ms, 0).await?;
    let frame = append_message(conn, project_id, Some(subject), |seq| {
        ServerMessage::EntitlementsUpdated {
            seq,
            subject: subject.to_owned(),
            data: meterline_core::entitlement::Entitlements { version: seq, ..data },
        }
    })
    .await?;
    sqlx::query(
        "INSERT INTO entitlement_versions (project_id, subject, version) VALUES (?, ?, ?)
         ON CONFLICT (project_id, subject) DO UPDATE SET version = excluded.version",
    )
    .bind(project_id)
    .bind(subject)
    .bind(frame.seq as i64)
    .execute(&mut *conn)
    .await?;
    Ok(frame)
}

/// Appends `usage.threshold` messages for every threshold the new usage of `subject` crossed
/// (before < t·limit ≤ after, in the current period), and one `entitlements.updated` when
/// any was crossed. `deltas` holds this transaction's additions by (event type, property)
/// and day.
pub async fn threshold_crossings(
    conn: &mut SqliteConnection,
    project_id: i64,
    subject: &str,
    deltas: &HashMap<(String, String), BTreeMap<i64, f64>>,
    ttl_ms: u64,
) -> Result<Vec<StreamFrame>, StoreError> {
    let Some((features, anchor)) = answer::customer_features(conn, project_id, subject).await? else {
        return Ok(Vec::new());
    };
    let now = Utc::now();
    let mut crossings = Vec::new();
    for (key, r) in &features {
        let (Some((event_type, property)), Some(limit)) = (r.feature.meter(), r.grant.limit) else {
            continue;
        };
        let Some(days) = deltas.get(&(event_type.to_owned(), property.to_owned())) else {
            continue;
        };
        let bounds = period::bounds(r.period(), anchor, now);
        let (from, to) = (period::day_of(bounds.0), period::day_of(bounds.1));
        let added: f64 = days.range(from..to).map(|(_, v)| v).sum();
        if added <= 0.0 {
            continue;
        }
        let after = answer::usage_in(conn, project_id, subject, &r.feature, bounds).await?;
        let before = after - added;
        for t in r.grant.thresholds() {
            let mark = t * limit;
            if before < mark && mark <= after {
                crossings.push(UsageThreshold {
                    feature: key.clone(),
                    threshold: t,
                    usage: after,
                    limit,
                });
            }
        }
    }
    let mut frames = Vec::new();
    if crossings.is_empty() {
        return Ok(frames);
    }
    for data in crossings {
        frames.push(
            append_message(conn, project_id, Some(subject), |seq| ServerMessage::UsageThreshold {
                seq,
                subject: subject.to_owned(),
                data,
            })
            .await?,
        );
    }
    frames.push(emit_update(conn, project_id, subject, ttl_ms).await?);
    Ok(frames)
}

/// A catalog change.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Create or replace a feature.
    PutFeature(String, FeatureDef),
    /// Delete a feature.
    DeleteFeature(String),
    /// Create or replace a plan.
    PutPlan(String, PlanDef),
    /// Delete a plan.
    DeletePlan(String),
    /// Create or replace a customer.
    PutCustomer(String, CustomerDef),
    /// Delete a customer.
    DeleteCustomer(String),
}

/// What a change did; puts carry the stored view.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// New.
    Created(Value),
    /// Replaced with a different definition.
    Replaced(Value),
    /// Identical to the stored definition: nothing written.
    Unchanged(Value),
    /// Deleted.
    Deleted,
    /// Nothing to delete.
    NotFound,
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A reference to a feature or plan that does not exist (422 `unknown_reference`).
    #[error("{0}")]
    Unknown(String),
    /// A grant that does not suit the feature's kind (422 `kind_mismatch`).
    #[error("{0}")]
    KindMismatch(String),
    /// Deleting something still referenced (409 `in_use`).
    #[error("{0}")]
    InUse(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CatalogError {
    fn from(e: sqlx::Error) -> Self {
        CatalogError::Store(StoreError::Database(e))
    }
}

/// A change's outcome and the stream frames committed with it (publish them in order).
#[derive(Debug)]
pub struct Applied {
    /// What happened.
    pub outcome: Outcome,
    /// `entitlements.updated` frames, in seq order.
    pub frames: Vec<StreamFrame>,
}

/// Every customer: (subject, definition).
async fn all_customers(conn: &mut SqliteConnection, project_id: i64) -> Result<Vec<(String, CustomerDef)>, StoreError> {
    let rows = sqlx::query("SELECT subject, definition FROM customers WHERE project_id = ? ORDER BY subject")
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("subject")?, decode(r.try_get::<&str, _>("definition")?)?)))
        .collect()
}

async fn all_plans(conn: &mut SqliteConnection, project_id: i64) -> Result<Vec<(String, PlanDef)>, StoreError> {
    let rows = sqlx::query("SELECT key, definition FROM plans WHERE project_id = ? ORDER BY key")
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("key")?, decode(r.try_get::<&str, _>("definition")?)?)))
        .collect()
}

fn with_id(id_field: &str, id: &str, def: &impl Serialize) -> Value {
    let mut v = serde_json::to_value(def).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert(id_field.to_owned(), Value::String(id.to_owned()));
    }
    v
}

fn check_grants(
    features: &BTreeMap<String, FeatureDef>,
    grants: &BTreeMap<String, crate::entitlements::catalog::Grant>,
    owner: &str,
    field: &str,
) -> Result<(), CatalogError> {
    for (key, grant) in grants {
        let feature = features
            .get(key)
            .ok_or_else(|| CatalogError::Unknown(format!("{owner}: `{field}.{key}` names no feature {key:?}")))?;
        if grant.enabled == Some(false) {
            continue;
        }
        grant
            .fits(feature.kind, &format!("{field}.{key}"))
            .map_err(|m| CatalogError::KindMismatch(format!("{owner}: {m}")))?;
    }
    Ok(())
}

impl Store {
    /// Applies one catalog change in a transaction (with the `entitlements.updated` messages
    /// of every customer it affects). Take the hub's sequencing guard before calling and
    /// publish [`Applied::frames`] after.
    pub async fn apply_catalog_change(&self, project_id: i64, change: Change, ttl_ms: u64) -> Result<Applied, CatalogError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let (outcome, affected) = change_in(&mut tx, project_id, change).await?;
        let mut frames = Vec::new();
        if !matches!(outcome, Outcome::Unchanged(_)) {
            for subject in affected {
                frames.push(emit_update(&mut tx, project_id, &subject, ttl_ms).await?);
            }
            tx.commit().await?;
        }
        Ok(Applied { outcome, frames })
    }

    /// Lists a catalog table as admin views, by key.
    pub async fn catalog_list(&self, what: CatalogKind) -> Result<Vec<Value>, StoreError> {
        let (project_id, table, id_field) = what.parts();
        let sql = format!("SELECT {id_field} AS id, definition FROM {table} WHERE project_id = ? ORDER BY {id_field}");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let def: Value = decode(r.try_get::<&str, _>("definition")?)?;
                Ok(with_id(id_field, r.try_get("id")?, &def))
            })
            .collect()
    }

    /// One catalog item as its admin view.
    pub async fn catalog_get(&self, what: CatalogKind, id: &str) -> Result<Option<Value>, StoreError> {
        let (project_id, table, id_field) = what.parts();
        let sql = format!("SELECT definition FROM {table} WHERE project_id = ? AND {id_field} = ?");
        let text: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        text.map(|t| decode::<Value>(&t).map(|def| with_id(id_field, id, &def)))
            .transpose()
    }

    /// A connection of the pool, for answers.
    pub async fn connection(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, StoreError> {
        Ok(self.pool.acquire().await?)
    }
}

/// Which catalog table, of which project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    /// Features of a project.
    Features(i64),
    /// Plans of a project.
    Plans(i64),
    /// Customers of a project.
    Customers(i64),
}

impl CatalogKind {
    fn parts(self) -> (i64, &'static str, &'static str) {
        match self {
            CatalogKind::Features(p) => (p, "features", "key"),
            CatalogKind::Plans(p) => (p, "plans", "key"),
            CatalogKind::Customers(p) => (p, "customers", "subject"),
        }
    }
}

async fn stored(conn: &mut SqliteConnection, sql: &'static str, project_id: i64, id: &str) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(sql)
        .bind(project_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// Applies a change; returns the outcome and the subjects whose answers it changed.
async fn change_in(
    conn: &mut SqliteConnection,
    project_id: i64,
    change: Change,
) -> Result<(Outcome, BTreeSet<String>), CatalogError> {
    let now = now_rfc3339();
    let mut affected = BTreeSet::new();
    let outcome = match change {
        Change::PutFeature(key, def) => {
            let text = encode(&def);
            let view = with_id("key", &key, &def);
            let old = stored(conn, "SELECT definition FROM features WHERE project_id = ? AND key = ?", project_id, &key).await?;
            if old.as_deref() == Some(text.as_str()) {
                return Ok((Outcome::Unchanged(view), affected));
            }
            let old: Option<FeatureDef> = old.as_deref().map(decode).transpose()?;
            let uses = |grants: &BTreeMap<String, crate::entitlements::catalog::Grant>| grants.contains_key(&key);
            let plans = all_plans(conn, project_id).await?;
            for (plan_key, plan) in &plans {
                if let Some(grant) = plan.features.get(&key) {
                    grant
                        .fits(def.kind, &format!("features.{key}"))
                        .map_err(|m| CatalogError::KindMismatch(format!("plan {plan_key:?} would no longer fit: {m}")))?;
                }
            }
            let using_plans: BTreeSet<&String> = plans.iter().filter(|(_, p)| uses(&p.features)).map(|(k, _)| k).collect();
            for (subject, customer) in all_customers(conn, project_id).await? {
                if let Some(grant) = customer.overrides.get(&key)
                    && grant.enabled != Some(false)
                {
                    grant.fits(def.kind, &format!("overrides.{key}")).map_err(|m| {
                        CatalogError::KindMismatch(format!("customer {subject:?} would no longer fit: {m}"))
                    })?;
                }
                if uses(&customer.overrides) || customer.plan.as_ref().is_some_and(|p| using_plans.contains(p)) {
                    affected.insert(subject);
                }
            }
            sqlx::query(
                "INSERT INTO features (project_id, key, kind, event_type, property, definition, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (project_id, key) DO UPDATE SET kind = excluded.kind, event_type = excluded.event_type,
                     property = excluded.property, definition = excluded.definition, updated_at = excluded.updated_at",
            )
            .bind(project_id)
            .bind(&key)
            .bind(kind_name(def.kind))
            .bind(def.meter().map(|m| m.0))
            .bind(def.meter().map(|m| m.1))
            .bind(&text)
            .bind(&now)
            .execute(&mut *conn)
            .await?;
            let old_meter = old.as_ref().and_then(|o| o.meter().map(|(t, p)| (t.to_owned(), p.to_owned())));
            let new_meter = def.meter().map(|(t, p)| (t.to_owned(), p.to_owned()));
            if old_meter != new_meter {
                if let Some((t, p)) = &new_meter {
                    backfill(conn, project_id, t, p).await?;
                }
                bump_meters(conn, project_id).await?;
            }
            if old.is_some() { Outcome::Replaced(view) } else { Outcome::Created(view) }
        }
        Change::DeleteFeature(key) => {
            let Some(old) = stored(conn, "SELECT definition FROM features WHERE project_id = ? AND key = ?", project_id, &key).await? else {
                return Ok((Outcome::NotFound, affected));
            };
            if let Some((plan_key, _)) = all_plans(conn, project_id).await?.iter().find(|(_, p)| p.features.contains_key(&key)) {
                return Err(CatalogError::InUse(format!("feature {key:?} is used by plan {plan_key:?}")));
            }
            if let Some((subject, _)) = all_customers(conn, project_id).await?.iter().find(|(_, c)| c.overrides.contains_key(&key)) {
                return Err(CatalogError::InUse(format!("feature {key:?} is used by the overrides of customer {subject:?}")));
            }
            sqlx::query("DELETE FROM features WHERE project_id = ? AND key = ?")
                .bind(project_id)
                .bind(&key)
                .execute(&mut *conn)
                .await?;
            if decode::<FeatureDef>(&old)?.kind == FeatureKind::Metered {
                bump_meters(conn, project_id).await?;
            }
            Outcome::Deleted
        }
        Change::PutPlan(key, def) => {
            let features = features(conn, project_id).await?;
            check_grants(&features, &def.features, &format!("plan {key:?}"), "features")?;
            let text = encode(&def);
            let view = with_id("key", &key, &def);
            let old = stored(conn, "SELECT definition FROM plans WHERE project_id = ? AND key = ?", project_id, &key).await?;
            if old.as_deref() == Some(text.as_str()) {
                return Ok((Outcome::Unchanged(view), affected));
            }
            sqlx::query(
                "INSERT INTO plans (project_id, key, definition, updated_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (project_id, key) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
            )
            .bind(project_id)
            .bind(&key)
            .bind(&text)
            .bind(&now)
            .execute(&mut *conn)
            .await?;
            let subjects: Vec<String> = sqlx::query_scalar("SELECT subject FROM customers WHERE project_id = ? AND plan = ?")
                .bind(project_id)
                .bind(&key)
                .fetch_all(&mut *conn)
                .await?;
            affected.extend(subjects);
            if old.is_some() { Outcome::Replaced(view) } else { Outcome::Created(view) }
        }
        Change::DeletePlan(key) => {
            if stored(conn, "SELECT definition FROM plans WHERE project_id = ? AND key = ?", project_id, &key).await?.is_none() {
                return Ok((Outcome::NotFound, affected));
            }
            let user: Option<String> = sqlx::query_scalar("SELECT subject FROM customers WHERE project_id = ? AND plan = ? LIMIT 1")
                .bind(project_id)
                .bind(&key)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(subject) = user {
                return Err(CatalogError::InUse(format!("plan {key:?} is the plan of customer {subject:?}")));
            }
            sqlx::query("DELETE FROM plans WHERE project_id = ? AND key = ?")
                .bind(project_id)
                .bind(&key)
                .execute(&mut *conn)
                .await?;
            Outcome::Deleted
        }
        Change::PutCustomer(subject, mut def) => {
            let owner = format!("customer {subject:?}");
            if let Some(plan_key) = &def.plan
                && plan(conn, project_id, plan_key).await?.is_none()
            {
                return Err(CatalogError::Unknown(format!("{owner}: `plan` names no plan {plan_key:?}")));
            }
            let features = features(conn, project_id).await?;
            check_grants(&features, &def.overrides, &owner, "overrides")?;
            let old = stored(conn, "SELECT definition FROM customers WHERE project_id = ? AND subject = ?", project_id, &subject).await?;
            let old: Option<CustomerDef> = old.as_deref().map(decode).transpose()?;
            if def.billing_anchor.is_none() {
                def.billing_anchor = Some(
                    old.as_ref()
                        .and_then(|o| o.billing_anchor.clone())
                        .unwrap_or_else(|| period::rfc3339(Utc::now())),
                );
            }
            let view = with_id("subject", &subject, &def);
            if old.as_ref() == Some(&def) {
                return Ok((Outcome::Unchanged(view), affected));
            }
            sqlx::query(
                "INSERT INTO customers (project_id, subject, plan, definition, billing_anchor, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (project_id, subject) DO UPDATE SET plan = excluded.plan, definition = excluded.definition,
                     billing_anchor = excluded.billing_anchor, updated_at = excluded.updated_at",
            )
            .bind(project_id)
            .bind(&subject)
            .bind(&def.plan)
            .bind(encode(&def))
            .bind(&def.billing_anchor)
            .bind(&now)
            .bind(&now)
            .execute(&mut *conn)
            .await?;
            affected.insert(subject);
            if old.is_some() { Outcome::Replaced(view) } else { Outcome::Created(view) }
        }
        Change::DeleteCustomer(subject) => {
            let done = sqlx::query("DELETE FROM customers WHERE project_id = ? AND subject = ?")
                .bind(project_id)
                .bind(&subject)
                .execute(&mut *conn)
                .await?;
            if done.rows_affected() == 0 {
                return Ok((Outcome::NotFound, affected));
            }
            affected.insert(subject);
            Outcome::Deleted
        }
    };
    Ok((outcome, affected))
}

fn kind_name(kind: FeatureKind) -> &'static str {
    match kind {
        FeatureKind::Boolean => "boolean",
        FeatureKind::Metered => "metered",
        FeatureKind::Config => "config",
    }
}
