//! Runs the entitlement and stream vectors (`tests/vectors/entitlements.json`,
//! `stream.json`) through the public `EntitlementCache` API.
#![allow(clippy::unwrap_used, missing_docs)]

use std::{
    collections::{HashMap, VecDeque},
    num::NonZeroUsize,
    path::PathBuf,
    time::Duration,
};

use meterline_core::{
    entitlement::Entitlements,
    entitlement_cache::{
        CacheSettings, EntitlementAnswer, EntitlementCache, Fallbacks, FetchCompletion, FetchResult, FetchTicket,
        Lookup, Source, StreamEffect,
    },
    stream::ServerMessage,
};
use serde_json::{Value, json};

fn vector(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn settings(s: &Value) -> CacheSettings {
    let mut settings = CacheSettings::default();
    if let Some(n) = s["cache_size"].as_u64() {
        settings.capacity = NonZeroUsize::new(n as usize).unwrap();
    }
    if let Some(ms) = s["max_stale_ms"].as_u64() {
        settings.max_stale = Duration::from_millis(ms);
    }
    settings.max_ttl = s["max_ttl_ms"].as_u64().map(Duration::from_millis);
    if !s["fallbacks"].is_null() {
        settings.fallbacks = Fallbacks::from_json(&s["fallbacks"]).unwrap();
    }
    settings
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

fn answer_json(a: &EntitlementAnswer) -> Value {
    serde_json::to_value(a).unwrap()
}

fn completion_json(c: &FetchCompletion) -> Value {
    json!({"added": c.added, "evicted": c.evicted, "refetch": c.refetch})
}

struct Runner {
    cache: EntitlementCache,
    payloads: Value,
    tickets: HashMap<String, VecDeque<FetchTicket>>,
}

impl Runner {
    fn payload(&self, v: &Value) -> Entitlements {
        let body = match v {
            Value::String(name) => self.payloads[name].clone(),
            other => other.clone(),
        };
        serde_json::from_value(body).unwrap()
    }

    /// Runs one step; returns what it gave, as JSON, for `expect`.
    fn step(&mut self, step: &Value) -> Value {
        let s = |key: &str| step[key].as_str().unwrap();
        let n = |key: &str| step[key].as_u64().unwrap();
        match s("op") {
            "lookup" => match self.cache.lookup(s("subject"), s("feature"), n("now")) {
                Lookup::Hit(a) => json!({"result": "hit", "answer": answer_json(&a)}),
                Lookup::Stale { answer, revalidate } => {
                    json!({"result": "stale", "revalidate": revalidate, "answer": answer_json(&answer)})
                }
                Lookup::Backoff(a) => json!({"result": "backoff", "answer": answer_json(&a)}),
                Lookup::Miss => json!({"result": "miss"}),
            },
            "begin_fetch" => {
                let ticket = self.cache.begin_fetch(s("subject"), n("counted_through"));
                let etag = ticket.etag.clone();
                self.tickets
                    .entry(ticket.subject.clone())
                    .or_default()
                    .push_back(ticket);
                json!({ "etag": etag })
            }
            "complete_fetch" => {
                let ticket = self.tickets.get_mut(s("subject")).unwrap().pop_front().unwrap();
                let r = &step["result"];
                let result = if !r["fetched"].is_null() {
                    FetchResult::Fetched {
                        answer: self.payload(&r["fetched"]),
                        etag: r["etag"].as_str().map(str::to_owned),
                    }
                } else if r["not_modified"].as_bool() == Some(true) {
                    FetchResult::NotModified
                } else {
                    FetchResult::Failed {
                        reason: r["failed"].as_str().unwrap().to_owned(),
                        retry_after: r["retry_after_ms"].as_u64().map(Duration::from_millis),
                    }
                };
                let jitter = step["jitter"].as_f64().unwrap();
                completion_json(&self.cache.complete_fetch(ticket, result, n("now"), jitter))
            }
            "answer" => {
                let source: Source = serde_json::from_value(step["source"].clone()).unwrap();
                let a = self.cache.answer(s("subject"), s("feature"), source);
                json!({"answer": a.as_ref().map(answer_json)})
            }
            "answer_or_fallback" => {
                let a = self
                    .cache
                    .answer_or_fallback(s("subject"), s("feature"), s("reason"), n("now"));
                json!({"answer": answer_json(&a)})
            }
            "insert" => {
                let answer = self.payload(&step["payload"]);
                let etag = step["etag"].as_str().map(str::to_owned);
                completion_json(&self.cache.insert(answer, etag, n("now"), n("counted_through")))
            }
            "record_event" => {
                let data = step["data"].as_object().unwrap();
                let counted = self
                    .cache
                    .record_event(s("type"), s("subject"), data, n("at"), n("mark"));
                json!({ "counted": counted })
            }
            "apply" => {
                let message: ServerMessage = serde_json::from_value(step["message"].clone()).unwrap();
                match self.cache.apply(message, n("now"), n("counted_through")) {
                    StreamEffect::None => json!({"effect": "none"}),
                    StreamEffect::Updated { subject } => json!({"effect": "updated", "subject": subject}),
                    StreamEffect::UsageThreshold(event) => json!({"effect": "usage_threshold", "event": event}),
                    StreamEffect::SchemaUpdated { etag } => json!({"effect": "schema_updated", "etag": etag}),
                    StreamEffect::Resync => json!({"effect": "resync"}),
                    StreamEffect::Error { code, message } => {
                        json!({"effect": "error", "code": code, "message": message})
                    }
                }
            }
            "take_refetch_due" => json!({"subjects": self.cache.take_refetch_due()}),
            "mark_all_for_refetch" => {
                self.cache.mark_all_for_refetch();
                json!({})
            }
            "state" => {
                let subjects = self.cache.subjects();
                let versions: serde_json::Map<String, Value> = subjects
                    .iter()
                    .map(|s| (s.clone(), json!(self.cache.version(s))))
                    .collect();
                json!({"last_seq": self.cache.last_seq(), "subjects": subjects, "versions": versions})
            }
            other => panic!("unknown op {other}"),
        }
    }
}

fn run(file: &str) -> usize {
    let doc = vector(file);
    let payloads = doc.get("payloads").cloned().unwrap_or(Value::Null);
    let mut steps = 0;
    for scenario in doc["scenarios"].as_array().unwrap() {
        let name = scenario["name"].as_str().unwrap();
        let mut runner = Runner {
            cache: EntitlementCache::new(settings(&scenario["settings"])),
            payloads: payloads.clone(),
            tickets: HashMap::new(),
        };
        for (i, step) in scenario["steps"].as_array().unwrap().iter().enumerate() {
            let got = runner.step(step);
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
