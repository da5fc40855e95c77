//! Resolving a customer's features (plan + overrides) and building the entitlement and usage
//! answers. Everything reads through one connection, so the same code answers a request
//! (inside a read transaction) and builds the `entitlements.updated` message inside an
//! admin or writer transaction, where it sees the uncommitted change.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use meterline_core::entitlement::{
    Entitlement, Entitlements, FeatureKind, FeatureUsage, Period, PeriodUsage, UsageReport,
};
use sqlx::{Connection, SqliteConnection};

use super::{
    catalog::{CustomerDef, FeatureDef, Grant, PlanDef},
    period,
};
use crate::store::{CustomerRecord, StoreError, catalog as sql};

/// One feature a customer has: its definition and the effective grant.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The feature.
    pub feature: FeatureDef,
    /// Plan grant with the customer's override applied.
    pub grant: Grant,
}

impl Resolved {
    /// The period of a metered grant (default month).
    pub fn period(&self) -> Period {
        self.grant.period.unwrap_or(Period::Month)
    }
}

/// A project's features and plans: what resolving a customer needs besides the customer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// Features by key.
    pub features: BTreeMap<String, FeatureDef>,
    /// Plans by key.
    pub plans: BTreeMap<String, PlanDef>,
}

impl Catalog {
    /// Reads a project's features and plans through `conn`.
    pub async fn load(conn: &mut SqliteConnection, project_id: i64) -> Result<Catalog, StoreError> {
        Ok(Catalog {
            features: sql::features(conn, project_id).await?,
            plans: sql::plans(conn, project_id).await?,
        })
    }

    /// The counters the features read: event type → properties (`""` counts events).
    pub fn meters(&self) -> HashMap<String, Vec<String>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for (event_type, property) in self.features.values().filter_map(FeatureDef::meter) {
            let properties = out.entry(event_type.to_owned()).or_default();
            if !properties.iter().any(|p| p == property) {
                properties.push(property.to_owned());
            }
        }
        out
    }

    /// The customer's features: the plan's, then the overrides (which may add features
    /// outside the plan, or remove one with `"enabled": false`). References to features
    /// that no longer exist are skipped (changes that would leave them are refused).
    pub fn resolve(&self, customer: &CustomerDef) -> BTreeMap<String, Resolved> {
        let mut out = BTreeMap::new();
        if let Some(plan) = customer.plan.as_ref().and_then(|p| self.plans.get(p)) {
            for (key, grant) in &plan.features {
                if let Some(feature) = self.features.get(key) {
                    let resolved = Resolved {
                        feature: feature.clone(),
                        grant: grant.clone(),
                    };
                    out.insert(key.clone(), resolved);
                }
            }
        }
        for (key, over) in &customer.overrides {
            if over.enabled == Some(false) {
                out.remove(key);
                continue;
            }
            let Some(feature) = self.features.get(key) else {
                continue;
            };
            let base = out.get(key).map(|r| r.grant.clone()).unwrap_or_default();
            let resolved = Resolved {
                feature: feature.clone(),
                grant: base.merged(over),
            };
            out.insert(key.clone(), resolved);
        }
        out
    }
}

/// The usage of a metered feature in `[start, end)`.
pub async fn usage_in(
    conn: &mut SqliteConnection,
    project_id: i64,
    subject: &str,
    feature: &FeatureDef,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
) -> Result<f64, StoreError> {
    let Some(meter) = feature.meter() else {
        return Ok(0.0);
    };
    let days = (period::day_of(start), period::day_of(end));
    crate::store::usage::usage(conn, project_id, subject, meter, days).await
}

/// One metered entitlement from its grant and usage.
pub fn metered(r: &Resolved, usage: f64, (start, end): (DateTime<Utc>, DateTime<Utc>)) -> Entitlement {
    let limit = r.grant.limit;
    Entitlement {
        kind: FeatureKind::Metered,
        has_access: limit.is_none_or(|l| usage < l),
        limit,
        usage: Some(usage),
        remaining: limit.map(|l| (l - usage).max(0.0)),
        soft_limit: r.grant.soft_limit,
        period: Some(r.period()),
        period_start: Some(period::rfc3339(start)),
        period_end: Some(period::rfc3339(end)),
        event_type: r.feature.event_type.clone(),
        aggregation: r.feature.aggregation,
        property: r.feature.property.clone(),
        value: None,
    }
}

