//! Admin API: schema CRUD with ETag/304, settings, keys (create/list/revoke), the admin CLI
//! and project isolation.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn schema_crud_and_etag() {
    let s = Server::start();
    let schema = json!({"type":"object","required":["tokens"],"properties":{"tokens":{"type":"integer"}}});

    let (status, doc) = s.get("/v1/schema", s.sk()).await;
    assert_eq!(status, 200);
    assert_eq!(doc["types"], json!({}));
    let empty_etag = doc["etag"].as_str().unwrap().to_owned();

    let (status, created) = s
        .call("PUT", "/v1/admin/schemas/api.call", s.ak(), Some(schema.clone()))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (created["type"].clone(), created["schema"].clone()),
        (json!("api.call"), schema.clone())
    );
    let (status, _) = s
        .call("PUT", "/v1/admin/schemas/api.call", s.ak(), Some(schema.clone()))
        .await;
    assert_eq!(status, 200, "replacing answers 200");

    let (status, one) = s.get("/v1/admin/schemas/api.call", s.ak()).await;
    assert_eq!((status.as_u16(), one["schema"].clone()), (200, schema.clone()));
    let (status, list) = s.get("/v1/admin/schemas", s.ak()).await;
    assert_eq!(status, 200);
    assert_eq!(list["schemas"].as_array().unwrap().len(), 1);

    // GET /v1/schema with ETag and If-None-Match.
    let resp = s
        .http
        .get(format!("{}/v1/schema", s.url))
        .bearer_auth(s.sk())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["types"]["api.call"], schema);
    assert_eq!(format!("\"{}\"", doc["etag"].as_str().unwrap()), etag);
    assert_ne!(doc["etag"], empty_etag);
    let resp = s
        .http
        .get(format!("{}/v1/schema", s.url))
        .bearer_auth(s.sk())
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);
    let resp = s
        .http
        .get(format!("{}/v1/schema", s.url))
        .bearer_auth(s.sk())
        .header("if-none-match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Validation uses the new schema at once.
    let mut bad = ev("b");
    bad["data"]["tokens"] = json!(1.5);
    let (_, resp) = s.send(&[bad]).await;
    assert_eq!(resp["rejected"][0]["path"], "/data/tokens");

    // Invalid schemas, bad bodies.
    let (status, body) = s
        .call("PUT", "/v1/admin/schemas/x", s.ak(), Some(json!({"type": 12})))
        .await;
    assert_error(status, &body, 422, "invalid_schema");
    let resp = s
        .http
        .put(format!("{}/v1/admin/schemas/x", s.url))
        .bearer_auth(s.ak())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "invalid_json");

    // Delete, then 404s.
    let (status, _) = s.call("DELETE", "/v1/admin/schemas/api.call", s.ak(), None).await;
    assert_eq!(status, 204);
    let (status, body) = s.call("DELETE", "/v1/admin/schemas/api.call", s.ak(), None).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = s.get("/v1/admin/schemas/api.call", s.ak()).await;
    assert_error(status, &body, 404, "not_found");
    let (_, doc) = s.get("/v1/schema", s.sk()).await;
    assert_eq!(doc["etag"], empty_etag, "the ETag follows the content");

    // Secret keys cannot administer.
    let (status, body) = s.call("PUT", "/v1/admin/schemas/y", s.sk(), Some(json!({}))).await;
    assert_error(status, &body, 403, "forbidden");
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked_at_once() {
    let s = Server::start();
    let (status, created) = s
        .call("POST", "/v1/admin/keys", s.ak(), Some(json!({"kind": "secret"})))
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("ml_sk_{id}_")));
    assert_eq!(created["kind"], "secret");

    let (status, _) = s.send(&[]).await;
    assert_eq!(status, 202);
    let body = serde_json::to_vec(&[ev("k1")]).unwrap();
    let (status, _, _) = s
        .post_raw("/v1/events", Some(&key), Some(BATCH), None, body.clone())
        .await;
    assert_eq!(status, 202);

    let (status, list) = s.get("/v1/admin/keys", s.ak()).await;
    assert_eq!(status, 200);
    let keys = list["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3, "default secret + admin + the new one: {list}");
    assert!(
        !list.to_string().contains(key.rsplit('_').next().unwrap()),
        "no secrets listed"
    );
    assert!(keys.iter().all(|k| k["revoked_at"].is_null()));

    let (status, _) = s.call("DELETE", &format!("/v1/admin/keys/{id}"), s.ak(), None).await;
    assert_eq!(status, 204);
    let (status, _, resp) = s.post_raw("/v1/events", Some(&key), Some(BATCH), None, body).await;
    assert_error(status, &resp, 401, "unauthorized");
    let (_, list) = s.get("/v1/admin/keys", s.ak()).await;
    let revoked = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap();
    assert!(revoked["revoked_at"].is_string());

    let (status, body) = s.call("DELETE", "/v1/admin/keys/nosuchkey", s.ak(), None).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = s
        .call("POST", "/v1/admin/keys", s.ak(), Some(json!({"kind": "root"})))
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = s
        .call("POST", "/v1/admin/keys", s.sk(), Some(json!({"kind": "secret"})))
        .await;
    assert_error(status, &body, 403, "forbidden");
}

