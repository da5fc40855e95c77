//! The entitlement catalog through the server's store ([`Storage`]) — features, plans,
//! customers and overrides, their changes' `entitlements.updated` messages, the answers with
//! live usage — as one set of cases run on SQLite (`*_sqlite`) and on PostgreSQL
//! (`*_postgres`, `#[ignore]`d in a plain `cargo test`; run by `make test-postgres`). The
//! PostgreSQL-only case proves that catalog changes through two nodes at once take one seq
//! order.

use meterline_server::{
    entitlements::change::{CatalogError, Collection, Outcome},
    store::{EventRow, LogRead, Storage, StreamFrame, WriteBatch},
};
use serde_json::{Value, json};

use crate::{
    storage::{pg_database, pg_node},
    storage_admin::{postgres, sqlite},
};

const TTL_MS: u64 = 60_000;

/// Applies a put of `body` to item `id` of `collection`.
async fn put(
    store: &Storage,
    project: i64,
    collection: Collection,
    id: &str,
    body: Value,
) -> Result<Outcome, CatalogError> {
    let change = collection.put(id, &body, "").unwrap();
    Ok(store
        .apply_catalog_change(project, change, TTL_MS, false)
        .await?
        .outcome)
}

/// Like [`put`], also returning the messages' frames.
async fn put_frames(store: &Storage, project: i64, collection: Collection, id: &str, body: Value) -> Vec<StreamFrame> {
    let change = collection.put(id, &body, "").unwrap();
    store
        .apply_catalog_change(project, change, TTL_MS, false)
        .await
        .unwrap()
        .frames
}

async fn delete(store: &Storage, project: i64, collection: Collection, id: &str) -> Result<Outcome, CatalogError> {
    let change = collection.delete(id).unwrap();
    Ok(store
        .apply_catalog_change(project, change, TTL_MS, false)
        .await?
        .outcome)
}

fn frame_json(frame: &StreamFrame) -> Value {
    serde_json::from_str(frame.frame.as_str()).unwrap()
}

/// `n` `api.call` events of `subject` today, each with `tokens: 3`.
fn calls(project_id: i64, prefix: &str, subject: &str, n: usize) -> WriteBatch {
    let now = chrono::Utc::now();
    let rows = (0..n)
        .map(|i| EventRow {
            source: "test".into(),
            id: format!("{prefix}-{i}"),
            event_type: "api.call".into(),
            subject: subject.into(),
            time: Some(now.to_rfc3339()),
            time_us: now.timestamp_micros(),
            datacontenttype: None,
            data: Some(json!({"tokens": 3}).to_string()),
        })
        .collect();
    WriteBatch {
        project_id,
        received_at: now.to_rfc3339(),
        rows,
    }
}

