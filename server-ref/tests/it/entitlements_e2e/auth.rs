//! Who may read what, as the client sees it: projects never see each other's customers, a
//! publishable key with a customer token reads only its subject, expired tokens and revoked
//! keys are `unauthorized`, a tight rate limit is `rate limited`, a revoked key's open
//! stream is closed with 4403 without a reconnect storm, and revalidation uses `ETag`/`304`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meterline_core::{Client, Source, customer_token, key::ApiKey};
use serde_json::json;

use super::{client, config, entitlement_gets, metric, pro_customers, rt, wait_for, wait_frames};
use crate::common::{Server, catalog::put_ok, cli, key_line, start_with_config};

fn has(client: &Client, subject: &str, feature: &str) -> bool {
    client.entitlement(subject, feature).unwrap().has_access
}

#[test]
fn a_project_never_reads_another_projects_customers() {
    let rt = rt();
    let s = Server::start();
    pro_customers(&rt, &s, &["c1"]);
    let ak = s.ak().to_owned();
    let out = cli(s.dir.path(), &["admin", "project", "create", "other"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (other_sk, other_ak) = (key_line(&out.stdout, "secret"), key_line(&out.stdout, "admin"));

    let (ours, _) = client(config(s.sk(), &s.url));
    let (theirs, _) = client(config(&other_sk, &s.url));
    assert!(has(&ours, "c1", "sso"));
    let foreign = theirs.entitlement("c1", "sso").unwrap();
    assert_eq!(
        (foreign.source, foreign.has_access, foreign.kind),
        (Source::Fresh, false, None)
    );
    let theirs_before = foreign.version;
    wait_frames(&rt, &s, 2.0);

    // A change in `default` must not reach `other`'s client; `other`'s own change must.
    rt.block_on(async {
        put_ok(
            &s,
            &ak,
            "customers/c1",
            json!({"overrides":{"tier":{"value":{"seats":99}}}}),
        )
        .await;
        put_ok(&s, &other_ak, "features/sso", json!({"kind":"boolean"})).await;
        put_ok(&s, &other_ak, "plans/p", json!({"features":{"sso":{}}})).await;
        put_ok(&s, &other_ak, "customers/c1", json!({"plan":"p"})).await;
    });
    wait_for("default's change in default's client", || {
        let tier = ours.entitlement("c1", "tier").unwrap();
        (tier.value.as_deref() == Some(&json!({"seats": 99}))).then_some(())
    });
    let granted = wait_for("other's own change in other's client", || {
        let answer = theirs.entitlement("c1", "sso").unwrap();
        answer.has_access.then_some(answer)
    });
    assert!(granted.version > theirs_before);
    let tier = theirs.entitlement("c1", "tier").unwrap();
    assert_eq!(
        (tier.has_access, tier.value.clone()),
        (false, None),
        "never default's: {tier:?}"
    );
    assert_eq!(
        theirs.stats().cache_misses,
        1,
        "other's answers came from its own stream"
    );
}

#[test]
fn a_customer_token_reads_its_own_subject_only() {
    let rt = rt();
    let s = Server::start();
    pro_customers(&rt, &s, &["c1", "c2"]);
    let ak = s.ak().to_owned();
    rt.block_on(put_ok(&s, &ak, "plans/none", json!({"features":{}})));
    let pk = rt.block_on(s.new_key("publishable"));
    let (backend, _) = client(config(s.sk(), &s.url));
    let token = backend.customer_token("c1", Duration::from_secs(600)).unwrap();

    let mut c = config(&pk, &s.url);
    c.customer_token = Some(token);
    let (browser, seen) = client(c);
    let own = browser.entitlement("c1", "sso").unwrap();
    assert_eq!((own.source, own.has_access), (Source::Fresh, true), "{own:?}");
    let other = browser.entitlement("c2", "sso").unwrap();
    assert_eq!((other.source, other.has_access), (Source::Fallback, false), "{other:?}");
    let reason = other.reason.unwrap_or_default();
    assert!(reason.starts_with("forbidden"), "{reason}");
    // Its stream works for its own subject.
    wait_for("the browser client's stream", || {
        browser.stats().stream_connected.then_some(())
    });
    wait_frames(&rt, &s, 1.0);
    rt.block_on(put_ok(&s, &ak, "customers/c1", json!({"plan":"none"})));
    wait_for("the plan change over the customer's stream", || {
        (!has(&browser, "c1", "sso")).then_some(())
    });
    assert!(
        seen.errors().iter().any(|e| e.code() == "forbidden"),
        "{:?}",
        seen.errors()
    );

    // A token that expired an hour ago.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let expired = customer_token::mint(
        &ApiKey::parse(s.sk()).unwrap(),
        "c1",
        Duration::from_secs(60),
        now - 3600,
    )
    .unwrap();
    let mut c = config(&pk, &s.url);
    c.customer_token = Some(expired);
    let (late, _) = client(c);
    let answer = late.entitlement("c1", "sso").unwrap();
    assert_eq!(answer.source, Source::Fallback, "{answer:?}");
    let reason = answer.reason.unwrap_or_default();
    assert!(reason.starts_with("unauthorized: token_expired"), "{reason}");
}

#[test]
fn revalidation_sends_the_etag_and_the_server_answers_304() {
    let rt = rt();
    let s = Server::start();
    pro_customers(&rt, &s, &["c1"]);
    let ak = s.ak().to_owned();
    rt.block_on(put_ok(&s, &ak, "plans/none", json!({"features":{}})));
    let mut c = config(s.sk(), &s.url);
    c.stream = false;
    c.max_ttl = Some(Duration::from_millis(200));
    let (client, seen) = client(c);
    let first = client.entitlement("c1", "sso").unwrap();
    assert_eq!(first.source, Source::Fresh);

    wait_for("a revalidation answered 304", || {
        let answer = client.entitlement("c1", "sso").unwrap();
        assert!(answer.has_access && answer.version == first.version, "{answer:?}");
        (entitlement_gets(&rt, &s, 304) >= 2.0).then_some(())
    });
    assert_eq!(
        entitlement_gets(&rt, &s, 200),
        1.0,
        "only the first fetch carried a body"
    );
    assert!(seen.errors().is_empty(), "{:?}", seen.errors());
    // A real change still comes through the next revalidation (200, new version).
    rt.block_on(put_ok(&s, &ak, "customers/c1", json!({"plan":"none"})));
    let changed = wait_for("the changed answer", || {
        let answer = client.entitlement("c1", "sso").unwrap();
        (!answer.has_access).then_some(answer)
    });
    assert!(changed.version > first.version);
    assert_eq!(entitlement_gets(&rt, &s, 200), 2.0);
}

#[test]
fn a_revoked_key_is_unauthorized_and_its_stream_closes_with_4403_once() {
    let rt = rt();
    let s = start_with_config("[auth]\nrevocation_poll_ms = 100\n");
    pro_customers(&rt, &s, &["c1"]);
    let ak = s.ak().to_owned();
    let key = rt.block_on(s.new_key("secret"));
    let (client, seen) = client(config(&key, &s.url));
    assert!(has(&client, "c1", "sso"));
    wait_frames(&rt, &s, 1.0);

    let id = ApiKey::parse(&key).unwrap().id;
    let (status, _) = rt.block_on(s.call("DELETE", &format!("/v1/admin/keys/{id}"), &ak, None));
    assert_eq!(status, 204);
    let (_, why) = wait_for("the stream to close", || {
        seen.connections().into_iter().find(|(up, _)| !up)
    });
    // DESIGN §5: a revoked key's streams close with 4403 (4401 is for credentials that never
    // authenticated).
    assert!(why.contains("4403") && why.contains("revoked"), "{why}");

    let answer = client.entitlement("c2", "sso").unwrap();
    assert_eq!(answer.source, Source::Fallback, "{answer:?}");
    let reason = answer.reason.unwrap_or_default();
    assert!(reason.starts_with("unauthorized: "), "{reason}");
    assert!(
        seen.errors().iter().any(|e| e.code() == "unauthorized"),
        "{:?}",
        seen.errors()
    );

    // After 4403 the client pauses for minutes: no reconnect attempts. (A bounded look, not
    // a timing assertion: a storm would make dozens of attempts in this window.)
    let upgrades = || {
        metric(
            &rt,
            &s,
            "meterline_http_request_duration_seconds_count",
            &["route=\"/v1/stream\""],
        )
    };
    let before = upgrades();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(upgrades(), before, "reconnect attempts after 4403");
    let connections = seen.connections();
    assert_eq!(connections.len(), 2, "up once, down once: {connections:?}");
    assert!(!client.stats().stream_connected);
}

#[test]
fn a_tight_rate_limit_reaches_the_client_as_rate_limited() {
    let rt = rt();
    let s = start_with_config("[limits]\nrequests_per_second = 1\nburst = 2\n");
    let mut c = config(s.sk(), &s.url);
    c.stream = false;
    let (client, seen) = client(c);
    // Each new subject is one GET; the burst runs out within a few.
    let limited = wait_for("a rate-limited answer", || {
        (0..10).find_map(|i| {
            let answer = client.entitlement(&format!("s{i}"), "sso").unwrap();
            (answer.source == Source::Fallback).then_some(answer)
        })
    });
    let reason = limited.reason.unwrap_or_default();
    assert!(reason.starts_with("rate limited: rate_limited"), "{reason}");
    assert!(
        seen.errors().iter().any(|e| e.code() == "rate_limited"),
        "{:?}",
        seen.errors()
    );
    assert!(metric(&rt, &s, "meterline_rate_limited_total", &[]) >= 1.0);
}
