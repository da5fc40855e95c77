//! `meterline-server admin features|plans|customers put|get|list|delete` against a real
//! database: the same validation and references as the HTTP API, bodies inline or from a
//! file, and a server started on the database afterwards sees the changes.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn cli_catalog_commands() {
    let dir = tempdir();
    let run = |args: &[&str]| {
        let out = cli(dir.path(), args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = run(&["admin", "project", "create", "acme"]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&[
        "admin",
        "features",
        "put",
        "calls",
        r#"{"kind":"metered","event_type":"api.call"}"#,
        "--project",
        "acme",
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with("created feature \"calls\"\n"), "{out}");
    let view: Value = serde_json::from_str(out.lines().nth(1).unwrap()).unwrap();
    assert_eq!(view["aggregation"], "count");
    let (ok, out, _) = run(&[
        "admin",
        "features",
        "put",
        "calls",
        r#"{"kind":"metered","event_type":"api.call"}"#,
        "--project",
        "acme",
    ]);
    assert!(ok && out.starts_with("unchanged feature \"calls\""), "{out}");

    let plan = dir.path().join("plan.json");
    std::fs::write(&plan, r#"{"features":{"calls":{"limit":3,"period":"day"}}}"#).unwrap();
    let (ok, out, err) = run(&[
        "admin",
        "plans",
        "put",
        "pro",
        "--file",
        plan.to_str().unwrap(),
        "--project",
        "acme",
    ]);
    assert!(ok && out.starts_with("created plan \"pro\""), "{out}{err}");
    let (ok, _, err) = run(&[
        "admin",
        "customers",
        "put",
        "c1",
        r#"{"plan":"pro"}"#,
        "--project",
        "acme",
    ]);
    assert!(ok, "{err}");
    let (ok, out, _) = run(&["admin", "customers", "get", "c1", "--project", "acme"]);
    let customer: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(ok && customer["plan"] == "pro", "{out}");
    let (ok, out, _) = run(&["admin", "features", "list", "--project", "acme"]);
    assert!(ok && out.lines().count() == 1, "{out}");

    // The same validation as HTTP, with the code and the field.
    for (args, text) in [
        (
            vec!["admin", "features", "put", "x", "{\"kind\":", "--project", "acme"],
            "invalid_json",
        ),
        (
            vec![
                "admin",
                "features",
                "put",
                "x",
                r#"{"kind":"metered"}"#,
                "--project",
                "acme",
            ],
            "`event_type`",
        ),
        (
            vec![
                "admin",
                "features",
                "put",
                "bad key",
                r#"{"kind":"boolean"}"#,
                "--project",
                "acme",
            ],
            "invalid_key",
        ),
        (
            vec![
                "admin",
                "plans",
                "put",
                "p",
                r#"{"features":{"nope":{}}}"#,
                "--project",
                "acme",
            ],
            "unknown_reference",
        ),
        (
            vec!["admin", "features", "delete", "calls", "--project", "acme"],
            "plans.pro.features.calls",
        ),
        (
            vec!["admin", "features", "get", "nope", "--project", "acme"],
            "no feature \"nope\"",
        ),
        (
            vec!["admin", "features", "list", "--project", "nope"],
            "no project named \"nope\"",
        ),
        (vec!["admin", "plans", "put", "p", "--project", "acme"], "<BODY>"),
        (
            vec![
                "admin",
                "plans",
                "put",
                "p",
                "--file",
                "/nonexistent.json",
                "--project",
                "acme",
            ],
            "/nonexistent.json",
        ),
    ] {
        let (ok, _, err) = run(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(text), "{args:?}: {err:?} should contain {text:?}");
    }

    let (ok, out, _) = run(&["admin", "customers", "delete", "c1", "--project", "acme"]);
    assert!(ok && out.trim() == "deleted customer \"c1\"", "{out}");
    let (ok, _, _) = run(&["admin", "customers", "delete", "c1", "--project", "acme"]);
    assert!(!ok, "deleting again fails");

    // A server on this database sees what the CLI made.
    let (_, out, _) = run(&["admin", "keys", "create", "--project", "acme", "--kind", "admin"]);
    let ak = key_line(out.as_bytes(), "admin");
    let s = Server::start_in(dir.clone(), &[]);
    let (_, plan) = s.get("/v1/admin/plans/pro", &ak).await;
    assert_eq!(plan["features"]["calls"]["limit"], 3);
}
