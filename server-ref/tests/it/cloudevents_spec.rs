//! CloudEvents 1.0 context attributes on both ingest routes: every `wire` case of
//! `tests/vectors/events.json` goes to `POST /v1/events` and to OpenMeter's
//! `POST /api/v1/events` in one batch; each invalid event is refused on its own
//! (`invalid_event` with its JSON pointer), every valid one is stored — as the server stores
//! events (extension attributes and `dataschema` are not kept).

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use serde_json::{Value, json};

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/events.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The wire cases as one batch, each `"w1"` id made unique with `prefix`, and the
/// expectation of each index.
fn batch(doc: &Value, prefix: &str) -> (Vec<Value>, Vec<(String, Value)>) {
    let mut events = Vec::new();
    let mut expects = Vec::new();
    for (i, case) in doc["wire"].as_array().unwrap().iter().enumerate() {
        let mut event = case["event"].clone();
        if event.get("id") == Some(&json!("w1")) {
            event["id"] = json!(format!("{prefix}{i}"));
        }
        events.push(event);
        expects.push((case["name"].as_str().unwrap().to_owned(), case["expect"].clone()));
    }
    (events, expects)
}

/// What the server keeps of an accepted event: the attributes it reads, `null` as absent.
fn as_stored(event: &Value) -> Value {
    let kept = [
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "data",
    ];
    let obj = event.as_object().unwrap();
    Value::Object(
        obj.iter()
            .filter(|(k, v)| kept.contains(&k.as_str()) && !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

#[tokio::test]
async fn every_wire_vector_gets_the_same_answer_on_both_ingest_routes() {
    let s = Server::start();
    let doc = vectors();
    for (event_type, schema) in doc["schemas"].as_object().unwrap() {
        let (status, body) = s
            .call(
                "PUT",
                &format!("/v1/admin/schemas/{event_type}"),
                s.ak(),
                Some(schema.clone()),
            )
            .await;
        assert!(status.is_success(), "{event_type}: {status} {body}");
    }
    for (route, prefix) in [("/v1/events", "v1-"), ("/api/v1/events", "om-")] {
        let (events, expects) = batch(&doc, prefix);
        let (status, _, body) = s
            .post_raw(
                route,
                Some(s.sk()),
                Some(BATCH),
                None,
                serde_json::to_vec(&events).unwrap(),
            )
            .await;
        if route == "/v1/events" {
            assert_eq!(status, 202, "{route}: {body}");
        } else {
            // OpenMeter's contract: 400 when any event was refused, the rest stored anyway.
            assert_error(status, &body, 400, "invalid_event");
        }
        let rejected: BTreeMap<u64, &Value> = body["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["index"].as_u64().unwrap(), r))
            .collect();
        let mut want_stored = BTreeMap::new();
        for (i, (name, expect)) in expects.iter().enumerate() {
            let got = rejected.get(&(i as u64));
            if expect["ok"] == true {
                assert!(got.is_none(), "{route} {name}: refused: {got:?}");
                want_stored.insert(events[i]["id"].as_str().unwrap().to_owned(), as_stored(&events[i]));
            } else {
                let r = got.unwrap_or_else(|| panic!("{route} {name}: accepted"));
                assert_eq!(
                    (&r["code"], &r["path"]),
                    (&expect["code"], &expect["path"]),
                    "{route} {name}: {r}"
                );
            }
        }
        assert_eq!(rejected.len(), expects.len() - want_stored.len(), "{route}: {body}");
        let stored: BTreeMap<String, Value> = s
            .all_events(s.sk(), "")
            .await
            .into_iter()
            .filter(|e| e["id"].as_str().unwrap().starts_with(prefix))
            .map(|e| (e["id"].as_str().unwrap().to_owned(), e))
            .collect();
        assert_eq!(
            stored.keys().collect::<BTreeSet<_>>(),
            want_stored.keys().collect::<BTreeSet<_>>(),
            "{route}"
        );
        assert_eq!(
            stored, want_stored,
            "{route}: stored as sent, extension attributes left out"
        );
    }
}

#[tokio::test]
async fn a_single_event_with_a_bad_extension_name_is_refused_with_its_path() {
    let s = Server::start();
    let mut event = ev("one");
    event["Foo_Bar"] = json!("x");
    let body = serde_json::to_vec(&event).unwrap();
    let (status, _, resp) = s
        .post_raw("/v1/events", Some(s.sk()), Some(SINGLE), None, body.clone())
        .await;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(resp["accepted"], 0, "{resp}");
    assert_eq!(resp["rejected"][0]["path"], "/Foo_Bar", "{resp}");
    assert_eq!(resp["rejected"][0]["code"], "invalid_event", "{resp}");
    let (status, _, resp) = s
        .post_raw("/api/v1/events", Some(s.sk()), Some(SINGLE), None, body)
        .await;
    assert_error(status, &resp, 400, "invalid_event");
    assert_eq!(resp["rejected"][0]["path"], "/Foo_Bar", "{resp}");
    assert!(s.all_events(s.sk(), "").await.is_empty());
}
