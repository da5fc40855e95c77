//! Usage counting inside the event writer's transaction: the events a commit stores for the
//! types that metered features read are added to the daily counters, and customers whose
//! usage crossed a notification threshold or their limit get `usage.threshold` and
//! `entitlements.updated` messages in the same transaction.
//!
//! The writer keeps each project's features and plans in memory ([`Metering`]) and checks
//! the catalog versions once per transaction, inside it, so a change — also one made by the
//! CLI in another process — is seen by the first commit after it; the change itself rebuilt
//! the counters it needs from the events stored before it. Commits of projects without
//! metered features, or of event types no feature reads, do no per-event work.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use chrono::Utc;
use meterline_core::stream::{ServerMessage, UsageThreshold};
use sqlx::SqliteConnection;

use super::{answer::Catalog, catalog::Grant, period};
use crate::{
    store::{
        CustomerRecord, StoreError, StreamFrame, WriteBatch, append_message,
        catalog::{self as read, emit_update},
        usage::{self, DayUsage, Meter},
    },
    stream::Hub,
};

/// One project's catalog as the writer knows it.
#[derive(Debug, Default)]
struct ProjectCatalog {
    /// `catalog_versions.version` it was loaded at.
    version: i64,
    catalog: Catalog,
    /// Event type → properties its features read (`""` counts).
    meters: HashMap<String, Vec<String>>,
}

/// (project, event type) pairs of a commit that some feature reads.
pub type Touched = Vec<(i64, String)>;

/// What one commit added to each counter it touched, by project.
pub type Added<'a> = Vec<(i64, Vec<(Meter<'a>, Vec<DayUsage>)>)>;

/// The writer's usage counting: its copy of every project's catalog, the hub the messages
/// go to, and the `ttl_ms` of the answers they carry.
#[derive(Debug)]
pub struct Metering {
    hub: Arc<Hub>,
    ttl_ms: u64,
    projects: HashMap<i64, ProjectCatalog>,
}

impl Metering {
    /// Counting that publishes on `hub`, with answers carrying `ttl_ms`.
    pub fn new(hub: Arc<Hub>, ttl_ms: u64) -> Self {
        Metering {
            hub,
            ttl_ms,
            projects: HashMap::new(),
        }
    }

    /// The hub the writer publishes on.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The (project, event type) pairs of `batches` that a feature reads, by the catalogs
    /// as last loaded. Batches of projects without metered features are not looked into.
    pub fn touched(&self, batches: &[WriteBatch]) -> Touched {
        let mut out: Touched = Vec::new();
        for batch in batches {
            let Some(project) = self.projects.get(&batch.project_id).filter(|p| !p.meters.is_empty()) else {
                continue;
            };
            let mut last: Option<&str> = None;
            for row in &batch.rows {
                if last == Some(row.event_type.as_str()) {
                    continue;
                }
                last = Some(&row.event_type);
                if project.meters.contains_key(&row.event_type)
                    && !out.iter().any(|(p, t)| *p == batch.project_id && *t == row.event_type)
                {
                    out.push((batch.project_id, row.event_type.clone()));
                }
            }
        }
        out
    }

    /// Reloads the catalogs whose version changed (read through the writer's open
    /// transaction); returns whether any did.
    pub async fn refresh(&mut self, conn: &mut SqliteConnection) -> Result<bool, StoreError> {
        let mut changed = false;
        for (project_id, version) in read::catalog_versions(conn).await? {
            if self.projects.get(&project_id).is_some_and(|p| p.version == version) {
                continue;
            }
            let catalog = Catalog::load(conn, project_id).await?;
            let meters = catalog.meters();
            self.projects.insert(
                project_id,
                ProjectCatalog {
                    version,
                    catalog,
                    meters,
                },
            );
            changed = true;
        }
        Ok(changed)
    }

