//! Branches an operator or a client meets when the server is busy, down or started bare:
//! `503 overloaded` with `Retry-After` when the writer's queue is full (nothing of that
//! request stored; a resend is), `/readyz` answering `503` when the database does not, and
//! `meterline-server` with no flags at all serving on its default port with its default
//! database file.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::{
    collections::HashSet,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{inproc::InProcess, *};
use serde_json::Value;

/// The answer to one request of a burst, with the ids it carried.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
    ids: Vec<String>,
}

/// One concurrent burst of large batches against a writer whose queue holds one request.
async fn burst(s: &Server, round: usize, requests: usize, per_batch: usize) -> Vec<Answer> {
    let calls: Vec<_> = (0..requests)
        .map(|r| {
            let ids: Vec<String> = (0..per_batch).map(|i| format!("o{round}-{r}-{i}")).collect();
            let events: Vec<Value> = ids.iter().map(|id| ev(id)).collect();
            let body = serde_json::to_vec(&events).unwrap();
            let (http, url, key) = (s.http.clone(), s.url.clone(), s.sk().to_owned());
            tokio::spawn(async move {
                let resp = http
                    .post(format!("{url}/v1/events"))
                    .bearer_auth(key)
                    .header("content-type", BATCH)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                Answer {
                    status,
                    retry_after,
                    body: resp.json::<Value>().await.unwrap(),
                    ids,
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    for call in calls {
        out.push(call.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_writer_queue_answers_503_overloaded_with_retry_after_and_stores_none_of_it() {
    let s = start_with_config("[storage]\nwriter_queue = 1\n");
    // Another connection holds SQLite's write lock for 2 s (well inside the writer's 5 s
    // busy_timeout): the writer waits on its first batch, the queue of one fills behind it,
    // and the rest of the first burst must be refused — however fast the machine.
    let db = s.dir.path().join("m.db");
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(2));
        conn.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    let mut refused: Vec<Vec<String>> = Vec::new();
    let mut stored_ids: HashSet<String> = HashSet::new();
    for round in 0..20 {
        for Answer {
            status,
            retry_after,
            body,
            ids,
        } in burst(&s, round, 12, 2_000).await
        {
            match status {
                202 => {
                    assert_eq!(body["accepted"], ids.len(), "{body}");
                    stored_ids.extend(ids);
                }
                503 => {
                    assert_eq!(body["code"], "overloaded", "{body}");
                    assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
                    refused.push(ids);
                }
                other => panic!("status {other}: {body}"),
            }
        }
        if !refused.is_empty() {
            break;
        }
    }
    holder.join().unwrap();
    assert!(!refused.is_empty(), "the writer's queue of one never filled up");
    // Nothing of a refused request was stored; what was accepted was, once.
    let stored: Vec<String> = s
        .all_events(s.sk(), "")
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored.len(), stored_ids.len());
    assert_eq!(stored.iter().cloned().collect::<HashSet<_>>(), stored_ids);
    // A resend after the pause it asked for goes through.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again: Vec<Value> = refused[0].iter().map(|id| ev(id)).collect();
    let (status, body) = s.send(&again).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], again.len(), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_answers_503_when_the_database_does_not() {
    let server = InProcess::start("").await;
    let http = reqwest::Client::new();
    let ready = || http.get(format!("{}/readyz", server.url)).send();
    let resp = ready().await.unwrap();
    assert_eq!(resp.status(), 200);
    // The read pool closed: `SELECT 1` fails as it does when the database is gone.
    server.state.store.close().await;
    let resp = ready().await.unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_error(status, &body, 503, "unavailable");
    // The process is still up.
    let resp = http.get(format!("{}/healthz", server.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

/// The default address of a server started without flags or config.
const DEFAULT_BIND: &str = "127.0.0.1:8080";

#[test]
fn started_with_no_flags_it_serves_on_8080_with_meterline_db_in_its_directory() {
    // The default port must be free; wait a little for it rather than test something else.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpListener::bind(DEFAULT_BIND).is_err() {
        assert!(
            Instant::now() < deadline,
            "{DEFAULT_BIND} stays taken by another process: the no-flags start cannot be tested"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .env_remove("METERLINE_DATABASE_URL")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let Banner { url, secret, .. } =
        read_banner(&mut child, Duration::from_secs(60)).expect("the server printed no listening line");
    let secret = secret.expect("a first start prints the project's keys");
    assert_eq!(url, format!("http://{DEFAULT_BIND}"));
    assert!(
        dir.path().join("meterline.db").is_file(),
        "no meterline.db in the working directory"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let (status, body) = rt.block_on(async {
        let resp = http
            .post(format!("{url}/v1/events"))
            .bearer_auth(&secret)
            .header("content-type", BATCH)
            .body(serde_json::to_vec(&[ev("bare-1")]).unwrap())
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    // The event is in the default file.
    let db = std::fs::read(dir.path().join("meterline.db")).unwrap_or_default();
    let wal = std::fs::read(dir.path().join("meterline.db-wal")).unwrap_or_default();
    let holds = |bytes: &[u8]| bytes.windows(6).any(|w| w == b"bare-1");
    assert!(holds(&db) || holds(&wal), "the event is not in meterline.db");
}
