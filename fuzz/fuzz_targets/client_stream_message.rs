//! The SDK's side of the realtime stream: arbitrary bytes as text frames (one per line) from
//! the server, decoded as the native client does (`ServerMessage` from the frame's text) and
//! applied to an `EntitlementCache` holding one answer; then lookups of what is cached. Must
//! never panic; the resume point never moves backwards except by `resync`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterline_core::{
    entitlement::Entitlements,
    entitlement_cache::{CacheSettings, EntitlementCache, StreamEffect},
    stream::ServerMessage,
};

const NOW: u64 = 1_795_514_400_000;

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

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut cache = EntitlementCache::new(CacheSettings::default());
    cache.insert(cached(), None, NOW, 0);
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
    }
});
