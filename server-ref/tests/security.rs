//! Hostile clients at the connection and storage level: slow-loris and idle connections are
//! closed, the connection cap holds, keys are stored only as hashes, SQL-looking text in
//! every string field is stored and matched literally, and malformed headers get clean
//! answers. (Tenant isolation is tested per area: `admin.rs`, `catalog.rs`, `tokens.rs`,
//! `stream.rs`; sizes and zip bombs in `ingest_errors.rs`.)

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

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
    let mut events = Vec::new();
    for (i, text) in hostile.iter().enumerate() {
        let mut e = ev(&format!("{text}-{i}"));
        e["source"] = json!(format!("src {text}"));
        e["type"] = json!(format!("t {text}"));
        e["subject"] = json!(format!("s {text}"));
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
            .find(|e| e["id"] == format!("{text}-{i}"))
            .unwrap_or_else(|| panic!("{text:?} not stored verbatim"));
        assert_eq!(back["source"], format!("src {text}"));
        assert_eq!(back["data"][*text], *text);
        // Filters match the text exactly, never as SQL or a pattern.
        for (param, value) in [("type", format!("t {text}")), ("subject", format!("s {text}"))] {
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