    /// Adds the events stored after `after_seq` in this transaction to the counters that
    /// `touched` names, through the write connection's own handle (`db`, used while the
    /// writer holds the connection's lock): one pass over the new rows per event type, one
    /// upsert per (subject, day, counter). Returns what was added, for [`Metering::messages`].
    pub fn add_usage(
        &self,
        db: &rusqlite::Connection,
        touched: &Touched,
        after_seq: i64,
    ) -> rusqlite::Result<Added<'_>> {
        let mut by_project: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
        for (project_id, event_type) in touched {
            by_project.entry(*project_id).or_default().push(event_type);
        }
        let mut out = Vec::new();
        for (project_id, types) in by_project {
            let Some(project) = self.projects.get(&project_id) else {
                continue;
            };
            let mut added: Vec<(Meter<'_>, Vec<DayUsage>)> = Vec::new();
            for event_type in types {
                let Some((event_type, properties)) = project.meters.get_key_value(event_type) else {
                    continue;
                };
                let lists = usage::added_since(db, project_id, event_type, properties, after_seq)?;
                for (property, rows) in properties.iter().zip(lists) {
                    let meter = (event_type.as_str(), property.as_str());
                    usage::add(db, project_id, meter, &rows)?;
                    added.push((meter, rows));
                }
            }
            out.push((project_id, added));
        }
        Ok(out)
    }

    /// Appends, in the caller's transaction, the messages of the thresholds and limits that
    /// `added` made customers cross.
    pub async fn messages(
        &self,
        conn: &mut SqliteConnection,
        added: &Added<'_>,
    ) -> Result<Vec<StreamFrame>, StoreError> {
        let mut frames = Vec::new();
        for (project_id, counters) in added {
            if let Some(project) = self.projects.get(project_id) {
                frames.extend(self.crossings(conn, *project_id, project, counters).await?);
            }
        }
        Ok(frames)
    }

    /// Messages for the customers among the subjects of `added` whose current-period usage
    /// crossed a threshold or their limit.
    async fn crossings(
        &self,
        conn: &mut SqliteConnection,
        project_id: i64,
        project: &ProjectCatalog,
        added: &[((&str, &str), Vec<DayUsage>)],
    ) -> Result<Vec<StreamFrame>, StoreError> {
        let subjects = subjects_of(added);
        let customers = read::customers_among(conn, project_id, &subjects).await?;
        let checks = Checks::of(&project.catalog, &customers, added, Utc::now());
        let mut totals: Vec<HashMap<String, f64>> = Vec::with_capacity(checks.ranges.len());
        for (meter_index, range, group_subjects) in &checks.ranges {
            let meter = added[*meter_index].0;
            let found = usage::usage_of_subjects(conn, project_id, meter, group_subjects, *range).await?;
            totals.push(found.into_iter().collect());
        }
        let mut frames = Vec::new();
        for (customer_index, crossed) in checks.crossed(&customers, &totals) {
            let (subject, customer) = &customers[customer_index];
            for data in crossed {
                let message = |seq| ServerMessage::UsageThreshold {
                    seq,
                    subject: subject.clone(),
                    data,
                };
                frames.push(append_message(conn, project_id, Some(subject), message).await?);
            }
            frames.push(emit_update(conn, project_id, subject, Some(customer), &project.catalog, self.ttl_ms).await?);
        }
        Ok(frames)
    }
}

