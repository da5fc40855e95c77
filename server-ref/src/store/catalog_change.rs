//! Catalog changes: each is one transaction that checks references, writes the definition,
//! keeps the usage counters in step with what the features read, and appends an
//! `entitlements.updated` message for every customer whose answer it changes.

use chrono::Utc;
use serde_json::Value;
use sqlx::{Connection, Row, SqliteConnection};

use super::{
    CustomerRecord, Store, StoreError,
    catalog::{self as read, decode, encode, view},
    now_rfc3339,
    usage::{self, Meter},
};
use crate::entitlements::{
    answer::Catalog,
    catalog::{CustomerDef, FeatureDef, Grant, PlanDef},
    change::{Applied, CatalogError, Change, Collection, Outcome},
    period,
};

/// What a change did, and the customers whose answers it changes (in subject order) with
/// their records as this transaction sees them (`None`: no longer a customer).
pub(super) type Changed = (Outcome, Vec<(String, Option<CustomerRecord>)>);

impl Store {
    /// Applies one catalog change in a transaction, with the `entitlements.updated`
    /// messages of every customer it affects (answers built with `ttl_ms`). With `relay`
    /// the messages are also marked for a running server to publish (the CLI's changes);
    /// otherwise take the hub's sequencing guard before calling and publish
    /// [`Applied::frames`] after (see `entitlements::change::apply`).
    pub async fn apply_catalog_change(
        &self,
        project_id: i64,
        change: Change,
        ttl_ms: u64,
        relay: bool,
    ) -> Result<Applied, CatalogError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        // A customer change leaves the features and plans as they were: the catalog it read
        // to check its references is the one its answer is built from (each statement is a
        // round trip to the connection's thread, and this path is a change's latency).
        let ((outcome, affected), unchanged_catalog) = match change {
            Change::PutFeature(key, def) => (put_feature(&mut tx, project_id, &key, def).await?, None),
            Change::PutPlan(key, def) => (put_plan(&mut tx, project_id, &key, def).await?, None),
            Change::PutCustomer(subject, def) => {
                let (changed, catalog) = put_customer(&mut tx, project_id, &subject, def).await?;
                (changed, Some(catalog))
            }
            Change::Delete(collection, id) => (delete(&mut tx, project_id, collection, &id).await?, None),
        };
        if matches!(outcome, Outcome::Unchanged(_) | Outcome::NotFound) {
            return Ok(Applied {
                outcome,
                frames: Vec::new(),
            });
        }
        let catalog = match unchanged_catalog {
            Some(catalog) => catalog,
            None => Catalog::load(&mut tx, project_id).await?,
        };
        let frames = read::emit_updates(&mut tx, project_id, &affected, &catalog, ttl_ms, relay).await?;
        tx.commit().await?;
        Ok(Applied { outcome, frames })
    }
}

