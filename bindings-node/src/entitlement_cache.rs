//! Conformance only: the core's sans-I/O [`EntitlementCache`], exposed so the Node test
//! suite runs `tests/vectors/entitlements.json` and `stream.json` through this binding with
//! the vectors' own clock. Each method is one call of the cache; values cross as JSON text
//! (exact for the vectors' millisecond timestamps). Not part of the public API.

use std::{
    collections::{HashMap, VecDeque},
    num::NonZeroUsize,
    time::Duration,
};

use meterline_core::{
    entitlement::Entitlements,
    entitlement_cache::{
        CacheSettings, EntitlementCache, Fallbacks, FetchCompletion, FetchResult, FetchTicket, Lookup, Source,
        StreamEffect,
    },
    stream::ServerMessage,
};
use napi::{Error, Result};
use napi_derive::napi;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};

/// The vectors' `settings` (every field optional).
#[derive(Deserialize)]
struct Settings {
    cache_size: Option<usize>,
    max_stale_ms: Option<u64>,
    max_ttl_ms: Option<u64>,
    fallbacks: Option<Value>,
}

/// How a vector's fetch ended: `{fetched, etag}`, `{not_modified: true}` or `{failed,
/// retry_after_ms}`.
#[derive(Deserialize)]
struct Completion {
    fetched: Option<Entitlements>,
    etag: Option<String>,
    #[serde(default)]
    not_modified: bool,
    failed: Option<String>,
    retry_after_ms: Option<u64>,
}

/// The core's `EntitlementCache`, with the fetch tickets it hands out kept per subject.
#[napi(js_name = "_EntitlementCache")]
pub struct VectorCache {
    cache: EntitlementCache,
    tickets: HashMap<String, VecDeque<FetchTicket>>,
}

#[napi]
impl VectorCache {
    /// A fresh cache; `settings` is the JSON of the vectors' `settings` object.
    #[napi(constructor)]
    pub fn new(settings: String) -> Result<Self> {
        let s: Settings = parse("settings", &settings)?;
        let mut cache = CacheSettings::default();
        if let Some(n) = s.cache_size {
            cache.capacity = NonZeroUsize::new(n).ok_or_else(|| Error::from_reason("cache_size must be > 0"))?;
        }
        if let Some(ms) = s.max_stale_ms {
            cache.max_stale = Duration::from_millis(ms);
        }
        cache.max_ttl = s.max_ttl_ms.map(Duration::from_millis);
        if let Some(f) = s.fallbacks.filter(|f| !f.is_null()) {
            cache.fallbacks = Fallbacks::from_json(&f).map_err(|e| Error::from_reason(e.to_string()))?;
        }
        Ok(VectorCache {
            cache: EntitlementCache::new(cache),
            tickets: HashMap::new(),
        })
    }

    /// `lookup` → `{result: hit|stale|backoff|miss, answer?, revalidate?}` as JSON.
    #[napi]
    pub fn lookup(&mut self, subject: String, feature: String, now: f64) -> Result<String> {
        let out = match self.cache.lookup(&subject, &feature, ms(now)) {
            Lookup::Hit(a) => json!({"result": "hit", "answer": a}),
            Lookup::Stale { answer, revalidate } => {
                json!({"result": "stale", "revalidate": revalidate, "answer": answer})
            }
            Lookup::Backoff(a) => json!({"result": "backoff", "answer": a}),
            Lookup::Miss => json!({"result": "miss"}),
        };
        Ok(out.to_string())
    }

    /// `begin_fetch`; returns the ticket's ETag and keeps the ticket for `completeFetch`.
    #[napi]
    pub fn begin_fetch(&mut self, subject: String, counted_through: f64) -> Option<String> {
        let ticket = self.cache.begin_fetch(&subject, ms(counted_through));
        let etag = ticket.etag.clone();
        self.tickets.entry(subject).or_default().push_back(ticket);
        etag
    }