#[tokio::test]
async fn projects_are_isolated() {
    let s = Server::start();
    s.send(&[ev("default-1")]).await;
    s.call(
        "PUT",
        "/v1/admin/schemas/api.call",
        s.ak(),
        Some(json!({"type":"object"})),
    )
    .await;

    // A second project, created by the CLI on the same file while the server runs.
    let out = cli(s.dir.path(), &["admin", "project", "create", "other"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().next() == Some("project: other"), "{stdout}");
    let other_sk = key_line(&out.stdout, "secret");
    let other_ak = key_line(&out.stdout, "admin");
    let again = cli(s.dir.path(), &["admin", "project", "create", "other"]);
    assert!(!again.status.success(), "duplicate names fail");

    assert!(
        s.all_events(&other_sk, "").await.is_empty(),
        "other sees none of default's events"
    );
    let (_, doc) = s.get("/v1/schema", &other_sk).await;
    assert_eq!(doc["types"], json!({}), "nor its schemas");
    let (status, _) = s.get("/v1/admin/schemas/api.call", &other_ak).await;
    assert_eq!(status, 404);

    // Same (source, id) in both projects: two different events.
    let body = serde_json::to_vec(&[ev("default-1"), ev("other-1")]).unwrap();
    let (_, _, resp) = s.post_raw("/v1/events", Some(&other_sk), Some(BATCH), None, body).await;
    assert_eq!(resp["accepted"], 2, "{resp}");
    let theirs = s.all_events(&other_sk, "").await;
    let ours = s.all_events(s.sk(), "").await;
    assert_eq!(theirs.len(), 2);
    assert_eq!(ours.len(), 1);

    // An admin key cannot list or revoke another project's keys.
    let (_, our_keys) = s.get("/v1/admin/keys", s.ak()).await;
    let our_secret_id = our_keys["keys"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = s
        .call("DELETE", &format!("/v1/admin/keys/{our_secret_id}"), &other_ak, None)
        .await;
    assert_error(status, &body, 404, "not_found");
    let (_, still) = s.send(&[ev("default-2")]).await;
    assert_eq!(still["accepted"], 1, "our key still works");
    let (_, their_keys) = s.get("/v1/admin/keys", &other_ak).await;
    assert!(!their_keys.to_string().contains(&our_secret_id));
}

#[tokio::test]
async fn cli_key_commands() {
    let dir = tempdir();
    let out = cli(dir.path(), &["admin", "project", "create", "acme"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(
        dir.path(),
        &["admin", "keys", "create", "--project", "acme", "--kind", "publishable"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pk = key_line(&out.stdout, "publishable");
    assert!(pk.starts_with("ml_pk_"));
    let out = cli(
        dir.path(),
        &["admin", "keys", "create", "--project", "acme", "--kind", "secret"],
    );
    let sk = key_line(&out.stdout, "secret");
    let sk_id = sk.split('_').nth(2).unwrap().to_owned();

    let out = cli(dir.path(), &["admin", "keys", "list", "--project", "acme"]);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(listing.lines().count(), 4, "{listing}");
    assert!(listing.contains(&sk_id) && !listing.contains(sk.rsplit('_').next().unwrap()));

    let out = cli(dir.path(), &["admin", "keys", "revoke", &sk_id]);
    assert!(out.status.success());
    let out = cli(dir.path(), &["admin", "keys", "list", "--project", "acme"]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with(&sk_id) && l.contains("revoked"))
    );

    for bad in [
        vec!["admin", "keys", "list", "--project", "nope"],
        vec!["admin", "keys", "revoke", "nosuchid"],
        vec!["admin", "project", "create", "bad name!"],
        vec!["admin", "keys", "create", "--project", "acme", "--kind", "root"],
    ] {
        let out = cli(dir.path(), &bad);
        assert!(!out.status.success(), "{bad:?} should fail");
        assert!(!out.stderr.is_empty());
    }

    // A server started on this database creates no default project and prints no keys;
    // the CLI's keys work, the revoked one does not.
    let s = Server::start_in(dir.clone(), &[]);
    assert!(s.secret.is_none() && s.admin.is_none());
    let (status, _) = s.get("/v1/events", &sk).await;
    assert_eq!(status, 401);
    // A publishable key alone is not enough: it needs a customer token.
    let (status, body) = s.get("/v1/events", &pk).await;
    assert_error(status, &body, 401, "token_required");
}
