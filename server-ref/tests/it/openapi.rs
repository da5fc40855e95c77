//! `/openapi.json`: served without a key, valid OpenAPI 3.1, and every operation it lists is
//! a route of the server (no `no route` 404, no 405) — so the document cannot name an
//! endpoint that does not exist. Live answers are checked against it by schemathesis
//! (`scripts/test-openapi.sh`, run by `make test`).

use crate::common;

use common::Server;
use serde_json::Value;

#[tokio::test]
async fn the_document_is_served_and_every_operation_is_a_route() {
    let s = Server::start();
    let resp = s.http.get(format!("{}/openapi.json", s.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{} paths", paths.len());

    let mut checked = 0;
    for (path, item) in paths {
        let url_path = path
            .replace("{type}", "api.call")
            .replace("{id}", "key_missing")
            .replace("{key}", "missing")
            .replace("{subject}", "c1");
        for (method, operation) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            // Every operation documents its answers and the shared error answer.
            assert!(operation["responses"]["default"].is_object(), "{method} {path}");
            assert!(operation["operationId"].is_string(), "{method} {path}");
            let key = if path.starts_with("/v1/admin") { s.ak() } else { s.sk() };
            let resp = s
                .http
                .request(method.to_uppercase().parse().unwrap(), format!("{}{url_path}", s.url))
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path}: {body}");
            assert!(!body.contains("no route for"), "{method} {path} is not a route: {body}");
            assert!(status < 500, "{method} {path}: {status} {body}");
            checked += 1;
        }
    }
    assert!(checked >= 28, "{checked} operations");
}

#[tokio::test]
async fn every_reference_resolves() {
    let doc: Value = serde_json::from_str(meterline_server::health::OPENAPI_JSON).unwrap();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50);
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("external ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
