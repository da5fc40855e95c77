//! The server binary on PostgreSQL: start-up refusals (one line, non-zero exit) and two
//! real `meterline-server` nodes sharing one database — ingest through both stores each
//! event once and counts it once, a stream subscriber on one node sees the changes made
//! through the other in seq order (and resumes on either), a key revoked through one node
//! is refused and its streams closed on the other at once, a plan change through one node
//! reaches the other's subscribers and entitlement answers.
//!
//! The cases needing a database are `#[ignore]`d in a plain `cargo test`; `make
//! test-postgres` runs them on its throwaway cluster.

use std::{
    collections::HashSet,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use meterline_core::key::ApiKey;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::{
    common::{
        BATCH, BIN, Server,
        catalog::call_event,
        ws::{closed_with, connect_key, recv_json, subscribe},
    },
    storage::pg_database,
};

/// Runs the binary on `database_url` and returns (exit success, stdout, stderr) once it
/// exits; panics if it still runs after 30 s.
fn start_refused(database_url: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["--bind", "127.0.0.1:0", "--database-url", database_url])
        .current_dir(dir.path())
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the server still runs 30 s after starting on {database_url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts one error line starting with `want` (the password never shown), a non-zero
/// exit and nothing served.
fn assert_refused((ok, stdout, stderr): (bool, String, String), want: &str) {
    assert!(!ok, "the server exited successfully: {stderr}");
    assert!(stdout.is_empty(), "nothing is served or printed: {stdout}");
    assert!(stderr.starts_with(want), "want {want:?}, got {stderr:?}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
}

/// A wrong scheme, a malformed PostgreSQL URL and a database that does not answer: one
/// line naming the URL (password hidden) and what is wrong, and a non-zero exit.
#[test]
fn bad_database_urls_stop_the_binary() {
    assert_refused(
        start_refused("mysql://u:secret@127.0.0.1/db"),
        "meterline-server: `storage.database_url` must be a sqlite:// or postgres:// URL, got \"mysql://u:***@127.0.0.1/db\"",
    );
    assert_refused(
        start_refused("postgres://u:secret@127.0.0.1:notaport/db"),
        "meterline-server: invalid PostgreSQL URL postgres://u:***@127.0.0.1:notaport/db: ",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert_refused(
        start_refused(&format!("postgres://u:secret@127.0.0.1:{port}/db")),
        &format!("meterline-server: cannot connect to PostgreSQL at postgres://u:***@127.0.0.1:{port}/db: "),
    );
}

/// A database migrated by a newer binary: refused in one line, nothing served.
#[test]
#[ignore = "needs PostgreSQL (make test-postgres)"]
fn a_database_at_a_newer_migration_stops_the_binary() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(async {
        let url = pg_database().await;
        crate::storage::pg_node(&url).await.close().await;
        let mut conn = PgConnection::connect(&url).await.unwrap();
        sqlx::query("INSERT INTO meterline_migrations (version, description, applied_at) VALUES (999, 'future', 'x')")
            .execute(&mut conn)
            .await
            .unwrap();
        url
    });
    assert_refused(
        start_refused(&url),
        &format!("meterline-server: the database {url} is at migration 999, newer than this meterline-server's "),
    );
}

/// Two nodes on one new database, with `config` (TOML) for both. Node A starts first and
/// prints the default project's keys.
pub(crate) async fn two_nodes(config: &str) -> (Server, Server, String) {
    let url = pg_database().await;
    let start = |config: String, url: String| {
        tokio::task::spawn_blocking(move || {
            let dir = Arc::new(tempfile::tempdir().unwrap());
            let path = dir.path().join("meterline.toml");
            std::fs::write(&path, config).unwrap();
            let path = path.display().to_string();
            Server::start_on(dir, &url, "127.0.0.1:0", &["--config", &path], "info")
        })
    };
    let a = start(config.to_owned(), url.clone()).await.unwrap();
    let b = start(config.to_owned(), url.clone()).await.unwrap();
    assert!(b.secret.is_none(), "the second node finds the default project");
    (a, b, url)
}

/// Posts `events` to `node` until it answers 2xx (a node may be busy); returns the answer.
async fn post_until_accepted(node: &Server, key: &str, events: &[Value]) -> Value {
    for _ in 0..50 {
        let resp = node
            .http
            .post(format!("{}/v1/events", node.url))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", BATCH)
            .body(Value::from(events.to_vec()).to_string())
            .send()
            .await;
        if let Ok(resp) = resp
            && resp.status().is_success()
        {
            return resp.json().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never accepted the batch", node.url);
}

/// Clients send the same batches to both nodes at once, each batch also resent: every
/// event is stored once, and the usage counter counts it once.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn two_nodes_store_and_count_the_same_batches_once() {
    let (a, b, url) = two_nodes("").await;
    let sk = a.sk().to_owned();
    // `api.call` metered: each stored event adds 1 to its subject's counter.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO features (project_id, key, kind, event_type, property, definition, updated_at)
         SELECT id, 'api_calls', 'metered', 'api.call', '', '{}', '2026-12-07T10:00:00Z' FROM projects",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let time = "2026-12-07T10:00:00Z";
    let batches: Vec<Vec<Value>> = (0..40)
        .map(|b| {
            (0..25)
                .map(|i| call_event(&format!("e{b}-{i}"), &format!("c{}", i % 3), time, json!({})))
                .collect()
        })
        .collect();
    let nodes = [Arc::new(a), Arc::new(b)];
    let mut clients = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for client in 0..2 {
            let (node, sk, batches) = (node.clone(), sk.clone(), batches.clone());
            clients.push(tokio::spawn(async move {
                // Each client walks the batches from its own starting point and sends each
                // one twice (a retry after a lost answer).
                let offset = (n * 2 + client) * 10;
                let mut accepted = 0;
                for k in 0..batches.len() {
                    let batch = &batches[(k + offset) % batches.len()];
                    for _ in 0..2 {
                        accepted += post_until_accepted(&node, &sk, batch).await["accepted"]
                            .as_u64()
                            .unwrap();
                    }
                }
                accepted
            }));
        }
    }
    let mut accepted = 0;
    for client in clients {
        accepted += client.await.unwrap();
    }
    assert_eq!(accepted, 1000, "each event accepted once over every client and node");
    let stored = nodes[1].all_events(&sk, "").await;
    let ids: HashSet<&str> = stored.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!((stored.len(), ids.len()), (1000, 1000));
    let counted: Vec<(String, f64)> =
        sqlx::query_as("SELECT subject, SUM(value) FROM usage_daily GROUP BY subject ORDER BY subject")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let per_subject = |s: usize| (0..25).filter(|i| i % 3 == s).count() as f64 * 40.0;
    assert_eq!(
        counted,
        vec![
            ("c0".to_owned(), per_subject(0)),
            ("c1".to_owned(), per_subject(1)),
            ("c2".to_owned(), per_subject(2)),
        ]
    );
}

/// A subscriber on node B receives the `schema.updated` messages of changes made through
/// node A by several writers at once, in seq order with none missing; and resumes with
/// `since` on node A.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn a_subscriber_on_one_node_sees_changes_made_through_the_other() {
    let (a, b, _url) = two_nodes("").await;
    let mut ws = connect_key(&b.url, a.sk()).await;
    subscribe(&mut ws, &["c1"], None).await;
    let a = Arc::new(a);
    let mut writers = Vec::new();
    for w in 0..4 {
        let a = a.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..10 {
                let schema = json!({"type": "object", "properties": {"n": {"const": i}}});
                let (status, body) = a
                    .call("PUT", &format!("/v1/admin/schemas/t{w}.e{i}"), a.ak(), Some(schema))
                    .await;
                assert!(status.is_success(), "{status} {body}");
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let mut seqs = Vec::new();
    while seqs.len() < 40 {
        let frame = recv_json(&mut ws).await;
        assert_eq!(frame["type"], "schema.updated", "{frame}");
        seqs.push(frame["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, (1..=40).collect::<Vec<u64>>(), "every message, in seq order");
    // Switching nodes: resume on A after seq 25.
    let mut on_a = connect_key(&a.url, a.sk()).await;
    let (replayed, subscribed) = subscribe(&mut on_a, &["c1"], Some(25)).await;
    let replayed: Vec<u64> = replayed.iter().map(|f| f["seq"].as_u64().unwrap()).collect();
    assert_eq!(replayed, (26..=40).collect::<Vec<u64>>(), "{subscribed}");
}

/// A key revoked through node A: node B refuses it and closes its stream at once — well
/// before B's key cache expires or B polls for revocations (both set to a minute here).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn a_key_revoked_through_one_node_is_refused_by_the_other() {
    let config = "[auth]\nkey_cache_secs = 60\nrevocation_poll_ms = 60000\n";
    let (a, b, _url) = two_nodes(config).await;
    let key = a.new_key("secret").await;
    let id = ApiKey::parse(&key).unwrap().id;
    // B has verified (and cached) the key, and streams with it.
    assert_eq!(b.get("/v1/events?limit=1", &key).await.0, 200);
    let mut ws = connect_key(&b.url, &key).await;
    subscribe(&mut ws, &["c1"], None).await;
    let (status, _) = a.call("DELETE", &format!("/v1/admin/keys/{id}"), a.ak(), None).await;
    assert_eq!(status, 204);
    let started = Instant::now();
    let reason = closed_with(&mut ws, 4403).await;
    assert!(reason.contains(&id) && reason.contains("revoked"), "{reason}");
    let (status, body) = b.get("/v1/events?limit=1", &key).await;
    assert_eq!(status, 401, "{body}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

/// Runs a shell command from the environment variable `var` (set by the test script).
async fn run_env_command(var: &str) {
    let command =
        std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run this case with make test-postgres"));
    let status = tokio::task::spawn_blocking(move || Command::new("sh").args(["-c", &command]).status())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{var} failed: {status}");
}

/// Starts the stopped cluster (`METERLINE_TEST_PG_START`) when dropped.
struct StartOnDrop;

impl Drop for StartOnDrop {
    fn drop(&mut self) {
        if let Ok(command) = std::env::var("METERLINE_TEST_PG_START") {
            let _ = Command::new("sh").args(["-c", &command]).status();
        }
    }
}

/// `GET /readyz` until it answers `want`, at most `within`.
async fn readyz_becomes(node: &Server, want: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let status = node
            .http
            .get(format!("{}/readyz", node.url))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if status.as_ref().ok() == Some(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz is {status:?}, not {want}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// PostgreSQL stopped under a running node: `/readyz` says `503`; started again: the node
/// recovers by itself — `/readyz` `200`, ingest stores again, and the subscriber that stayed
/// connected gets the messages committed after the restart (the stream follower reconnected).
/// Run alone by scripts/test-postgres.sh, which sets the stop and start commands.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn a_node_recovers_from_a_database_restart() {
    let url = pg_database().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let path = dir.path().join("meterline.toml");
    std::fs::write(&path, "[storage]\nacquire_timeout_ms = 1000\n").unwrap();
    let path = path.display().to_string();
    let node =
        tokio::task::spawn_blocking(move || Server::start_on(dir, &url, "127.0.0.1:0", &["--config", &path], "info"))
            .await
            .unwrap();
    readyz_becomes(&node, 200, Duration::from_secs(5)).await;
    let mut ws = connect_key(&node.url, node.sk()).await;
    subscribe(&mut ws, &["c1"], None).await;

    run_env_command("METERLINE_TEST_PG_STOP").await;
    // Should an assertion fail while the cluster is down, start it again for the cases after.
    let restart = StartOnDrop;
    readyz_becomes(&node, 503, Duration::from_secs(10)).await;
    run_env_command("METERLINE_TEST_PG_START").await;
    std::mem::forget(restart);
    readyz_becomes(&node, 200, Duration::from_secs(30)).await;

    let events = [call_event("after-restart", "c1", "2026-12-07T10:00:00Z", json!({}))];
    assert_eq!(post_until_accepted(&node, node.sk(), &events).await["accepted"], 1);
    for i in 0..3 {
        let schema = json!({"type": "object", "properties": {"n": {"const": i}}});
        let (status, body) = node
            .call("PUT", &format!("/v1/admin/schemas/t{i}"), node.ak(), Some(schema))
            .await;
        assert!(status.is_success(), "{status} {body}");
    }
    let seqs: Vec<u64> = [
        recv_json(&mut ws).await,
        recv_json(&mut ws).await,
        recv_json(&mut ws).await,
    ]
    .iter()
    .map(|f| f["seq"].as_u64().unwrap())
    .collect();
    assert_eq!(seqs, [1, 2, 3]);
}

/// Runs the admin CLI against the PostgreSQL database at `url`.
fn admin_cli(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("admin")
        .args(args)
        .args(["--database-url", url])
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

/// The admin CLI on PostgreSQL: a key it creates works on a running node at once, and a key
/// it revokes is refused and its stream closed on that node at once (key cache and
/// revocation poll set to a minute); a catalog change it makes reaches that node's stream.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn the_admin_cli_on_postgres_reaches_running_nodes() {
    let config = "[auth]\nkey_cache_secs = 60\nrevocation_poll_ms = 60000\n";
    let (a, _b, url) = two_nodes(config).await;
    let out = admin_cli(&url, &["keys", "create", "--project", "default", "--kind", "secret"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("secret key: "))
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_owned();
    let id = ApiKey::parse(&key).unwrap().id;
    assert_eq!(a.get("/v1/events?limit=1", &key).await.0, 200);
    let mut ws = connect_key(&a.url, &key).await;
    subscribe(&mut ws, &["c1"], None).await;

    let out = admin_cli(&url, &["keys", "revoke", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let started = Instant::now();
    closed_with(&mut ws, 4403).await;
    assert_eq!(a.get("/v1/events?limit=1", &key).await.0, 401);
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    // A customer the CLI creates: a subscriber on a running node hears it at once.
    let mut ws = connect_key(&a.url, a.sk()).await;
    subscribe(&mut ws, &["c9"], None).await;
    for (collection, id, body) in [
        ("features", "sso", r#"{"kind":"boolean"}"#),
        ("plans", "pro", r#"{"features":{"sso":{}}}"#),
        ("customers", "c9", r#"{"plan":"pro"}"#),
    ] {
        let out = admin_cli(&url, &[collection, "put", id, body, "--project", "default"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let started = Instant::now();
    let frame = recv_json(&mut ws).await;
    assert_eq!(
        (frame["type"].as_str(), frame["subject"].as_str()),
        (Some("entitlements.updated"), Some("c9"))
    );
    assert_eq!(frame["data"]["entitlements"]["sso"]["has_access"], true, "{frame}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let out = admin_cli(&url, &["features", "list", "--project", "default"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("\"sso\""), "{stdout}");
}

/// The catalog on two nodes: the `[catalog]` of the config file is applied at start (the
/// second node finds it applied); a plan change made through node A reaches a subscriber on
/// node B and B's entitlement answer at once, with the usage of events ingested through both;
/// the thresholds that events through A cross reach B's subscriber.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn a_plan_change_through_one_node_reaches_the_other() {
    let config = r#"
[catalog]
project = "default"

[catalog.features.api_calls]
kind = "metered"
event_type = "api.call"

[catalog.plans.pro.features.api_calls]
limit = 1000
period = "month"

[catalog.customers.c1]
plan = "pro"
billing_anchor = 2026-01-15T00:00:00Z
"#;
    let (a, b, _url) = two_nodes(config).await;
    let (sk, ak) = (a.sk().to_owned(), a.ak().to_owned());
    let now = chrono::Utc::now().to_rfc3339();
    let events = |from: usize, n: usize| -> Vec<Value> {
        (from..from + n)
            .map(|i| call_event(&format!("e{i}"), "c1", &now, json!({})))
            .collect()
    };
    assert_eq!(post_until_accepted(&a, &sk, &events(0, 3)).await["accepted"], 3);
    assert_eq!(post_until_accepted(&b, &sk, &events(3, 2)).await["accepted"], 2);
    let (status, before) = b.get("/v1/customers/c1/entitlements", &sk).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(
        before["entitlements"]["api_calls"]["usage"].as_f64(),
        Some(5.0),
        "{before}"
    );
    assert_eq!(before["version"], 1, "one message: the customer created at start");

    let mut ws = connect_key(&b.url, &sk).await;
    subscribe(&mut ws, &["c1"], None).await;
    let plan = json!({"features": {"api_calls": {"limit": 10, "period": "month"}}});
    let started = Instant::now();
    let (status, body) = a.call("PUT", "/v1/admin/plans/pro", &ak, Some(plan)).await;
    assert_eq!(status, 200, "{body}");
    let frame = recv_json(&mut ws).await;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(
        (frame["type"].as_str(), frame["seq"].as_u64()),
        (Some("entitlements.updated"), Some(2)),
        "{frame}"
    );
    let told = &frame["data"]["entitlements"]["api_calls"];
    assert_eq!(
        (told["limit"].as_f64(), told["usage"].as_f64()),
        (Some(10.0), Some(5.0)),
        "{frame}"
    );
    let (_, after) = b.get("/v1/customers/c1/entitlements", &sk).await;
    assert_eq!(after, frame["data"], "B answers what it sent");
    let (_, usage) = b.get("/v1/customers/c1/usage", &sk).await;
    assert_eq!(
        usage["features"]["api_calls"]["current"]["usage"].as_f64(),
        Some(5.0),
        "{usage}"
    );
    let (_, listed) = b.get("/v1/admin/plans", &ak).await;
    assert_eq!(
        listed["plans"][0]["features"]["api_calls"]["limit"].as_f64(),
        Some(10.0),
        "{listed}"
    );

    // 5 more calls through A cross 80 % and the limit: B's subscriber hears both, then the
    // answer without access, in seq order.
    assert_eq!(post_until_accepted(&a, &sk, &events(5, 5)).await["accepted"], 5);
    let told: Vec<Value> = [
        recv_json(&mut ws).await,
        recv_json(&mut ws).await,
        recv_json(&mut ws).await,
    ]
    .into();
    let kinds: Vec<(u64, &str, f64)> = told
        .iter()
        .map(|m| {
            let detail = m["data"]["threshold"].as_f64().unwrap_or(-1.0);
            (m["seq"].as_u64().unwrap(), m["type"].as_str().unwrap(), detail)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (3, "usage.threshold", 0.8),
            (4, "usage.threshold", 1.0),
            (5, "entitlements.updated", -1.0)
        ],
        "{told:?}"
    );
    assert_eq!(
        told[2]["data"]["entitlements"]["api_calls"]["has_access"], false,
        "{told:?}"
    );
}