    /// `complete_fetch` of the subject's oldest open ticket; `result` as JSON (see
    /// [`Completion`]). Returns `{added, evicted, refetch}` as JSON.
    #[napi]
    pub fn complete_fetch(&mut self, subject: String, result: String, now: f64, jitter: f64) -> Result<String> {
        let ticket = self
            .tickets
            .get_mut(&subject)
            .and_then(VecDeque::pop_front)
            .ok_or_else(|| Error::from_reason(format!("no fetch begun for {subject:?}")))?;
        let c: Completion = parse("result", &result)?;
        let result = match (c.fetched, c.not_modified, c.failed) {
            (Some(answer), _, _) => FetchResult::Fetched { answer, etag: c.etag },
            (None, true, _) => FetchResult::NotModified,
            (None, false, Some(reason)) => FetchResult::Failed {
                reason,
                retry_after: c.retry_after_ms.map(Duration::from_millis),
            },
            _ => return Err(Error::from_reason("result needs `fetched`, `not_modified` or `failed`")),
        };
        Ok(completion(&self.cache.complete_fetch(ticket, result, ms(now), jitter)))
    }

    /// `answer(subject, feature, source)` as JSON (`null` when nothing is cached).
    #[napi]
    pub fn answer(&self, subject: String, feature: String, source: String) -> Result<String> {
        let source: Source = parse("source", &Value::String(source).to_string())?;
        Ok(json!(self.cache.answer(&subject, &feature, source)).to_string())
    }

    /// `answer_or_fallback` as JSON.
    #[napi]
    pub fn answer_or_fallback(&self, subject: String, feature: String, reason: String, now: f64) -> String {
        json!(self.cache.answer_or_fallback(&subject, &feature, &reason, ms(now))).to_string()
    }

    /// `insert` of a payload (JSON); returns `{added, evicted, refetch}` as JSON.
    #[napi]
    pub fn insert(&mut self, payload: String, etag: Option<String>, now: f64, counted_through: f64) -> Result<String> {
        let answer: Entitlements = parse("payload", &payload)?;
        Ok(completion(&self.cache.insert(
            answer,
            etag,
            ms(now),
            ms(counted_through),
        )))
    }

    /// `record_event`; `data` is the event's data as JSON. Returns whether it counted.
    #[napi]
    pub fn record_event(
        &mut self,
        event_type: String,
        subject: String,
        data: String,
        at: f64,
        mark: f64,
    ) -> Result<bool> {
        let data: Map<String, Value> = parse("data", &data)?;
        Ok(self.cache.record_event(&event_type, &subject, &data, ms(at), ms(mark)))
    }

    /// `apply` of a server frame (JSON); returns the effect as JSON.
    #[napi]
    pub fn apply(&mut self, message: String, now: f64, counted_through: f64) -> Result<String> {
        let message: ServerMessage = parse("message", &message)?;
        let out = match self.cache.apply(message, ms(now), ms(counted_through)) {
            StreamEffect::None => json!({"effect": "none"}),
            StreamEffect::Updated { subject } => json!({"effect": "updated", "subject": subject}),
            StreamEffect::UsageThreshold(event) => json!({"effect": "usage_threshold", "event": event}),
            StreamEffect::SchemaUpdated { etag } => json!({"effect": "schema_updated", "etag": etag}),
            StreamEffect::Resync => json!({"effect": "resync"}),
            StreamEffect::Error { code, message } => json!({"effect": "error", "code": code, "message": message}),
        };
        Ok(out.to_string())
    }

    /// `take_refetch_due`.
    #[napi]
    pub fn take_refetch_due(&mut self) -> Vec<String> {
        self.cache.take_refetch_due()
    }

    /// `mark_all_for_refetch`.
    #[napi]
    pub fn mark_all_for_refetch(&mut self) {
        self.cache.mark_all_for_refetch();
    }

    /// `{last_seq, subjects, versions}` as JSON.
    #[napi]
    pub fn state(&self) -> String {
        let subjects = self.cache.subjects();
        let versions: Map<String, Value> = subjects
            .iter()
            .map(|s| (s.clone(), json!(self.cache.version(s))))
            .collect();
        json!({"last_seq": self.cache.last_seq(), "subjects": subjects, "versions": versions}).to_string()
    }
}

fn parse<T: DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::from_reason(format!("bad {what}: {e}")))
}

fn completion(c: &FetchCompletion) -> String {
    json!({"added": c.added, "evicted": c.evicted, "refetch": c.refetch}).to_string()
}

/// A whole number of milliseconds as the cache takes it (the vectors' values are exact in
/// a JS number).
fn ms(n: f64) -> u64 {
    n as u64
}