/// The distinct subjects of what a commit added.
pub fn subjects_of<'a>(added: &'a [(Meter<'_>, Vec<DayUsage>)]) -> Vec<&'a str> {
    let mut subjects: Vec<&str> = added
        .iter()
        .flat_map(|(_, rows)| rows.iter().map(|r| r.subject.as_str()))
        .collect();
    subjects.sort_unstable();
    subjects.dedup();
    subjects
}

/// The usage reads a commit's threshold checks need, and the checks (both backends).
#[derive(Debug)]
pub struct Checks<'c> {
    checks: Vec<Check>,
    /// (index into `added`, day range, subjects): read each as one statement, in order.
    pub ranges: Vec<(usize, (i64, i64), Vec<&'c str>)>,
}

impl<'c> Checks<'c> {
    /// What to check: each limited metered feature of one of `customers` (the commit's
    /// subjects that are customers) whose counter grew in the current period at `now`.
    pub fn of(
        catalog: &Catalog,
        customers: &'c [(String, CustomerRecord)],
        added: &[(Meter<'_>, Vec<DayUsage>)],
        now: chrono::DateTime<Utc>,
    ) -> Checks<'c> {
        // subject → (meter index, day, value)
        let mut by_subject: HashMap<&str, Vec<(usize, i64, f64)>> = HashMap::new();
        for (index, (_, rows)) in added.iter().enumerate() {
            for row in rows {
                by_subject
                    .entry(&row.subject)
                    .or_default()
                    .push((index, row.day, row.value));
            }
        }
        let mut checks: Vec<Check> = Vec::new();
        let mut ranges: Vec<(usize, (i64, i64), Vec<&str>)> = Vec::new();
        for (customer_index, (subject, customer)) in customers.iter().enumerate() {
            let days = by_subject.get(subject.as_str()).map(Vec::as_slice).unwrap_or_default();
            for (key, r) in catalog.resolve(&customer.def) {
                let (Some(meter), Some(limit)) = (r.feature.meter(), r.grant.limit) else {
                    continue;
                };
                let Some(meter_index) = added.iter().position(|(m, _)| *m == meter) else {
                    continue;
                };
                let bounds = period::bounds(r.period(), customer.anchor, now);
                let range = (period::day_of(bounds.0), period::day_of(bounds.1));
                let delta: f64 = days
                    .iter()
                    .filter(|(i, day, _)| *i == meter_index && (range.0..range.1).contains(day))
                    .map(|(_, _, value)| value)
                    .sum();
                if delta == 0.0 {
                    continue;
                }
                let group = match ranges.iter().position(|(m, g, _)| *m == meter_index && *g == range) {
                    Some(group) => group,
                    None => {
                        ranges.push((meter_index, range, Vec::new()));
                        ranges.len() - 1
                    }
                };
                ranges[group].2.push(subject);
                checks.push(Check {
                    customer_index,
                    key,
                    grant: r.grant,
                    limit,
                    delta,
                    group,
                });
            }
        }
        Checks { checks, ranges }
    }

    /// The customers (index into `customers`) to send messages, each with the thresholds it
    /// crossed (maybe none, when only its access flipped), given each range's usage totals
    /// after this commit (`totals[i]` for `ranges[i]`, by subject).
    pub fn crossed(
        self,
        customers: &[(String, CustomerRecord)],
        totals: &[HashMap<String, f64>],
    ) -> Vec<(usize, Vec<UsageThreshold>)> {
        let mut out = Vec::new();
        let mut checks = self.checks.into_iter().peekable();
        while let Some(first) = checks.next() {
            let customer_index = first.customer_index;
            let subject = &customers[customer_index].0;
            let mut crossed = Vec::new();
            let mut access_flipped = false;
            let mut check = Some(first);
            while let Some(c) = check {
                let after = totals[c.group].get(subject).copied().unwrap_or_default();
                let before = after - c.delta;
                for threshold in crossed_thresholds(&c.grant, c.limit, before, after) {
                    crossed.push(UsageThreshold {
                        feature: c.key.clone(),
                        threshold,
                        usage: after,
                        limit: c.limit,
                    });
                }
                access_flipped |= (before < c.limit) != (after < c.limit);
                check = checks.next_if(|next| next.customer_index == customer_index);
            }
            if !crossed.is_empty() || access_flipped {
                out.push((customer_index, crossed));
            }
        }
        out
    }
}

/// One limited metered feature of a customer whose usage grew in its current period.
#[derive(Debug)]
struct Check {
    /// Index into the commit's customers.
    customer_index: usize,
    /// The feature key.
    key: String,
    grant: Grant,
    limit: f64,
    /// What this commit added in the period.
    delta: f64,
    /// Which usage read holds its total.
    group: usize,
}

/// The thresholds (fractions of `limit`) that usage going from `before` to `after` crossed
/// upwards: `before < t·limit <= after`.
pub fn crossed_thresholds(grant: &Grant, limit: f64, before: f64, after: f64) -> Vec<f64> {
    grant
        .thresholds()
        .into_iter()
        .filter(|t| {
            let mark = t * limit;
            before < mark && mark <= after
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_cross_once_upwards() {
        let grant = Grant::default();
        assert_eq!(crossed_thresholds(&grant, 100.0, 0.0, 79.0), Vec::<f64>::new());
        assert_eq!(crossed_thresholds(&grant, 100.0, 79.0, 80.0), vec![0.8]);
        assert_eq!(crossed_thresholds(&grant, 100.0, 80.0, 99.0), Vec::<f64>::new());
        assert_eq!(crossed_thresholds(&grant, 100.0, 50.0, 150.0), vec![0.8, 1.0]);
        assert_eq!(crossed_thresholds(&grant, 100.0, 100.0, 120.0), Vec::<f64>::new());
        // Usage going down (negative sums) crosses nothing.
        assert_eq!(crossed_thresholds(&grant, 100.0, 120.0, 10.0), Vec::<f64>::new());
        let grant = Grant {
            thresholds: Some(vec![0.5, 2.0]),
            ..Grant::default()
        };
        assert_eq!(crossed_thresholds(&grant, 10.0, 4.0, 20.0), vec![0.5, 2.0]);
    }
}
