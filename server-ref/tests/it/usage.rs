//! Usage counting at ingest against the real binary: count and sum, duplicates counted once,
//! non-numeric values, periods by event time, counters rebuilt for features created after
//! their events, the limit cutting access, and the `usage.threshold` and
//! `entitlements.updated` messages the crossings append to the stream log.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use chrono::{Duration, Utc};
use common::{catalog::*, *};
use serde_json::{Value, json};

/// Today 00:00:01 UTC plus `days`, RFC 3339: inside that day whatever the hour now.
fn day_at(days: i64) -> String {
    let midnight = Utc::now().date_naive().and_hms_opt(0, 0, 1).unwrap().and_utc();
    (midnight + Duration::days(days)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn count_and_sum_count_each_event_once() {
    let s = Server::start();
    standard_catalog(&s, s.ak()).await;
    put_ok(
        &s,
        s.ak(),
        "customers/c1",
        json!({"plan":"pro","overrides":{"api_calls":{"limit":1000}}}),
    )
    .await;
    let today = day_at(0);
    let batch = vec![
        call_event("a", "c1", &today, json!({"tokens": 100})),
        call_event("b", "c1", &today, json!({"tokens": 2.5})),
        call_event("c", "c1", &today, json!({"tokens": "many"})),
        call_event("d", "c1", &today, json!({"model": "m"})),
        call_event("e", "c1", &today, json!({"tokens": null})),
        call_event("f", "c1", &today, json!({"tokens": [1]})),
        call_event("g", "c2", &today, json!({"tokens": 7})),
        call_event("a", "c1", &today, json!({"tokens": 100})),
    ];
    let (status, resp) = s.send(&batch).await;
    assert_eq!(status, 202);
    assert_eq!(
        (resp["accepted"].clone(), resp["duplicates"].clone()),
        (json!(7), json!(1)),
        "{resp}"
    );
    // The whole batch again: nothing new.
    let (_, resp) = s.send(&batch).await;
    assert_eq!(resp["duplicates"], 8, "{resp}");
    // Another type, same subject: not counted.
    let mut other = call_event("h", "c1", &today, json!({"tokens": 1000}));
    other["type"] = json!("storage.gb");
    s.send(&[other]).await;

    let e = entitlements(&s, s.sk(), "c1").await["entitlements"].clone();
    assert_eq!(e["api_calls"]["usage"], 6);
    assert_eq!(e["api_calls"]["remaining"], 994);
    assert_eq!(e["tokens"]["usage"], 102.5);
    let report = usage(&s, s.sk(), "c1").await;
    assert_eq!(report["features"]["api_calls"]["current"]["usage"], 6);
    assert_eq!(report["features"]["tokens"]["current"]["usage"], 102.5);
    assert_eq!(report["features"]["tokens"]["period"], "day");
    assert_eq!(report["features"]["tokens"]["previous"]["usage"], 0);
    // c2 is not a customer: its events are stored (and counted, should it become one).
    put_ok(&s, s.ak(), "customers/c2", json!({"plan":"pro"})).await;
    assert_eq!(
        entitlements(&s, s.sk(), "c2").await["entitlements"]["tokens"]["usage"],
        7
    );
}

/// `data` with a member name twice: JSON leaves it open, serde keeps the last, SQLite's
/// `json_extract` the first. The server stores (and counts, and validates) the last only.
#[tokio::test]
async fn repeated_data_names_count_the_value_that_is_stored() {
    let s = Server::start();
    standard_catalog(&s, s.ak()).await;
    put_ok(&s, s.ak(), "customers/c1", json!({"plan":"pro"})).await;
    let today = day_at(0);
    let body = format!(
        r#"[{{"specversion":"1.0","id":"r1","source":"t","type":"api.call","subject":"c1","time":"{today}","data":{{"tokens":1,"tokens":5}}}},
            {{"specversion":"1.0","id":"r2","source":"t","type":"api.call","subject":"c1","time":"{today}","data": {{ "tokens" : 2.5 , "m":{{"x":1,"x":2}} }} }},
            {{"specversion":"1.0","id":"r3","source":"t","type":"api.call","subject":"c1","time":"{today}","data":{{"tokens":10}}}},
            {{"specversion":"1.0","id":"r1","source":"t","type":"api.call","subject":"c1","time":"{today}","data":{{"tokens":100}}}}]"#
    );
    let (status, _, resp) = s
        .post_raw("/v1/events", Some(s.sk()), Some(BATCH), None, body.into_bytes())
        .await;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(
        (resp["accepted"].as_u64(), resp["duplicates"].as_u64()),
        (Some(3), Some(1)),
        "{resp}"
    );
    let e = entitlements(&s, s.sk(), "c1").await["entitlements"].clone();
    assert_eq!(e["api_calls"]["usage"], 3, "{e}");
    assert_eq!(e["tokens"]["usage"], 17.5, "{e}");
    let stored = s.all_events(s.sk(), "").await;
    let data: Vec<&Value> = stored.iter().map(|e| &e["data"]).collect();
    assert_eq!(
        data,
        [
            &json!({"tokens":5}),
            &json!({"tokens":2.5,"m":{"x":2}}),
            &json!({"tokens":10})
        ]
    );
}

#[tokio::test]
async fn periods_follow_the_event_time() {
    let s = Server::start();
    let ak = s.ak();
    put_ok(
        &s,
        ak,
        "features/daily",
        json!({"kind":"metered","event_type":"api.call"}),
    )
    .await;
    put_ok(
        &s,
        ak,
        "features/weekly",
        json!({"kind":"metered","event_type":"api.call"}),
    )
    .await;
    put_ok(
        &s,
        ak,
        "features/monthly",
        json!({"kind":"metered","event_type":"api.call"}),
    )
    .await;
    put_ok(
        &s,
        ak,
        "plans/p",
        json!({"features":{"daily":{"period":"day"},"weekly":{"period":"week"},"monthly":{"period":"month"}}}),
    )
    .await;
    put_ok(&s, ak, "customers/c1", json!({"plan":"p"})).await;
    let events: Vec<Value> = [(-1, 2), (0, 3), (1, 4), (-400, 5)]
        .iter()
        .flat_map(|(day, n)| (0..*n).map(move |i| call_event(&format!("{day}-{i}"), "c1", &day_at(*day), json!({}))))
        .collect();
    s.send(&events).await;
    let report = usage(&s, s.sk(), "c1").await["features"].clone();
    assert_eq!(report["daily"]["current"]["usage"], 3, "{report}");
    assert_eq!(report["daily"]["previous"]["usage"], 2);
    assert_eq!(
        report["daily"]["current"]["start"],
        format!("{}T00:00:00Z", &day_at(0)[..10])
    );
    assert_eq!(report["daily"]["previous"]["end"], report["daily"]["current"]["start"]);
    // Week and month hold today; yesterday and tomorrow only when in the same period.
    let today = Utc::now().date_naive();
    use chrono::Datelike;
    let weekday = today.weekday().num_days_from_monday();
    let in_week = 3 + if weekday > 0 { 2 } else { 0 } + if weekday < 6 { 4 } else { 0 };
    assert_eq!(report["weekly"]["current"]["usage"], in_week, "{report}");
    let month_of = |d: i64| (today + Duration::days(d)).month();
    let in_month =
        3 + if month_of(-1) == today.month() { 2 } else { 0 } + if month_of(1) == today.month() { 4 } else { 0 };
    assert_eq!(report["monthly"]["current"]["usage"], in_month);
    let e = entitlements(&s, s.sk(), "c1").await;
    assert_eq!(e["entitlements"]["daily"]["usage"], 3);
}

#[tokio::test]
async fn features_created_after_their_events_count_them() {
    let s = Server::start();
    let ak = s.ak();
    let today = day_at(0);
    let events: Vec<Value> = (0..5)
        .map(|i| call_event(&format!("e{i}"), "c1", &today, json!({"tokens": i})))
        .collect();
    s.send(&events).await;
    put_ok(
        &s,
        ak,
        "features/calls",
        json!({"kind":"metered","event_type":"api.call"}),
    )
    .await;
    put_ok(&s, ak, "plans/p", json!({"features":{"calls":{}}})).await;
    put_ok(&s, ak, "customers/c1", json!({"plan":"p"})).await;
    assert_eq!(
        entitlements(&s, s.sk(), "c1").await["entitlements"]["calls"]["usage"],
        5
    );
    // Switching the feature to a sum rebuilds its counter from the stored events.
    put_ok(
        &s,
        ak,
        "features/calls",
        json!({"kind":"metered","event_type":"api.call","aggregation":"sum","property":"tokens"}),
    )
    .await;
    assert_eq!(
        entitlements(&s, s.sk(), "c1").await["entitlements"]["calls"]["usage"],
        10
    );
    s.send(&[call_event("e5", "c1", &today, json!({"tokens": 5}))]).await;
    assert_eq!(
        entitlements(&s, s.sk(), "c1").await["entitlements"]["calls"]["usage"],
        15
    );
    // And to another type: nothing of the old type counts.
    put_ok(&s, ak, "features/calls", json!({"kind":"metered","event_type":"other"})).await;
    assert_eq!(
        entitlements(&s, s.sk(), "c1").await["entitlements"]["calls"]["usage"],
        0
    );
}

#[tokio::test]
async fn reaching_the_limit_cuts_access_and_announces_thresholds() {
    let s = Server::start();
    let ak = s.ak();
    standard_catalog(&s, ak).await;
    put_ok(&s, ak, "customers/c1", json!({"plan":"pro"})).await;
    let now = day_at(0);
    let send = |from: usize, n: usize| {
        let batch: Vec<Value> = (from..from + n)
            .map(|i| call_event(&format!("c1-{i}"), "c1", &now, json!({"tokens": 1})))
            .collect();
        let s = &s;
        async move {
            let (status, resp) = s.send(&batch).await;
            assert_eq!(status, 202, "{resp}");
        }
    };
    let start_version = entitlements(&s, s.sk(), "c1").await["version"].as_u64().unwrap();
    send(0, 7).await;
    let e = entitlements(&s, s.sk(), "c1").await;
    assert_eq!(
        e["version"].as_u64().unwrap(),
        start_version,
        "no threshold crossed: same version"
    );
    assert_eq!(e["entitlements"]["api_calls"]["usage"], 7);
    send(7, 1).await; // 8 of 10: crosses 0.8
    send(8, 1).await; // 9: nothing
    let e = entitlements(&s, s.sk(), "c1").await;
    assert!(e["version"].as_u64().unwrap() > start_version);
    assert_eq!(e["entitlements"]["api_calls"]["has_access"], true);
    send(9, 3).await; // 12: crosses 1.0 and the limit
    let e = entitlements(&s, s.sk(), "c1").await;
    let calls = &e["entitlements"]["api_calls"];
    assert_eq!(
        (
            calls["has_access"].clone(),
            calls["usage"].clone(),
            calls["remaining"].clone()
        ),
        (json!(false), json!(12), json!(0))
    );
    assert_eq!(
        e["entitlements"]["sso"]["has_access"], true,
        "other features are unaffected"
    );

    let (log, _) = stream_log(&s, s.sk(), &["c1"]).await;
    let thresholds: Vec<&Value> = log.iter().filter(|m| m["type"] == "usage.threshold").collect();
    assert_eq!(thresholds.len(), 2, "{log:?}");
    // core's `UsageThreshold` writes its numbers as floats (`8.0`): compare them as numbers.
    let data = |m: &Value| {
        let d = &m["data"];
        (
            d["feature"].clone(),
            d["threshold"].as_f64(),
            d["usage"].as_f64(),
            d["limit"].as_f64(),
        )
    };
    assert_eq!(
        data(thresholds[0]),
        (json!("api_calls"), Some(0.8), Some(8.0), Some(10.0))
    );
    assert_eq!(
        data(thresholds[1]),
        (json!("api_calls"), Some(1.0), Some(12.0), Some(10.0))
    );
    assert_eq!(thresholds[0]["subject"], "c1");
    // Each crossing is followed by one entitlements.updated carrying the new answer.
    let updates: Vec<&Value> = log.iter().filter(|m| m["type"] == "entitlements.updated").collect();
    assert_eq!(updates.len(), 3, "customer created, 0.8, 1.0: {log:?}");
    let last = updates.last().unwrap();
    assert!(last["seq"].as_u64().unwrap() > thresholds[1]["seq"].as_u64().unwrap());
    assert_eq!(last["data"]["entitlements"]["api_calls"]["has_access"], false);
    assert_eq!(last["data"]["version"], e["version"]);

    // Raising the limit gives access back (an admin change, its own message).
    put_ok(
        &s,
        ak,
        "customers/c1",
        json!({"plan":"pro","overrides":{"api_calls":{"limit":100}}}),
    )
    .await;
    let e = entitlements(&s, s.sk(), "c1").await;
    assert_eq!(e["entitlements"]["api_calls"]["has_access"], true);
    assert_eq!(e["entitlements"]["api_calls"]["remaining"], 88);
}

#[tokio::test]
async fn a_batch_crossing_for_many_customers_announces_each() {
    let s = Server::start();
    let ak = s.ak();
    put_ok(
        &s,
        ak,
        "features/calls",
        json!({"kind":"metered","event_type":"api.call"}),
    )
    .await;
    put_ok(
        &s,
        ak,
        "plans/tiny",
        json!({"features":{"calls":{"limit":2,"thresholds":[0.5]}}}),
    )
    .await;
    let subjects: Vec<String> = (0..50).map(|i| format!("cust-{i}")).collect();
    for subject in &subjects {
        put_ok(&s, ak, &format!("customers/{subject}"), json!({"plan":"tiny"})).await;
    }
    let now = day_at(0);
    let mut batch: Vec<Value> = Vec::new();
    for subject in &subjects {
        for i in 0..2 {
            batch.push(call_event(&format!("{subject}-{i}"), subject, &now, json!({})));
        }
    }
    let (status, _) = s.send(&batch).await;
    assert_eq!(status, 202);
    let refs: Vec<&str> = subjects.iter().map(String::as_str).collect();
    let (log, _) = stream_log(&s, s.sk(), &refs).await;
    let crossed = log.iter().filter(|m| m["type"] == "usage.threshold").count();
    assert_eq!(crossed, 50, "0.5 of each customer, and no 1.0 (not configured)");
    for subject in &subjects[..3] {
        let e = entitlements(&s, s.sk(), subject).await;
        assert_eq!(e["entitlements"]["calls"]["has_access"], false, "{e}");
    }
}
