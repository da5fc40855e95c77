//! A catalog change that affects 300 customers, against the real binary: one
//! `entitlements.updated` message per affected customer, with consecutive seqs in subject
//! order, each answer equal to what `GET /v1/customers/{subject}/entitlements` says
//! (the batched answers against the one-customer path, usage included), delivered only to
//! the connections subscribed to that customer, and replayed exactly by a `since` resume.
//! A connection subscribed to all 300 gets them as bursts (queued frames fed, then one
//! flush; at most 64 a burst): every frame complete, none lost, in seq order.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::{collections::BTreeSet, time::Duration};

use common::{
    catalog::*,
    ws::{Ws, connect_key, recv_json, recv_json_within, recv_text, send_json, subscribe},
    *,
};
use serde_json::{Value, json};

/// More than one multi-row insert's worth (256), so a change spans several.
const CUSTOMERS: usize = 300;

fn subject(i: usize) -> String {
    format!("c{i:03}")
}

fn strs(items: &[String]) -> Vec<&str> {
    items.iter().map(String::as_str).collect()
}

/// Reads `n` frames.
async fn read_n(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut frames = Vec::with_capacity(n);
    for _ in 0..n {
        frames.push(recv_json(ws).await);
    }
    frames
}

/// Asserts `frames` are one `entitlements.updated` each for `subjects`, with the seqs
/// `seqs`, in that order, carrying `seats` and a version equal to their seq.
fn assert_updates(frames: &[Value], subjects: &[String], seqs: std::ops::RangeInclusive<u64>) {
    let got: Vec<(String, u64)> = frames
        .iter()
        .map(|f| {
            assert_eq!(f["type"], "entitlements.updated", "{f}");
            assert_eq!(f["data"]["version"], f["seq"], "{f}");
            assert_eq!(f["data"]["entitlements"]["tier"]["value"]["seats"], 20, "{f}");
            (f["subject"].as_str().unwrap().to_owned(), f["seq"].as_u64().unwrap())
        })
        .collect();
    let expected: Vec<(String, u64)> = subjects.iter().cloned().zip(seqs).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_plan_change_reaches_each_subscribed_customer_once_in_seq_order() {
    let s = Server::start();
    let (ak, sk) = (s.ak(), s.sk());
    standard_catalog(&s, ak).await;
    put_ok(&s, ak, "plans/basic", json!({"features": {"sso": {}}})).await;
    for i in 0..CUSTOMERS {
        // Two billing anchors, so the answers' usage periods differ between customers.
        let def = if i % 2 == 0 {
            json!({"plan": "pro"})
        } else {
            json!({"plan": "pro", "billing_anchor": "2026-01-15T00:00:00Z"})
        };
        put_ok(&s, ak, &format!("customers/{}", subject(i)), def).await;
    }
    put_ok(&s, ak, "customers/other", json!({"plan": "basic"})).await;
    // Usage for a few customers, so the batched answers read counters.
    let now = now_plus(0);
    let events = [
        call_event("e1", "c000", &now, json!({"tokens": 7})),
        call_event("e2", "c000", &now, json!({"tokens": 1.5})),
        call_event("e3", "c001", &now, json!({"tokens": 2})),
        call_event("e4", "c025", &now, json!({})),
    ];
    assert_eq!(s.send(&events).await.0, 202);

    let first: Vec<String> = (0..20).map(subject).collect();
    let mut second: Vec<String> = (20..30).map(subject).collect();
    let mut a = connect_key(&s.url, sk).await;
    let (_, subscribed) = subscribe(&mut a, &strs(&first), None).await;
    let before = subscribed["seq"].as_u64().unwrap();
    let mut b = connect_key(&s.url, sk).await;
    // `ghost` is no customer: subscribing to it is allowed and gets nothing.
    second.push("ghost".into());
    subscribe(&mut b, &strs(&second), None).await;
    second.pop();
    let mut other = connect_key(&s.url, sk).await;
    subscribe(&mut other, &["other"], None).await;
    let mut nobody = connect_key(&s.url, sk).await;
    subscribe(&mut nobody, &["nobody"], None).await;
    let everyone: Vec<String> = (0..CUSTOMERS).map(subject).collect();
    let mut every = connect_key(&s.url, sk).await;
    subscribe(&mut every, &strs(&everyone), None).await;

    put_ok(
        &s,
        ak,
        "plans/pro",
        json!({"features":{
            "api_calls":{"limit":10,"period":"month","soft_limit":8},
            "tokens":{"period":"day"},
            "sso":{},
            "tier":{"value":{"seats":20}}
        }}),
    )
    .await;
    let got_a = read_n(&mut a, first.len()).await;
    let got_b = read_n(&mut b, second.len()).await;
    // All the customers' messages take consecutive seqs in subject order.
    assert_updates(&got_a, &first, before + 1..=before + 20);
    assert_updates(&got_b, &second, before + 21..=before + 30);
    // 300 frames queued at once cross several bursts: all arrive, whole, in seq order.
    let got_every = read_n(&mut every, CUSTOMERS).await;
    assert_updates(&got_every, &everyone, before + 1..=before + CUSTOMERS as u64);
    assert_eq!(got_every[..20], got_a[..]);
    for frame in got_a.iter().chain(&got_b) {
        let subject = frame["subject"].as_str().unwrap();
        assert_eq!(frame["data"], entitlements(&s, sk, subject).await, "{subject}");
    }
    assert_eq!(got_a[0]["data"]["entitlements"]["tokens"]["usage"], 8.5);
    assert_eq!(got_a[0]["data"]["entitlements"]["api_calls"]["usage"], 2);
    assert_eq!(got_a[1]["data"]["entitlements"]["tokens"]["usage"], 2);
    assert_eq!(got_b[5]["data"]["entitlements"]["api_calls"]["usage"], 1);

    // Nothing else was routed: the next message (for `other`) is the only one anywhere.
    put_ok(&s, ak, "customers/other", json!({"plan": "pro"})).await;
    let next = recv_json(&mut other).await;
    let after = before + CUSTOMERS as u64;
    assert_eq!(
        (next["subject"].clone(), next["seq"].clone()),
        (json!("other"), json!(after + 1))
    );
    // The last customer's message was written by the last of several inserts.
    assert_eq!(entitlements(&s, sk, &subject(CUSTOMERS - 1)).await["version"], after);
    for ws in [&mut a, &mut b, &mut other, &mut nobody, &mut every] {
        assert_eq!(recv_json_within(ws, Duration::from_millis(300)).await, None);
    }

    // A resume from before the change replays exactly the same frames.
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    let mut resumed = connect_key(&s.url, sk).await;
    let (replayed, subscribed) = subscribe(&mut resumed, &strs(&all), Some(before)).await;
    let live: Vec<Value> = got_a.into_iter().chain(got_b).collect();
    assert_eq!(replayed, live);
    assert_eq!(subscribed["seq"], after + 1);
    let subjects: BTreeSet<&str> = replayed.iter().map(|f| f["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects.len(), 30, "one message per customer");
}

/// Connections holding the same customer (backend instances of one service): one change
/// is serialized once and its bytes are shared by every connection that sends it. Each of
/// them must still get the whole frame, byte for byte the same, exactly once — and a
/// resume replays those same bytes from the log.
#[tokio::test]
async fn one_message_shared_by_many_connections_arrives_whole_at_each() {
    const CONNECTIONS: usize = 120;
    let s = start_with_config("[limits]\nrequests_per_second = 100000\nburst = 100000\n");
    let (ak, sk) = (s.ak(), s.sk());
    standard_catalog(&s, ak).await;
    put_ok(&s, ak, "customers/shared", json!({"plan": "pro"})).await;
    put_ok(&s, ak, "customers/own", json!({"plan": "pro"})).await;
    let mut conns = Vec::with_capacity(CONNECTIONS);
    let mut before = 0;
    for i in 0..CONNECTIONS {
        let mut ws = connect_key(&s.url, sk).await;
        // Every third connection also holds another customer, so queues differ.
        let subjects: &[&str] = if i % 3 == 0 { &["own", "shared"] } else { &["shared"] };
        let (_, subscribed) = subscribe(&mut ws, subjects, None).await;
        before = subscribed["seq"].as_u64().unwrap();
        conns.push(ws);
    }

    let grant = json!({"overrides": {"tier": {"value": {"seats": 77}}}});
    put_ok(&s, ak, "customers/shared", grant).await;
    let mut texts = Vec::with_capacity(CONNECTIONS);
    for ws in &mut conns {
        texts.push(recv_text(ws).await);
    }
    let first = &texts[0];
    assert!(texts.iter().all(|t| t == first), "every connection got the same bytes");
    let frame: Value = serde_json::from_str(first).unwrap();
    assert_eq!(frame["type"], "entitlements.updated", "{frame}");
    assert_eq!(frame["subject"], "shared", "{frame}");
    assert_eq!(frame["seq"], before + 1, "{frame}");
    assert_eq!(frame["data"]["entitlements"]["tier"]["value"]["seats"], 77, "{frame}");
    assert_eq!(frame["data"], entitlements(&s, sk, "shared").await);

    // A change to the other customer reaches only its holders, then a second one to the
    // shared customer: every connection's next frames are exactly those, in seq order.
    let own = json!({"plan": "pro", "overrides": {"sso": {"enabled": false}}});
    put_ok(&s, ak, "customers/own", own).await;
    let grant = json!({"overrides": {"tier": {"value": {"seats": 78}}}});
    put_ok(&s, ak, "customers/shared", grant).await;
    for (i, ws) in conns.iter_mut().enumerate() {
        let mut expected = vec![(json!("shared"), json!(before + 3))];
        if i % 3 == 0 {
            expected.insert(0, (json!("own"), json!(before + 2)));
        }
        for want in expected {
            let next: Value = serde_json::from_str(&recv_text(ws).await).unwrap();
            assert_eq!((next["subject"].clone(), next["seq"].clone()), want, "connection {i}");
        }
    }

    // A resume from before the change replays the very same text.
    let mut resumed = connect_key(&s.url, sk).await;
    send_json(
        &mut resumed,
        json!({"op": "subscribe", "subjects": ["shared"], "since": before}),
    )
    .await;
    assert_eq!(&recv_text(&mut resumed).await, first);
    let second: Value = serde_json::from_str(&recv_text(&mut resumed).await).unwrap();
    assert_eq!(second["seq"], before + 3, "{second}");
    let subscribed: Value = serde_json::from_str(&recv_text(&mut resumed).await).unwrap();
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
}
