//! Conformance only: the core's `EntitlementCache` driven step by step with an explicit
//! clock, so the shared vectors (`tests/vectors/entitlements.json`, `stream.json`) run
//! through this package too. Each operation is one call of the core's public API; no
//! behaviour lives here. Not part of the public API.

use std::{
    collections::{HashMap, VecDeque},
    num::NonZeroUsize,
    sync::Mutex,
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
use pyo3::{exceptions::PyValueError, prelude::*};
use serde_json::{Value, json};

use crate::{convert, entitlements::to_python};

/// An `EntitlementCache` and the fetch tickets handed out, by subject.
#[pyclass(module = "meterline._native", name = "_EntitlementCache")]
pub struct VectorCache {
    state: Mutex<(EntitlementCache, HashMap<String, VecDeque<FetchTicket>>)>,
}

fn bad(message: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("vector step: {message}"))
}

fn json_of(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    convert::to_json(obj).map_err(|e| bad(format!("{} at {}", e.message(), e.path(""))))
}

fn answer_json(a: &EntitlementAnswer) -> Value {
    serde_json::to_value(a).unwrap_or(Value::Null)
}

fn completion_json(c: &FetchCompletion) -> Value {
    json!({"added": c.added, "evicted": c.evicted, "refetch": c.refetch})
}

#[pymethods]
impl VectorCache {
    /// `settings`: the vector's `settings` (`cache_size`, `max_stale_ms`, `max_ttl_ms`,
    /// `fallbacks`).
    #[new]
    fn new(settings: &Bound<'_, PyAny>) -> PyResult<Self> {
        let s = json_of(settings)?;
        let mut settings = CacheSettings::default();
        if let Some(n) = s["cache_size"].as_u64() {
            settings.capacity = NonZeroUsize::new(n as usize).ok_or_else(|| bad("cache_size 0"))?;
        }
        if let Some(ms) = s["max_stale_ms"].as_u64() {
            settings.max_stale = Duration::from_millis(ms);
        }
        settings.max_ttl = s["max_ttl_ms"].as_u64().map(Duration::from_millis);
        if !s["fallbacks"].is_null() {
            settings.fallbacks = Fallbacks::from_json(&s["fallbacks"]).map_err(bad)?;
        }
        Ok(VectorCache {
            state: Mutex::new((EntitlementCache::new(settings), HashMap::new())),
        })
    }

    /// Runs one vector step (payloads already resolved by name) and returns what it gave.
    fn step<'py>(&self, py: Python<'py>, step: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let step = json_of(step)?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (cache, tickets) = &mut *state;
        let got = run_step(cache, tickets, &step)?;
        to_python(py, &got)
    }
}

fn run_step(
    cache: &mut EntitlementCache,
    tickets: &mut HashMap<String, VecDeque<FetchTicket>>,
    step: &Value,
) -> PyResult<Value> {
    let s = |key: &str| {
        step[key]
            .as_str()
            .ok_or_else(|| bad(format!("`{key}` must be a string")))
    };
    let n = |key: &str| {
        step[key]
            .as_u64()
            .ok_or_else(|| bad(format!("`{key}` must be an integer")))
    };
    let payload = |v: &Value| serde_json::from_value::<Entitlements>(v.clone()).map_err(bad);
    Ok(match s("op")? {
        "lookup" => match cache.lookup(s("subject")?, s("feature")?, n("now")?) {
            Lookup::Hit(a) => json!({"result": "hit", "answer": answer_json(&a)}),
            Lookup::Stale { answer, revalidate } => {
                json!({"result": "stale", "revalidate": revalidate, "answer": answer_json(&answer)})
            }
            Lookup::Backoff(a) => json!({"result": "backoff", "answer": answer_json(&a)}),
            Lookup::Miss => json!({"result": "miss"}),
        },
        "begin_fetch" => {
            let ticket = cache.begin_fetch(s("subject")?, n("counted_through")?);
            let etag = ticket.etag.clone();
            tickets.entry(ticket.subject.clone()).or_default().push_back(ticket);
            json!({ "etag": etag })
        }
        "complete_fetch" => {
            let ticket = tickets
                .get_mut(s("subject")?)
                .and_then(VecDeque::pop_front)
                .ok_or_else(|| bad("complete_fetch without begin_fetch"))?;
            let r = &step["result"];
            let result = if !r["fetched"].is_null() {
                FetchResult::Fetched {
                    answer: payload(&r["fetched"])?,
                    etag: r["etag"].as_str().map(str::to_owned),
                }
            } else if r["not_modified"].as_bool() == Some(true) {
                FetchResult::NotModified
            } else {
                FetchResult::Failed {
                    reason: r["failed"].as_str().unwrap_or_default().to_owned(),
                    retry_after: r["retry_after_ms"].as_u64().map(Duration::from_millis),
                }
            };
            let jitter = step["jitter"]
                .as_f64()
                .ok_or_else(|| bad("`jitter` must be a number"))?;
            completion_json(&cache.complete_fetch(ticket, result, n("now")?, jitter))
        }
        "answer" => {
            let source: Source = serde_json::from_value(step["source"].clone()).map_err(bad)?;
            let a = cache.answer(s("subject")?, s("feature")?, source);
            json!({"answer": a.as_ref().map(answer_json)})
        }
        "answer_or_fallback" => {
            let a = cache.answer_or_fallback(s("subject")?, s("feature")?, s("reason")?, n("now")?);
            json!({"answer": answer_json(&a)})
        }
        "insert" => {
            let etag = step["etag"].as_str().map(str::to_owned);
            completion_json(&cache.insert(payload(&step["payload"])?, etag, n("now")?, n("counted_through")?))
        }
        "record_event" => {
            let data = step["data"]
                .as_object()
                .ok_or_else(|| bad("`data` must be an object"))?;
            let counted = cache.record_event(s("type")?, s("subject")?, data, n("at")?, n("mark")?);
            json!({ "counted": counted })
        }
        "apply" => {
            let message: ServerMessage = serde_json::from_value(step["message"].clone()).map_err(bad)?;
            match cache.apply(message, n("now")?, n("counted_through")?) {
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
        "take_refetch_due" => json!({"subjects": cache.take_refetch_due()}),
        "mark_all_for_refetch" => {
            cache.mark_all_for_refetch();
            json!({})
        }
        "state" => {
            let subjects = cache.subjects();
            let versions: serde_json::Map<String, Value> =
                subjects.iter().map(|s| (s.clone(), json!(cache.version(s)))).collect();
            json!({"last_seq": cache.last_seq(), "subjects": subjects, "versions": versions})
        }
        other => return Err(bad(format!("unknown op {other}"))),
    })
}
