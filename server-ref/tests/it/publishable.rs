//! Publishable keys that send their own usage (DESIGN §6), against the real binary on a
//! real SQLite file: the settings (API, CLI, `[catalog.settings]`), per-event `forbidden`
//! at ingest, the filtered schema, CORS preflights and origins (HTTP and WebSocket), the
//! beacon route, per-subject rate limits, expired tokens, and credentials kept out of URLs
//! and logs.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::time::Duration;

use common::{ws::*, *};
use reqwest::{StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};

const APP: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example.net";

/// Lists `page.view` as the client type and [`APP`] as the allowed origin.
async fn allow_clients(s: &Server) {
    let (status, body) = s
        .call(
            "PUT",
            "/v1/admin/settings",
            s.ak(),
            Some(json!({"client_event_types": ["page.view"], "allowed_origins": [APP]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// An event of `event_type` for `subject`.
fn event(id: &str, event_type: &str, subject: &str) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "web", "type": event_type, "subject": subject,
           "data": {"path": "/pricing"}})
}

/// A request as a browser page would send it.
#[derive(Default)]
struct Call<'a> {
    key: Option<&'a str>,
    token: Option<&'a str>,
    origin: Option<&'a str>,
    content_type: Option<&'a str>,
}

async fn request(
    s: &Server,
    method: &str,
    path: &str,
    call: Call<'_>,
    body: Option<Vec<u8>>,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = s.http.request(method.parse().unwrap(), format!("{}{path}", s.url));
    if let Some(key) = call.key {
        req = req.bearer_auth(key);
    }
    if let Some(token) = call.token {
        req = req.header("x-meterline-customer-token", token);
    }
    if let Some(origin) = call.origin {
        req = req.header("origin", origin);
    }
    if let Some(ct) = call.content_type {
        req = req.header("content-type", ct);
    }
    if let Some(body) = body {
        req = req.body(body);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.bytes().await.unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, value)
}

/// `POST /v1/events` with a publishable key and token.
async fn send_as(
    s: &Server,
    pk: &str,
    token: &str,
    origin: Option<&str>,
    events: &[Value],
) -> (StatusCode, HeaderMap, Value) {
    let call = Call {
        key: Some(pk),
        token: Some(token),
        origin,
        content_type: Some(BATCH),
    };
    request(s, "POST", "/v1/events", call, Some(serde_json::to_vec(events).unwrap())).await
}

/// `POST /v1/beacon` with a text/plain body.
async fn beacon(
    s: &Server,
    path: &str,
    body: impl Into<Vec<u8>>,
    origin: Option<&str>,
) -> (StatusCode, HeaderMap, Value) {
    let call = Call {
        origin,
        content_type: Some("text/plain;charset=UTF-8"),
        ..Call::default()
    };
    request(s, "POST", path, call, Some(body.into())).await
}

fn ids(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_token_sends_its_own_subjects_listed_types_and_nothing_else() {
    let s = Server::start();
    allow_clients(&s).await;
    let pk = s.new_key("publishable").await;
    let token = customer_token(s.sk(), "c1", 600);
    let batch = [
        event("own-1", "page.view", "c1"),
        event("other-subject", "page.view", "c2"),
        event("unlisted-type", "api.call", "c1"),
        event("own-2", "page.view", "c1"),
    ];
    let (status, _, body) = send_as(&s, &pk, &token, None, &batch).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["duplicates"].as_u64()),
        (Some(2), Some(0)),
        "{body}"
    );
    let rejected: Vec<(u64, &str, &str, &str)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["id"].as_str().unwrap(),
                r["code"].as_str().unwrap(),
                r["path"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "other-subject", "forbidden", "/subject"),
            (2, "unlisted-type", "forbidden", "/type")
        ]
    );
    // Sent again (a retry): stored once.
    let (status, _, body) = send_as(&s, &pk, &token, None, &batch).await;
    assert_eq!(
        (status.as_u16(), body["accepted"].as_u64(), body["duplicates"].as_u64()),
        (202, Some(0), Some(2))
    );
    let stored = s.all_events(s.sk(), "").await;
    assert_eq!(ids(&stored), ["own-1", "own-2"]);
    assert!(stored.iter().all(|e| e["subject"] == "c1" && e["type"] == "page.view"));

    // One event, as application/cloudevents+json.
    let call = Call {
        key: Some(&pk),
        token: Some(&token),
        content_type: Some(SINGLE),
        ..Call::default()
    };
    let one = serde_json::to_vec(&event("own-3", "page.view", "c1")).unwrap();
    let (status, _, body) = request(&s, "POST", "/v1/events", call, Some(one)).await;
    assert_eq!((status.as_u16(), body["accepted"].as_u64()), (202, Some(1)), "{body}");

    // OpenMeter's route takes no publishable key; reading events needs a secret key.
    let call = Call {
        key: Some(&pk),
        token: Some(&token),
        content_type: Some("application/json"),
        ..Call::default()
    };
    let one = serde_json::to_vec(&event("om", "page.view", "c1")).unwrap();
    let (status, _, body) = request(&s, "POST", "/api/v1/events", call, Some(one)).await;
    assert_error(status, &body, 403, "forbidden");
    let call = Call {
        key: Some(&pk),
        token: Some(&token),
        ..Call::default()
    };
    let (status, _, body) = request(&s, "GET", "/v1/events", call, None).await;
    assert_error(status, &body, 403, "forbidden");
    assert_eq!(ids(&s.all_events(s.sk(), "").await), ["own-1", "own-2", "own-3"]);
}

