//! Runs the entitlement and stream vectors (`tests/vectors/entitlements.json`,
//! `stream.json`, `stream_session.json`) through the public `EntitlementCache` and
//! `StreamSession` API, with the step drivers the bindings use too
//! (`meterline_core::conformance`).
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;

use meterline_core::conformance::{VectorCache, VectorSession};
use serde_json::Value;

fn vector(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Compares `got` with a partial expectation: every key given must match (numbers
/// numerically).
fn matches(ctx: &str, got: &Value, want: &Value) {
    match (got, want) {
        (_, Value::Object(want)) => {
            for (key, w) in want {
                matches(&format!("{ctx}.{key}"), &got[key], w);
            }
        }
        (Value::Number(g), Value::Number(w)) => {
            assert_eq!(g.as_f64(), w.as_f64(), "{ctx}: got {got}, want {want}");
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{ctx}: got {got}, want {want}");
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                matches(&format!("{ctx}[{i}]"), g, w);
            }
        }
        _ => assert_eq!(got, want, "{ctx}"),
    }
}

/// A vector file's step driver.
trait Driver: Sized {
    fn new(settings: &Value, payloads: &Value) -> Result<Self, String>;
    fn step(&mut self, step: &Value) -> Result<Value, String>;
}

impl Driver for VectorCache {
    fn new(settings: &Value, payloads: &Value) -> Result<Self, String> {
        VectorCache::new(settings, payloads)
    }
    fn step(&mut self, step: &Value) -> Result<Value, String> {
        VectorCache::step(self, step)
    }
}

impl Driver for VectorSession {
    fn new(settings: &Value, payloads: &Value) -> Result<Self, String> {
        VectorSession::new(settings, payloads)
    }
    fn step(&mut self, step: &Value) -> Result<Value, String> {
        VectorSession::step(self, step)
    }
}

fn run(file: &str) -> usize {
    run_with::<VectorCache>(file)
}

fn run_with<D: Driver>(file: &str) -> usize {
    let doc = vector(file);
    let payloads = doc.get("payloads").cloned().unwrap_or(Value::Null);
    let mut steps = 0;
    for scenario in doc["scenarios"].as_array().unwrap() {
        let name = scenario["name"].as_str().unwrap();
        let mut driver = D::new(&scenario["settings"], &payloads).unwrap();
        for (i, step) in scenario["steps"].as_array().unwrap().iter().enumerate() {
            let got = driver
                .step(step)
                .unwrap_or_else(|e| panic!("{file}: {name}: step {i}: {e}"));
            if let Some(expect) = step.get("expect") {
                matches(&format!("{file}: {name}: step {i} ({})", step["op"]), &got, expect);
            }
            steps += 1;
        }
    }
    steps
}

#[test]
fn entitlement_answers() {
    assert!(run("entitlements.json") > 50);
}

#[test]
fn stream_sequences() {
    assert!(run("stream.json") > 30);
}

#[test]
fn stream_session_sequences() {
    assert!(run_with::<VectorSession>("stream_session.json") > 100);
}

/// `entitlements.json`'s `primed` cases (what the bindings check through
/// `prime_entitlements`): each payload inserted at once, then one lookup at the same time.
#[test]
fn primed_answers() {
    let doc = vector("entitlements.json");
    let now = 1_795_514_400_000_u64;
    let cases = doc["primed"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut cache = VectorCache::new(&Value::Null, &doc["primed_payloads"]).unwrap();
        for payload in case["prime"].as_array().unwrap() {
            let step = serde_json::json!({"op": "insert", "payload": payload, "now": now, "counted_through": 0});
            cache.step(&step).unwrap();
        }
        let lookup = serde_json::json!({
            "op": "lookup", "subject": case["subject"], "feature": case["feature"], "now": now
        });
        let got = cache.step(&lookup).unwrap();
        assert_eq!(got["result"], "hit", "{name}: {got}");
        for key in case["expect"].as_object().unwrap().keys() {
            assert!(
                got["answer"].get(key).is_some(),
                "{name}: the answer has no `{key}`: {got}"
            );
        }
        matches(&format!("primed: {name}"), &got["answer"], &case["expect"]);
    }
}
