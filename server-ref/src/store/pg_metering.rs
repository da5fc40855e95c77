//! Usage counting and threshold crossings on PostgreSQL, in the transaction that stores the
//! events — what the SQLite writer's metering does (`entitlements::metering`), safe for
//! several nodes writing the same customer at once.
//!
//! The lock (docs/decisions.md, "PostgreSQL: threshold crossings under a per-customer
//! lock"): before adding to any counter, the transaction takes a transaction-scoped advisory
//! lock per subject of its metered events (`pg_advisory_xact_lock`, keys sorted, so two
//! transactions never wait on each other in a cycle), held to commit. A second transaction
//! counting one of those subjects waits for the first to commit, then reads (READ
//! COMMITTED, each statement a new snapshot) a total that includes the first's events: its
//! `before = after − delta` is exact, so a crossing is seen by exactly one transaction —
//! never by neither (two nodes adding to different days of one period, each blind to the
//! other) nor by both. The usage rows' own locks only make the same (subject, day) row add
//! up; they do not order reads of the other days of a period.

use std::collections::HashMap;

use chrono::Utc;
use meterline_core::stream::ServerMessage;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use super::{
    StoreError, StreamFrame,
    pg_catalog::{customers_among, load_catalog, record_versions, usage_of, usage_of_subjects, write_frames},
    pg_stream::reserve_seqs,
    usage::{DayUsage, Meter},
};
use crate::entitlements::{
    answer::{self, UsageRead},
    metering::{Checks, subjects_of},
};

/// The advisory lock key of a project's subject: the first 8 bytes of SHA-256 of
/// `"meterline usage <project>:<subject>"` (a collision only makes two subjects wait on
/// each other).
fn subject_key(project_id: i64, subject: &str) -> i64 {
    let digest = Sha256::digest(format!("meterline usage {project_id}:{subject}"));
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// The advisory lock key of `project_id`'s meters (which counters its features read): the
/// first 8 bytes of SHA-256 of `meterline meters <project>`.
fn meters_key(project_id: i64) -> i64 {
    let digest = Sha256::digest(format!("meterline meters {project_id}"));
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// Takes the project's meter lock, held to commit: shared by an event transaction before it
/// reads which counters to add to (so the counters it adds to are still the ones read when
/// it commits), exclusive by a catalog change of features (which drops and rebuilds
/// counters), before any other lock (DR-116).
pub(super) async fn lock_meters(conn: &mut PgConnection, project_id: i64, exclusive: bool) -> Result<(), StoreError> {
    let sql = if exclusive {
        "SELECT pg_advisory_xact_lock($1)"
    } else {
        "SELECT pg_advisory_xact_lock_shared($1)"
    };
    sqlx::query(sql)
        .bind(meters_key(project_id))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Takes the per-subject locks of `subjects` (see the module doc), in key order.
pub(super) async fn lock_subjects(
    conn: &mut PgConnection,
    project_id: i64,
    subjects: &[&str],
) -> Result<(), StoreError> {
    let mut keys: Vec<i64> = subjects.iter().map(|s| subject_key(project_id, s)).collect();
    keys.sort_unstable();
    keys.dedup();
    // `unnest` yields the keys in array order; each row takes its lock in turn.
    sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k")
        .bind(&keys)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Appends, in the caller's transaction, the `usage.threshold` and `entitlements.updated`
/// messages of the customers whose current-period usage `added` (what this transaction
/// added to each counter, by subject and day) made cross a threshold or their limit.
/// Answers carry `ttl_ms`.
pub(super) async fn threshold_messages(
    conn: &mut PgConnection,
    project_id: i64,
    added: &[(Meter<'_>, Vec<DayUsage>)],
    ttl_ms: u64,
) -> Result<Vec<StreamFrame>, StoreError> {
    let subjects = subjects_of(added);
    let customers = customers_among(conn, project_id, &subjects).await?;
    if customers.is_empty() {
        return Ok(Vec::new());
    }
    let catalog = load_catalog(conn, project_id).await?;
    let now = Utc::now();
    let checks = Checks::of(&catalog, &customers, added, now);
    let mut totals: Vec<HashMap<String, f64>> = Vec::with_capacity(checks.ranges.len());
    for (meter_index, range, group) in &checks.ranges {
        let found = usage_of_subjects(conn, project_id, added[*meter_index].0, group, *range).await?;
        totals.push(found.into_iter().collect());
    }
    let crossed = checks.crossed(&customers, &totals);
    if crossed.is_empty() {
        return Ok(Vec::new());
    }
    let affected: Vec<_> = crossed
        .iter()
        .map(|(i, _)| (customers[*i].0.clone(), Some(customers[*i].1.clone())))
        .collect();
    let used = usage_of(conn, project_id, &affected, &catalog, now).await?;
    let count = crossed.iter().map(|(_, c)| c.len() + 1).sum::<usize>();
    let last = reserve_seqs(conn, project_id, count).await?;
    let mut seq = last + 1 - count as u64;
    let mut frames = Vec::with_capacity(count);
    let mut updates = Vec::with_capacity(crossed.len());
    for ((subject, customer), (_, thresholds)) in affected.iter().zip(crossed) {
        let push = |message: ServerMessage, seq: u64| -> Result<StreamFrame, StoreError> {
            let frame = serde_json::to_string(&message)
                .map_err(|e| StoreError::Conflict(format!("stream message does not serialize: {e}")))?;
            Ok(StreamFrame {
                project_id,
                seq,
                subject: Some(subject.clone()),
                frame: frame.into(),
            })
        };
        for data in thresholds {
            let message = ServerMessage::UsageThreshold {
                seq,
                subject: subject.clone(),
                data,
            };
            frames.push(push(message, seq)?);
            seq += 1;
        }
        let usage = |read: &UsageRead| used.get(&(subject.clone(), read.clone())).copied().unwrap_or_default();
        let data = answer::build_answer(subject, customer.as_ref(), &catalog, now, ttl_ms, seq, usage);
        let update = push(
            ServerMessage::EntitlementsUpdated {
                seq,
                subject: subject.clone(),
                data,
            },
            seq,
        )?;
        frames.push(update.clone());
        updates.push(update);
        seq += 1;
    }
    write_frames(conn, project_id, &frames).await?;
    record_versions(conn, project_id, &updates).await?;
    Ok(frames)
}