#[tokio::test]
async fn missing_expired_forged_and_foreign_tokens_are_refused() {
    let s = Server::start();
    allow_clients(&s).await;
    let pk = s.new_key("publishable").await;
    let out = cli(s.dir.path(), &["admin", "project", "create", "other"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let other_sk = key_line(&out.stdout, "secret");
    let mine = meterline_core::key::ApiKey::parse(s.sk()).unwrap();
    let now = unix_now();
    let forged = sign_token(
        &json!({"alg": "HS256", "typ": "JWT", "kid": mine.id}),
        &json!({"sub": "c1", "iat": now, "exp": now + 600}),
        b"a guess at the signing key",
    );
    let batch = [event("e", "page.view", "c1")];
    let body = serde_json::to_vec(&batch).unwrap();
    let (status, _, resp) = s.post_raw("/v1/events", Some(&pk), Some(BATCH), None, body).await;
    assert_error(status, &resp, 401, "token_required");
    for (name, token, code) in [
        ("expired", customer_token(s.sk(), "c1", -3600), "token_expired"),
        ("forged", forged, "invalid_token"),
        (
            "another project's",
            customer_token(&other_sk, "c1", 600),
            "invalid_token",
        ),
    ] {
        let (status, _, resp) = send_as(&s, &pk, &token, None, &batch).await;
        assert_eq!(resp["code"], code, "{name}: {resp}");
        assert_error(status, &resp, 401, code);
        let call = Call {
            key: Some(&pk),
            token: Some(&token),
            ..Call::default()
        };
        let (status, _, resp) = request(&s, "GET", "/v1/schema", call, None).await;
        assert_error(status, &resp, 401, code);
    }
    assert!(s.all_events(s.sk(), "").await.is_empty());
}

#[tokio::test]
async fn the_schema_a_token_reads_holds_only_its_types_under_its_own_etag() {
    let s = Server::start();
    for t in ["page.view", "api.call"] {
        let (status, body) = s
            .call(
                "PUT",
                &format!("/v1/admin/schemas/{t}"),
                s.ak(),
                Some(json!({"type": "object"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    allow_clients(&s).await;
    let pk = s.new_key("publishable").await;
    let token = customer_token(s.sk(), "c1", 600);
    let as_client = |etag: Option<String>| {
        let mut req = s
            .http
            .get(format!("{}/v1/schema", s.url))
            .bearer_auth(&pk)
            .header("x-meterline-customer-token", &token);
        if let Some(etag) = etag {
            req = req.header("if-none-match", etag);
        }
        async move {
            let resp = req.send().await.unwrap();
            let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
            (resp.status(), etag, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, client_etag, doc) = as_client(None).await;
    assert_eq!(status, 200, "{doc}");
    let types: Vec<&String> = doc["types"].as_object().unwrap().keys().collect();
    assert_eq!(types, ["page.view"]);
    let full = s
        .http
        .get(format!("{}/v1/schema", s.url))
        .bearer_auth(s.sk())
        .send()
        .await
        .unwrap();
    let full_etag = full.headers()["etag"].to_str().unwrap().to_owned();
    let full_doc: Value = full.json().await.unwrap();
    assert_eq!(full_doc["types"].as_object().unwrap().len(), 2);
    assert_ne!(client_etag, full_etag);
    let (status, _, _) = as_client(Some(client_etag.clone())).await;
    assert_eq!(status, 304);
    let (status, _, _) = as_client(Some(full_etag)).await;
    assert_eq!(status, 200, "the full set's ETag is not the client's");

    // Listing another type changes what the client reads, and its ETag.
    let (status, _) = s
        .call(
            "PUT",
            "/v1/admin/settings",
            s.ak(),
            Some(json!({"client_event_types": ["page.view", "api.call"]})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, etag, doc) = as_client(Some(client_etag.clone())).await;
    assert_eq!(status, 200);
    assert_ne!(etag, client_etag);
    assert_eq!(doc["types"].as_object().unwrap().len(), 2);
}

#[tokio::test]
async fn preflights_are_permissive_and_real_requests_check_the_origin() {
    let s = Server::start();
    allow_clients(&s).await;
    let pk = s.new_key("publishable").await;
    let token = customer_token(s.sk(), "c1", 600);
    for origin in [APP, EVIL] {
        let resp = s
            .http
            .request(reqwest::Method::OPTIONS, format!("{}/v1/events", s.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, x-meterline-customer-token",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "{origin}");
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], origin);
        assert!(h["access-control-allow-methods"].to_str().unwrap().contains("POST"));
        let allowed = h["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
        for name in [
            "authorization",
            "content-type",
            "content-encoding",
            "x-meterline-customer-token",
            "x-meterline-sdk",
        ] {
            assert!(allowed.contains(name), "{name} in {allowed}");
        }
        assert_eq!(h["access-control-max-age"], "7200");
    }

    // The allowed origin: CORS headers on success and on errors a client must read.
    let (status, h, body) = send_as(&s, &pk, &token, Some(APP), &[event("ok", "page.view", "c1")]).await;
    assert_eq!((status.as_u16(), body["accepted"].as_u64()), (202, Some(1)), "{body}");
    assert_eq!(h["access-control-allow-origin"], APP);
    assert!(h.get_all("vary").iter().any(|v| v == "Origin"), "{h:?}");
    let expired = customer_token(s.sk(), "c1", -3600);
    let (status, h, body) = send_as(&s, &pk, &expired, Some(APP), &[event("late", "page.view", "c1")]).await;
    assert_error(status, &body, 401, "token_expired");
    assert_eq!(h["access-control-allow-origin"], APP, "the SDK must read token_expired");

    // Another origin: 403 without CORS headers, nothing stored; with any kind of key.
    let (status, h, body) = send_as(&s, &pk, &token, Some(EVIL), &[event("evil", "page.view", "c1")]).await;
    assert_error(status, &body, 403, "origin_not_allowed");
    assert!(h.get("access-control-allow-origin").is_none(), "{h:?}");
    let call = Call {
        key: Some(s.sk()),
        origin: Some(EVIL),
        ..Call::default()
    };
    let (status, h, body) = request(&s, "GET", "/v1/schema", call, None).await;
    assert_error(status, &body, 403, "origin_not_allowed");
    assert!(h.get("access-control-allow-origin").is_none());
    // No Origin (a server, a mobile app): not affected.
    let (status, _, body) = send_as(&s, &pk, &token, None, &[event("native", "page.view", "c1")]).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(ids(&s.all_events(s.sk(), "").await), ["ok", "native"]);
}

/// Opens `/v1/stream` with a publishable key, a token and an `Origin` header.
async fn connect_from(s: &Server, pk: &str, token: &str, origin: &str) -> Ws {
    let mut request = stream_url(&s.url).into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {pk}")).unwrap());
    headers.insert("x-meterline-customer-token", HeaderValue::from_str(token).unwrap());
    headers.insert("origin", HeaderValue::from_str(origin).unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

#[tokio::test]
async fn a_stream_from_another_origin_is_closed_4403() {
    let s = start_with_config("[auth]\ntoken_leeway_secs = 0\n");
    allow_clients(&s).await;
    let pk = s.new_key("publishable").await;
    let token = customer_token(s.sk(), "c1", 600);
    let mut ws = connect_from(&s, &pk, &token, EVIL).await;
    let reason = closed_with(&mut ws, 4403).await;
    assert!(reason.starts_with("origin_not_allowed"), "{reason}");
    let mut ws = connect_from(&s, &pk, &token, APP).await;
    assert_eq!(subscribe(&mut ws, &["c1"], None).await.1["type"], "subscribed");

    // Tokens: expired at the upgrade, and expiring while the stream is open.
    let mut ws = connect_from(&s, &pk, &customer_token(s.sk(), "c1", -10), APP).await;
    let reason = closed_with(&mut ws, 4401).await;
    assert!(reason.starts_with("token_expired"), "{reason}");
    let mut ws = connect_from(&s, &pk, &customer_token(s.sk(), "c1", 3), APP).await;
    subscribe(&mut ws, &["c1"], None).await;
    let reason = closed_with(&mut ws, 4401).await;
    assert!(reason.starts_with("token_expired"), "{reason}");
}

/// A beacon body for `events`.
fn beacon_body(pk: &str, token: &str, events: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({"key": pk, "token": token, "events": events})).unwrap()
}

#[tokio::test]
async fn the_beacon_route_delivers_like_events() {
    let s = Server::start();
    allow_clients(&s).await;
    let pk = s.new_key("publishable").await;
    let token = customer_token(s.sk(), "c1", 600);
    // ~60 KiB of events, one of another subject.
    let mut events: Vec<Value> = (0..230)
        .map(|i| {
            let mut e = event(&format!("b{i:03}"), "page.view", "c1");
            e["data"]["pad"] = json!("x".repeat(150));
            e
        })
        .collect();
    events[7]["subject"] = json!("c2");
    let body = beacon_body(&pk, &token, &events);
    assert!((58 * 1024..64 * 1024).contains(&body.len()), "{}", body.len());
    let (status, h, resp) = beacon(&s, "/v1/beacon", body.clone(), Some(APP)).await;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(resp["accepted"], 229);
    assert_eq!(
        (
            resp["rejected"][0]["index"].as_u64(),
            resp["rejected"][0]["path"].as_str()
        ),
        (Some(7), Some("/subject"))
    );
    assert_eq!(h["access-control-allow-origin"], APP);
    let (_, _, again) = beacon(&s, "/v1/beacon", body, None).await;
    assert_eq!(again["duplicates"], 229, "{again}");
    assert_eq!(s.all_events(s.sk(), "").await.len(), 229);

    // A bad token, another origin, a secret key: refused, nothing stored.
    let bad = beacon_body(&pk, "not-a-jwt", &[event("x1", "page.view", "c1")]);
    let (status, _, resp) = beacon(&s, "/v1/beacon", bad, None).await;
    assert_error(status, &resp, 401, "invalid_token");
    let fine = beacon_body(&pk, &token, &[event("x2", "page.view", "c1")]);
    let (status, _, resp) = beacon(&s, "/v1/beacon", fine.clone(), Some(EVIL)).await;
    assert_error(status, &resp, 403, "origin_not_allowed");
    let secret = beacon_body(s.sk(), &token, &[event("x3", "page.view", "c1")]);
    let (status, _, resp) = beacon(&s, "/v1/beacon", secret, None).await;
    assert_error(status, &resp, 403, "forbidden");
    // Credentials in the URL: refused on the beacon and on every other route.
    let (status, _, resp) = beacon(&s, &format!("/v1/beacon?token={token}"), fine, None).await;
    assert_error(status, &resp, 400, "credentials_in_url");
    assert!(!resp["message"].as_str().unwrap().contains(&token));
    for path in [
        format!("/v1/schema?key={pk}"),
        format!("/v1/customers/c1/entitlements?t={token}"),
        format!("/v1/events?limit=5&subject={}", s.sk()),
    ] {
        let (status, _, resp) = request(
            &s,
            "GET",
            &path,
            Call {
                key: Some(s.sk()),
                ..Call::default()
            },
            None,
        )
        .await;
        assert_error(status, &resp, 400, "credentials_in_url");
    }
    assert_eq!(s.all_events(s.sk(), "").await.len(), 229);
}

#[tokio::test]
async fn hostile_beacons_are_refused_by_what_is_wrong() {
    let s = Server::start();
    allow_clients(&s).await;
    let pk = s.new_key("publishable").await;
    let token = customer_token(s.sk(), "c1", 600);
    let huge = vec![event("h", "page.view", "c1"); 1];
    let mut oversized = json!({"key": pk, "token": token, "events": huge});
    oversized["events"][0]["data"]["pad"] = json!("x".repeat(70 * 1024));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("not JSON", b"key=ml_pk_x&events=1".to_vec(), 400, "invalid_json"),
        ("empty", Vec::new(), 400, "invalid_json"),
        ("an array", b"[]".to_vec(), 400, "invalid_body"),
        (
            "no key",
            serde_json::to_vec(&json!({"events": []})).unwrap(),
            400,
            "invalid_body",
        ),
        (
            "key not a string",
            serde_json::to_vec(&json!({"key": 5, "events": []})).unwrap(),
            400,
            "invalid_body",
        ),
        (
            "an unknown field",
            serde_json::to_vec(&json!({"key": pk, "token": token, "events": [], "extra": 1})).unwrap(),
            400,
            "invalid_body",
        ),
        (
            "events a string",
            serde_json::to_vec(&json!({"key": pk, "token": token, "events": "page.view"})).unwrap(),
            400,
            "invalid_body",
        ),
        (
            "no token",
            serde_json::to_vec(&json!({"key": pk, "events": []})).unwrap(),
            401,
            "token_required",
        ),
        (
            "over 64 KiB",
            serde_json::to_vec(&oversized).unwrap(),
            413,
            "payload_too_large",
        ),
    ];
    for (name, body, code_status, code) in cases {
        let (status, _, resp) = beacon(&s, "/v1/beacon", body, None).await;
        assert_eq!(resp["code"], code, "{name}: {resp}");
        assert_error(status, &resp, code_status, code);
    }
    let fine = beacon_body(&pk, &token, &[event("f", "page.view", "c1")]);
    for (content_type, encoding) in [
        ("image/png", None),
        ("text/plain; charset=latin1", None),
        ("text/plain", Some("gzip")),
    ] {
        let mut req = s
            .http
            .post(format!("{}/v1/beacon", s.url))
            .header("content-type", content_type)
            .body(fine.clone());
        if let Some(encoding) = encoding {
            req = req.header("content-encoding", encoding);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 415, "{content_type} {encoding:?}");
    }
    assert!(s.all_events(s.sk(), "").await.is_empty());
}

#[tokio::test]
async fn one_subject_over_its_limit_leaves_the_others_theirs() {
    let s = start_with_config(
        "[limits]\nrequests_per_second = 1\nburst = 10\nsubject_requests_per_second = 1\nsubject_burst = 3\n",
    );
    allow_clients(&s).await;
    let pk = s.new_key("publishable").await;
    let (busy, quiet) = (
        customer_token(s.sk(), "busy", 600),
        customer_token(s.sk(), "quiet", 600),
    );
    let started = std::time::Instant::now();
    let mut answers = Vec::new();
    for i in 0..20 {
        let (status, h, _) = send_as(&s, &pk, &busy, None, &[event(&format!("busy{i}"), "page.view", "busy")]).await;
        answers.push(status.as_u16());
        if status == 429 {
            let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=2).contains(&retry), "{retry}");
        }
    }
    // The burst of 3, then refusals; a loop slowed down by a loaded machine may see the bucket
    // refill one token per second, never more.
    let refilled = started.elapsed().as_secs() as usize;
    let accepted = answers.iter().filter(|s| **s == 202).count();
    assert_eq!(answers[..4], [202, 202, 202, 429], "{answers:?}");
    assert!(
        accepted <= 3 + refilled,
        "{accepted} accepted in {refilled} s: {answers:?}"
    );
    // The busy subject's refusals did not spend the key's bucket: the quiet one gets its 3.
    for i in 0..3 {
        let (status, _, body) = send_as(
            &s,
            &pk,
            &quiet,
            None,
            &[event(&format!("quiet{i}"), "page.view", "quiet")],
        )
        .await;
        assert_eq!(status, 202, "quiet {i}: {body}");
    }
    let (status, _, body) = send_as(&s, &pk, &quiet, None, &[event("quiet3", "page.view", "quiet")]).await;
    assert_error(status, &body, 429, "rate_limited");
    assert!(body["message"].as_str().unwrap().contains("subject"), "{body}");
    assert_eq!(s.all_events(s.sk(), "subject=busy").await.len(), accepted);
}

#[tokio::test]
async fn settings_are_checked_everywhere_they_are_set() {
    let s = Server::start();
    let put = |body: Value| s.call("PUT", "/v1/admin/settings", s.ak(), Some(body));
    let (status, got) = put(
        json!({"allowed_origins": ["HTTPS://App.Example.com:443", "http://localhost:3000"],
                                   "client_event_types": ["b", "a", "a"]}),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got,
        json!({"strict_types": false, "client_event_types": ["a", "b"],
               "allowed_origins": ["http://localhost:3000", "https://app.example.com"]})
    );
    let (_, kept) = put(json!({"strict_types": true, "allowed_origins": null})).await;
    assert_eq!(
        kept["allowed_origins"], got["allowed_origins"],
        "a field left out is kept"
    );
    let many: Vec<String> = (0..1001).map(|i| format!("t{i}")).collect();
    let origins: Vec<String> = (0..101).map(|i| format!("https://o{i}.example.com")).collect();
    for (body, code, says) in [
        (json!({"client_event_types": "a"}), "invalid_body", "client_event_types"),
        (
            json!({"client_event_types": [1, 2]}),
            "invalid_body",
            "client_event_types",
        ),
        (
            json!({"client_event_types": [""]}),
            "invalid_body",
            "client_event_types[0]",
        ),
        (json!({"client_event_types": many}), "invalid_body", "at most 1000"),
        (json!({"allowed_origins": origins}), "invalid_body", "at most 100"),
        (json!({"allowed_origins": ["*"]}), "invalid_body", "allowed_origins[0]"),
        (
            json!({"allowed_origins": ["https://a.com", "https://a.com/app"]}),
            "invalid_body",
            "allowed_origins[1]",
        ),
        (
            json!({"allowed_origins": ["app.example.com"]}),
            "invalid_body",
            "scheme://host",
        ),
        (
            json!({"allowed_origins": ["javascript://x"]}),
            "invalid_body",
            "http or https",
        ),
        (json!({"strict_types": "yes"}), "invalid_body", "strict_types"),
        (json!({"cors": true}), "invalid_body", "cors"),
    ] {
        let (status, resp) = put(body.clone()).await;
        assert_error(status, &resp, 422, code);
        assert!(resp["message"].as_str().unwrap().contains(says), "{body}: {resp}");
    }
    let (_, now) = s.get("/v1/admin/settings", s.ak()).await;
    assert_eq!(
        now["client_event_types"],
        json!(["a", "b"]),
        "refused changes change nothing"
    );

    // The CLI, on the same database.
    let out = cli(
        s.dir.path(),
        &[
            "admin",
            "settings",
            "set",
            "--project",
            "default",
            "--client-event-types",
            "page.view, x",
            "--allowed-origins",
            "",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["client_event_types"], json!(["page.view", "x"]));
    assert_eq!(shown["allowed_origins"], json!([]));
    let out = cli(
        s.dir.path(),
        &[
            "admin",
            "settings",
            "set",
            "--project",
            "default",
            "--allowed-origins",
            "https://a.com/x",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--allowed-origins[0]"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(s.dir.path(), &["admin", "settings", "show", "--project", "default"]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["client_event_types"], json!(["page.view", "x"]));
}

#[tokio::test]
async fn catalog_settings_apply_at_start_and_bad_ones_stop_it() {
    let s = start_with_config(
        "[catalog.settings]\nclient_event_types = [\"page.view\"]\nallowed_origins = [\"https://app.example.com\"]\n",
    );
    let (_, got) = s.get("/v1/admin/settings", s.ak()).await;
    assert_eq!(got["client_event_types"], json!(["page.view"]));
    assert_eq!(got["allowed_origins"], json!([APP]));
    let dir = tempdir();
    write_config(dir.path(), "[catalog.settings]\nallowed_origins = [\"*\"]\n");
    let out = std::process::Command::new(BIN)
        .args(["--bind", "127.0.0.1:0", "--database-url", &db_url(dir.path())])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("catalog.settings.allowed_origins[0]") && err.contains("wildcards"),
        "{err}"
    );
}

#[tokio::test]
async fn tokens_and_keys_never_reach_the_log() {
    let dir = tempdir();
    let s = Server::start_logging(dir, "127.0.0.1:0", &[], "trace");
    allow_clients(&s).await;
    let pk = s.new_key("publishable").await;
    let token = customer_token(s.sk(), "c1", 600);
    send_as(&s, &pk, &token, Some(APP), &[event("l1", "page.view", "c1")]).await;
    send_as(&s, &pk, &token, Some(EVIL), &[event("l2", "page.view", "c1")]).await;
    beacon(
        &s,
        "/v1/beacon",
        beacon_body(&pk, &token, &[event("l3", "page.view", "c1")]),
        None,
    )
    .await;
    beacon(&s, &format!("/v1/beacon?token={token}&key={pk}"), Vec::new(), None).await;
    let mut ws = connect_from(&s, &pk, &token, APP).await;
    subscribe(&mut ws, &["c1"], None).await;
    drop(ws);
    let mut ws = connect_from(&s, &pk, &token, EVIL).await;
    closed_with(&mut ws, 4403).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = s.log();
    assert!(log.contains("/v1/beacon"), "the requests were logged (at trace): {log}");
    let secret_of = |key: &str| key.rsplit('_').next().unwrap().to_owned();
    let signature = token.rsplit('.').next().unwrap();
    for (what, text) in [
        ("token", token.as_str()),
        ("token signature", signature),
        ("publishable key secret", &secret_of(&pk)),
        ("secret key secret", &secret_of(s.sk())),
    ] {
        assert!(!log.contains(text), "the {what} is in the log:\n{log}");
    }
}
