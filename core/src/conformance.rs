//! The step drivers of the shared entitlement and stream vectors
//! (`tests/vectors/entitlements.json`, `stream.json`, `stream_session.json`): one
//! [`EntitlementCache`] — and for sessions a [`StreamSession`] beside it — driven by JSON
//! steps with the vectors' own clock, answering JSON. The core's tests and every binding's
//! conformance surface (Python and Node `_EntitlementCache`) run the vectors through these
//! drivers, so a binding only converts JSON in and out.
//!
//! Hidden from the docs: not part of the SDK's API.

use std::{
    collections::{HashMap, VecDeque},
    num::NonZeroUsize,
    time::Duration,
};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::{
    entitlement::Entitlements,
    entitlement_cache::{
        CacheSettings, EntitlementCache, Fallbacks, FetchCompletion, FetchResult, FetchTicket, Lookup, Source,
        StreamEffect,
    },
    stream::{Disconnect, ReconnectPolicy, ServerMessage},
    stream_session::{Action, Frame, SessionSettings, StreamSession},
};

/// An [`EntitlementCache`], the fetch tickets it handed out (oldest first, by subject) and
/// the vector file's named payloads.
#[derive(Debug)]
pub struct VectorCache {
    cache: EntitlementCache,
    tickets: HashMap<String, VecDeque<FetchTicket>>,
    payloads: Map<String, Value>,
}

impl VectorCache {
    /// A cache with a scenario's `settings` (`cache_size`, `max_stale_ms`, `max_ttl_ms`,
    /// `fallbacks`; all optional, `null` for none) and the file's `payloads` (an object of
    /// named answers, or `null`).
    pub fn new(settings: &Value, payloads: &Value) -> Result<Self, String> {
        let mut cache = CacheSettings::default();
        if let Some(n) = number(settings, "cache_size")? {
            cache.capacity = usize::try_from(n)
                .ok()
                .and_then(NonZeroUsize::new)
                .ok_or("settings: `cache_size` must be at least 1")?;
        }
        if let Some(ms) = number(settings, "max_stale_ms")? {
            cache.max_stale = Duration::from_millis(ms);
        }
        cache.max_ttl = number(settings, "max_ttl_ms")?.map(Duration::from_millis);
        if !settings["fallbacks"].is_null() {
            cache.fallbacks = Fallbacks::from_json(&settings["fallbacks"]).map_err(|e| format!("settings: {e}"))?;
        }
        let payloads = match payloads {
            Value::Null => Map::new(),
            Value::Object(p) => p.clone(),
            other => return Err(format!("`payloads` must be an object, got {other}")),
        };
        Ok(VectorCache {
            cache: EntitlementCache::new(cache),
            tickets: HashMap::new(),
            payloads,
        })
    }

    /// Runs one step (`{"op": …, …}`) and returns what it gave, for the step's `expect`.
    /// Errors name what is wrong with the step.
    pub fn step(&mut self, step: &Value) -> Result<Value, String> {
        let s = |key: &str| step[key].as_str().ok_or_else(|| format!("`{key}` must be a string"));
        let n = |key: &str| step[key].as_u64().ok_or_else(|| format!("`{key}` must be an integer"));
        let cache = &mut self.cache;
        Ok(match s("op")? {
            "lookup" => match cache.lookup(s("subject")?, s("feature")?, n("now")?) {
                Lookup::Hit(a) => json!({"result": "hit", "answer": a}),
                Lookup::Stale { answer, revalidate } => {
                    json!({"result": "stale", "revalidate": revalidate, "answer": answer})
                }
                Lookup::Backoff(a) => json!({"result": "backoff", "answer": a}),
                Lookup::Miss => json!({"result": "miss"}),
            },
            "begin_fetch" => {
                let ticket = cache.begin_fetch(s("subject")?, n("counted_through")?);
                let etag = ticket.etag.clone();
                self.tickets
                    .entry(ticket.subject.clone())
                    .or_default()
                    .push_back(ticket);
                json!({ "etag": etag })
            }
            "complete_fetch" => {
                let subject = s("subject")?;
                let ticket = self
                    .tickets
                    .get_mut(subject)
                    .and_then(VecDeque::pop_front)
                    .ok_or_else(|| format!("complete_fetch for {subject:?} without a begin_fetch"))?;
                let r = &step["result"];
                let result = if !r["fetched"].is_null() {
                    FetchResult::Fetched {
                        answer: payload(&self.payloads, &r["fetched"])?,
                        etag: r["etag"].as_str().map(str::to_owned),
                    }
                } else if r["not_modified"].as_bool() == Some(true) {
                    FetchResult::NotModified
                } else if let Some(reason) = r["failed"].as_str() {
                    FetchResult::Failed {
                        reason: reason.to_owned(),
                        retry_after: r["retry_after_ms"].as_u64().map(Duration::from_millis),
                    }
                } else {
                    return Err("`result` needs `fetched`, `not_modified` or `failed`".into());
                };
                let jitter = step["jitter"].as_f64().ok_or("`jitter` must be a number")?;
                completion(&cache.complete_fetch(ticket, result, n("now")?, jitter))
            }
            "answer" => {
                let source: Source = parse("source", &step["source"])?;
                json!({"answer": cache.answer(s("subject")?, s("feature")?, source)})
            }
            "answer_or_fallback" => {
                let a = cache.answer_or_fallback(s("subject")?, s("feature")?, s("reason")?, n("now")?);
                json!({ "answer": a })
            }
            "insert" => {
                let answer = payload(&self.payloads, &step["payload"])?;
                let etag = step["etag"].as_str().map(str::to_owned);
                completion(&cache.insert(answer, etag, n("now")?, n("counted_through")?))
            }
            "record_event" => {
                let data = step["data"].as_object().ok_or("`data` must be an object")?;
                json!({"counted": cache.record_event(s("type")?, s("subject")?, data, n("at")?, n("mark")?)})
            }
            "apply" => {
                let message: ServerMessage = parse("message", &step["message"])?;
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
                let versions: Map<String, Value> =
                    subjects.iter().map(|s| (s.clone(), json!(cache.version(s)))).collect();
                json!({"last_seq": cache.last_seq(), "subjects": subjects, "versions": versions})
            }
            other => return Err(format!("unknown op {other:?}")),
        })
    }
}

