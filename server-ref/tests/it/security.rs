//! Hostile clients at the connection and storage level: slow-loris and idle connections are
//! closed, the connection cap holds, keys are stored only as hashes, SQL-looking text in
//! every string field is stored and matched literally, and malformed headers get clean
//! answers. (Tenant isolation is tested per area: `admin.rs`, `catalog.rs`, `tokens.rs`,
//! `stream.rs`; sizes and zip bombs in `ingest_errors.rs`.)

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use common::{Server, assert_error, ev, start_with_config};
use serde_json::{Value, json};

/// Reads from `stream` until the server closes it; the time that took, or `None` if it was
/// still open at `deadline`.
fn closed_within(stream: &mut TcpStream, deadline: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 4096];
    while started.elapsed() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

fn connect(s: &Server) -> TcpStream {
    TcpStream::connect(s.url.trim_start_matches("http://")).unwrap()
}

/// Sends a raw request and reads the whole answer (`Connection: close`).
fn raw(s: &Server, request: &[u8]) -> String {
    let mut stream = connect(s);
    stream.write_all(request).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn slow_loris_idle_and_kept_alive_connections_are_closed() {
    let s = start_with_config("[server]\nheader_read_timeout_secs = 1\n");
    // Opens and sends nothing.
    let mut silent = connect(&s);
    // Sends its headers one byte at a time, never finishing.
    let mut loris = connect(&s);
    loris
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let dripping = {
        let mut loris = loris.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..100 {
                if loris.write_all(b"a").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    // Asks once, then idles on the kept-alive connection.
    let mut idle = connect(&s);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    for (name, stream) in [("silent", &mut silent), ("slow-loris", &mut loris), ("idle", &mut idle)] {
        let took = closed_within(stream, Duration::from_secs(10));
        assert!(took.is_some(), "{name} connection still open after 10 s");
    }
    dripping.join().unwrap();
    // The server is fine.
    let answer = raw(&s, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn the_connection_cap_holds_and_frees_up() {
    let s = start_with_config("[server]\nmax_connections = 3\n");
    let held: Vec<TcpStream> = (0..3).map(|_| connect(&s)).collect();
    // A fourth connection is accepted by the kernel but not served while three are open.
    let mut waiting = connect(&s);
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    waiting.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut buf = [0u8; 1024];
    assert!(waiting.read(&mut buf).is_err(), "served beyond max_connections");
    drop(held);
    waiting.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = waiting.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn keys_are_stored_only_as_hashes() {
    let s = Server::start();
    let minted = s.new_key("secret").await;
    let publishable = s.new_key("publishable").await;
    s.send(&[ev("e1")]).await; // the writer committed: the WAL holds recent pages
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(s.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("m.db") {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(bytes.len() > 4096, "read the database files");
    for key in [s.sk(), s.ak(), minted.as_str(), publishable.as_str()] {
        // The secret part is everything after the public id (ml_sk_<id>_<secret>).
        let secret = key.rsplit('_').next().unwrap();
        assert!(secret.len() >= 20, "{key}");
        let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(!found, "the secret of {key} is in the database files");
    }
}

#[tokio::test]
async fn sql_in_every_string_field_is_stored_and_matched_literally() {
    let s = Server::start();
    let hostile = [
        "x'; DROP TABLE events; --",
        "\" OR 1=1 --",
        "' UNION SELECT key_hash FROM api_keys --",
        "%' OR '%'='",
        "a\u{0}b",
        "robert'); DELETE FROM projects; --",
    ];
    // CloudEvents Strings hold no control characters and `source` is a URI-reference: the
    // attributes carry the text with NUL spelled out, `source` percent-encoded; `data` as it is.
    let attr = |text: &str| text.replace('\0', "\\0");
    let mut events = Vec::new();
    for (i, text) in hostile.iter().enumerate() {
        let mut e = ev(&format!("{}-{i}", attr(text)));
        e["source"] = json!(format!("src-{}", urlencode(text)));
        e["type"] = json!(format!("t {}", attr(text)));
        e["subject"] = json!(format!("s {}", attr(text)));
        e["data"] = json!({ *text: text, "nested": [text] });
        events.push(e);
    }
    events.push(ev("plain"));
    let (status, resp) = s.send(&events).await;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(resp["accepted"], hostile.len() + 1, "{resp}");

    let stored = s.all_events(s.sk(), "").await;
    assert_eq!(stored.len(), hostile.len() + 1);
    for (i, text) in hostile.iter().enumerate() {
        let back = stored
            .iter()
            .find(|e| e["id"] == format!("{}-{i}", attr(text)))
            .unwrap_or_else(|| panic!("{text:?} not stored verbatim"));
        assert_eq!(back["source"], format!("src-{}", urlencode(text)));
        assert_eq!(back["data"][*text], *text);
        // Filters match the text exactly, never as SQL or a pattern.
        for (param, value) in [
            ("type", format!("t {}", attr(text))),
            ("subject", format!("s {}", attr(text))),
        ] {
            let query = format!("{param}={}", urlencode(&value));
            let found = s.all_events(s.sk(), &query).await;
            assert_eq!(found.len(), 1, "{param}={value:?}: {found:?}");
        }
        // Path parameters too.
        let path = format!("/v1/customers/{}/entitlements", urlencode(text));
        let (status, body) = s.get(&path, s.sk()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["entitlements"], json!({}));
        let (status, body) = s
            .call("DELETE", &format!("/v1/admin/keys/{}", urlencode(text)), s.ak(), None)
            .await;
        assert_error(status, &body, 404, "not_found");
    }
    for pattern in ["%", "_", "t %", "' OR '1'='1"] {
        let found = s.all_events(s.sk(), &format!("type={}", urlencode(pattern))).await;
        assert!(found.is_empty(), "type={pattern:?} matched {found:?}");
    }
    // Everything still works.
    let (_, resp) = s.send(&[ev("after")]).await;
    assert_eq!(resp["accepted"], 1);
    let (status, keys) = s.get("/v1/admin/keys", s.ak()).await;
    assert_eq!(status, 200);
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2, "{keys}");
}

#[tokio::test]
async fn malformed_headers_get_clean_answers() {
    let s = Server::start();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "non-UTF-8 key",
            b"GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ml_sk_\xff\xfe\r\nConnection: close\r\n\r\n"
                .to_vec(),
        ),
        (
            "NUL in the key",
            b"GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ml_sk_a\x00b\r\nConnection: close\r\n\r\n"
                .to_vec(),
        ),
        (
            "folded header",
            b"GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\n Injected: 1\r\nConnection: close\r\n\r\n"
                .to_vec(),
        ),
        (
            "two keys",
            format!(
                "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                s.sk(),
                s.ak()
            )
            .into_bytes(),
        ),
        (
            "bare LF and a header without a colon",
            b"GET /v1/events HTTP/1.1\nHost: x\nEvil\nConnection: close\n\n".to_vec(),
        ),
        (
            "100 KiB header",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
                "a".repeat(100 * 1024)
            )
            .into_bytes(),
        ),
        (
            "CRLF smuggled in a token header",
            format!(
                "GET /v1/customers/c1/entitlements HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nX-Meterline-Customer-Token: a%0d%0aSet-Cookie: x=1\r\nConnection: close\r\n\r\n",
                s.sk()
            )
            .into_bytes(),
        ),
    ];
    for (name, request) in cases {
        let answer = raw(&s, &request);
        let status: u16 = answer
            .get(9..12)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no status line in {answer:?}"));
        assert!((400..500).contains(&status) || status == 200, "{name}: {answer}");
        assert!(!answer.to_ascii_lowercase().contains("set-cookie"), "{name}: {answer}");
        assert!(!answer.contains("\r\nInjected"), "{name}: {answer}");
        if status == 200 {
            // Only a request that was a valid one may succeed: never a key mix-up.
            assert!(!name.contains("key"), "{name}: {answer}");
        }
    }
    let (_, resp) = s.send(&[ev("still-fine")]).await;
    assert_eq!(resp["accepted"], 1);
    let events: Vec<Value> = s.all_events(s.sk(), "").await;
    assert_eq!(events.len(), 1);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every documented operation (`openapi.json`), called with project B's secret and admin keys
/// on project A's resources: no answer shows A's data, and afterwards A's data is exactly
/// as before.
#[tokio::test]
async fn no_documented_endpoint_lets_one_project_read_or_change_another() {
    let s = Server::start();
    let (a_sk, a_ak) = (s.sk().to_owned(), s.ak().to_owned());
    // Project A's data, marked with text that never appears in a request.
    s.call(
        "PUT",
        "/v1/admin/schemas/alpha.type",
        &a_ak,
        Some(json!({"type":"object","title":"alpha-schema-marker"})),
    )
    .await;
    for (path, body) in [
        ("features/alpha-feat", json!({"kind":"config"})),
        (
            "plans/alpha-plan",
            json!({"features":{"alpha-feat":{"value":"alpha-config-marker"}}}),
        ),
        ("customers/alpha-cust", json!({"plan":"alpha-plan"})),
    ] {
        common::catalog::put_ok(&s, &a_ak, path, body).await;
    }
    let mut event = ev("alpha-event");
    event["type"] = json!("alpha.type");
    event["subject"] = json!("alpha-cust");
    event["data"] = json!({"note": "alpha-data-marker"});
    assert_eq!(s.send(&[event]).await.1["accepted"], 1);
    let (_, keys) = s.get("/v1/admin/keys", &a_ak).await;
    let a_key_id = keys["keys"][0]["id"].as_str().unwrap().to_owned();
    let markers = [
        "alpha-schema-marker",
        "alpha-config-marker",
        "alpha-data-marker",
        a_key_id.as_str(),
    ];

    let snapshot = |s: &Server| {
        let (sk, ak) = (a_sk.clone(), a_ak.clone());
        let s_url = s.url.clone();
        async move {
            let http = reqwest::Client::new();
            let mut out = Vec::new();
            for (path, key) in [
                ("/v1/events?limit=1000", &sk),
                ("/v1/schema", &sk),
                ("/v1/admin/schemas", &ak),
                ("/v1/admin/settings", &ak),
                ("/v1/admin/keys", &ak),
                ("/v1/admin/features", &ak),
                ("/v1/admin/plans", &ak),
                ("/v1/admin/customers", &ak),
                ("/v1/customers/alpha-cust/entitlements", &sk),
                ("/v1/customers/alpha-cust/usage", &sk),
            ] {
                let resp = http
                    .get(format!("{s_url}{path}"))
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{path}");
                out.push((path, resp.json::<Value>().await.unwrap()));
            }
            out
        }
    };
    let before = snapshot(&s).await;

    // Project B.
    let out = common::cli(s.dir.path(), &["admin", "project", "create", "beta"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let b_keys = [
        common::key_line(&out.stdout, "secret"),
        common::key_line(&out.stdout, "admin"),
    ];

    let doc: Value = serde_json::from_str(meterline_server::health::OPENAPI_JSON).unwrap();
    let mut calls = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{type}", "alpha.type")
            .replace("{id}", &a_key_id)
            .replace("{subject}", "alpha-cust")
            .replace(
                "{key}",
                if path.contains("/plans/") {
                    "alpha-plan"
                } else {
                    "alpha-feat"
                },
            );
        let body = if path.contains("/features/") {
            json!({"kind":"boolean"})
        } else if path.contains("/plans/") {
            json!({"features":{}})
        } else if path.contains("/customers/") {
            json!({})
        } else if path.contains("/schemas/") {
            json!({"type":"object"})
        } else if path.ends_with("/settings") {
            json!({"strict_types": true})
        } else if path.ends_with("/keys") {
            json!({"kind":"secret"})
        } else {
            json!([ev("alpha-event")])
        };
        for method in item.as_object().unwrap().keys().filter(|m| *m != "parameters") {
            for key in &b_keys {
                let resp = s
                    .http
                    .request(method.to_uppercase().parse().unwrap(), format!("{}{concrete}", s.url))
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status();
                // Unescaped text: /metrics and /openapi.json are not JSON objects of data.
                let text = resp.text().await.unwrap();
                assert!(status.as_u16() < 500, "{method} {concrete}: {status} {text}");
                // (An id the request itself carries may be echoed in the error.)
                for marker in markers.iter().filter(|m| !concrete.contains(**m)) {
                    assert!(
                        !text.contains(marker),
                        "{method} {concrete} with a project B key shows A's {marker:?}: {text}"
                    );
                }
                calls += 1;
            }
        }
    }
    assert!(calls >= 56, "{calls} calls");
    let after = snapshot(&s).await;
    for ((path, was), (_, now)) in before.iter().zip(&after) {
        assert_eq!(was, now, "project A's {path} changed");
    }
}
