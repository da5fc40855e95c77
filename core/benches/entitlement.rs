//! `entitlement()` on a cache hit — through `Client::entitlement` (the caller's thread, no
//! hop to the worker) and `EntitlementCache::lookup` directly — with 10,000 cached subjects.
//! No network: answers are primed, the endpoint is a closed port and the stream is off.
//!
//! "one hot subject" is the usual case (the entry is in the CPU cache); "10k subjects in
//! turn" strides over all of them, so every call misses the CPU cache several times and
//! measures memory latency more than code.
#![allow(missing_docs, clippy::unwrap_used)]

use std::{hint::black_box, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use meterline_core::{
    Client, Config,
    entitlement::Entitlements,
    entitlement_cache::{CacheSettings, EntitlementCache, Lookup},
};
use serde_json::json;

const SUBJECTS: usize = 10_000;

fn answer(subject: &str) -> Entitlements {
    serde_json::from_value(
        json!({"subject": subject, "version": 3, "ttl_ms": 3_600_000, "entitlements": {
        "api_calls": {"kind": "metered", "has_access": true, "limit": 1000, "usage": 120, "remaining": 880,
            "period": "month", "period_start": "2026-01-01T00:00:00Z", "period_end": "2099-01-01T00:00:00Z",
            "event_type": "api.call", "aggregation": "count"},
        "sso": {"kind": "boolean", "has_access": true},
        "tier": {"kind": "config", "has_access": true, "value": {"seats": 10}}}}),
    )
    .unwrap()
}

fn subject(i: usize) -> String {
    format!("customer-{i}")
}

fn entitlement(c: &mut Criterion) {
    let mut group = c.benchmark_group("entitlement hit");

    let mut cache = EntitlementCache::new(CacheSettings::default());
    for i in 0..SUBJECTS {
        cache.insert(answer(&subject(i)), None, 1_000, 0);
    }
    let subjects: Vec<String> = (0..SUBJECTS).map(subject).collect();
    group.bench_function("EntitlementCache::lookup, one hot subject, sso", |b| {
        b.iter(
            || match cache.lookup(black_box(&subjects[42]), black_box("sso"), 2_000) {
                Lookup::Hit(a) => a,
                other => panic!("{other:?}"),
            },
        )
    });
    group.bench_function("EntitlementCache::lookup, 10k subjects in turn, sso", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 7919) % SUBJECTS;
            match cache.lookup(black_box(&subjects[i]), black_box("sso"), 2_000) {
                Lookup::Hit(a) => a,
                other => panic!("{other:?}"),
            }
        })
    });
    group.bench_function("EntitlementCache::lookup, 10k subjects in turn, api_calls", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 7919) % SUBJECTS;
            match cache.lookup(black_box(&subjects[i]), black_box("api_calls"), 2_000) {
                Lookup::Hit(a) => a,
                other => panic!("{other:?}"),
            }
        })
    });

    let mut config = Config::new("ml_sk_bench_0123456789abcdef0123", "http://127.0.0.1:9");
    config.fetch_schemas = false;
    config.stream = false;
    let client = Client::new(config).unwrap();
    for s in &subjects {
        client.prime_entitlements(answer(s)).unwrap();
    }
    for feature in ["sso", "api_calls", "tier"] {
        group.bench_function(format!("Client::entitlement, one hot subject, {feature}"), |b| {
            b.iter(|| {
                client
                    .entitlement(black_box(&subjects[42]), black_box(feature))
                    .unwrap()
            })
        });
        group.bench_function(format!("Client::entitlement, 10k subjects in turn, {feature}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 7919) % SUBJECTS;
                client.entitlement(black_box(&subjects[i]), black_box(feature)).unwrap()
            })
        });
    }
    group.finish();
    let stats = client.stats();
    assert_eq!(stats.cache_misses, 0, "every call was a hit");
    let _ = client.shutdown(Duration::from_millis(10));
}

criterion_group!(benches, entitlement);
criterion_main!(benches);
