//! Per-key rate limits across nodes on PostgreSQL (DR-115): two real `meterline-server`
//! nodes on one database together accept no more than one node would, and a node that dies
//! stops taking a share — the survivor gets the whole limit back within the live window.
//!
//! Run by `make test-postgres` (`#[ignore]`d in a plain `cargo test`: no database there).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use meterline_server::nodes::{HEARTBEAT, LIVE_WINDOW};
use sqlx::{Connection, PgConnection};

use crate::{common::Server, pg_nodes::two_nodes};

/// The key's limit in these cases: 20 requests per second, burst 20.
const LIMITS: &str = "[limits]\nrequests_per_second = 20\nburst = 20\n";
const RATE: f64 = 20.0;
const BURST: f64 = 20.0;
/// How long the nodes are hammered.
const LOAD: Duration = Duration::from_secs(3);
/// Slack on an upper bound: 5 % for timing (20 / 2 has no rounding).
const TOLERANCE: f64 = 1.05;

/// The value of the gauge line starting with `name` (labels included) in `node`'s /metrics.
async fn gauge(node: &Server, name: &str) -> Option<f64> {
    let text = node
        .http
        .get(format!("{}/metrics", node.url))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Polls `node`'s `meterline_live_nodes` until it is `want`, at most `within`; how long it
/// took, or `None` with the last value seen.
async fn live_nodes_become(node: &Server, want: f64, within: Duration) -> Result<Duration, Option<f64>> {
    let started = Instant::now();
    loop {
        let seen = gauge(node, "meterline_live_nodes").await;
        if seen == Some(want) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            return Err(seen);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two clients per node send `GET /v1/events?limit=1` with `key` back to back (5 ms apart)
/// for [`LOAD`]; returns the requests each node accepted and the seconds the load lasted.
/// Anything but `200` or `429 rate_limited` fails the case.
async fn hammer(nodes: &[Arc<Server>], key: &str) -> (Vec<u64>, f64) {
    let started = Instant::now();
    let mut clients = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for _ in 0..2 {
            let (node, key) = (node.clone(), key.to_owned());
            clients.push(tokio::spawn(async move {
                let mut accepted = 0u64;
                while started.elapsed() < LOAD {
                    let resp = node
                        .http
                        .get(format!("{}/v1/events?limit=1", node.url))
                        .header("authorization", format!("Bearer {key}"))
                        .send()
                        .await
                        .unwrap();
                    match resp.status().as_u16() {
                        200 => accepted += 1,
                        429 => assert!(resp.headers().contains_key("retry-after")),
                        other => panic!("{} answered {other}: {}", node.url, resp.text().await.unwrap()),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (n, accepted)
            }));
        }
    }
    let mut per_node = vec![0; nodes.len()];
    for client in clients {
        let (n, accepted) = client.await.unwrap();
        per_node[n] += accepted;
    }
    (per_node, started.elapsed().as_secs_f64())
}

/// Two nodes hammered at once with one key limited to 20/s, burst 20: together they accept
/// at most what one node would (20 × seconds + 20, 5 % slack), each its half. With each node
/// enforcing the whole limit (the per-node limits before DR-115) they accept about twice
/// that. A node stopping gracefully deletes its row.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn two_nodes_together_hold_one_keys_limit() {
    let (a, b, url) = two_nodes(LIMITS).await;
    let sk = a.sk().to_owned();
    let (a, b) = (Arc::new(a), Arc::new(b));
    // A counted itself alone when it started; it sees B at its next heartbeat.
    let within = HEARTBEAT * 3;
    let mut shares = Vec::new();
    for node in [&a, &b] {
        let seen = live_nodes_become(node, 2.0, within).await;
        assert!(seen.is_ok(), "{} counts {seen:?} live nodes, not 2", node.url);
        shares.push(gauge(node, "meterline_rate_limit_share{limit=\"requests_per_second\"}").await);
    }

    let (per_node, secs) = hammer(&[a.clone(), b.clone()], &sk).await;
    let total: u64 = per_node.iter().sum();
    let one_node = RATE * secs + BURST;
    eprintln!(
        "limits across two nodes: accepted {per_node:?}, total {total} in {secs:.2} s; one node's bound {one_node:.0}"
    );
    assert!(
        total as f64 <= one_node * TOLERANCE,
        "two nodes accepted {total} ({per_node:?}) in {secs:.2} s: more than one node's {one_node:.0} (+5 %)"
    );
    for (n, accepted) in per_node.iter().enumerate() {
        let half = RATE / 2.0 * secs + BURST / 2.0;
        assert!(
            *accepted as f64 <= half * TOLERANCE,
            "node {n}: {accepted} > its share {half:.0}"
        );
    }
    assert!(
        total as f64 >= RATE * secs * 0.5,
        "only {total} accepted in {secs:.2} s: the load did not reach the limit"
    );
    assert_eq!(shares, [Some(10.0), Some(10.0)], "each node's share in /metrics");

    let b = Arc::into_inner(b).unwrap();
    b.signal(crate::common::SIGTERM);
    assert!(b.wait_exit(Duration::from_secs(20)).success());
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM server_nodes")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 1, "B deleted its row as it stopped");
    let seen = live_nodes_become(&a, 1.0, within).await;
    assert!(seen.is_ok(), "A counts {seen:?} live nodes after B stopped");
}

/// Node B killed with SIGKILL (its row stays): A drops it from the count within the live
/// window plus a heartbeat (and a margin for this busy machine), and alone accepts the whole
/// limit again — more than its half could give. A row stale for longer than the prune age is
/// never counted and is deleted.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn a_killed_nodes_share_returns_to_the_survivor() {
    let (a, b, url) = two_nodes(LIMITS).await;
    let sk = a.sk().to_owned();
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO server_nodes (node_id, started_at, last_seen)
         VALUES ('stale', now() - interval '1 hour', now() - interval '10 minutes')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let seen = live_nodes_become(&a, 2.0, HEARTBEAT * 3).await;
    assert!(
        seen.is_ok(),
        "A counts {seen:?} live nodes, not 2 (the stale row is not one)"
    );

    b.kill9();
    let within = LIVE_WINDOW + HEARTBEAT + Duration::from_secs(2);
    let dropped = live_nodes_become(&a, 1.0, within).await;
    let a = Arc::new(a);
    let (per_node, secs) = hammer(std::slice::from_ref(&a), &sk).await;
    let accepted = per_node[0];
    let half = RATE / 2.0 * secs + BURST / 2.0;
    eprintln!(
        "limits after a node was killed: A alone accepted {accepted} in {secs:.2} s (half share at most {half:.0}); B dropped after {dropped:?}"
    );
    assert!(
        dropped.is_ok(),
        "A still counts {dropped:?} live nodes {within:?} after B was killed"
    );
    assert!(
        accepted as f64 >= RATE * secs * 0.9 && accepted as f64 <= (RATE * secs + BURST) * TOLERANCE,
        "A alone accepted {accepted} in {secs:.2} s: not the whole limit (half would be at most {half:.0})"
    );
    let stale: i64 = sqlx::query_scalar("SELECT count(*) FROM server_nodes WHERE node_id = 'stale'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(stale, 0, "the stale row was pruned");
}
