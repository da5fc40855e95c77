//! `POST /v1/events` and `POST /api/v1/events` happy paths: content types, encodings,
//! counts, duplicates, large batches.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn batch_single_and_plain_json_are_stored() {
    let s = Server::start();
    let (status, body) = s.send(&[ev("b1"), ev("b2")]).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"accepted": 2, "duplicates": 0, "rejected": []}));

    let one = serde_json::to_vec(&ev("s1")).unwrap();
    let (status, _, body) = s
        .post_raw("/v1/events", Some(s.sk()), Some(SINGLE), None, one.clone())
        .await;
    assert_eq!((status.as_u16(), body["accepted"].as_u64()), (202, Some(1)), "{body}");

    for (ct, id) in [
        ("application/json", "j1"),
        ("application/json; charset=utf-8", "j2"),
        ("Application/JSON;charset=UTF-8", "j3"),
    ] {
        let (status, _, body) = s
            .post_raw(
                "/v1/events",
                Some(s.sk()),
                Some(ct),
                None,
                serde_json::to_vec(&ev(id)).unwrap(),
            )
            .await;
        assert_eq!(
            (status.as_u16(), body["accepted"].as_u64()),
            (202, Some(1)),
            "{ct}: {body}"
        );
    }
    let array = serde_json::to_vec(&[ev("j4"), ev("j5")]).unwrap();
    let (status, _, body) = s
        .post_raw("/v1/events", Some(s.sk()), Some("application/json"), None, array)
        .await;
    assert_eq!((status.as_u16(), body["accepted"].as_u64()), (202, Some(2)), "{body}");

    let stored = s.all_events(s.sk(), "").await;
    let ids: Vec<&str> = stored.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["b1", "b2", "s1", "j1", "j2", "j3", "j4", "j5"]);
}

#[tokio::test]
async fn every_encoding_is_accepted() {
    let s = Server::start();
    let mut n = 0;
    for enc in ["gzip", "zstd", "identity", "GZIP"] {
        let events: Vec<Value> = (0..50).map(|i| ev(&format!("{enc}-{i}"))).collect();
        let raw = serde_json::to_vec(&events).unwrap();
        let body = match enc {
            "gzip" | "GZIP" => gzip(&raw),
            "zstd" => zstd(&raw),
            _ => raw,
        };
        let (status, _, resp) = s
            .post_raw("/v1/events", Some(s.sk()), Some(BATCH), Some(enc), body)
            .await;
        assert_eq!(status, 202, "{enc}: {resp}");
        assert_eq!(resp["accepted"], 50, "{enc}");
        n += 50;
    }
    assert_eq!(s.all_events(s.sk(), "").await.len(), n);
}

#[tokio::test]
async fn events_come_back_exactly_as_sent() {
    let s = Server::start();
    let minimal = json!({"specversion":"1.0","id":"m","source":"src","type":"t","subject":"c"});
    let mut with_extension = minimal.clone();
    with_extension["traceparent"] = json!("00-abc-def-01");
    let mut offset = ev("o");
    offset["time"] = json!("2026-11-24T12:00:00.5+02:00");
    offset["data"] = json!({"nested": {"a": [1, 2.5, "x", null, true]}, "unicode": "héllo ✓"});
    let (status, body) = s.send(&[with_extension, offset.clone(), ev("full")]).await;
    assert_eq!(status, 202, "{body}");
    let stored = s.all_events(s.sk(), "").await;
    // Extension attributes are not stored (documented); everything else round-trips.
    assert_eq!(stored, vec![minimal, offset, ev("full")]);
}

#[tokio::test]
async fn resending_a_batch_gives_duplicates() {
    let s = Server::start();
    let batch: Vec<Value> = (0..20).map(|i| ev(&format!("e{i}"))).collect();
    let (_, first) = s.send(&batch).await;
    assert_eq!(first, json!({"accepted": 20, "duplicates": 0, "rejected": []}));
    let (status, again) = s.send(&batch).await;
    assert_eq!(status, 202);
    assert_eq!(again, json!({"accepted": 0, "duplicates": 20, "rejected": []}));
    assert_eq!(s.all_events(s.sk(), "").await.len(), 20);
}

#[tokio::test]
async fn duplicates_within_one_batch_and_per_source() {
    let s = Server::start();
    let mut other_source = ev("x");
    other_source["source"] = json!("other-app");
    let (_, body) = s.send(&[ev("x"), ev("x"), ev("y"), other_source, ev("x")]).await;
    // (billing-api, x) once, (other-app, x) is a different event.
    assert_eq!(body, json!({"accepted": 3, "duplicates": 2, "rejected": []}));
    let stored = s.all_events(s.sk(), "").await;
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[2]["source"], "other-app");
}

#[tokio::test]
async fn ten_thousand_events_in_one_batch() {
    let s = Server::start();
    let batch: Vec<Value> = (0..10_000).map(|i| ev(&format!("big-{i:05}"))).collect();
    let body = gzip(&serde_json::to_vec(&batch).unwrap());
    let (status, _, resp) = s
        .post_raw("/v1/events", Some(s.sk()), Some(BATCH), Some("gzip"), body)
        .await;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(resp["accepted"], 10_000);
    let stored = s.all_events(s.sk(), "").await;
    assert_eq!(stored.len(), 10_000);
    assert_eq!(stored[9_999]["id"], "big-09999");
}