/// A [`StreamSession`] and the [`EntitlementCache`] it keeps current, driven by the steps of
/// `tests/vectors/stream_session.json`. Steps it does not know go to the cache's driver
/// ([`VectorCache::step`]).
#[derive(Debug)]
pub struct VectorSession {
    cache: VectorCache,
    session: StreamSession,
}

impl VectorSession {
    /// A session with a scenario's `settings` — the cache's (see [`VectorCache::new`]) and
    /// `connect_timeout_ms`, `idle_limit_ms`, `initial_delay_ms`, `max_delay_ms`,
    /// `refused_delay_ms`, `max_subjects`, `max_frame_bytes` (all optional) — and the file's
    /// `payloads`.
    pub fn new(settings: &Value, payloads: &Value) -> Result<Self, String> {
        let ms = |key: &str| number(settings, key).map(|n| n.map(Duration::from_millis));
        let count = |key: &str| number(settings, key).map(|n| n.map(|n| usize::try_from(n).unwrap_or(usize::MAX)));
        let (d, r) = (SessionSettings::default(), ReconnectPolicy::default());
        let s = SessionSettings {
            reconnect: ReconnectPolicy {
                initial_delay: ms("initial_delay_ms")?.unwrap_or(r.initial_delay),
                max_delay: ms("max_delay_ms")?.unwrap_or(r.max_delay),
                refused_delay: ms("refused_delay_ms")?.unwrap_or(r.refused_delay),
            },
            connect_timeout: ms("connect_timeout_ms")?.unwrap_or(d.connect_timeout),
            idle_limit: ms("idle_limit_ms")?.unwrap_or(d.idle_limit),
            max_subjects: count("max_subjects")?.unwrap_or(d.max_subjects),
            max_frame_bytes: count("max_frame_bytes")?.unwrap_or(d.max_frame_bytes),
        };
        Ok(VectorSession {
            cache: VectorCache::new(settings, payloads)?,
            session: StreamSession::new(s),
        })
    }

    /// Runs one step and returns the actions it gave and the session's state after it:
    /// `{"actions": [...], "state", "wake_at", "delay_ms", "subjects", "attempt"}`.
    pub fn step(&mut self, step: &Value) -> Result<Value, String> {
        let s = |key: &str| step[key].as_str().ok_or_else(|| format!("`{key}` must be a string"));
        let n = |key: &str| step[key].as_u64().ok_or_else(|| format!("`{key}` must be an integer"));
        let jitter = || step["jitter"].as_f64().ok_or("`jitter` must be a number");
        let session = &mut self.session;
        let cache = &mut self.cache.cache;
        let now = match s("op")? {
            "subscribe" => {
                let now = n("now")?;
                session.subscribe(s("subject")?, step["as_of"].as_u64(), cache.last_seq(), now);
                now
            }
            "unsubscribe" => {
                session.unsubscribe(s("subject")?);
                n("now")?
            }
            "opened" => {
                let now = n("now")?;
                session.opened(now, cache);
                now
            }
            "frame" => {
                let now = n("now")?;
                let text = match (&step["message"], &step["text"]) {
                    (Value::Null, Value::String(text)) => text.clone(),
                    (Value::Null, _) => return Err("`frame` needs `message` (JSON) or `text`".into()),
                    (message, _) => message.to_string(),
                };
                session.received(Frame::Text(&text), now, cache, n("counted_through")?);
                now
            }
            "ping" => {
                let now = n("now")?;
                session.received(Frame::Other, now, cache, 0);
                now
            }
            "lost" => {
                let now = n("now")?;
                let why = disconnect(&step["why"])?;
                session.lost(why, s("reason")?, now, jitter()?);
                now
            }
            "timer" => {
                let now = n("now")?;
                session.on_timer(now, jitter()?);
                now
            }
            "close" => {
                session.close();
                n("now")?
            }
            _ => return self.cache.step(step),
        };
        let mut actions = Vec::new();
        while let Some(action) = session.poll_action() {
            actions.push(action_json(action)?);
        }
        let wake_at = session.next_wake();
        Ok(json!({
            "actions": actions,
            "state": session.state().as_str(),
            "wake_at": wake_at,
            "delay_ms": wake_at.map(|at| at.saturating_sub(now)),
            "subjects": session.subjects().collect::<Vec<_>>(),
            "attempt": session.attempt(),
        }))
    }
}

