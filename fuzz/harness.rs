//! The bodies of the core's client-side fuzz targets, shared by the targets
//! (`fuzz_targets/*.rs`) and the replay of kept inputs in `core/tests/it/fuzz_inputs.rs`
//! (each includes this file with `#[path]`), so a replayed input runs exactly the calls and
//! checks the fuzzer ran. Each must never panic on any input; each returns whether the input
//! reached the interesting part (for the replay's "the seeds are valid" checks).

// Each fuzz target calls one of these.
#![allow(dead_code)]

use meterline_core::{
    entitlement::Entitlements,
    entitlement_cache::{CacheSettings, EntitlementCache, FetchResult, Lookup, Source, StreamEffect},
    spool_record::{SpoolRecordError, decode, encode_key},
    stream::ServerMessage,
};
use serde_json::json;

const SUBJECT: &str = "c1";
const NOW: u64 = 1_795_514_400_000;

/// The spool reader: one stored spool entry (first byte: the key's length, 0–16; then the
/// key; the rest is the value). What decodes is an event the sender can send (a JSON object
/// with a string id) under the key it was stored with. Returns whether it decoded.
pub fn spool_record(data: &[u8]) -> bool {
    let Some((&key_len, rest)) = data.split_first() else {
        return false;
    };
    let (key, value) = rest.split_at(usize::from(key_len % 17).min(rest.len()));
    match decode(key, value) {
        Ok((seq, event)) => {
            assert_eq!(encode_key(seq), key);
            assert_eq!(event, value);
            let parsed: serde_json::Value = serde_json::from_slice(event).expect("a decoded event is JSON");
            assert!(parsed["id"].as_str().is_some_and(|id| !id.is_empty()), "{parsed}");
            true
        }
        Err(SpoolRecordError::Key(len)) => {
            assert!(len == key.len() && len != 8);
            false
        }
        Err(SpoolRecordError::Value) => {
            assert_eq!(key.len(), 8);
            false
        }
    }
}

fn cached() -> Entitlements {
    serde_json::from_str(
        r#"{"subject":"c1","version":1,"ttl_ms":60000,"entitlements":{
            "api_calls":{"kind":"metered","has_access":true,"limit":1000,"usage":120,"remaining":880,
              "period":"month","period_start":"2026-11-01T00:00:00Z","period_end":"2026-12-01T00:00:00Z",
              "event_type":"api.call","aggregation":"count","soft_limit":800},
            "sso":{"kind":"boolean","has_access":true},
            "tier":{"kind":"config","has_access":true,"value":{"seats":10}}}}"#,
    )
    .expect("the cached answer parses")
}

/// The SDK's side of the realtime stream: text frames (one per line) decoded as the native
/// client does and applied to a cache holding one answer, then lookups of what is cached.
/// The resume point never moves backwards except by `resync`. Returns how many frames were
/// messages.
pub fn client_stream_message(data: &[u8]) -> usize {
    let Ok(text) = std::str::from_utf8(data) else {
        return 0;
    };
    let mut cache = EntitlementCache::new(CacheSettings::default());
    cache.insert(cached(), None, NOW, 0);
    let mut applied = 0;
    for (i, frame) in text.split('\n').enumerate() {
        let Ok(message) = serde_json::from_str::<ServerMessage>(frame) else {
            continue;
        };
        let resync = matches!(message, ServerMessage::Resync { .. });
        let before = cache.last_seq();
        let now = NOW + i as u64 * 1_000;
        if let StreamEffect::Resync = cache.apply(message, now, i as u64) {
            cache.take_refetch_due();
        }
        if !resync && let (Some(before), Some(after)) = (before, cache.last_seq()) {
            assert!(after >= before, "the resume point went back: {before} -> {after}");
        }
        for subject in cache.subjects() {
            for feature in ["api_calls", "sso", "tier", "missing"] {
                let _ = cache.lookup(&subject, feature, now);
            }
        }
        applied += 1;
    }
    applied
}

/// The SDK's reading of `GET /v1/customers/{subject}/entitlements`: the body (after a first
/// byte that picks the fetch's jitter and `ETag`) parsed as the native client does into a
/// cache, then tracked events counted into it and lookups of every feature. A parsed answer
/// is served from the cache with its version. Returns whether the body was an answer for
/// the subject asked.
pub fn entitlement_answer(data: &[u8]) -> bool {
    let Some((&selector, body)) = data.split_first() else {
        return false;
    };
    let mut cache = EntitlementCache::new(CacheSettings::default());
    let ticket = cache.begin_fetch(SUBJECT, 0);
    let parsed = serde_json::from_slice::<Entitlements>(body).ok();
    let result = match parsed.clone() {
        Some(answer) if answer.subject == SUBJECT => FetchResult::Fetched {
            answer,
            etag: (selector & 1 == 1).then(|| "\"e1\"".to_owned()),
        },
        _ => FetchResult::Failed {
            reason: "invalid_json".to_owned(),
            retry_after: None,
        },
    };
    let fetched = matches!(result, FetchResult::Fetched { .. });
    cache.complete_fetch(ticket, result, NOW, f64::from(selector) / 256.0);

    let mut features: Vec<String> = parsed
        .as_ref()
        .map(|a| a.entitlements.keys().cloned().collect())
        .unwrap_or_default();
    features.push("missing".to_owned());
    if let Some(answer) = parsed.as_ref().filter(|_| fetched) {
        for feature in &features {
            let served = cache
                .answer(SUBJECT, feature, Source::Fresh)
                .expect("a fetched answer is cached");
            assert_eq!(served.version, Some(answer.version));
        }
        // Tracked events count into the metered features they feed.
        for entitlement in answer.entitlements.values() {
            if let Some(event_type) = &entitlement.event_type {
                let data = json!({"tokens": 5, "n": -1.5e300})
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                cache.record_event(event_type, SUBJECT, &data, NOW, 1);
            }
        }
    }
    for now in [NOW, NOW + 1, NOW + 86_400_000 * 400] {
        for feature in &features {
            match cache.lookup(SUBJECT, feature, now) {
                Lookup::Hit(answer) | Lookup::Stale { answer, .. } | Lookup::Backoff(answer) => {
                    let _ = answer.has_access;
                }
                Lookup::Miss => {}
            }
            let _ = cache.answer_or_fallback(SUBJECT, feature, "fuzz", now);
        }
    }
    fetched
}
