//! `GET /v1/customers/{subject}/entitlements` against the real binary: the DESIGN §4 shape,
//! plan + overrides, subjects that are not customers, `ETag`/`304`, `version` following
//! the `entitlements.updated` messages of admin changes (and not moving on identical PUTs),
//! publishable keys with customer tokens.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use common::{catalog::*, ws::customer_token, *};
use serde_json::{Value, json};

#[tokio::test]
async fn answer_has_the_design_shape() {
    let s = start_with_config("[entitlements]\nttl_ms = 1234\n");
    let ak = s.ak();
    standard_catalog(&s, ak).await;
    put_ok(
        &s,
        ak,
        "customers/c1",
        json!({"plan":"pro","billing_anchor":"2026-01-15T00:00:00Z"}),
    )
    .await;
    let answer = entitlements(&s, s.sk(), "c1").await;
    assert_eq!(answer["subject"], "c1");
    assert_eq!(answer["ttl_ms"], 1234);
    assert!(answer["version"].as_u64().unwrap() > 0, "{answer}");
    let calls = &answer["entitlements"]["api_calls"];
    let now = chrono::Utc::now();
    let month_start = format!("{}-01T00:00:00Z", now.format("%Y-%m"));
    assert_eq!(calls["kind"], "metered");
    assert_eq!(calls["has_access"], true);
    assert_eq!(
        (
            calls["limit"].clone(),
            calls["usage"].clone(),
            calls["remaining"].clone()
        ),
        (json!(10), json!(0), json!(10))
    );
    assert_eq!(calls["soft_limit"], 8);
    assert_eq!(calls["period"], "month");
    assert_eq!(calls["period_start"], month_start);
    assert!(calls["period_end"].as_str().unwrap() > calls["period_start"].as_str().unwrap());
    assert_eq!(
        (calls["event_type"].clone(), calls["aggregation"].clone()),
        (json!("api.call"), json!("count"))
    );
    assert!(calls.get("property").is_none(), "{calls}");
    let tokens = &answer["entitlements"]["tokens"];
    assert_eq!(
        (tokens["aggregation"].clone(), tokens["property"].clone()),
        (json!("sum"), json!("tokens"))
    );
    assert!(
        tokens.get("limit").is_none() && tokens.get("remaining").is_none(),
        "unlimited: {tokens}"
    );
    assert_eq!(tokens["has_access"], true);
    assert_eq!(
        answer["entitlements"]["sso"],
        json!({"kind":"boolean","has_access":true})
    );
    assert_eq!(
        answer["entitlements"]["tier"],
        json!({"kind":"config","has_access":true,"value":{"seats":10}})
    );
    // The core SDK type reads it.
    let parsed: meterline_core::entitlement::Entitlements = serde_json::from_value(answer.clone()).unwrap();
    assert_eq!(parsed.entitlements.len(), 4);
}

#[tokio::test]
async fn overrides_replace_add_and_remove_features() {
    let s = Server::start();
    let ak = s.ak();
    standard_catalog(&s, ak).await;
    put_ok(&s, ak, "features/beta", json!({"kind":"boolean"})).await;
    let body = json!({"plan":"pro","overrides":{
        "api_calls":{"limit":5000,"period":"billing"},
        "sso":{"enabled":false},
        "beta":{},
        "tier":{"value":{"seats":50}}
    },"billing_anchor":"2026-01-31T09:00:00Z"});
    put_ok(&s, ak, "customers/c1", body).await;
    let e = entitlements(&s, s.sk(), "c1").await["entitlements"].clone();
    let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["api_calls", "beta", "tier", "tokens"]);
    assert_eq!(e["api_calls"]["limit"], 5000);
    assert_eq!(
        e["api_calls"]["soft_limit"], 8,
        "fields not overridden come from the plan"
    );
    assert_eq!(e["api_calls"]["period"], "billing");
    assert!(e["api_calls"]["period_start"].as_str().unwrap().ends_with("T00:00:00Z"));
    assert_eq!(e["tier"]["value"], json!({"seats":50}));
    // A customer without a plan has only its overrides.
    put_ok(&s, ak, "customers/c2", json!({"overrides":{"beta":{}}})).await;
    let e = entitlements(&s, s.sk(), "c2").await["entitlements"].clone();
    assert_eq!(e, json!({"beta":{"kind":"boolean","has_access":true}}));
}

#[tokio::test]
async fn subjects_that_are_not_customers_have_nothing() {
    let s = Server::start();
    standard_catalog(&s, s.ak()).await;
    let answer = entitlements(&s, s.sk(), "stranger").await;
    assert_eq!(
        answer,
        json!({"subject":"stranger","version":0,"ttl_ms":60000,"entitlements":{}})
    );
    let report = usage(&s, s.sk(), "stranger").await;
    assert_eq!(report, json!({"subject":"stranger","features":{}}));
}

async fn get_with_etag(s: &Server, subject: &str, if_none_match: Option<&str>) -> (u16, String, Option<Value>) {
    let mut request = s
        .http
        .get(format!("{}/v1/customers/{subject}/entitlements", s.url))
        .bearer_auth(s.sk());
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body = response.bytes().await.unwrap();
    let body = (!body.is_empty()).then(|| serde_json::from_slice(&body).unwrap());
    (status, etag, body)
}