#[tokio::test]
async fn openmeter_route_answers_204_or_400_with_rejections() {
    let s = Server::start();
    for (ct, body) in [
        (SINGLE, serde_json::to_vec(&ev("om1")).unwrap()),
        (BATCH, serde_json::to_vec(&[ev("om2"), ev("om3")]).unwrap()),
        ("application/json", serde_json::to_vec(&ev("om4")).unwrap()),
        ("application/json", serde_json::to_vec(&[ev("om5")]).unwrap()),
    ] {
        let (status, _, resp) = s.post_raw("/api/v1/events", Some(s.sk()), Some(ct), None, body).await;
        assert_eq!(status, 204, "{ct}: {resp}");
        assert_eq!(resp, Value::Null, "204 has no body");
    }
    // A resend is still a success: the events are stored (once).
    let (status, _, _) = s
        .post_raw(
            "/api/v1/events",
            Some(s.sk()),
            Some(SINGLE),
            None,
            serde_json::to_vec(&ev("om1")).unwrap(),
        )
        .await;
    assert_eq!(status, 204);

    let mut bad = ev("om-bad");
    bad["data"] = json!("not an object");
    let body = serde_json::to_vec(&[ev("om6"), bad]).unwrap();
    let (status, _, resp) = s
        .post_raw("/api/v1/events", Some(s.sk()), Some(BATCH), None, body)
        .await;
    assert_error(status, &resp, 400, "invalid_event");
    assert_eq!(resp["rejected"][0]["index"], 1);
    assert_eq!(resp["rejected"][0]["path"], "/data");
    let ids: Vec<String> = s
        .all_events(s.sk(), "")
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        ["om1", "om2", "om3", "om4", "om5", "om6"],
        "the valid event of the mixed batch is stored"
    );

    let (status, _, resp) = s
        .post_raw("/api/v1/events", Some(s.sk()), Some("text/plain"), None, b"{}".to_vec())
        .await;
    assert_error(status, &resp, 415, "unsupported_media_type");
}

#[tokio::test]
async fn admin_keys_cannot_ingest() {
    let s = Server::start();
    let body = serde_json::to_vec(&[ev("a")]).unwrap();
    let (status, _, resp) = s.post_raw("/v1/events", Some(s.ak()), Some(BATCH), None, body).await;
    assert_error(status, &resp, 403, "forbidden");
}

/// The thread names of a process (Linux `/proc/<pid>/task/*/comm`).
fn thread_names(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}

/// With `synchronous = "full"` (the default) on a database file, the server fsyncs each
/// commit's WAL on its `meterline-sync` thread before the 202, overlapping the next
/// transaction (docs/decisions.md, DR-47); were the WAL file not found, it
/// would fall back to SQLite's own sync and this thread would be missing. With `normal`,
/// SQLite's behaviour is kept and there is no such thread.
#[tokio::test]
async fn full_durability_syncs_the_wal_on_the_servers_own_thread() {
    if !std::path::Path::new("/proc/self/task").exists() {
        eprintln!("skipped: no /proc/<pid>/task to read the server's thread names from");
        return;
    }
    let s = Server::start();
    let (status, body) = s.send(&[ev("w1"), ev("w2")]).await;
    assert_eq!((status.as_u16(), body["accepted"].as_u64()), (202, Some(2)), "{body}");
    let names = thread_names(s.pid());
    assert!(names.iter().any(|n| n == "meterline-sync"), "{names:?}");
    assert!(names.iter().any(|n| n == "meterline-write"), "{names:?}");

    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    std::fs::write(
        dir.path().join("meterline.toml"),
        "[storage]\nsynchronous = \"normal\"\n",
    )
    .unwrap();
    let s = Server::start_in(dir, &[]);
    let (status, body) = s.send(&[ev("n1")]).await;
    assert_eq!((status.as_u16(), body["accepted"].as_u64()), (202, Some(1)), "{body}");
    let names = thread_names(s.pid());
    assert!(!names.iter().any(|n| n == "meterline-sync"), "{names:?}");
    assert!(names.iter().any(|n| n == "meterline-write"), "{names:?}");
}

/// After a burst, the `-wal` file goes back to `storage.wal_size_limit_bytes` once the
/// checkpoints caught up and the writer starts the log over: SQLite alone would keep it at
/// the burst's size for good.
#[tokio::test]
async fn the_wal_shrinks_back_after_a_burst() {
    const LIMIT: u64 = 256 * 1024;
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    std::fs::write(
        dir.path().join("meterline.toml"),
        format!("[storage]\nwal_size_limit_bytes = {LIMIT}\n"),
    )
    .unwrap();
    let s = Server::start_in(dir.clone(), &[]);
    let wal = std::path::PathBuf::from(format!("{}-wal", s.db_url().trim_start_matches("sqlite://")));
    let size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    for b in 0..5 {
        let batch: Vec<Value> = (0..1_000)
            .map(|i| {
                let mut e = ev(&format!("burst-{b}-{i}"));
                e["data"] = json!({"pad": "x".repeat(300)});
                e
            })
            .collect();
        let (status, body) = s.send(&batch).await;
        assert_eq!(status, 202, "{body}");
    }
    let after_burst = size();
    assert!(
        after_burst > 4 * LIMIT,
        "the burst should grow the WAL well past the limit: {after_burst} bytes"
    );
    // The server checkpoints every second; the first commit after the log starts over cuts it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut n = 0;
    while size() > LIMIT + 64 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL stayed at {} bytes (limit {LIMIT})",
            size()
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        n += 1;
        let (status, body) = s.send(&[ev(&format!("after-{n}"))]).await;
        assert_eq!(status, 202, "{body}");
    }
    assert_eq!(
        s.all_events(s.sk(), "").await.len(),
        5_000 + n,
        "nothing lost while the WAL shrank"
    );
}
