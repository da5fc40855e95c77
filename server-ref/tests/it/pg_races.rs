//! Catalog changes racing metered ingest on two PostgreSQL nodes (DR-112, DR-116): a feature's
//! meter switched back and forth through both nodes while clients send metered batches of
//! several customers (each batch twice, once per node). Every event is stored once and
//! counted once in the counter the feature reads at the end; no request fails with a 500 —
//! a transaction that keeps losing a deadlock is a `503` with `Retry-After`, sent again.
//!
//! Run by `make test-postgres` (`#[ignore]`d in a plain `cargo test`: no database there).

use std::{collections::HashSet, sync::Arc, time::Duration};

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::{
    common::{BATCH, Server, catalog::call_event},
    pg_nodes::two_nodes,
};

const CATALOG: &str = r#"
[catalog]
project = "default"

[catalog.features.api_calls]
kind = "metered"
event_type = "api.call"

[catalog.plans.pro.features.api_calls]
limit = 100
period = "month"

[catalog.customers.c0]
plan = "pro"
[catalog.customers.c1]
plan = "pro"
[catalog.customers.c2]
plan = "pro"
[catalog.customers.c3]
plan = "pro"
[catalog.customers.c4]
plan = "pro"
"#;

/// Sends `request` until it is answered 2xx, sending it again after a `503` (which must
/// carry `Retry-After`, as the SDK expects); any other answer fails the case. Returns the
/// answer and how many 503s came first.
async fn until_done(node: &Server, what: &str, request: impl Fn() -> reqwest::RequestBuilder) -> (Value, u32) {
    let mut unavailable = 0;
    loop {
        let resp = request().send().await.unwrap();
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").cloned();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        match status {
            200..=299 => return (body, unavailable),
            503 => {
                assert!(
                    retry_after.is_some(),
                    "{what} on {}: 503 without Retry-After: {body}",
                    node.url
                );
                unavailable += 1;
                assert!(unavailable < 50, "{what} on {}: 503 fifty times: {body}", node.url);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ => {
                let log = node.log();
                let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
                panic!("{what} on {}: {status} {body}; server errors: {errors:#?}", node.url)
            }
        }
    }
}

/// The feature `api_calls` as a count (`sum = false`) or the sum of `data.tokens`.
fn feature(sum: bool) -> Value {
    if sum {
        json!({"kind": "metered", "event_type": "api.call", "aggregation": "sum", "property": "tokens"})
    } else {
        json!({"kind": "metered", "event_type": "api.call", "aggregation": "count"})
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn catalog_changes_racing_metered_ingest_count_each_event_once() {
    let (a, b, url) = two_nodes(CATALOG).await;
    let (sk, ak) = (a.sk().to_owned(), a.ak().to_owned());
    let now = chrono::Utc::now().to_rfc3339();
    // 40 batches of 25 events over 5 customers; `tokens` 1, so both meters count the same.
    let batches: Vec<Value> = (0..40)
        .map(|b| {
            (0..25)
                .map(|i| call_event(&format!("e{b}-{i}"), &format!("c{}", i % 5), &now, json!({"tokens": 1})))
                .collect::<Vec<_>>()
                .into()
        })
        .collect();
    let nodes = [Arc::new(a), Arc::new(b)];
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for client in 0..2 {
            let (node, sk, batches) = (node.clone(), sk.clone(), batches.clone());
            tasks.push(tokio::spawn(async move {
                // Each batch goes once through each node; the two clients of a node take
                // alternate batches, from opposite ends on the two nodes.
                let mut unavailable = 0;
                for k in (client..batches.len()).step_by(2) {
                    let k = if n == 0 { k } else { batches.len() - 1 - k };
                    let body = batches[k].to_string();
                    let (_, retried) = until_done(&node, "a metered batch", || {
                        node.http
                            .post(format!("{}/v1/events", node.url))
                            .bearer_auth(&sk)
                            .header("content-type", BATCH)
                            .body(body.clone())
                    })
                    .await;
                    unavailable += retried;
                }
                unavailable
            }));
        }
        // The feature's meter switched 12 times through each node, the nodes out of step.
        let (node, ak) = (node.clone(), ak.clone());
        tasks.push(tokio::spawn(async move {
            let mut unavailable = 0;
            for i in 0..12 {
                let def = feature((i + n) % 2 == 0);
                let (_, retried) = until_done(&node, "a feature change", || {
                    node.http
                        .put(format!("{}/v1/admin/features/api_calls", node.url))
                        .bearer_auth(&ak)
                        .json(&def)
                })
                .await;
                unavailable += retried;
            }
            unavailable
        }));
    }
    let mut unavailable = 0;
    for task in tasks {
        unavailable += task.await.unwrap();
    }

    let stored = nodes[0].all_events(&sk, "").await;
    let ids: HashSet<&str> = stored.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!((stored.len(), ids.len()), (1000, 1000), "each event stored once");
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let property: String = sqlx::query_scalar("SELECT COALESCE(property, '') FROM features WHERE key = 'api_calls'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let counted: Vec<(String, String, f64)> =
        sqlx::query_as("SELECT property, subject, SUM(value) FROM usage_daily GROUP BY 1, 2 ORDER BY 1, 2")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let deadlocks: i64 =
        sqlx::query_scalar("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    eprintln!(
        "catalog changes racing ingest: {deadlocks} deadlocks in PostgreSQL's statistics, {unavailable} answers 503"
    );
    let want: Vec<(String, String, f64)> = (0..5).map(|s| (property.clone(), format!("c{s}"), 200.0)).collect();
    assert_eq!(
        counted, want,
        "the counter the feature reads (property {property:?}), each event once, and no other"
    );
}
