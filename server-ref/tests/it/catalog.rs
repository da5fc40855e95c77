//! The entitlement catalog admin API against the real binary: create/read/replace/delete of
//! features, plans and customers, identical PUTs, every kind of bad input (malformed,
//! wrong-typed, unknown fields, hostile and oversized keys and bodies), unknown references
//! and project isolation. The CLI commands are in `catalog_cli.rs`.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use common::{catalog::*, *};
use serde_json::{Value, json};

#[tokio::test]
async fn features_plans_and_customers_round_trip() {
    let s = Server::start();
    let ak = s.ak();
    let metered = json!({"kind":"metered","event_type":"api.call","aggregation":"sum","property":"tokens"});
    let (status, view) = s
        .call("PUT", "/v1/admin/features/tokens", ak, Some(metered.clone()))
        .await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(
        view,
        json!({"key":"tokens","kind":"metered","event_type":"api.call","aggregation":"sum","property":"tokens"})
    );
    let (status, again) = s.call("PUT", "/v1/admin/features/tokens", ak, Some(metered)).await;
    assert_eq!(
        (status.as_u16(), &again),
        (200, &view),
        "an identical PUT answers 200 with the same view"
    );
    // `aggregation` defaults to count.
    let view = put_ok(
        &s,
        ak,
        "features/calls",
        json!({"kind":"metered","event_type":"api.call"}),
    )
    .await;
    assert_eq!(view["aggregation"], "count");
    put_ok(&s, ak, "features/sso", json!({"kind":"boolean"})).await;
    put_ok(&s, ak, "features/tier", json!({"kind":"config"})).await;

    let (status, one) = s.get("/v1/admin/features/tokens", ak).await;
    assert_eq!((status.as_u16(), one["property"].clone()), (200, json!("tokens")));
    let (_, list) = s.get("/v1/admin/features", ak).await;
    let keys: Vec<_> = list["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].clone())
        .collect();
    assert_eq!(keys, [json!("calls"), json!("sso"), json!("tier"), json!("tokens")]);
    assert_eq!(list["next_cursor"], Value::Null);
    // Pages follow the cursor.
    let (_, page) = s.get("/v1/admin/features?limit=3", ak).await;
    assert_eq!(page["features"].as_array().unwrap().len(), 3);
    assert_eq!(page["next_cursor"], "tier");
    let (_, page) = s.get("/v1/admin/features?limit=3&cursor=tier", ak).await;
    assert_eq!(page["features"][0]["key"], "tokens");
    assert_eq!(page["next_cursor"], Value::Null);

    // Plans: period defaults to month at answer time; thresholds are stored sorted.
    let plan = json!({"features":{"calls":{"limit":1000,"soft_limit":800,"thresholds":[1.0,0.5]},"sso":{},"tier":{"value":{"seats":10}}}});
    let (status, view) = s.call("PUT", "/v1/admin/plans/pro", ak, Some(plan)).await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["features"]["calls"]["thresholds"], json!([0.5, 1.0]));
    assert_eq!(view["features"]["tier"]["value"], json!({"seats":10}));

    // Customers: the billing anchor defaults to the creation time and then stays.
    let (status, c1) = s
        .call("PUT", "/v1/admin/customers/c1", ak, Some(json!({"plan":"pro"})))
        .await;
    assert_eq!(status, 201, "{c1}");
    assert_eq!(c1["subject"], "c1");
    let anchor = c1["billing_anchor"].as_str().unwrap().to_owned();
    assert!(anchor.ends_with('Z'), "{anchor}");
    let (status, same) = s
        .call("PUT", "/v1/admin/customers/c1", ak, Some(json!({"plan":"pro"})))
        .await;
    assert_eq!(
        (status.as_u16(), same["billing_anchor"].as_str().unwrap()),
        (200, anchor.as_str())
    );
    let body = json!({"plan":"pro","overrides":{"calls":{"limit":5000},"sso":{"enabled":false},"tokens":{}},
        "billing_anchor":"2026-01-15T01:00:00+01:00"});
    let view = put_ok(&s, ak, "customers/c1", body).await;
    assert_eq!(view["billing_anchor"], "2026-01-15T00:00:00Z", "normalised to UTC");
    let (_, customers) = s.get("/v1/admin/customers", ak).await;
    assert_eq!(customers["customers"].as_array().unwrap().len(), 1);

    // Deletes: 204, then 404.
    let (status, _) = s.call("DELETE", "/v1/admin/customers/c1", ak, None).await;
    assert_eq!(status, 204);
    let (status, body) = s.call("DELETE", "/v1/admin/customers/c1", ak, None).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = s.get("/v1/admin/customers/c1", ak).await;
    assert_error(status, &body, 404, "not_found");
    let (status, _) = s.call("DELETE", "/v1/admin/plans/pro", ak, None).await;
    assert_eq!(status, 204);
    let (status, _) = s.call("DELETE", "/v1/admin/features/calls", ak, None).await;
    assert_eq!(status, 204);
    let (status, body) = s.get("/v1/admin/features/calls", ak).await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn bad_bodies_are_400_naming_the_field() {
    let s = Server::start();
    let ak = s.ak();
    put_ok(
        &s,
        ak,
        "features/calls",
        json!({"kind":"metered","event_type":"api.call"}),
    )
    .await;
    put_ok(&s, ak, "features/sso", json!({"kind":"boolean"})).await;
    put_ok(&s, ak, "plans/pro", json!({"features":{"calls":{"limit":5}}})).await;
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        // (path, body, code, text the message must contain)
        ("features/f", r#"{"kind":"metered","#, "invalid_json", "not valid JSON"),
        ("features/f", "", "invalid_json", "not valid JSON"),
        ("features/f", "[1,2]", "invalid_body", "must be an object"),
        ("features/f", r#"{"kind":"gauge"}"#, "invalid_body", "`kind`"),
        ("features/f", r#"{"kind":7}"#, "invalid_body", "`kind`"),
        ("features/f", r#"{}"#, "invalid_body", "`kind`: is required"),
        (
            "features/f",
            r#"{"kind":"boolean","colour":"red"}"#,
            "invalid_body",
            "unknown field \"colour\"",
        ),
        ("features/f", r#"{"kind":"metered"}"#, "invalid_body", "`event_type`"),
        (
            "features/f",
            r#"{"kind":"metered","event_type":5}"#,
            "invalid_body",
            "`event_type`: must be a string, not a number",
        ),
        (
            "features/f",
            r#"{"kind":"metered","event_type":"t","aggregation":"sum"}"#,
            "invalid_body",
            "`property`: is required",
        ),
        (
            "features/f",
            r#"{"kind":"metered","event_type":"t","property":"x"}"#,
            "invalid_body",
            "`property`",
        ),
        (
            "features/f",
            r#"{"kind":"metered","event_type":"t","aggregation":"max"}"#,
            "invalid_body",
            "`aggregation`",
        ),
        (
            "features/f",
            r#"{"kind":"metered","event_type":"t","aggregation":"sum","property":"a b"}"#,
            "invalid_body",
            "`property`",
        ),
        (
            "features/f",
            r#"{"kind":"boolean","event_type":"t"}"#,
            "invalid_body",
            "`event_type`: applies only to metered",
        ),
        (
            "features/f",
            r#"{"kind":"metered","event_type":""}"#,
            "invalid_body",
            "`event_type`",
        ),
        (
            "plans/p",
            r#"{"features":[]}"#,
            "invalid_body",
            "`features`: must be an object",
        ),
        (
            "plans/p",
            r#"{"features":{"calls":{"limit":"many"}}}"#,
            "invalid_body",
            "`features.calls.limit`",
        ),
        (
            "plans/p",
            r#"{"features":{"calls":{"limit":-1}}}"#,
            "invalid_body",
            "`features.calls.limit`",
        ),
        (
            "plans/p",
            r#"{"features":{"calls":{"limit":1e300}}}"#,
            "invalid_body",
            "`features.calls.limit`",
        ),
        (
            "plans/p",
            r#"{"features":{"calls":{"period":"year"}}}"#,
            "invalid_body",
            "`features.calls.period`",
        ),
        (
            "plans/p",
            r#"{"features":{"calls":{"thresholds":[0]}}}"#,
            "invalid_body",
            "`features.calls.thresholds`",
        ),
        (
            "plans/p",
            r#"{"features":{"calls":{"thresholds":[10.5]}}}"#,
            "invalid_body",
            "`features.calls.thresholds`",
        ),
        (
            "plans/p",
            r#"{"features":{"calls":{"thresholds":0.8}}}"#,
            "invalid_body",
            "`features.calls.thresholds`",
        ),
        (
            "plans/p",
            r#"{"features":{"calls":{"enabled":false}}}"#,
            "invalid_body",
            "unknown field \"enabled\"",
        ),
        (
            "plans/p",
            r#"{"features":{"bad key":{}}}"#,
            "invalid_body",
            "`features`",
        ),
        (
            "plans/p",
            r#"{"feature":{}}"#,
            "invalid_body",
            "unknown field \"feature\"",
        ),
        (
            "customers/c1",
            r#"{"plan":5}"#,
            "invalid_body",
            "`plan`: must be a string",
        ),
        (
            "customers/c1",
            r#"{"plan":"pro","billing_anchor":"yesterday"}"#,
            "invalid_body",
            "`billing_anchor`",
        ),
        (
            "customers/c1",
            r#"{"overrides":{"calls":{"enabled":"no"}}}"#,
            "invalid_body",
            "`overrides.calls.enabled`",
        ),
        (
            "customers/c1",
            r#"{"overrides":{"calls":{"limit":null,"extra":1}}}"#,
            "invalid_body",
            "`overrides.calls`",
        ),
        (
            "customers/c1",
            r#"{"plan":"pro","tier":"gold"}"#,
            "invalid_body",
            "unknown field \"tier\"",
        ),
    ];
    for (path, body, code, text) in cases {
        let (status, resp) = put_raw(&s, &format!("/v1/admin/{path}"), ak, body.to_owned()).await;
        assert_error(status, &resp, 400, code);
        let message = resp["message"].as_str().unwrap();
        assert!(
            message.contains(text),
            "PUT {path} {body}: {message:?} should contain {text:?}"
        );
    }
    // Nothing of it was stored.
    let (_, list) = s.get("/v1/admin/features", ak).await;
    assert_eq!(list["features"].as_array().unwrap().len(), 2);
    let (status, body) = s.get("/v1/admin/customers/c1", ak).await;
    assert_error(status, &body, 404, "not_found");
    // Bad list parameters.
    for query in ["limit=0", "limit=1001", "limit=x", "order=desc"] {
        let (status, body) = s.get(&format!("/v1/admin/plans?{query}"), ak).await;
        assert_error(status, &body, 400, "invalid_parameter");
    }
}

#[tokio::test]
async fn hostile_keys_and_bodies_leave_the_server_unaffected() {
    let s = Server::start();
    let ak = s.ak();
    let long = "k".repeat(10_000);
    let injection = "x';DROP TABLE features;--";
    for key in [long.as_str(), injection, "caf\u{e9}", "a/b", "%00", "a%20b"] {
        let path = format!("/v1/admin/features/{}", key.replace('/', "%2F").replace('\'', "%27"));
        let (status, body) = s.call("PUT", &path, ak, Some(json!({"kind":"boolean"}))).await;
        assert_error(status, &body, 400, "invalid_key");
        assert!(
            body["message"].as_str().unwrap().len() < 400,
            "the message stays short: {body}"
        );
        let (status, body) = s.get(&path, ak).await;
        assert_error(status, &body, 400, "invalid_key");
    }
    // Subjects follow the event rules: anything 1–256 characters, stored as given.
    put_ok(&s, ak, "features/sso", json!({"kind":"boolean"})).await;
    put_ok(&s, ak, "plans/p", json!({"features":{"sso":{}}})).await;
    for subject in [
        "x' OR '1'='1",
        "Kunde \u{2603} \u{1F600}",
        "robert\"); DROP TABLE customers;--",
    ] {
        let encoded: String = url_encode(subject);
        let view = put_ok(&s, ak, &format!("customers/{encoded}"), json!({"plan":"p"})).await;
        assert_eq!(view["subject"], subject);
        let answer = entitlements(&s, s.sk(), &encoded).await;
        assert_eq!(answer["subject"], subject);
        assert_eq!(answer["entitlements"]["sso"]["has_access"], true);
    }
    let (status, body) = s
        .call(
            "PUT",
            &format!("/v1/admin/customers/{}", "c".repeat(257)),
            ak,
            Some(json!({})),
        )
        .await;
    assert_error(status, &body, 400, "invalid_key");
    let (status, body) = s
        .get(&format!("/v1/customers/{}/entitlements", "c".repeat(257)), s.sk())
        .await;
    assert_error(status, &body, 400, "invalid_key");

    // Oversized: a 2 MiB body, 10k features, 100k thresholds, a huge config value.
    let (status, body) = put_raw(
        &s,
        "/v1/admin/features/big",
        ak,
        format!("{{\"kind\":\"boolean\",\"x\":\"{}\"}}", "a".repeat(2 << 20)),
    )
    .await;
    assert_error(status, &body, 413, "payload_too_large");
    let many: serde_json::Map<String, Value> = (0..10_000).map(|i| (format!("f{i}"), json!({}))).collect();
    let (status, body) = s
        .call("PUT", "/v1/admin/plans/huge", ak, Some(json!({"features": many})))
        .await;
    assert_error(status, &body, 400, "invalid_body");
    let (status, body) = s
        .call(
            "PUT",
            "/v1/admin/plans/huge",
            ak,
            Some(json!({"features":{"sso":{"thresholds": vec![0.5; 100_000]}}})),
        )
        .await;
    assert!(status == 400 || status == 413, "{status} {body}");
    put_ok(&s, ak, "features/tier", json!({"kind":"config"})).await;
    let (status, body) = s
        .call(
            "PUT",
            "/v1/admin/plans/huge",
            ak,
            Some(json!({"features":{"tier":{"value": "v".repeat(70_000)}}})),
        )
        .await;
    assert_error(status, &body, 400, "invalid_body");
    let nested = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let (status, body) = put_raw(
        &s,
        "/v1/admin/plans/deep",
        ak,
        format!("{{\"features\":{{\"tier\":{{\"value\":{nested}}}}}}}"),
    )
    .await;
    assert_error(status, &body, 400, "invalid_json");

    // The server is fine and its data intact.
    let (status, _) = s.get("/healthz", ak).await;
    assert_eq!(status, 200);
    let (_, list) = s.get("/v1/admin/features", ak).await;
    assert_eq!(list["features"].as_array().unwrap().len(), 2);
    let (_, list) = s.get("/v1/admin/customers", ak).await;
    assert_eq!(list["customers"].as_array().unwrap().len(), 3);
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn unknown_references_are_422_naming_them() {
    let s = Server::start();
    let ak = s.ak();
    put_ok(
        &s,
        ak,
        "features/calls",
        json!({"kind":"metered","event_type":"api.call"}),
    )
    .await;
    put_ok(&s, ak, "features/sso", json!({"kind":"boolean"})).await;
    let refused: Vec<(&str, Value, &str, &str)> = vec![
        (
            "plans/pro",
            json!({"features":{"calls":{},"seats":{}}}),
            "unknown_reference",
            "features.seats",
        ),
        ("customers/c1", json!({"plan":"gold"}), "unknown_reference", "gold"),
        (
            "customers/c1",
            json!({"overrides":{"storage":{"limit":5}}}),
            "unknown_reference",
            "overrides.storage",
        ),
        (
            "plans/pro",
            json!({"features":{"sso":{"limit":5}}}),
            "kind_mismatch",
            "features.sso.limit",
        ),
        (
            "plans/pro",
            json!({"features":{"calls":{"value":1}}}),
            "kind_mismatch",
            "features.calls.value",
        ),
    ];
    for (path, body, code, text) in refused {
        let (status, resp) = s.call("PUT", &format!("/v1/admin/{path}"), ak, Some(body)).await;
        assert_error(status, &resp, 422, code);
        assert!(resp["message"].as_str().unwrap().contains(text), "{path}: {resp}");
    }
    put_ok(&s, ak, "plans/pro", json!({"features":{"calls":{"limit":5}}})).await;
    put_ok(&s, ak, "customers/c1", json!({"plan":"pro","overrides":{"sso":{}}})).await;
    for (path, text) in [
        ("features/calls", "plans.pro.features.calls"),
        ("features/sso", "customers.c1.overrides.sso"),
        ("plans/pro", "customers.c1.plan"),
    ] {
        let (status, resp) = s.call("DELETE", &format!("/v1/admin/{path}"), ak, None).await;
        assert_error(status, &resp, 422, "unknown_reference");
        assert!(resp["message"].as_str().unwrap().contains(text), "{path}: {resp}");
    }
    // A feature's kind cannot change under a grant that no longer fits it.
    let (status, resp) = s
        .call("PUT", "/v1/admin/features/calls", ak, Some(json!({"kind":"boolean"})))
        .await;
    assert_error(status, &resp, 422, "kind_mismatch");
    assert!(resp["message"].as_str().unwrap().contains("plan \"pro\""), "{resp}");
    // Nothing changed.
    let (_, calls) = s.get("/v1/admin/features/calls", ak).await;
    assert_eq!(calls["kind"], "metered");
    let answer = entitlements(&s, s.sk(), "c1").await;
    assert_eq!(answer["entitlements"]["calls"]["limit"], 5);
}

#[tokio::test]
async fn projects_never_see_each_others_catalog() {
    let s = Server::start();
    let out = cli(s.dir.path(), &["admin", "project", "create", "other"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (other_sk, other_ak) = (key_line(&out.stdout, "secret"), key_line(&out.stdout, "admin"));
    standard_catalog(&s, s.ak()).await;
    put_ok(&s, s.ak(), "customers/c1", json!({"plan":"pro"})).await;
    s.send(&[call_event("e1", "c1", &now_plus(0), json!({"tokens": 5}))])
        .await;

    // The other project's admin key sees none of it and cannot touch it.
    for path in ["features/api_calls", "plans/pro", "customers/c1"] {
        let (status, body) = s.get(&format!("/v1/admin/{path}"), &other_ak).await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) = s.call("DELETE", &format!("/v1/admin/{path}"), &other_ak, None).await;
        assert_error(status, &body, 404, "not_found");
    }
    for list in ["features", "plans", "customers"] {
        let (_, body) = s.get(&format!("/v1/admin/{list}"), &other_ak).await;
        assert_eq!(body[list], json!([]), "{list}");
    }
    // Naming our plan from the other project is an unknown reference there.
    let (status, body) = s
        .call("PUT", "/v1/admin/customers/c1", &other_ak, Some(json!({"plan":"pro"})))
        .await;
    assert_error(status, &body, 422, "unknown_reference");
    // Its own items with the same keys are its own.
    put_ok(&s, &other_ak, "features/api_calls", json!({"kind":"boolean"})).await;
    put_ok(&s, &other_ak, "customers/c1", json!({"overrides":{"api_calls":{}}})).await;
    let (_, ours) = s.get("/v1/admin/features/api_calls", s.ak()).await;
    assert_eq!(ours["kind"], "metered");

    // Secret keys read only their own project's answers and usage.
    let theirs = entitlements(&s, &other_sk, "c1").await;
    assert_eq!(
        theirs["entitlements"],
        json!({"api_calls":{"kind":"boolean","has_access":true}})
    );
    let ours = entitlements(&s, s.sk(), "c1").await;
    assert_eq!(ours["entitlements"]["api_calls"]["usage"], 1);
    let their_usage = usage(&s, &other_sk, "c1").await;
    assert_eq!(their_usage["features"], json!({}));

    // Scopes: secret keys cannot administer, admin keys cannot read answers.
    let (status, body) = s
        .call("PUT", "/v1/admin/features/x", s.sk(), Some(json!({"kind":"boolean"})))
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = s.get("/v1/customers/c1/entitlements", s.ak()).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = s.get("/v1/admin/features", "ml_ak_nope_nope").await;
    assert_error(status, &body, 401, "unauthorized");
}
