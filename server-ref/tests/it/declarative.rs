//! The `[catalog]` of `meterline.toml` against the real binary: applied at start, a second
//! start with the same file changes nothing, a changed file updates what it names, errors
//! name the TOML key; and catalog changes made by the CLI while the server runs reach its
//! stream subscribers.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::{process::Command, time::Duration};

use common::{catalog::*, ws::*, *};
use serde_json::json;

const CATALOG: &str = r#"
[catalog]
project = "default"

[catalog.features.api_calls]
kind = "metered"
event_type = "api.call"

[catalog.features.sso]
kind = "boolean"

[catalog.plans.pro.features.api_calls]
limit = 1000
period = "month"
thresholds = [0.5, 1.0]

[catalog.plans.pro.features.sso]

[catalog.customers."customer 42"]
plan = "pro"
billing_anchor = 2026-01-15T00:00:00Z

[catalog.customers.c2.overrides.sso]
"#;

#[tokio::test]
async fn catalog_applies_at_start_and_again_changes_nothing() {
    let dir = tempdir();
    write_config(dir.path(), CATALOG);
    let s = Server::start_in(dir.clone(), &[]);
    let (sk, ak) = (s.sk().to_owned(), s.ak().to_owned());
    let answer = entitlements(&s, &sk, "customer%2042").await;
    assert_eq!(answer["entitlements"]["api_calls"]["limit"], 1000);
    assert_eq!(answer["entitlements"]["sso"]["has_access"], true);
    let (_, customer) = s.get("/v1/admin/customers/customer%2042", &ak).await;
    assert_eq!(customer["billing_anchor"], "2026-01-15T00:00:00Z");
    assert_eq!(
        entitlements(&s, &sk, "c2").await["entitlements"],
        json!({"sso":{"kind":"boolean","has_access":true}})
    );
    let (_, seq) = stream_log(&s, &sk, &["customer 42", "c2"]).await;
    assert!(seq > 0);
    let version = answer["version"].clone();
    s.signal(SIGTERM);
    s.wait_exit(Duration::from_secs(20));

    // Same file: no version bump, no message.
    let s = Server::start_in(dir.clone(), &[]);
    assert_eq!(entitlements(&s, &sk, "customer%2042").await["version"], version);
    assert_eq!(stream_log(&s, &sk, &[]).await.1, seq);
    let log = without_colours(&s.log());
    assert!(log.contains("created=0 replaced=0 unchanged=5"), "{log}");
    s.signal(SIGTERM);
    s.wait_exit(Duration::from_secs(20));

    // A changed limit updates the plan's customers; items left out of the file stay.
    write_config(dir.path(), &CATALOG.replace("limit = 1000", "limit = 2000"));
    let s = Server::start_in(dir.clone(), &[]);
    let answer = entitlements(&s, &sk, "customer%2042").await;
    assert_eq!(answer["entitlements"]["api_calls"]["limit"], 2000);
    assert!(answer["version"].as_u64().unwrap() > version.as_u64().unwrap());
    put_ok(&s, &ak, "features/extra", json!({"kind":"boolean"})).await;
    s.signal(SIGTERM);
    s.wait_exit(Duration::from_secs(20));
    write_config(dir.path(), &CATALOG.replace("limit = 1000", "limit = 2000"));
    let s = Server::start_in(dir, &[]);
    let (status, _) = s.get("/v1/admin/features/extra", &ak).await;
    assert_eq!(status, 200, "the file never deletes");
}

/// `text` without ANSI colour sequences (`ESC [ … m`).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// Starts the binary on a fresh database with `toml` as its config; returns its exit code
/// and stderr.
fn start_failing(toml: &str) -> (Option<i32>, String) {
    let dir = tempdir();
    write_config(dir.path(), toml);
    let out = Command::new(BIN)
        .args(["--bind", "127.0.0.1:0", "--database-url", &db_url(dir.path())])
        .current_dir(dir.path())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn catalog_errors_name_the_toml_key() {
    for (toml, code, text) in [
        (
            CATALOG.replace("limit = 1000", "limit = \"lots\""),
            2,
            "`catalog.plans.pro.features.api_calls.limit`",
        ),
        (
            CATALOG.replace("kind = \"boolean\"", "kind = \"switch\""),
            2,
            "`catalog.features.sso.kind`",
        ),
        (
            CATALOG.replace("project = \"default\"", "projekt = \"default\""),
            2,
            "projekt",
        ),
        (
            CATALOG.replace("[catalog.features.sso]", "[catalog.features.\"s s o\"]"),
            2,
            "catalog.features.\"s s o\"",
        ),
        (
            CATALOG.replace("billing_anchor = 2026-01-15T00:00:00Z", "billing_anchor = 2026-01-15"),
            2,
            "`catalog.customers.\"customer 42\".billing_anchor`",
        ),
        // Checked against the database at start: exit 1, naming the key.
        (
            CATALOG.replace("[catalog.plans.pro.features.sso]", "[catalog.plans.pro.features.seats]"),
            1,
            "`catalog.plans.pro`",
        ),
        (
            CATALOG.replace("project = \"default\"", "project = \"acme\""),
            1,
            "`catalog.project`",
        ),
    ] {
        let (exit, stderr) = start_failing(&toml);
        assert_eq!(exit, Some(code), "{stderr}");
        assert!(stderr.contains(text), "{stderr:?} should contain {text:?}");
    }
}

#[tokio::test]
async fn cli_changes_reach_stream_subscribers() {
    let s = start_with_config("[entitlements]\nrelay_poll_ms = 100\n");
    standard_catalog(&s, s.ak()).await;
    let mut socket = connect_key(&s.url, s.sk()).await;
    subscribe(&mut socket, &["c1"], None).await;
    let out = cli(
        s.dir.path(),
        &[
            "admin",
            "customers",
            "put",
            "c1",
            r#"{"plan":"pro"}"#,
            "--project",
            "default",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let message = recv_json(&mut socket).await;
    assert_eq!(message["type"], "entitlements.updated", "{message}");
    assert_eq!(message["data"]["entitlements"]["api_calls"]["limit"], 10);
    assert_eq!(entitlements(&s, s.sk(), "c1").await["version"], message["seq"]);
    // Later in-process changes still arrive, in seq order after it.
    put_ok(
        &s,
        s.ak(),
        "customers/c1",
        json!({"plan":"pro","overrides":{"sso":{"enabled":false}}}),
    )
    .await;
    let next = recv_json(&mut socket).await;
    assert!(next["seq"].as_u64().unwrap() > message["seq"].as_u64().unwrap());
    assert!(next["data"]["entitlements"].get("sso").is_none());
}

#[tokio::test]
async fn the_self_host_example_applies() {
    let s = start_with_config(include_str!("../../../examples/self-host/meterline.toml"));
    let acme = entitlements(&s, s.sk(), "acme-corp").await["entitlements"].clone();
    assert_eq!(acme["api_calls"]["limit"], 5000);
    assert_eq!(acme["sso"]["has_access"], true);
    assert_eq!(acme["tier"]["value"], json!({"name":"free","seats":1}));
    let c42 = entitlements(&s, s.sk(), "customer-42").await["entitlements"].clone();
    assert_eq!(c42["api_calls"]["period"], "billing");
    assert!(c42["api_calls"]["period_start"].as_str().unwrap()[8..].starts_with("15T00:00:00Z"));
    assert_eq!(c42["tokens"]["limit"], 5_000_000);
}