async fn stored(
    conn: &mut SqliteConnection,
    sql: &'static str,
    project_id: i64,
    id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(sql)
        .bind(project_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// Marks the project's features and plans as changed, so the event writer reloads them.
async fn bump_catalog_version(conn: &mut SqliteConnection, project_id: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO catalog_versions (project_id, version) VALUES (?, 1)
         ON CONFLICT (project_id) DO UPDATE SET version = version + 1",
    )
    .bind(project_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether a feature other than `except` reads `meter`.
async fn meter_read_by_others(
    conn: &mut SqliteConnection,
    project_id: i64,
    (event_type, property): Meter<'_>,
    except: &str,
) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM features WHERE project_id = ? AND event_type = ? AND property = ? AND key != ? LIMIT 1",
    )
    .bind(project_id)
    .bind(event_type)
    .bind(property)
    .bind(except)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

/// The customers on one of `plans` or with an override of feature `key`, in subject order.
async fn customers_using(
    conn: &mut SqliteConnection,
    project_id: i64,
    plans: &[&String],
    key: Option<&str>,
) -> Result<Vec<(String, CustomerRecord)>, StoreError> {
    let plans = encode(&plans)?;
    let rows = match key {
        // Without an override to look for, the (project, plan) index finds them.
        None => {
            sqlx::query(
                "SELECT subject, definition FROM customers WHERE project_id = ?
                 AND plan IN (SELECT value FROM json_each(?)) ORDER BY subject",
            )
            .bind(project_id)
            .bind(plans)
            .fetch_all(&mut *conn)
            .await?
        }
        Some(key) => {
            // Keys are [A-Za-z0-9_.:-], so quoting makes one member name of them.
            let override_path = format!("$.overrides.\"{key}\"");
            sqlx::query(
                "SELECT subject, definition FROM customers WHERE project_id = ?
                 AND (plan IN (SELECT value FROM json_each(?)) OR json_type(definition, ?) IS NOT NULL)
                 ORDER BY subject",
            )
            .bind(project_id)
            .bind(plans)
            .bind(override_path)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    rows.iter()
        .map(|r| {
            let record = CustomerRecord::from_text(r.try_get::<&str, _>(1)?)?;
            Ok((r.try_get(0)?, record))
        })
        .collect()
}

/// The affected list of customers that stay customers.
pub(super) fn still_customers(customers: Vec<(String, CustomerRecord)>) -> Vec<(String, Option<CustomerRecord>)> {
    customers
        .into_iter()
        .map(|(subject, record)| (subject, Some(record)))
        .collect()
}

async fn put_feature(
    conn: &mut SqliteConnection,
    project_id: i64,
    key: &str,
    def: FeatureDef,
) -> Result<Changed, CatalogError> {
    let text = encode(&def)?;
    let view = view(
        Collection::Features,
        key,
        serde_json::from_str(&text).unwrap_or_default(),
    );
    let old = stored(
        conn,
        "SELECT definition FROM features WHERE project_id = ? AND key = ?",
        project_id,
        key,
    )
    .await?;
    if old.as_deref() == Some(text.as_str()) {
        return Ok((Outcome::Unchanged(view), Vec::new()));
    }
    let old: Option<FeatureDef> = old.as_deref().map(decode).transpose()?;
    // Grants of the feature must still suit its (maybe new) kind.
    let plans = read::plans(conn, project_id).await?;
    let using: Vec<&String> = plans
        .iter()
        .filter(|(_, plan)| plan.features.contains_key(key))
        .map(|(plan_key, _)| plan_key)
        .collect();
    for plan_key in &using {
        plans[*plan_key].features[key]
            .fits(def.kind, &format!("features.{key}"))
            .map_err(|m| CatalogError::KindMismatch(format!("plan {plan_key:?} grants this feature: {m}")))?;
    }
    let affected = customers_using(conn, project_id, &using, Some(key)).await?;
    for (subject, customer) in &affected {
        if let Some(grant) = customer.def.overrides.get(key)
            && grant.enabled != Some(false)
        {
            grant
                .fits(def.kind, &format!("overrides.{key}"))
                .map_err(|m| CatalogError::KindMismatch(format!("customer {subject:?} overrides this feature: {m}")))?;
        }
    }
    let meter = def.meter();
    sqlx::query(
        "INSERT INTO features (project_id, key, kind, event_type, property, definition, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (project_id, key) DO UPDATE SET kind = excluded.kind, event_type = excluded.event_type,
             property = excluded.property, definition = excluded.definition, updated_at = excluded.updated_at",
    )
    .bind(project_id)
    .bind(key)
    .bind(kind_name(&def))
    .bind(meter.map(|m| m.0))
    .bind(meter.map(|m| m.1))
    .bind(&text)
    .bind(now_rfc3339())
    .execute(&mut *conn)
    .await?;
    let old_meter = old.as_ref().and_then(FeatureDef::meter);
    if old_meter != meter {
        if let Some(meter) = meter
            && !meter_read_by_others(conn, project_id, meter, key).await?
        {
            usage::rebuild(conn, project_id, meter).await?;
        }
        if let Some(old_meter) = old_meter
            && !meter_read_by_others(conn, project_id, old_meter, "").await?
        {
            usage::drop_counter(conn, project_id, old_meter).await?;
        }
    }
    bump_catalog_version(conn, project_id).await?;
    let outcome = if old.is_some() {
        Outcome::Replaced(view)
    } else {
        Outcome::Created(view)
    };
    Ok((outcome, still_customers(affected)))
}

/// Checks that every grant names a feature and suits its kind.
pub(super) fn check_grants(
    catalog: &Catalog,
    grants: &std::collections::BTreeMap<String, Grant>,
    owner: &str,
    field: &str,
) -> Result<(), CatalogError> {
    for (key, grant) in grants {
        let feature = catalog.features.get(key).ok_or_else(|| {
            CatalogError::Reference(format!(
                "{owner}: `{field}.{key}` names feature {key:?}, which does not exist"
            ))
        })?;
        if grant.enabled != Some(false) {
            grant
                .fits(feature.kind, &format!("{field}.{key}"))
                .map_err(|m| CatalogError::KindMismatch(format!("{owner}: {m}")))?;
        }
    }
    Ok(())
}

async fn put_plan(
    conn: &mut SqliteConnection,
    project_id: i64,
    key: &str,
    def: PlanDef,
) -> Result<Changed, CatalogError> {
    let catalog = Catalog::load(conn, project_id).await?;
    check_grants(&catalog, &def.features, &format!("plan {key:?}"), "features")?;
    let text = encode(&def)?;
    let view = view(Collection::Plans, key, serde_json::from_str(&text).unwrap_or_default());
    let old = stored(
        conn,
        "SELECT definition FROM plans WHERE project_id = ? AND key = ?",
        project_id,
        key,
    )
    .await?;
    if old.as_deref() == Some(text.as_str()) {
        return Ok((Outcome::Unchanged(view), Vec::new()));
    }
    sqlx::query(
        "INSERT INTO plans (project_id, key, definition, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (project_id, key) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
    )
    .bind(project_id)
    .bind(key)
    .bind(&text)
    .bind(now_rfc3339())
    .execute(&mut *conn)
    .await?;
    bump_catalog_version(conn, project_id).await?;
    let key = key.to_owned();
    let affected = customers_using(conn, project_id, &[&key], None).await?;
    let outcome = if old.is_some() {
        Outcome::Replaced(view)
    } else {
        Outcome::Created(view)
    };
    Ok((outcome, still_customers(affected)))
}

async fn put_customer(
    conn: &mut SqliteConnection,
    project_id: i64,
    subject: &str,
    mut def: CustomerDef,
) -> Result<(Changed, Catalog), CatalogError> {
    let owner = format!("customer {subject:?}");
    let catalog = Catalog::load(conn, project_id).await?;
    if let Some(plan) = &def.plan
        && !catalog.plans.contains_key(plan)
    {
        return Err(CatalogError::Reference(format!(
            "{owner}: `plan` names plan {plan:?}, which does not exist"
        )));
    }
    check_grants(&catalog, &def.overrides, &owner, "overrides")?;
    let old = read::customer(conn, project_id, subject).await?;
    if def.billing_anchor.is_none() {
        // The anchor defaults to when the customer was created, and then stays.
        let kept = old.as_ref().and_then(|o| o.def.billing_anchor.clone());
        def.billing_anchor = Some(kept.unwrap_or_else(|| period::rfc3339(Utc::now())));
    }
    let text = encode(&def)?;
    let view = view(
        Collection::Customers,
        subject,
        serde_json::from_str(&text).unwrap_or_default(),
    );
    if old.as_ref().is_some_and(|o| o.def == def) {
        return Ok(((Outcome::Unchanged(view), Vec::new()), catalog));
    }
    let now = now_rfc3339();
    sqlx::query(
        "INSERT INTO customers (project_id, subject, plan, definition, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (project_id, subject) DO UPDATE SET plan = excluded.plan, definition = excluded.definition,
             updated_at = excluded.updated_at",
    )
    .bind(project_id)
    .bind(subject)
    .bind(&def.plan)
    .bind(&text)
    .bind(&now)
    .bind(&now)
    .execute(&mut *conn)
    .await?;
    let outcome = if old.is_some() {
        Outcome::Replaced(view)
    } else {
        Outcome::Created(view)
    };
    let record = CustomerRecord::from_text(&text)?;
    Ok(((outcome, vec![(subject.to_owned(), Some(record))]), catalog))
}

async fn delete(
    conn: &mut SqliteConnection,
    project_id: i64,
    collection: Collection,
    id: &str,
) -> Result<Changed, CatalogError> {
    let none = || Ok((Outcome::NotFound, Vec::new()));
    match collection {
        Collection::Features => {
            let sql = "SELECT definition FROM features WHERE project_id = ? AND key = ?";
            let Some(old) = stored(conn, sql, project_id, id).await? else {
                return none();
            };
            let plans = read::plans(conn, project_id).await?;
            if let Some((plan, _)) = plans.iter().find(|(_, p)| p.features.contains_key(id)) {
                return Err(CatalogError::Reference(format!(
                    "feature {id:?} is still granted by plan {plan:?} (`plans.{plan}.features.{id}`); remove it there first"
                )));
            }
            if let Some(subject) = customers_using(conn, project_id, &[], Some(id))
                .await?
                .first()
                .map(|(s, _)| s)
            {
                return Err(CatalogError::Reference(format!(
                    "feature {id:?} is still named by the overrides of customer {subject:?} \
                     (`customers.{subject}.overrides.{id}`); remove it there first"
                )));
            }
            sqlx::query("DELETE FROM features WHERE project_id = ? AND key = ?")
                .bind(project_id)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            let old: FeatureDef = decode(&old)?;
            if let Some(meter) = old.meter()
                && !meter_read_by_others(conn, project_id, meter, id).await?
            {
                usage::drop_counter(conn, project_id, meter).await?;
            }
            bump_catalog_version(conn, project_id).await?;
            Ok((Outcome::Deleted, Vec::new()))
        }
        Collection::Plans => {
            let sql = "SELECT definition FROM plans WHERE project_id = ? AND key = ?";
            if stored(conn, sql, project_id, id).await?.is_none() {
                return none();
            }
            let key = id.to_owned();
            if let Some(subject) = customers_using(conn, project_id, &[&key], None)
                .await?
                .first()
                .map(|(s, _)| s)
            {
                return Err(CatalogError::Reference(format!(
                    "plan {id:?} is still the plan of customer {subject:?} (`customers.{subject}.plan`); change that first"
                )));
            }
            sqlx::query("DELETE FROM plans WHERE project_id = ? AND key = ?")
                .bind(project_id)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            bump_catalog_version(conn, project_id).await?;
            Ok((Outcome::Deleted, Vec::new()))
        }
        Collection::Customers => {
            let done = sqlx::query("DELETE FROM customers WHERE project_id = ? AND subject = ?")
                .bind(project_id)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            if done.rows_affected() == 0 {
                return none();
            }
            Ok((Outcome::Deleted, vec![(id.to_owned(), None)]))
        }
    }
}

pub(super) fn kind_name(def: &FeatureDef) -> String {
    match serde_json::to_value(def.kind) {
        Ok(Value::String(name)) => name,
        _ => String::new(),
    }
}
