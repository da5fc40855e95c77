//! The SDK's reading of `GET /v1/customers/{subject}/entitlements`: arbitrary bytes as the
//! body (after a first byte that picks the fetch's jitter and `ETag`), parsed as the native
//! client does (an `Entitlements` for the subject asked, else a failed fetch) into an
//! `EntitlementCache`; then tracked events counted into it and lookups of every feature.
//! Must never panic; a parsed answer is served from the cache with its version.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterline_core::{
    entitlement::Entitlements,
    entitlement_cache::{CacheSettings, EntitlementCache, FetchResult, Lookup, Source},
};
use serde_json::json;

const SUBJECT: &str = "c1";
const NOW: u64 = 1_795_514_400_000;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
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
});
