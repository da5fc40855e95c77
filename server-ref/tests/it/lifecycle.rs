//! Process lifecycle: health and metrics, JSON errors everywhere, graceful shutdown with a
//! request in flight, restarts, config errors, and durability across `kill -9`.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::{
    collections::HashSet,
    io::{Read, Write},
    net::TcpStream,
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn health_ready_and_metrics() {
    let s = Server::start();
    let resp = s.http.get(format!("{}/healthz", s.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    let resp = s.http.get(format!("{}/readyz", s.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    let mut dup = ev("m1");
    dup["id"] = json!("m1");
    let mut bad = ev("m-bad");
    bad["data"] = json!(3);
    s.send(&[ev("m1"), dup, bad, ev("m2")]).await;

    let resp = s.http.get(format!("{}/metrics", s.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("meterline_events_accepted_total"), 2.0);
    assert_eq!(value("meterline_events_duplicate_total"), 1.0);
    assert_eq!(value("meterline_events_rejected_total"), 1.0);
    assert_eq!(value("meterline_ingest_batch_size_count"), 1.0);
    assert!(
        text.contains("meterline_ingest_batch_size_bucket{le=\"10\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "meterline_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/events\",status=\"202\""
        ),
        "{text}"
    );
}

#[tokio::test]
async fn every_error_is_json() {
    let s = Server::start();
    let cases = [
        ("GET", "/nope", 404, "not_found"),
        ("DELETE", "/healthz", 405, "method_not_allowed"),
        ("PUT", "/v1/events", 405, "method_not_allowed"),
        ("GET", "/v1/admin/keys", 401, "unauthorized"),
    ];
    for (method, path, status, code) in cases {
        let resp = s
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", s.url),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], code, "{method} {path}: {body}");
        assert!(body["message"].is_string());
    }
    // An extractor rejection (admin JSON body with the wrong content type).
    let resp = s
        .http
        .post(format!("{}/v1/admin/keys", s.url))
        .bearer_auth(s.ak())
        .header("content-type", "text/plain")
        .body("{\"kind\":\"secret\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "unsupported_media_type");
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_exits_0() {
    let s = Server::start();
    let addr = s.url.trim_start_matches("http://").to_owned();
    let body = serde_json::to_vec(&(0..100).map(|i| ev(&format!("t{i}"))).collect::<Vec<_>>()).unwrap();
    let (head, tail) = body.split_at(body.len() / 2);

    let mut conn = TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: {BATCH}\r\nContent-Length: {}\r\n\r\n",
        s.sk(),
        body.len()
    )
    .unwrap();
    conn.write_all(head).unwrap();
    conn.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    s.signal(SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    // New connections are refused once shutdown began…
    assert!(
        TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(500)).is_err(),
        "the listener is closed"
    );
    // …but the request in flight completes.
    conn.write_all(tail).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    assert!(response.contains("\"accepted\":100"), "{response}");

    let dir = s.dir.clone();
    let status = s.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "exit status {status:?}");

    let s = Server::start_in(dir, &[]);
    assert!(s.secret.is_none(), "no new keys on restart");
}

#[tokio::test]
async fn restart_keeps_data_and_prints_no_keys() {
    let s = Server::start();
    let (sk, ak) = (s.sk().to_owned(), s.ak().to_owned());
    s.send(&[ev("r1"), ev("r2")]).await;
    s.call("PUT", "/v1/admin/schemas/api.call", &ak, Some(json!({"type":"object"})))
        .await;
    let dir = s.dir.clone();
    s.signal(SIGTERM);
    assert_eq!(s.wait_exit(Duration::from_secs(20)).code(), Some(0));

    let s = Server::start_in(dir.clone(), &[]);
    assert!(s.secret.is_none() && s.admin.is_none(), "keys are printed only once");
    let events = s.all_events(&sk, "").await;
    assert_eq!(events.len(), 2);
    let (_, doc) = s.get("/v1/schema", &sk).await;
    assert!(doc["types"]["api.call"].is_object());
    let (_, again) = s.call("POST", "/v1/events", &sk, Some(json!([ev("r1")]))).await;
    assert_eq!(again["duplicates"], 1, "dedup survives restarts: {again}");
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempdir();
    let path = dir.path().join("meterline.toml");
    std::fs::write(&path, "[ingest]\nmax_events_per_batch = 10\nmax_batch_size = 5\n").unwrap();
    let out = Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "--bind", "127.0.0.1:0"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_batch_size"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing is served or printed");

    // The default file in the working directory is read too.
    std::fs::write(&path, "[storage]\nsynchronous = \"sometimes\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["--bind", "127.0.0.1:0"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("synchronous"));

    // A named file that does not exist is an error.
    let out = Command::new(BIN)
        .args(["--config", "missing.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[tokio::test]
async fn config_file_limits_apply() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("meterline.toml"),
        "[ingest]\nmax_events_per_batch = 3\n[storage]\nsynchronous = \"normal\"\n",
    )
    .unwrap();
    let s = Server::start_in(dir, &[]);
    let (status, body) = s.send(&[ev("1"), ev("2"), ev("3"), ev("4")]).await;
    assert_error(status, &body, 413, "too_many_events");
    let (status, _) = s.send(&[ev("1"), ev("2"), ev("3")]).await;
    assert_eq!(status, 202);
}

/// Acknowledged batches survive `kill -9`, exactly once, while senders run concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_kill_9() {
    let dir = tempdir();
    let mut server = Server::start_in(dir.clone(), &[]);
    let sk = server.sk().to_owned();
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    for round in 0..3 {
        let mut senders = Vec::new();
        for worker in 0..4 {
            let url = server.url.clone();
            let sk = sk.clone();
            let acked = acked.clone();
            senders.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                for batch in 0.. {
                    let ids: Vec<String> = (0..200).map(|i| format!("r{round}-w{worker}-b{batch}-{i}")).collect();
                    let events: Vec<Value> = ids.iter().map(|id| ev(id)).collect();
                    let resp = http
                        .post(format!("{url}/v1/events"))
                        .bearer_auth(&sk)
                        .header("content-type", BATCH)
                        .header("content-encoding", "gzip")
                        .body(gzip(&serde_json::to_vec(&events).unwrap()))
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == 202 => acked.lock().unwrap().extend(ids),
                        other => {
                            eprintln!("sender {worker} stops: {:?}", other.map(|r| r.status()));
                            return;
                        }
                    }
                }
            }));
        }
        // Kill while batches are in flight: once this round has some acknowledgements, a
        // little later (the machine may be slow, so wait for progress rather than a time).
        let before = acked.lock().unwrap().len();
        for _ in 0..600 {
            if acked.lock().unwrap().len() >= before + 800 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(37 * round)).await;
        server.kill9();
        for s in senders {
            s.await.unwrap();
        }
        server = Server::start_in(dir.clone(), &[]);
        assert!(server.secret.is_none());
        let stored = server.all_events(&sk, "").await;
        let mut seen = HashSet::new();
        for e in &stored {
            let id = e["id"].as_str().unwrap().to_owned();
            assert!(seen.insert(id.clone()), "{id} stored twice");
        }
        let acked = acked.lock().unwrap();
        assert!(!acked.is_empty(), "round {round} acknowledged nothing");
        let missing: Vec<_> = acked.iter().filter(|id| !seen.contains(*id)).take(5).collect();
        assert!(missing.is_empty(), "round {round}: acknowledged but lost: {missing:?}");
    }
}