/// One usage read an answer needs: a counter's total over a range of UTC days.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UsageRead {
    /// The counter's event type.
    pub event_type: String,
    /// The counter's property (`""` counts events).
    pub property: String,
    /// Days `[from, to)` (days since the Unix epoch).
    pub days: (i64, i64),
}

impl UsageRead {
    /// The read of a metered feature's usage in its period `bounds`; `None` when the feature
    /// reads no counter (its usage is 0).
    fn of(feature: &FeatureDef, (start, end): (DateTime<Utc>, DateTime<Utc>)) -> Option<UsageRead> {
        feature.meter().map(|(event_type, property)| UsageRead {
            event_type: event_type.to_owned(),
            property: property.to_owned(),
            days: (period::day_of(start), period::day_of(end)),
        })
    }
}

/// The usage reads `customer`'s answer at `now` needs (one per metered feature; repeats
/// possible). Pure: pair with [`build_answer`] to answer many customers from a few
/// set-based reads.
pub fn usage_reads(catalog: &Catalog, customer: &CustomerRecord, now: DateTime<Utc>) -> Vec<UsageRead> {
    catalog
        .resolve(&customer.def)
        .values()
        .filter(|r| r.feature.kind == FeatureKind::Metered)
        .filter_map(|r| UsageRead::of(&r.feature, period::bounds(r.period(), customer.anchor, now)))
        .collect()
}

/// The entitlement answer of `subject` (`customer` = its record, `None` when it is not a
/// customer: no entitlements) with the given `version`, taking each metered feature's usage
/// from `usage` (which must answer every read [`usage_reads`] listed). Pure.
#[allow(clippy::too_many_arguments)]
pub fn build_answer(
    subject: &str,
    customer: Option<&CustomerRecord>,
    catalog: &Catalog,
    now: DateTime<Utc>,
    ttl_ms: u64,
    version: u64,
    usage: impl Fn(&UsageRead) -> f64,
) -> Entitlements {
    let mut entitlements = BTreeMap::new();
    if let Some(customer) = customer {
        for (key, r) in catalog.resolve(&customer.def) {
            let e = match r.feature.kind {
                FeatureKind::Boolean => Entitlement::boolean(true),
                FeatureKind::Config => Entitlement::config(r.grant.value.clone().unwrap_or_default()),
                FeatureKind::Metered => {
                    let bounds = period::bounds(r.period(), customer.anchor, now);
                    let used = UsageRead::of(&r.feature, bounds).map_or(0.0, |read| usage(&read));
                    metered(&r, used, bounds)
                }
            };
            entitlements.insert(key, e);
        }
    }
    Entitlements {
        subject: subject.to_owned(),
        version,
        ttl_ms,
        entitlements,
    }
}

/// The entitlement answer of `subject` (`customer` = its record, `None` when it is not a
/// customer: no entitlements) with the given `version`, its usage read through `conn`.
#[allow(clippy::too_many_arguments)]
pub async fn answer(
    conn: &mut SqliteConnection,
    project_id: i64,
    subject: &str,
    customer: Option<&CustomerRecord>,
    catalog: &Catalog,
    now: DateTime<Utc>,
    ttl_ms: u64,
    version: u64,
) -> Result<Entitlements, StoreError> {
    let mut used: HashMap<UsageRead, f64> = HashMap::new();
    if let Some(customer) = customer {
        for read in usage_reads(catalog, customer, now) {
            if used.contains_key(&read) {
                continue;
            }
            let meter = (read.event_type.as_str(), read.property.as_str());
            let total = crate::store::usage::usage(conn, project_id, subject, meter, read.days).await?;
            used.insert(read, total);
        }
    }
    let usage = |read: &UsageRead| used.get(read).copied().unwrap_or_default();
    Ok(build_answer(subject, customer, catalog, now, ttl_ms, version, usage))
}

