//! Every bad input of DESIGN §3: the status, the error `code`, and for per-event
//! rejections the `index` and `path` — and the valid events of a mixed batch are stored.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use common::*;
use serde_json::{Value, json};

async fn post(s: &Server, ct: Option<&str>, enc: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let (status, _, v) = s.post_raw("/v1/events", Some(s.sk()), ct, enc, body).await;
    (status.as_u16(), v)
}

#[tokio::test]
async fn unparseable_bodies_are_400() {
    let s = Server::start();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated JSON", b"[{\"specversion\":\"1.0\"".to_vec(), "invalid_json"),
        ("garbage", b"hello".to_vec(), "invalid_json"),
        ("empty", Vec::new(), "invalid_json"),
        ("invalid UTF-8", b"[{\"id\":\"\xff\xfe\"}]".to_vec(), "invalid_json"),
        ("a number", b"42".to_vec(), "invalid_body"),
        ("a string", b"\"event\"".to_vec(), "invalid_body"),
    ];
    for (what, body, code) in cases {
        let (status, _, resp) = s
            .post_raw("/v1/events", Some(s.sk()), Some("application/json"), None, body)
            .await;
        assert_error(status, &resp, 400, code);
        assert!(!resp["message"].as_str().unwrap().is_empty(), "{what}");
    }
    // One event object sent as a batch, and an array sent as one event.
    let (status, body) = post(&s, Some(BATCH), None, serde_json::to_vec(&ev("a")).unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_body")));
    let (status, body) = post(&s, Some(SINGLE), None, serde_json::to_vec(&[ev("a")]).unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_body")));
}

#[tokio::test]
async fn deep_nesting_is_invalid_json() {
    let s = Server::start();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let (status, body) = post(&s, Some(BATCH), None, deep.into_bytes()).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_json")), "{body}");
    let nested_data = format!(
        r#"[{{"specversion":"1.0","id":"d","source":"s","type":"t","subject":"c","data":{{"x":{}1{}}}}}]"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let (status, body) = post(&s, Some(BATCH), None, nested_data.into_bytes()).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_json")), "{body}");
    assert!(s.all_events(s.sk(), "").await.is_empty());
}

#[tokio::test]
async fn wrong_content_types_are_415() {
    let s = Server::start();
    let body = serde_json::to_vec(&[ev("a")]).unwrap();
    for ct in [
        Some("text/plain"),
        Some("application/xml"),
        None,
        Some("application/json; charset=latin1"),
        Some("multipart/form-data"),
    ] {
        let (status, _, resp) = s.post_raw("/v1/events", Some(s.sk()), ct, None, body.clone()).await;
        assert_error(status, &resp, 415, "unsupported_media_type");
    }
}

#[tokio::test]
async fn unknown_encodings_are_415() {
    let s = Server::start();
    let body = serde_json::to_vec(&[ev("a")]).unwrap();
    for enc in ["br", "deflate", "gzip, zstd", "compress"] {
        let (status, _, resp) = s
            .post_raw("/v1/events", Some(s.sk()), Some(BATCH), Some(enc), body.clone())
            .await;
        assert_error(status, &resp, 415, "unsupported_encoding");
    }
}

#[tokio::test]
async fn corrupt_compression_is_bad_encoding() {
    let s = Server::start();
    let raw = serde_json::to_vec(&(0..200).map(|i| ev(&format!("e{i}"))).collect::<Vec<_>>()).unwrap();
    let packed = gzip(&raw);
    let (status, _, resp) = s
        .post_raw(
            "/v1/events",
            Some(s.sk()),
            Some(BATCH),
            Some("gzip"),
            packed[..packed.len() / 2].to_vec(),
        )
        .await;
    assert_error(status, &resp, 400, "bad_encoding");
    // Plain JSON labelled gzip.
    let (status, _, resp) = s
        .post_raw("/v1/events", Some(s.sk()), Some(BATCH), Some("gzip"), raw.clone())
        .await;
    assert_error(status, &resp, 400, "bad_encoding");
    let z = zstd(&raw);
    let (status, _, resp) = s
        .post_raw(
            "/v1/events",
            Some(s.sk()),
            Some(BATCH),
            Some("zstd"),
            z[..z.len() - 10].to_vec(),
        )
        .await;
    assert_error(status, &resp, 400, "bad_encoding");
    assert!(s.all_events(s.sk(), "").await.is_empty());
}

#[tokio::test]
async fn zip_bomb_is_cut_off() {
    let s = Server::start();
    let bomb = gzip(&vec![0u8; 100 * 1024 * 1024]);
    assert!(
        bomb.len() < 5 * 1024 * 1024,
        "the bomb itself passes the compressed limit"
    );
    let (status, _, resp) = s
        .post_raw("/v1/events", Some(s.sk()), Some(BATCH), Some("gzip"), bomb)
        .await;
    assert_error(status, &resp, 413, "payload_too_large");
    let zbomb = zstd(&vec![b' '; 100 * 1024 * 1024]);
    let (status, _, resp) = s
        .post_raw("/v1/events", Some(s.sk()), Some(BATCH), Some("zstd"), zbomb)
        .await;
    assert_error(status, &resp, 413, "payload_too_large");
}

#[tokio::test]
async fn too_many_events_and_too_large_bodies_are_413() {
    let s = Server::start();
    let batch: Vec<Value> = (0..10_001).map(|i| json!({"id": i.to_string()})).collect();
    let (status, _, resp) = s
        .post_raw(
            "/v1/events",
            Some(s.sk()),
            Some(BATCH),
            Some("gzip"),
            gzip(&serde_json::to_vec(&batch).unwrap()),
        )
        .await;
    assert_error(status, &resp, 413, "too_many_events");

    let mut big = ev("big");
    big["data"]["blob"] = json!("x".repeat(6 * 1024 * 1024));
    let (status, headers, resp) = s
        .post_raw(
            "/v1/events",
            Some(s.sk()),
            Some(SINGLE),
            None,
            serde_json::to_vec(&big).unwrap(),
        )
        .await;
    assert_error(status, &resp, 413, "payload_too_large");
    // Part of the body may be unread, so the server must not keep the connection for reuse.
    assert_eq!(headers.get("connection").map(|v| v.to_str().unwrap()), Some("close"));
    assert!(s.all_events(s.sk(), "").await.is_empty());
}

#[tokio::test]
async fn invalid_events_are_rejected_one_by_one_and_the_rest_stored() {
    let s = Server::start();
    let (status, _) = s
        .call(
            "PUT",
            "/v1/admin/schemas/api.call",
            s.ak(),
            Some(json!({"type":"object","required":["tokens"],"properties":{"tokens":{"type":"integer","minimum":0}}})),
        )
        .await;
    assert_eq!(status, 201);

    let mut missing_id = ev("unused");
    missing_id.as_object_mut().unwrap().remove("id");
    let mut empty_id = ev("");
    empty_id["id"] = json!("");
    let overlong = ev(&"i".repeat(257));
    let longest = ev(&"i".repeat(256));
    let mut array_data = ev("array-data");
    array_data["data"] = json!([1, 2]);
    let mut string_data = ev("string-data");
    string_data["data"] = json!("tokens");
    let mut bad_tokens = ev("bad-tokens");
    bad_tokens["data"]["tokens"] = json!("many");
    let mut huge = ev("huge");
    huge["type"] = json!("blob.upload");
    huge["data"] = json!({"blob": "x".repeat(2 * 1024 * 1024)});
    let mut bad_time = ev("bad-time");
    bad_time["time"] = json!("yesterday");
    let mut bad_version = ev("bad-version");
    bad_version["specversion"] = json!("0.3");
    let mut no_subject = ev("no-subject");
    no_subject["subject"] = json!("");

    let batch = vec![
        ev("ok-0"),            // 0
        missing_id,            // 1
        empty_id,              // 2
        overlong,              // 3
        array_data,            // 4
        string_data,           // 5
        bad_tokens,            // 6
        huge,                  // 7
        json!("not an event"), // 8
        bad_time,              // 9
        bad_version,           // 10
        no_subject,            // 11
        longest,               // 12
        ev("ok-13"),           // 13
    ];
    let (status, _, resp) = s
        .post_raw(
            "/v1/events",
            Some(s.sk()),
            Some(BATCH),
            Some("gzip"),
            gzip(&serde_json::to_vec(&batch).unwrap()),
        )
        .await;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(resp["accepted"], 3, "{resp}");
    let expected = [
        (1, None, "invalid_event", "/id"),
        (2, None, "invalid_event", "/id"),
        (3, None, "invalid_event", "/id"),
        (4, Some("array-data"), "invalid_event", "/data"),
        (5, Some("string-data"), "invalid_event", "/data"),
        (6, Some("bad-tokens"), "schema_violation", "/data/tokens"),
        (7, Some("huge"), "event_too_large", ""),
        (8, None, "invalid_event", ""),
        (9, Some("bad-time"), "invalid_event", "/time"),
        (10, Some("bad-version"), "invalid_event", "/specversion"),
        (11, Some("no-subject"), "invalid_event", "/subject"),
    ];
    let rejected = resp["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), expected.len(), "{resp}");
    for (r, (index, id, code, path)) in rejected.iter().zip(expected) {
        assert_eq!(r["index"], index, "{r}");
        assert_eq!(r["id"].as_str(), id, "{r}");
        assert_eq!(r["code"], code, "{r}");
        assert_eq!(r["path"], path, "{r}");
        assert!(!r["message"].as_str().unwrap().is_empty());
    }
    let stored: Vec<String> = s
        .all_events(s.sk(), "")
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored, ["ok-0".to_owned(), "i".repeat(256), "ok-13".to_owned()]);
}

#[tokio::test]
async fn strict_types_rejects_unknown_types() {
    let s = Server::start();
    let (status, _) = s
        .call(
            "PUT",
            "/v1/admin/schemas/api.call",
            s.ak(),
            Some(json!({"type":"object"})),
        )
        .await;
    assert_eq!(status, 201);
    let mut unknown = ev("u1");
    unknown["type"] = json!("mystery.event");
    let (_, resp) = s.send(&[unknown.clone()]).await;
    assert_eq!(resp["accepted"], 1, "unknown types are accepted by default: {resp}");

    let (status, settings) = s
        .call("PUT", "/v1/admin/settings", s.ak(), Some(json!({"strict_types": true})))
        .await;
    assert_eq!((status.as_u16(), settings["strict_types"].clone()), (200, json!(true)));
    unknown["id"] = json!("u2");
    let (status, resp) = s.send(&[ev("known"), unknown]).await;
    assert_eq!(status, 202);
    assert_eq!(resp["accepted"], 1);
    let r = &resp["rejected"][0];
    assert_eq!(
        (r["index"].as_u64(), r["code"].as_str(), r["path"].as_str()),
        (Some(1), Some("unknown_type"), Some("/type"))
    );
    let (_, schema) = s.get("/v1/schema", s.sk()).await;
    assert_eq!(schema["strict_types"], true);
}

#[tokio::test]
async fn keys_are_checked_before_anything_else() {
    let s = Server::start();
    let body = serde_json::to_vec(&[ev("a")]).unwrap();
    let wrong_secret = {
        let sk = s.sk();
        let (prefix, _) = sk.rsplit_once('_').unwrap();
        format!("{prefix}_{}", "Z".repeat(32))
    };
    let unknown_id = "ml_sk_zzzzzzzzzzzz_0123456789abcdef0123456789abcdef".to_owned();
    let wrong_kind = s.sk().replacen("ml_sk_", "ml_ak_", 1);
    for key in [
        Some("".to_owned()),
        Some("not-a-key".to_owned()),
        Some("ml_sk_short".to_owned()),
        Some(wrong_secret),
        Some(unknown_id),
        Some(wrong_kind),
        None,
    ] {
        let (status, _, resp) = s
            .post_raw("/v1/events", key.as_deref(), Some(BATCH), None, body.clone())
            .await;
        assert_error(status, &resp, 401, "unauthorized");
        assert!(
            !resp["message"].as_str().unwrap().contains("Z".repeat(16).as_str()),
            "never echo secrets"
        );
    }
    // A non-Bearer scheme.
    let resp = s
        .http
        .post(format!("{}/v1/events", s.url))
        .header("authorization", format!("Basic {}", s.sk()))
        .header("content-type", BATCH)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(s.all_events(s.sk(), "").await.is_empty());
}

#[tokio::test]
async fn publishable_keys_need_a_customer_token() {
    let s = Server::start();
    let (status, created) = s
        .call("POST", "/v1/admin/keys", s.ak(), Some(json!({"kind": "publishable"})))
        .await;
    assert_eq!(status, 201, "{created}");
    let pk = created["key"].as_str().unwrap();
    assert!(pk.starts_with("ml_pk_"));
    let body = serde_json::to_vec(&[ev("a")]).unwrap();
    let (status, _, resp) = s.post_raw("/v1/events", Some(pk), Some(BATCH), None, body).await;
    assert_error(status, &resp, 401, "token_required");
    assert!(resp["message"].as_str().unwrap().contains("customer token"), "{resp}");
    let (status, resp) = s.get("/v1/events", pk).await;
    assert_error(status, &resp, 401, "token_required");
    // With a token it may still not ingest: tests/tokens.rs.
}

/// `data` is stored as the request's text, but refused exactly where parsing it into a JSON
/// value refuses it: a number out of range or a lone surrogate fail the whole request as
/// `invalid_json` naming the event, like any other unparseable event.
#[tokio::test]
async fn data_that_does_not_parse_as_a_value_is_invalid_json() {
    let s = Server::start();
    for data in [r#"{"n":1e400}"#, r#"{"s":"\ud800"}"#, r#"{"deep":[{"n":-1e999}]}"#] {
        let body = format!(
            r#"[{{"specversion":"1.0","id":"ok","source":"s","type":"t","subject":"c"}},
                {{"specversion":"1.0","id":"bad","source":"s","type":"t","subject":"c","data":{data}}}]"#
        );
        let (status, resp) = post(&s, Some(BATCH), None, body.into_bytes()).await;
        assert_eq!(
            (status, resp["code"].as_str()),
            (400, Some("invalid_json")),
            "{data}: {resp}"
        );
        assert!(resp["message"].as_str().unwrap().contains("event 1"), "{resp}");
    }
    assert!(s.all_events(s.sk(), "").await.is_empty());
    // `null` data reads as absent; odd spacing and escapes in an object are kept as sent
    // and read back as the same value.
    let body = br#"[{"specversion":"1.0","id":"n","source":"s","type":"t","subject":"c","data":null},
        {"specversion":"1.0","id":"w","source":"s","type":"t","subject":"c","data": { "k" : "\u00e9\n" ,"n":1.50e1 } }]"#;
    let (status, resp) = post(&s, Some(BATCH), None, body.to_vec()).await;
    assert_eq!((status, resp["accepted"].as_u64()), (202, Some(2)), "{resp}");
    let stored = s.all_events(s.sk(), "").await;
    assert_eq!(stored[0].get("data"), None, "{stored:?}");
    assert_eq!(stored[1]["data"], json!({"k":"é\n","n":15.0}), "{stored:?}");
}
