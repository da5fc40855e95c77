//! Hostile stream clients against the real binary: garbage, binary and unknown frames,
//! 10,000 subjects, a 1 MB frame, floods of subscribes and errors, connections that never
//! authenticate. Each is answered with a clear error or closed, and the server keeps
//! serving everyone else with bounded memory.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::time::Duration;

use common::{ws::*, *};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const CONFIG: &str = "[stream]\nauth_timeout_ms = 500\nsend_timeout_ms = 1000\n";

/// The server still answers HTTP and a fresh stream gets a live message; its memory grew
/// by less than `max_growth_kib` since `rss_before`.
async fn still_serving(s: &Server, rss_before: u64, max_growth_kib: u64) {
    let (status, _) = s.get("/v1/schema", s.sk()).await;
    assert_eq!(status, 200);
    let health = s.http.get(format!("{}/healthz", s.url)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let mut ws = connect_key(&s.url, s.sk()).await;
    let seq = subscribe(&mut ws, &["c1"], None).await.1["seq"].as_u64().unwrap();
    let schema = json!({"type": "object", "properties": {"n": {"const": seq}}});
    let (status, _) = s.call("PUT", "/v1/admin/schemas/probe", s.ak(), Some(schema)).await;
    assert!(status.is_success());
    assert_eq!(recv_json(&mut ws).await["type"], "schema.updated");
    let rss = rss_kib(s.pid() as u32);
    assert!(
        rss < rss_before + max_growth_kib,
        "server RSS grew from {rss_before} KiB to {rss} KiB"
    );
}

async fn expect_error(ws: &mut Ws, code: &str) -> Value {
    let frame = recv_json(ws).await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["code"], code, "{frame}");
    assert!(frame["message"].as_str().is_some_and(|m| !m.is_empty()), "{frame}");
    frame
}

