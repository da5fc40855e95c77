//! Catalog changes on PostgreSQL: the same checks, writes and `entitlements.updated`
//! messages as the SQLite store's `catalog_change.rs`, in one transaction.
//!
//! Serialising changes: SQLite's `BEGIN IMMEDIATE` makes one writer at a time. Here the
//! transaction first takes the project's `stream_seq` row lock (held to commit, DR-99), so
//! two changes of one project through any nodes run one after the other, each reading (READ
//! COMMITTED) everything the one before committed: its reference checks, affected customers
//! and answers are those of the catalog it commits into, and its messages' seqs commit in
//! order.

use chrono::Utc;
use sqlx::{PgConnection, Row};

use super::{
    CustomerRecord, PgStore, StoreError,
    catalog::{decode, encode, view},
    catalog_change::{Changed, check_grants, kind_name, still_customers},
    now_rfc3339,
    pg::{RETRIES, is_retryable},
    pg_catalog::{self as read, emit_updates, load_catalog},
    pg_metering::lock_meters,
    pg_stream::reserve_seqs,
    usage::Meter,
};
use crate::entitlements::{
    answer::Catalog,
    catalog::{CustomerDef, FeatureDef, PlanDef},
    change::{Applied, CatalogError, Change, Collection, Outcome},
    period,
};

impl PgStore {
    /// Applies one catalog change in a transaction, with the `entitlements.updated`
    /// messages of every customer it affects (answers built with `ttl_ms`); every node's
    /// stream follower delivers them after the commit.
    /// A change that loses a deadlock (an event transaction holding usage rows it rebuilds,
    /// see DR-112) is retried.
    pub async fn apply_catalog_change(
        &self,
        project_id: i64,
        change: Change,
        ttl_ms: u64,
    ) -> Result<Applied, CatalogError> {
        let mut attempt = 0;
        loop {
            match self.apply_catalog_change_once(project_id, change.clone(), ttl_ms).await {
                Err(CatalogError::Store(StoreError::Database(e))) if attempt < RETRIES && is_retryable(&e) => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "catalog change lost a race; retrying");
                }
                other => return other,
            }
        }
    }

    async fn apply_catalog_change_once(
        &self,
        project_id: i64,
        change: Change,
        ttl_ms: u64,
    ) -> Result<Applied, CatalogError> {
        let mut tx = self.pool.begin().await?;
        // A change of features may drop or rebuild counters: first the project's meter lock,
        // exclusive, so no event transaction adds to a counter meanwhile (DR-116). Before the
        // seq lock, which an event transaction holding the meter lock may wait for.
        if matches!(change, Change::PutFeature(..) | Change::Delete(Collection::Features, _)) {
            lock_meters(&mut tx, project_id, true).await?;
        }
        // The project's seq lock (taking no seq): one change of the project at a time.
        reserve_seqs(&mut tx, project_id, 0).await?;
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
            None => load_catalog(&mut tx, project_id).await?,
        };
        let frames = emit_updates(&mut tx, project_id, &affected, &catalog, ttl_ms).await?;
        tx.commit().await?;
        Ok(Applied { outcome, frames })
    }
}

async fn stored(
    conn: &mut PgConnection,
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

/// Marks the project's features and plans as changed.
async fn bump_catalog_version(conn: &mut PgConnection, project_id: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO catalog_versions (project_id, version) VALUES ($1, 1)
         ON CONFLICT (project_id) DO UPDATE SET version = catalog_versions.version + 1",
    )
    .bind(project_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether a feature other than `except` reads `meter`.
async fn meter_read_by_others(
    conn: &mut PgConnection,
    project_id: i64,
    (event_type, property): Meter<'_>,
    except: &str,
) -> Result<bool, StoreError> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM features WHERE project_id = $1 AND event_type = $2 AND COALESCE(property, '') = $3
         AND key != $4 LIMIT 1",
    )
    .bind(project_id)
    .bind(event_type)
    .bind(property)
    .bind(except)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

/// Rebuilds a counter from every stored event of its type (a feature started reading it).
async fn rebuild(conn: &mut PgConnection, project_id: i64, meter: Meter<'_>) -> Result<(), StoreError> {
    drop_counter(conn, project_id, meter).await?;
    let (event_type, property) = meter;
    sqlx::query(
        "INSERT INTO usage_daily (project_id, event_type, property, subject, day, value)
         SELECT $1, $2, $3, subject,
             time_us / 86400000000 - (CASE WHEN time_us % 86400000000 < 0 THEN 1 ELSE 0 END) AS day,
             SUM(CASE WHEN $3 = '' THEN 1.0
                      WHEN jsonb_typeof(data::jsonb -> $3) = 'number' THEN (data::jsonb ->> $3)::float8
                      ELSE 0.0 END)
         FROM events WHERE project_id = $1 AND type = $2 GROUP BY subject, day",
    )
    .bind(project_id)
    .bind(event_type)
    .bind(property)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes a counter (no feature reads it any more).
async fn drop_counter(
    conn: &mut PgConnection,
    project_id: i64,
    (event_type, property): Meter<'_>,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM usage_daily WHERE project_id = $1 AND event_type = $2 AND property = $3")
        .bind(project_id)
        .bind(event_type)
        .bind(property)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The customers on one of `plans` or with an override of feature `key`, in subject order.
async fn customers_using(
    conn: &mut PgConnection,
    project_id: i64,
    plans: &[&String],
    key: Option<&str>,
) -> Result<Vec<(String, CustomerRecord)>, StoreError> {
    let plans: Vec<&str> = plans.iter().map(|p| p.as_str()).collect();
    let rows = sqlx::query(
        "SELECT subject, definition FROM customers WHERE project_id = $1
         AND (plan = ANY($2) OR ($3::text IS NOT NULL AND definition::jsonb -> 'overrides' -> $3 IS NOT NULL))
         ORDER BY subject COLLATE \"C\"",
    )
    .bind(project_id)
    .bind(&plans)
    .bind(key)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, CustomerRecord::from_text(r.try_get::<&str, _>(1)?)?)))
        .collect()
}