/// Create, read, list and replace; identical puts change nothing; a plan change sends every
/// customer on it a message, in subject order with consecutive seqs, carrying the new
/// answer; deletes that would leave a reference behind are refused; answers and the usage
/// report count the stored events, also through a feature added after them (its counter is
/// rebuilt) and an override.
async fn catalog_changes_and_answers(store: &Storage) {
    let p = store.create_project("p", &[]).await.unwrap().id;
    let calls_def = json!({"kind": "metered", "event_type": "api.call"});
    let created = put(store, p, Collection::Features, "calls", calls_def.clone())
        .await
        .unwrap();
    assert_eq!(
        created,
        Outcome::Created(json!({"key": "calls", "kind": "metered", "event_type": "api.call", "aggregation": "count"}))
    );
    assert!(matches!(
        put(store, p, Collection::Features, "calls", calls_def).await.unwrap(),
        Outcome::Unchanged(_)
    ));
    put(store, p, Collection::Features, "sso", json!({"kind": "boolean"}))
        .await
        .unwrap();
    let plan = json!({"features": {"calls": {"limit": 10, "period": "month"}, "sso": {}}});
    put(store, p, Collection::Plans, "pro", plan).await.unwrap();
    let err = put(store, p, Collection::Customers, "c0", json!({"plan": "gold"}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CatalogError::Reference(ref m) if m.contains("\"gold\"")),
        "{err}"
    );
    let customer = json!({"plan": "pro", "billing_anchor": "2026-01-01T00:00:00Z"});
    // Inserted out of order: messages still go in subject order.
    for subject in ["c2", "c1"] {
        let frames = put_frames(store, p, Collection::Customers, subject, customer.clone()).await;
        assert_eq!(frames.len(), 1);
    }
    assert_eq!(store.stream_seq(p).await.unwrap(), 2);

    let keys: Vec<Value> = store
        .catalog_list(p, Collection::Features, None, 10)
        .await
        .unwrap()
        .iter()
        .map(|f| f["key"].clone())
        .collect();
    assert_eq!(keys, [json!("calls"), json!("sso")]);
    let page = store
        .catalog_list(p, Collection::Customers, Some("c1"), 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["subject"], "c2");
    let view = store.catalog_get(p, Collection::Plans, "pro").await.unwrap().unwrap();
    assert_eq!(view["features"]["calls"]["limit"].as_f64(), Some(10.0));
    assert_eq!(store.catalog_get(p, Collection::Plans, "free").await.unwrap(), None);

    // The plan's limit goes up: both customers hear it, c1 first.
    let plan = json!({"features": {"calls": {"limit": 20, "period": "month"}, "sso": {}}});
    let frames = put_frames(store, p, Collection::Plans, "pro", plan).await;
    let told: Vec<(u64, Option<&str>)> = frames.iter().map(|f| (f.seq, f.subject.as_deref())).collect();
    assert_eq!(told, [(3, Some("c1")), (4, Some("c2"))]);
    let message = frame_json(&frames[0]);
    assert_eq!(message["type"], "entitlements.updated");
    assert_eq!(message["data"]["version"], 3);
    assert_eq!(message["data"]["entitlements"]["calls"]["limit"].as_f64(), Some(20.0));
    let LogRead::Covered {
        frames: logged,
        current,
    } = store.stream_since(p, 2, &["c2".into()], 10).await.unwrap()
    else {
        panic!("the log covers seq 2");
    };
    assert_eq!((logged, current), (vec![frames[1].clone()], 4));

    // Usage: 4 calls of c1 stored; the answer counts them, versioned by c1's last message.
    store.write(calls(p, "a", "c1", 4)).await.unwrap();
    let answer = store.entitlements(p, "c1", TTL_MS).await.unwrap();
    assert_eq!(answer.version, 3);
    let calls = &answer.entitlements["calls"];
    assert_eq!(
        (calls.usage, calls.remaining, calls.has_access),
        (Some(4.0), Some(16.0), true)
    );
    assert!(answer.entitlements["sso"].has_access);
    assert!(
        store
            .entitlements(p, "nobody", TTL_MS)
            .await
            .unwrap()
            .entitlements
            .is_empty()
    );

    // A feature added now reads a counter rebuilt from the events stored before it; c1 gets
    // it by an override (the message carries the usage).
    let tokens = json!({"kind": "metered", "event_type": "api.call", "aggregation": "sum", "property": "tokens"});
    put(store, p, Collection::Features, "tokens", tokens).await.unwrap();
    let over =
        json!({"plan": "pro", "billing_anchor": "2026-01-01T00:00:00Z", "overrides": {"tokens": {"limit": 100}}});
    let frames = put_frames(store, p, Collection::Customers, "c1", over).await;
    let told = frame_json(&frames[0]);
    assert_eq!(told["data"]["entitlements"]["tokens"]["usage"].as_f64(), Some(12.0));
    let report = store.usage_report(p, "c1", chrono::Utc::now()).await.unwrap();
    assert_eq!(report.features["tokens"].current.usage, 12.0);
    assert_eq!(report.features["calls"].current.usage, 4.0);
    assert_eq!(report.features["calls"].previous.usage, 0.0);

    // Deletes that would leave a reference are refused and name it.
    let err = delete(store, p, Collection::Plans, "pro").await.unwrap_err();
    assert!(
        matches!(err, CatalogError::Reference(ref m) if m.contains("customers.c1.plan")),
        "{err}"
    );
    let err = delete(store, p, Collection::Features, "tokens").await.unwrap_err();
    assert!(
        matches!(err, CatalogError::Reference(ref m) if m.contains("overrides of customer \"c1\"")),
        "{err}"
    );
    let err = delete(store, p, Collection::Features, "sso").await.unwrap_err();
    assert!(
        matches!(err, CatalogError::Reference(ref m) if m.contains("plans.pro.features.sso")),
        "{err}"
    );
    // A customer deleted: its message has no entitlements; a second delete finds nothing.
    let gone = store
        .apply_catalog_change(p, Collection::Customers.delete("c2").unwrap(), TTL_MS, false)
        .await
        .unwrap();
    assert_eq!(gone.outcome, Outcome::Deleted);
    assert_eq!(frame_json(&gone.frames[0])["data"]["entitlements"], json!({}));
    assert_eq!(
        delete(store, p, Collection::Customers, "c2").await.unwrap(),
        Outcome::NotFound
    );
    assert_eq!(
        store.entitlements(p, "c2", TTL_MS).await.unwrap().version,
        gone.frames[0].seq
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_changes_and_answers_sqlite() {
    let (store, _dir) = sqlite().await;
    catalog_changes_and_answers(&store).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn catalog_changes_and_answers_postgres() {
    catalog_changes_and_answers(&postgres().await).await;
}

/// Customer puts and plan changes through two nodes at once: every message takes its own
/// seq, the log holds them without a hole, and every message carries the plan as it stood
/// at its seq — the one of the latest plan change committed before it (changes run one at
/// a time under the project's seq lock, each reading what the one before committed). Each
/// customer's answer, on either node, is its last message.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn catalog_changes_through_two_nodes_take_one_order() {
    let url = pg_database().await;
    let (a, b) = (
        Storage::Postgres(pg_node(&url).await),
        Storage::Postgres(pg_node(&url).await),
    );
    let p = a.create_project("p", &[]).await.unwrap().id;
    put(&a, p, Collection::Features, "sso", json!({"kind": "boolean"}))
        .await
        .unwrap();
    put(&a, p, Collection::Plans, "pro", json!({"features": {"sso": {}}}))
        .await
        .unwrap();
    let customer = json!({"plan": "pro", "billing_anchor": "2026-01-01T00:00:00Z"});
    put(&a, p, Collection::Customers, "base", customer.clone())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    let mut togglers = Vec::new();
    for (n, node) in [a.clone(), b.clone()].into_iter().enumerate() {
        let (customer, toggler_node) = (customer.clone(), node.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..30 {
                put(
                    &node,
                    p,
                    Collection::Customers,
                    &format!("n{n}-{i:02}"),
                    customer.clone(),
                )
                .await
                .unwrap();
            }
        }));
        // Granting and withdrawing sso in turn; each effective change is (its first seq,
        // whether it grants sso).
        togglers.push(tokio::spawn(async move {
            let mut changes = Vec::new();
            for i in 0..30 {
                let grants = (i + n) % 2 == 0;
                let features = if grants { json!({"sso": {}}) } else { json!({}) };
                let frames = put_frames(
                    &toggler_node,
                    p,
                    Collection::Plans,
                    "pro",
                    json!({ "features": features }),
                )
                .await;
                if let Some(first) = frames.first() {
                    changes.push((first.seq, grants));
                }
            }
            changes
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut changes = Vec::new();
    for toggler in togglers {
        changes.extend(toggler.await.unwrap());
    }
    changes.sort();
    assert!(changes.len() > 10, "the plan changed often: {changes:?}");
    let current = a.stream_seq(p).await.unwrap();
    let mut subjects: Vec<String> = (0..2)
        .flat_map(|n| (0..30).map(move |i| format!("n{n}-{i:02}")))
        .collect();
    subjects.push("base".into());
    let LogRead::Covered { frames, .. } = a.stream_since(p, 0, &subjects, 10_000).await.unwrap() else {
        panic!("the log covers seq 0");
    };
    let seqs: Vec<u64> = frames.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, (1..=current).collect::<Vec<_>>(), "one seq each, no hole");
    for frame in &frames {
        let grants = changes
            .iter()
            .rev()
            .find(|(seq, _)| *seq <= frame.seq)
            .is_none_or(|c| c.1);
        let told = frame_json(frame);
        assert_eq!(
            told["data"]["entitlements"].get("sso").is_some(),
            grants,
            "seq {}: the plan after the changes {changes:?}: {told}",
            frame.seq
        );
    }
    for subject in &subjects {
        let last = frames
            .iter()
            .rev()
            .find(|f| f.subject.as_deref() == Some(subject.as_str()))
            .unwrap();
        let answer = serde_json::to_value(b.entitlements(p, subject, TTL_MS).await.unwrap()).unwrap();
        assert_eq!(answer, frame_json(last)["data"], "{subject}");
    }
}

/// One `api.call` event of `subject` at `time`, id `id`.
fn call_at(project_id: i64, id: &str, subject: &str, time: chrono::DateTime<chrono::Utc>) -> WriteBatch {
    let mut batch = calls(project_id, id, subject, 1);
    batch.rows[0].time = Some(time.to_rfc3339());
    batch.rows[0].time_us = time.timestamp_micros();
    batch
}

/// Two nodes count one customer at once, on two days of one period (so no usage row is
/// shared): each of the 16 thresholds — one every 2 events — is told exactly once, with
/// the usage at which it was crossed, with the answer at that usage. Without the per-customer lock
/// two transactions each miss the other's event and a crossing is lost (or told twice).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn two_nodes_counting_one_customer_tell_each_crossing_once() {
    let url = pg_database().await;
    let (a, b) = (
        Storage::Postgres(pg_node(&url).await),
        Storage::Postgres(pg_node(&url).await),
    );
    let p = a.create_project("p", &[]).await.unwrap().id;
    let now = chrono::Utc::now();
    let anchor = (now - chrono::Duration::days(2)).to_rfc3339();
    put(
        &a,
        p,
        Collection::Features,
        "calls",
        json!({"kind": "metered", "event_type": "api.call"}),
    )
    .await
    .unwrap();
    let thresholds: Vec<f64> = (1..=16).map(|i| f64::from(i) * 0.125).collect();
    let plan = json!({"features": {"calls": {"limit": 16, "period": "month", "thresholds": thresholds}}});
    put(&a, p, Collection::Plans, "pro", plan).await.unwrap();
    put(
        &a,
        p,
        Collection::Customers,
        "c1",
        json!({"plan": "pro", "billing_anchor": anchor}),
    )
    .await
    .unwrap();
    let start = a.stream_seq(p).await.unwrap();
    let mut writers = Vec::new();
    for (n, node) in [a.clone(), b.clone()].into_iter().enumerate() {
        for w in 0..2 {
            let node = node.clone();
            // Node A's events today, node B's yesterday: both in the current period.
            let time = now - chrono::Duration::days(n as i64);
            writers.push(tokio::spawn(async move {
                for i in 0..8 {
                    node.write(call_at(p, &format!("n{n}-w{w}-{i}"), "c1", time))
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let LogRead::Covered { frames, .. } = a.stream_since(p, start, &["c1".into()], 1000).await.unwrap() else {
        panic!("the log covers the start");
    };
    let told: Vec<Value> = frames.iter().map(frame_json).collect();
    let mut crossed: Vec<(f64, f64)> = told
        .iter()
        .filter(|m| m["type"] == "usage.threshold")
        .map(|m| {
            (
                m["data"]["threshold"].as_f64().unwrap(),
                m["data"]["usage"].as_f64().unwrap(),
            )
        })
        .collect();
    crossed.sort_by(|x, y| x.0.total_cmp(&y.0));
    let want: Vec<(f64, f64)> = thresholds.iter().map(|t| (*t, t * 16.0)).collect();
    assert_eq!(crossed, want, "each threshold once, at its usage");
    // Each answer sent says what its usage allows.
    for m in told.iter().filter(|m| m["type"] == "entitlements.updated") {
        let calls = &m["data"]["entitlements"]["calls"];
        let usage = calls["usage"].as_f64().unwrap();
        assert_eq!(calls["has_access"], usage < 16.0, "{m}");
    }
    let answer = b.entitlements(p, "c1", TTL_MS).await.unwrap();
    assert_eq!(answer.entitlements["calls"].usage, Some(32.0));
    assert_eq!(answer.version, frames.last().unwrap().seq);
}