#[tokio::test]
async fn bad_frames_are_answered_and_the_connection_kept() {
    let s = start_with_config(CONFIG);
    let rss_before = rss_kib(s.pid() as u32);
    let mut ws = connect_key(&s.url, s.sk()).await;
    let bad = [
        Message::text("garbage"),
        Message::text("{\"op\":"),
        Message::binary(vec![0u8, 159, 146, 150]),
        Message::text(json!({"op": "drop_tables"}).to_string()),
        Message::text(json!({"op": "subscribe", "subjects": ["a"], "extra": 1}).to_string()),
        Message::text(json!({"op": "subscribe", "subjects": "a"}).to_string()),
        Message::text(json!({"op": "subscribe", "subjects": [""]}).to_string()),
        Message::text(json!({"op": "auth", "key": s.sk()}).to_string()),
    ];
    for frame in bad {
        let shown = format!("{frame:?}");
        ws.send(frame).await.unwrap();
        let error = expect_error(&mut ws, "bad_message").await;
        assert!(error["message"].as_str().unwrap().len() <= 300, "{shown}: {error}");
    }
    // Still usable.
    assert_eq!(subscribe(&mut ws, &["c1"], None).await.1["subjects"], json!(["c1"]));

    // 10,000 subjects (3 characters each, so the frame stays under 64 KiB).
    let alphabet: Vec<char> = "abcdefghijklmnopqrstuvwxyz0123456789".chars().collect();
    let subjects: Vec<String> = (0..10_000)
        .map(|i| [i / 1296, (i / 36) % 36, i % 36].iter().map(|&d| alphabet[d]).collect())
        .collect();
    send_json(&mut ws, json!({"op": "subscribe", "subjects": subjects})).await;
    expect_error(&mut ws, "too_many_subjects").await;
    assert_eq!(
        subscribe(&mut ws, &["c2"], None).await.1["subjects"],
        json!(["c1", "c2"])
    );
    // 1,000 at most in total: 998 more fit, 999 do not.
    send_json(&mut ws, json!({"op": "subscribe", "subjects": &subjects[..999]})).await;
    expect_error(&mut ws, "too_many_subjects").await;
    assert_eq!(
        subscribe(&mut ws, &[], None).await.1["subjects"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let refs: Vec<&str> = subjects[..998].iter().map(String::as_str).collect();
    let (_, subscribed) = subscribe(&mut ws, &refs, None).await;
    assert_eq!(subscribed["subjects"].as_array().unwrap().len(), 1000);
    send_json(&mut ws, json!({"op": "unsubscribe", "subjects": &subjects[..998]})).await;
    assert_eq!(recv_json(&mut ws).await["subjects"], json!(["c1", "c2"]));

    still_serving(&s, rss_before, 64 * 1024).await;
}

#[tokio::test]
async fn oversized_frames_floods_and_silence_are_closed() {
    let s = start_with_config(CONFIG);
    let rss_before = rss_kib(s.pid() as u32);

    // A 1 MB frame: 1009 (the client may see a reset while it is still writing).
    let mut big = connect_key(&s.url, s.sk()).await;
    let _ = big.send(Message::text("x".repeat(1024 * 1024))).await;
    match ended(&mut big, WAIT).await {
        Ended::Closed(code, reason) => {
            assert_eq!(code, 1009, "{reason}");
            assert!(reason.contains("65536"), "{reason}");
        }
        Ended::Dropped(why) => eprintln!("1 MB frame: connection dropped ({why})"),
    }

    // Garbage over and over: 10 errors are tolerated, then 1008.
    let mut abusive = connect_key(&s.url, s.sk()).await;
    for _ in 0..50 {
        if abusive.send(Message::text("garbage")).await.is_err() {
            break;
        }
    }
    let mut errors = 0;
    let reason = loop {
        match abusive.next().await {
            Some(Ok(Message::Text(text))) => {
                assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["code"], "bad_message");
                errors += 1;
            }
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1008);
                break frame.reason.to_string();
            }
            other => panic!("expected errors then a close, got {other:?}"),
        }
    };
    assert_eq!(errors, 10);
    assert!(reason.contains("too many refused frames"), "{reason}");

    // 1,000 subscribes as fast as possible: the first burst is answered, the rest are
    // rate limited, and the flood ends in 1008.
    let mut flood = connect_key(&s.url, s.sk()).await;
    let started = std::time::Instant::now();
    for i in 0..1000 {
        let op = json!({"op": "subscribe", "subjects": [format!("s{i}")]});
        if flood.send(Message::text(op.to_string())).await.is_err() {
            break;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let (mut subscribed, mut limited) = (0, 0);
    let code = loop {
        match flood.next().await {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                match frame["type"].as_str().unwrap() {
                    "subscribed" => subscribed += 1,
                    "error" => {
                        assert_eq!(frame["code"], "rate_limited", "{frame}");
                        limited += 1;
                    }
                    other => panic!("unexpected {other}"),
                }
            }
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            other => panic!("expected answers then a close, got {other:?}"),
        }
    };
    assert_eq!(code, 1008);
    // The burst of 100, plus what refilled (10/s) while the flood was read.
    assert!((100..=150).contains(&subscribed), "subscribed {subscribed}");
    assert!((10..=12).contains(&limited), "limited {limited}");

    // Connections that never authenticate: all closed with 4401 after 500 ms.
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(connect(&s.url, Connect::default()).await.0);
    }
    for ws in &mut silent {
        closed_with(ws, 4401).await;
    }

    still_serving(&s, rss_before, 64 * 1024).await;
}

#[tokio::test]
async fn stream_operations_charge_the_key_rate_limit() {
    let s = start_with_config(&format!("{CONFIG}[limits]\nrequests_per_second = 1\nburst = 4\n"));
    // The connection itself costs a token; three subscribes fit, the fourth does not.
    let mut ws = connect_key(&s.url, s.sk()).await;
    for _ in 0..3 {
        subscribe(&mut ws, &["c1"], None).await;
    }
    send_json(&mut ws, json!({"op": "subscribe", "subjects": ["c1"]})).await;
    let error = expect_error(&mut ws, "rate_limited").await;
    assert!(error["message"].as_str().unwrap().contains("API key"), "{error}");
    // A new connection of the same key, while the bucket is empty, is refused.
    let mut refused = connect_key(&s.url, s.sk()).await;
    let reason = closed_with(&mut refused, 1013).await;
    assert!(reason.starts_with("rate_limited"), "{reason}");
}
