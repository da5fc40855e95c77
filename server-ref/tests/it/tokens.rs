//! Customer tokens and rate limits over HTTP, against the real binary: every way a token
//! can be wrong, revocation of the signing key, project isolation, keys minted by the API
//! and the CLI, and `429 rate_limited` with `Retry-After`.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::time::Duration;

use common::{ws::*, *};
use meterline_core::key::ApiKey;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `GET /v1/schema` with a publishable key and, optionally, a customer token.
async fn get_with_token(s: &Server, pk: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = s.http.get(format!("{}/v1/schema", s.url)).bearer_auth(pk);
    if let Some(token) = token {
        request = request.header("x-meterline-customer-token", token);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn every_bad_token_is_refused_with_its_code() {
    let s = Server::start();
    let pk = s.new_key("publishable").await;
    let sk = ApiKey::parse(s.sk()).unwrap();
    let kid = sk.id.clone();
    let signing_key = sk.customer_token_signing_key();
    let now = unix_now();
    let claims = json!({"sub": "c1", "iat": now, "exp": now + 600});
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };

    let (status, body) = get_with_token(&s, &pk, None).await;
    assert_error(status, &body, 401, "token_required");

    let cases: Vec<(&str, String, &str)> = vec![
        ("garbage", "not-a-jwt".into(), "invalid_token"),
        (
            "alg none",
            format!("{}.{}.", b64(&json!({"alg": "none", "kid": kid})), b64(&claims)),
            "invalid_token",
        ),
        (
            "HS512",
            sign_token(&json!({"alg": "HS512", "kid": kid}), &claims, &signing_key),
            "invalid_token",
        ),
        (
            "RS256",
            sign_token(&json!({"alg": "RS256", "kid": kid}), &claims, &signing_key),
            "invalid_token",
        ),
        ("wrong key", sign_token(&header, &claims, b"guessed"), "invalid_token"),
        (
            "signed with the secret key text",
            sign_token(&header, &claims, s.sk().as_bytes()),
            "invalid_token",
        ),
        (
            "no kid",
            sign_token(&json!({"alg": "HS256"}), &claims, &signing_key),
            "invalid_token",
        ),
        (
            "kid of the publishable key",
            sign_token(
                &json!({"alg": "HS256", "kid": ApiKey::parse(&pk).unwrap().id}),
                &claims,
                &signing_key,
            ),
            "invalid_token",
        ),
        (
            "no iat",
            sign_token(&header, &json!({"sub": "c1", "exp": now + 600}), &signing_key),
            "invalid_token",
        ),
        (
            "no sub",
            sign_token(&header, &json!({"iat": now, "exp": now + 600}), &signing_key),
            "invalid_token",
        ),
        ("expired", customer_token(s.sk(), "c1", -3600), "token_expired"),
        ("100 KB", "a".repeat(100 * 1024), "invalid_token"),
    ];
    for (name, token, code) in cases {
        let (status, body) = get_with_token(&s, &pk, Some(&token)).await;
        assert_eq!(body["code"], code, "{name}: {body}");
        assert_error(status, &body, 401, code);
    }

    // A good token authenticates: the schemas of the types it may send (none by default),
    // and events only of those types (tests/publishable.rs).
    let token = customer_token(s.sk(), "c1", 600);
    let (status, body) = get_with_token(&s, &pk, Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let response = s
        .http
        .post(format!("{}/v1/events", s.url))
        .bearer_auth(&pk)
        .header("x-meterline-customer-token", &token)
        .header("content-type", BATCH)
        .body(serde_json::to_vec(&[ev("x")]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["rejected"][0]["code"], "forbidden", "{body}");
    assert!(s.all_events(s.sk(), "").await.is_empty());
    // A token sent with a secret key is ignored.
    let (status, _) = get_with_token(&s, s.sk(), Some("garbage")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn revoking_the_signing_key_invalidates_its_tokens() {
    let s = Server::start();
    let pk = s.new_key("publishable").await;
    let sk2 = s.new_key("secret").await;
    let token = customer_token(&sk2, "c1", 600);
    let (status, body) = get_with_token(&s, &pk, Some(&token)).await;
    assert_eq!(status, 200, "the token verifies: {body}");

    let id = ApiKey::parse(&sk2).unwrap().id;
    let (status, _) = s.call("DELETE", &format!("/v1/admin/keys/{id}"), s.ak(), None).await;
    assert_eq!(status, 204);
    let (status, body) = get_with_token(&s, &pk, Some(&token)).await;
    assert_error(status, &body, 401, "invalid_token");
    assert!(body["message"].as_str().unwrap().contains("revoked"), "{body}");
    // Tokens of the project's other secret key still work.
    let (status, _) = get_with_token(&s, &pk, Some(&customer_token(s.sk(), "c1", 600))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn tokens_do_not_cross_projects_and_cli_keys_sign() {
    let s = Server::start();
    let out = cli(s.dir.path(), &["admin", "project", "create", "other"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let other_sk = key_line(&out.stdout, "secret");
    let out = cli(
        s.dir.path(),
        &["admin", "keys", "create", "--project", "other", "--kind", "publishable"],
    );
    let other_pk = key_line(&out.stdout, "publishable");
    let pk = s.new_key("publishable").await;

    // A token signed in project `other` is unknown to project `default`'s publishable key…
    let foreign = customer_token(&other_sk, "c1", 600);
    let (status, body) = get_with_token(&s, &pk, Some(&foreign)).await;
    assert_error(status, &body, 401, "invalid_token");
    // …and verifies with `other`'s own publishable key (both minted by the CLI).
    let (status, body) = get_with_token(&s, &other_pk, Some(&foreign)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn over_the_limit_is_429_with_retry_after() {
    let s = start_with_config("[limits]\nrequests_per_second = 2\nburst = 3\n");
    let mut limited = None;
    for _ in 0..10 {
        let response = s
            .http
            .get(format!("{}/v1/schema", s.url))
            .bearer_auth(s.sk())
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), 200);
    }
    let response = limited.expect("the fourth quick request is limited");
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_error(StatusCode::TOO_MANY_REQUESTS, &body, 429, "rate_limited");

    // Buckets are per key: the admin key is unaffected.
    let (status, _) = s.get("/v1/schema", s.ak()).await;
    assert_eq!(status, 200);
    // Ingest is limited too.
    let (status, _, body) = s
        .post_raw(
            "/v1/events",
            Some(s.sk()),
            Some(BATCH),
            None,
            serde_json::to_vec(&[ev("r")]).unwrap(),
        )
        .await;
    assert_error(status, &body, 429, "rate_limited");
    // Unauthenticated requests are answered 401, not charged to anyone.
    let (status, _) = s.get("/v1/schema", "ml_sk_nosuchkey_0123456789abcdefXYZ").await;
    assert_eq!(status, 401);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = s.get("/v1/schema", s.sk()).await;
    assert_eq!(status, 200, "the bucket refills");
    let metrics = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("meterline_rate_limited_total 2"), "{metrics}");
}