/// `GET /v1/customers/{subject}/entitlements`: the current answer and its version, read in
/// one transaction so they belong together.
pub async fn current(
    conn: &mut SqliteConnection,
    project_id: i64,
    subject: &str,
    ttl_ms: u64,
) -> Result<Entitlements, StoreError> {
    let mut tx = conn.begin().await?;
    let version = sql::version(&mut tx, project_id, subject).await?;
    let customer = sql::customer(&mut tx, project_id, subject).await?;
    let catalog = match customer {
        Some(_) => Catalog::load(&mut tx, project_id).await?,
        None => Catalog::default(),
    };
    let answer = answer(
        &mut tx,
        project_id,
        subject,
        customer.as_ref(),
        &catalog,
        Utc::now(),
        ttl_ms,
        version,
    )
    .await?;
    tx.commit().await?;
    Ok(answer)
}

/// `GET /v1/customers/{subject}/usage`: every metered feature's current and previous period.
pub async fn usage_report(
    conn: &mut SqliteConnection,
    project_id: i64,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<UsageReport, StoreError> {
    let mut tx = conn.begin().await?;
    let mut features = BTreeMap::new();
    if let Some(customer) = sql::customer(&mut tx, project_id, subject).await? {
        let catalog = Catalog::load(&mut tx, project_id).await?;
        for (key, r) in catalog.resolve(&customer.def) {
            if r.feature.kind != FeatureKind::Metered {
                continue;
            }
            let p = r.period();
            let current = period::bounds(p, customer.anchor, now);
            let previous = period::previous(p, customer.anchor, current.0);
            let current_usage = usage_in(&mut tx, project_id, subject, &r.feature, current).await?;
            let previous_usage = usage_in(&mut tx, project_id, subject, &r.feature, previous).await?;
            let period_usage = |(start, end): (DateTime<Utc>, DateTime<Utc>), usage| PeriodUsage {
                start: period::rfc3339(start),
                end: period::rfc3339(end),
                usage,
            };
            let (current, previous) = (
                period_usage(current, current_usage),
                period_usage(previous, previous_usage),
            );
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::entitlements::catalog::{parse_customer, parse_feature, parse_plan};

    #[test]
    fn overrides_merge_add_and_remove() {
        let features: BTreeMap<_, _> = [
            ("calls", json!({"kind":"metered","event_type":"api.call"})),
            ("sso", json!({"kind":"boolean"})),
            ("extra", json!({"kind":"boolean"})),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), parse_feature(&v, "").unwrap()))
        .collect();
        let plan = parse_plan(
            &json!({"features":{"calls":{"limit":1000,"period":"day"},"sso":{}}}),
            "",
        )
        .unwrap();
        let catalog = Catalog {
            features,
            plans: [("pro".to_owned(), plan)].into(),
        };
        let customer = parse_customer(
            &json!({"plan":"pro","overrides":{"calls":{"limit":5000},"sso":{"enabled":false},"extra":{}}}),
            "",
        )
        .unwrap();
        let r = catalog.resolve(&customer);
        assert_eq!(r.keys().collect::<Vec<_>>(), ["calls", "extra"]);
        assert_eq!(r["calls"].grant.limit, Some(5000.0));
        assert_eq!(r["calls"].period(), Period::Day);
        assert_eq!(catalog.meters()["api.call"], [""]);
    }

    #[test]
    fn metered_access_stops_at_the_limit() {
        let r = Resolved {
            feature: parse_feature(&json!({"kind":"metered","event_type":"t"}), "").unwrap(),
            grant: Grant {
                limit: Some(10.0),
                ..Grant::default()
            },
        };
        let now = Utc::now();
        let b = period::bounds(Period::Month, now, now);
        assert!(metered(&r, 9.0, b).has_access);
        let e = metered(&r, 12.0, b);
        assert!(!e.has_access);
        assert_eq!(e.remaining, Some(0.0));
    }
}
