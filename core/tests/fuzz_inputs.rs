//! Replays the fuzz seeds and every kept fuzz regression input (`fuzz/seeds/<target>`,
//! `fuzz/regressions/<target>`) of the core's targets through the same calls as the fuzz
//! targets, so a fixed crash stays fixed in `make test` without the fuzz toolchain.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../../fuzz/inputs.rs"]
mod kept;

use meterline_core::{
    codec::{Encoding, decompress_limited},
    entitlement::Entitlements,
    entitlement_cache::{CacheSettings, EntitlementCache, FetchResult, Lookup, Source, StreamEffect},
    spool_record::{SpoolRecordError, decode, encode_key},
    stream::{ClientOp, ServerMessage},
};

const NOW: u64 = 1_795_514_400_000;

#[test]
fn decompress_inputs_stay_within_the_limit() {
    const LIMIT: usize = 1 << 20;
    for input in kept::inputs("decompress") {
        let Some((&selector, body)) = input.split_first() else {
            continue;
        };
        let encoding = [Encoding::Gzip, Encoding::Zstd, Encoding::Identity][usize::from(selector % 3)];
        if let Ok(out) = decompress_limited(encoding, body, LIMIT) {
            assert!(out.len() <= LIMIT);
        }
    }
}

#[test]
fn stream_frame_inputs_round_trip() {
    let mut parsed = 0;
    for input in kept::inputs("stream_frame") {
        if let Ok(op) = serde_json::from_slice::<ClientOp>(&input) {
            let text = serde_json::to_string(&op).unwrap();
            assert_eq!(serde_json::from_str::<ClientOp>(&text).unwrap(), op);
            parsed += 1;
        }
        if let Ok(msg) = serde_json::from_slice::<ServerMessage>(&input) {
            serde_json::to_string(&msg).unwrap();
            parsed += 1;
        }
    }
    assert!(parsed >= 3, "the seeds hold valid frames");
}

#[test]
fn spool_record_inputs_decode_only_events() {
    let mut decoded = 0;
    for input in kept::inputs("spool_record") {
        let Some((&key_len, rest)) = input.split_first() else {
            continue;
        };
        let (key, value) = rest.split_at(usize::from(key_len % 17).min(rest.len()));
        match decode(key, value) {
            Ok((seq, event)) => {
                assert_eq!(encode_key(seq), key);
                let parsed: serde_json::Value = serde_json::from_slice(event).unwrap();
                assert!(parsed["id"].as_str().is_some_and(|id| !id.is_empty()), "{parsed}");
                decoded += 1;
            }
            Err(SpoolRecordError::Key(len)) => assert!(len == key.len() && len != 8),
            Err(SpoolRecordError::Value) => assert_eq!(key.len(), 8),
        }
    }
    assert!(decoded >= 1, "the seeds hold a valid record");
}

#[test]
fn client_stream_message_inputs_apply_to_the_cache() {
    let answer = serde_json::from_value::<Entitlements>(serde_json::json!({
        "subject": "c1", "version": 1, "ttl_ms": 60000,
        "entitlements": {"sso": {"kind": "boolean", "has_access": true}}
    }))
    .unwrap();
    let mut applied = 0;
    for input in kept::inputs("client_stream_message") {
        let Ok(text) = std::str::from_utf8(&input) else {
            continue;
        };
        let mut cache = EntitlementCache::new(CacheSettings::default());
        cache.insert(answer.clone(), None, NOW, 0);
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
                assert!(after >= before);
            }
            for subject in cache.subjects() {
                let _ = cache.lookup(&subject, "sso", now);
            }
            applied += 1;
        }
    }
    assert!(applied >= 3, "the seeds hold valid frames");
}

#[test]
fn entitlement_answer_inputs_are_served_from_the_cache() {
    let mut fetched_any = false;
    for input in kept::inputs("entitlement_answer") {
        let Some((&selector, body)) = input.split_first() else {
            continue;
        };
        let mut cache = EntitlementCache::new(CacheSettings::default());
        let ticket = cache.begin_fetch("c1", 0);
        let parsed = serde_json::from_slice::<Entitlements>(body).ok();
        let result = match parsed.clone() {
            Some(answer) if answer.subject == "c1" => FetchResult::Fetched { answer, etag: None },
            _ => FetchResult::Failed {
                reason: "invalid_json".to_owned(),
                retry_after: None,
            },
        };
        let fetched = matches!(result, FetchResult::Fetched { .. });
        cache.complete_fetch(ticket, result, NOW, f64::from(selector) / 256.0);
        if let Some(answer) = parsed.filter(|_| fetched) {
            fetched_any = true;
            for feature in answer.entitlements.keys() {
                let served = cache.answer("c1", feature, Source::Fresh).unwrap();
                assert_eq!(served.version, Some(answer.version));
                if answer.ttl_ms > 0 {
                    assert!(matches!(cache.lookup("c1", feature, NOW), Lookup::Hit(_)));
                }
            }
        }
        let _ = cache.answer_or_fallback("c1", "missing", "fuzz", NOW);
    }
    assert!(fetched_any, "the seeds hold an answer for c1");
}