/// `"network"`, `{"closed": code}` or `{"refused": status}`.
fn disconnect(v: &Value) -> Result<Disconnect, String> {
    let code = |key: &str| v[key].as_u64().and_then(|c| u16::try_from(c).ok());
    match (v.as_str(), code("closed"), code("refused")) {
        (Some("network"), ..) => Ok(Disconnect::Network),
        (None, Some(code), None) => Ok(Disconnect::Closed(code)),
        (None, None, Some(status)) => Ok(Disconnect::Refused(status)),
        _ => Err(format!(
            "`why` must be \"network\", {{\"closed\": code}} or {{\"refused\": status}}, got {v}"
        )),
    }
}

fn action_json(action: Action) -> Result<Value, String> {
    Ok(match action {
        Action::Connect => json!({"do": "connect"}),
        Action::Send(frame) => {
            let frame: Value =
                serde_json::from_str(&frame).map_err(|e| format!("sent a frame that is not JSON: {e}"))?;
            json!({"do": "send", "frame": frame})
        }
        Action::Close { code, reason } => json!({"do": "close", "code": code, "reason": reason}),
        Action::Abandon => json!({"do": "abandon"}),
        Action::ConnectionChange { connected, reason } => {
            json!({"do": "connection_change", "connected": connected, "reason": reason})
        }
        Action::Refetch(subjects) => json!({"do": "refetch", "subjects": subjects}),
        Action::UsageThreshold(event) => json!({"do": "usage_threshold", "event": event}),
        Action::RefreshSchemas { etag } => json!({"do": "refresh_schemas", "etag": etag}),
        Action::RefreshCredentials => json!({"do": "refresh_credentials"}),
        Action::Report(err) => json!({"do": "report", "code": err.code(), "message": err.to_string()}),
    })
}

/// A step's answer payload: inline, or the name of one of the file's `payloads`.
fn payload(payloads: &Map<String, Value>, v: &Value) -> Result<Entitlements, String> {
    let body = match v {
        Value::String(name) => payloads.get(name).ok_or_else(|| format!("no payload named {name:?}"))?,
        other => other,
    };
    parse("payload", body)
}

fn parse<T: DeserializeOwned>(what: &str, v: &Value) -> Result<T, String> {
    T::deserialize(v).map_err(|e| format!("bad `{what}`: {e}"))
}

fn number(settings: &Value, key: &str) -> Result<Option<u64>, String> {
    match &settings[key] {
        Value::Null => Ok(None),
        v => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("settings: `{key}` must be a whole number, got {v}")),
    }
}

fn completion(c: &FetchCompletion) -> Value {
    json!({"added": c.added, "evicted": c.evicted, "refetch": c.refetch})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_steps_and_settings_are_clear_errors() {
        let mut cache = VectorCache::new(&Value::Null, &Value::Null).unwrap();
        assert_eq!(cache.step(&json!({"op": "nope"})).unwrap_err(), "unknown op \"nope\"");
        assert_eq!(cache.step(&json!({})).unwrap_err(), "`op` must be a string");
        assert_eq!(
            cache
                .step(&json!({"op": "lookup", "subject": "a", "feature": "f"}))
                .unwrap_err(),
            "`now` must be an integer"
        );
        assert!(
            cache
                .step(&json!({"op": "insert", "payload": "missing", "now": 0, "counted_through": 0}))
                .unwrap_err()
                .contains("no payload named \"missing\"")
        );
        assert!(
            cache
                .step(&json!({"op": "complete_fetch", "subject": "a", "result": {}, "now": 0, "jitter": 0.5}))
                .unwrap_err()
                .contains("without a begin_fetch")
        );
        assert!(VectorCache::new(&json!({"cache_size": 0}), &Value::Null).is_err());
        assert!(VectorCache::new(&json!({"max_stale_ms": "1s"}), &Value::Null).is_err());
        assert!(VectorCache::new(&Value::Null, &json!([1])).is_err());
    }
}