async fn put_feature(
    conn: &mut PgConnection,
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
        "SELECT definition FROM features WHERE project_id = $1 AND key = $2",
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
         VALUES ($1, $2, $3, $4, $5, $6, $7)
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
            rebuild(conn, project_id, meter).await?;
        }
        if let Some(old_meter) = old_meter
            && !meter_read_by_others(conn, project_id, old_meter, "").await?
        {
            drop_counter(conn, project_id, old_meter).await?;
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

async fn put_plan(conn: &mut PgConnection, project_id: i64, key: &str, def: PlanDef) -> Result<Changed, CatalogError> {
    let catalog = load_catalog(conn, project_id).await?;
    check_grants(&catalog, &def.features, &format!("plan {key:?}"), "features")?;
    let text = encode(&def)?;
    let view = view(Collection::Plans, key, serde_json::from_str(&text).unwrap_or_default());
    let old = stored(
        conn,
        "SELECT definition FROM plans WHERE project_id = $1 AND key = $2",
        project_id,
        key,
    )
    .await?;
    if old.as_deref() == Some(text.as_str()) {
        return Ok((Outcome::Unchanged(view), Vec::new()));
    }
    sqlx::query(
        "INSERT INTO plans (project_id, key, definition, updated_at) VALUES ($1, $2, $3, $4)
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
    conn: &mut PgConnection,
    project_id: i64,
    subject: &str,
    mut def: CustomerDef,
) -> Result<(Changed, Catalog), CatalogError> {
    let owner = format!("customer {subject:?}");
    let catalog = load_catalog(conn, project_id).await?;
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
        "INSERT INTO customers (project_id, subject, plan, definition, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (project_id, subject) DO UPDATE SET plan = excluded.plan, definition = excluded.definition,
             updated_at = excluded.updated_at",
    )
    .bind(project_id)
    .bind(subject)
    .bind(&def.plan)
    .bind(&text)
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
    conn: &mut PgConnection,
    project_id: i64,
    collection: Collection,
    id: &str,
) -> Result<Changed, CatalogError> {
    let none = || Ok((Outcome::NotFound, Vec::new()));
    match collection {
        Collection::Features => {
            let sql = "SELECT definition FROM features WHERE project_id = $1 AND key = $2";
            let Some(old) = stored(conn, sql, project_id, id).await? else {
                return none();
            };
            let plans = read::plans(conn, project_id).await?;
            if let Some((plan, _)) = plans.iter().find(|(_, p)| p.features.contains_key(id)) {
                return Err(CatalogError::Reference(format!(
                    "feature {id:?} is still granted by plan {plan:?} (`plans.{plan}.features.{id}`); remove it there first"
                )));
            }
            if let Some((subject, _)) = customers_using(conn, project_id, &[], Some(id)).await?.first() {
                return Err(CatalogError::Reference(format!(
                    "feature {id:?} is still named by the overrides of customer {subject:?} \
                     (`customers.{subject}.overrides.{id}`); remove it there first"
                )));
            }
            sqlx::query("DELETE FROM features WHERE project_id = $1 AND key = $2")
                .bind(project_id)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            let old: FeatureDef = decode(&old)?;
            if let Some(meter) = old.meter()
                && !meter_read_by_others(conn, project_id, meter, id).await?
            {
                drop_counter(conn, project_id, meter).await?;
            }
            bump_catalog_version(conn, project_id).await?;
            Ok((Outcome::Deleted, Vec::new()))
        }
        Collection::Plans => {
            let sql = "SELECT definition FROM plans WHERE project_id = $1 AND key = $2";
            if stored(conn, sql, project_id, id).await?.is_none() {
                return none();
            }
            let key = id.to_owned();
            if let Some((subject, _)) = customers_using(conn, project_id, &[&key], None).await?.first() {
                return Err(CatalogError::Reference(format!(
                    "plan {id:?} is still the plan of customer {subject:?} (`customers.{subject}.plan`); change that first"
                )));
            }
            sqlx::query("DELETE FROM plans WHERE project_id = $1 AND key = $2")
                .bind(project_id)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            bump_catalog_version(conn, project_id).await?;
            Ok((Outcome::Deleted, Vec::new()))
        }
        Collection::Customers => {
            let done = sqlx::query("DELETE FROM customers WHERE project_id = $1 AND subject = $2")
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
