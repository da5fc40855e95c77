//! Entitlement test helpers: a standard catalog, raw admin requests, the entitlement
//! answer, and the stream messages a subject's log holds (replayed over `/v1/stream`).

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Server, ws};

/// `PUT` with a raw text body (malformed JSON and the like).
pub async fn put_raw(s: &Server, path: &str, key: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
    let response = s
        .http
        .put(format!("{}{path}", s.url))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("non-JSON body ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, value)
}

/// `PUT /v1/admin/<path>` with the admin key `ak`; asserts 200 or 201 and returns the view.
pub async fn put_ok(s: &Server, ak: &str, path: &str, body: Value) -> Value {
    let (status, view) = s.call("PUT", &format!("/v1/admin/{path}"), ak, Some(body)).await;
    assert!(status == 200 || status == 201, "PUT {path}: {status} {view}");
    view
}

/// Features `api_calls` (count of `api.call`), `tokens` (sum of `data.tokens` of
/// `api.call`), `sso` (boolean) and `tier` (config); plan `pro` granting them
/// (`api_calls` 10 per month with soft limit 8, `tokens` unlimited per day).
pub async fn standard_catalog(s: &Server, ak: &str) {
    put_ok(
        s,
        ak,
        "features/api_calls",
        json!({"kind":"metered","event_type":"api.call","aggregation":"count"}),
    )
    .await;
    put_ok(
        s,
        ak,
        "features/tokens",
        json!({"kind":"metered","event_type":"api.call","aggregation":"sum","property":"tokens"}),
    )
    .await;
    put_ok(s, ak, "features/sso", json!({"kind":"boolean"})).await;
    put_ok(s, ak, "features/tier", json!({"kind":"config"})).await;
    put_ok(
        s,
        ak,
        "plans/pro",
        json!({"features":{
            "api_calls":{"limit":10,"period":"month","soft_limit":8},
            "tokens":{"period":"day"},
            "sso":{},
            "tier":{"value":{"seats":10}}
        }}),
    )
    .await;
}

/// `GET /v1/customers/{subject}/entitlements` with `key`; asserts 200.
pub async fn entitlements(s: &Server, key: &str, subject: &str) -> Value {
    let (status, body) = s.get(&format!("/v1/customers/{subject}/entitlements"), key).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `GET /v1/customers/{subject}/usage` with `key`; asserts 200.
pub async fn usage(s: &Server, key: &str, subject: &str) -> Value {
    let (status, body) = s.get(&format!("/v1/customers/{subject}/usage"), key).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Every retained stream message for `subjects` (and project-wide ones), replayed with
/// `since` 0 over a fresh connection authenticated by the secret key `sk`, and the
/// project's current seq.
pub async fn stream_log(s: &Server, sk: &str, subjects: &[&str]) -> (Vec<Value>, u64) {
    let mut socket = ws::connect_key(&s.url, sk).await;
    let (replayed, subscribed) = ws::subscribe(&mut socket, subjects, Some(0)).await;
    (replayed, subscribed["seq"].as_u64().unwrap())
}

/// An `api.call` event for `subject` at `time` with `data`.
pub fn call_event(id: &str, subject: &str, time: &str, data: Value) -> Value {
    json!({"specversion":"1.0","id":id,"source":"tests","type":"api.call","subject":subject,"time":time,"data":data})
}

/// RFC 3339 of now plus `seconds` (UTC).
pub fn now_plus(seconds: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(seconds)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