#[tokio::test]
async fn etag_and_if_none_match() {
    let s = Server::start();
    standard_catalog(&s, s.ak()).await;
    put_ok(&s, s.ak(), "customers/c1", json!({"plan":"pro"})).await;
    let (status, etag, body) = get_with_etag(&s, "c1", None).await;
    assert_eq!(status, 200);
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
        "strong: {etag}"
    );
    assert!(body.is_some());
    let (status, again, body) = get_with_etag(&s, "c1", Some(&etag)).await;
    assert_eq!((status, again.as_str(), body), (304, etag.as_str(), None));
    // Usage changes the body, so the tag.
    let (status, _) = s.send(&[call_event("e1", "c1", &now_plus(0), json!({}))]).await;
    assert_eq!(status, 202);
    let (status, changed, body) = get_with_etag(&s, "c1", Some(&etag)).await;
    assert_eq!(status, 200);
    assert_ne!(changed, etag);
    assert_eq!(body.unwrap()["entitlements"]["api_calls"]["usage"], 1);
}

/// The `entitlements.updated` messages of `subject` in the log: (seq, data.version).
async fn updates(s: &Server, subject: &str) -> Vec<Value> {
    let (log, _) = stream_log(s, s.sk(), &[subject]).await;
    log.into_iter()
        .filter(|m| m["type"] == "entitlements.updated" && m["subject"] == subject)
        .collect()
}

#[tokio::test]
async fn version_follows_the_stream_and_ignores_identical_puts() {
    let s = Server::start();
    let ak = s.ak();
    standard_catalog(&s, ak).await;
    assert!(updates(&s, "c1").await.is_empty(), "no customer, no message");

    put_ok(&s, ak, "customers/c1", json!({"plan":"pro"})).await;
    let first = entitlements(&s, s.sk(), "c1").await;
    let log = updates(&s, "c1").await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0]["seq"], first["version"],
        "version = seq of the latest entitlements.updated"
    );
    assert_eq!(log[0]["data"], first, "the message carries the full answer");

    // Identical PUTs of the customer, its plan and a feature change nothing.
    put_ok(&s, ak, "customers/c1", json!({"plan":"pro"})).await;
    standard_catalog(&s, ak).await;
    let (_, seq_before) = stream_log(&s, s.sk(), &["c1"]).await;
    assert_eq!(entitlements(&s, s.sk(), "c1").await["version"], first["version"]);
    assert_eq!(updates(&s, "c1").await.len(), 1);

    // A plan change updates every customer on the plan; others are untouched.
    put_ok(&s, ak, "customers/c2", json!({"plan":"pro"})).await;
    put_ok(&s, ak, "plans/basic", json!({"features":{"sso":{}}})).await;
    put_ok(&s, ak, "customers/c3", json!({"plan":"basic"})).await;
    let c3_version = entitlements(&s, s.sk(), "c3").await["version"].clone();
    put_ok(
        &s,
        ak,
        "plans/pro",
        json!({"features":{"api_calls":{"limit":20},"sso":{}}}),
    )
    .await;
    let c1 = entitlements(&s, s.sk(), "c1").await;
    let c2 = entitlements(&s, s.sk(), "c2").await;
    assert!(c1["version"].as_u64().unwrap() > first["version"].as_u64().unwrap());
    assert!(c1["version"].as_u64().unwrap() > seq_before);
    assert_eq!(c1["entitlements"]["api_calls"]["limit"], 20);
    assert_ne!(c1["version"], c2["version"], "one message each");
    assert_eq!(entitlements(&s, s.sk(), "c3").await["version"], c3_version);
    // A feature change reaches the customers whose plan grants it.
    put_ok(&s, ak, "features/sso", json!({"kind":"config"})).await;
    let c3 = entitlements(&s, s.sk(), "c3").await;
    assert!(c3["version"].as_u64().unwrap() > c3_version.as_u64().unwrap());
    assert_eq!(
        c3["entitlements"]["sso"],
        json!({"kind":"config","has_access":true,"value":null})
    );

    // Deleting the customer sends an empty answer; the version keeps counting.
    let before = entitlements(&s, s.sk(), "c1").await["version"].as_u64().unwrap();
    let (status, _) = s.call("DELETE", "/v1/admin/customers/c1", ak, None).await;
    assert_eq!(status, 204);
    let gone = entitlements(&s, s.sk(), "c1").await;
    assert_eq!(gone["entitlements"], json!({}));
    assert!(gone["version"].as_u64().unwrap() > before);
    let log = updates(&s, "c1").await;
    assert_eq!(log.last().unwrap()["data"], gone);
    let versions: Vec<u64> = log.iter().map(|m| m["data"]["version"].as_u64().unwrap()).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "monotonic: {versions:?}");
}

#[tokio::test]
async fn publishable_keys_read_only_their_subject() {
    let s = Server::start();
    standard_catalog(&s, s.ak()).await;
    put_ok(&s, s.ak(), "customers/c1", json!({"plan":"pro"})).await;
    let pk = s.new_key("publishable").await;
    let token = customer_token(s.sk(), "c1", 600);
    let get = |path: String, token: Option<String>| {
        let mut request = s.http.get(format!("{}{path}", s.url)).bearer_auth(&pk);
        if let Some(token) = token {
            request = request.header("x-meterline-customer-token", token);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    for what in ["entitlements", "usage"] {
        let (status, body) = get(format!("/v1/customers/c1/{what}"), Some(token.clone())).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["subject"], "c1");
        let (status, body) = get(format!("/v1/customers/c2/{what}"), Some(token.clone())).await;
        assert_error(status, &body, 403, "wrong_subject");
        let (status, body) = get(format!("/v1/customers/c1/{what}"), None).await;
        assert_error(status, &body, 401, "token_required");
    }
    let (status, body) = get("/v1/admin/features".into(), Some(token)).await;
    assert_error(status, &body, 403, "forbidden");
}
