//! Instruction counts of the hot paths under callgrind (gungraun): `track()` with a schema,
//! the Node binding's `track_json()`, an entitlement cache hit (through the cache and through
//! `Client`), and the encoding of a 500-event batch.
//!
//! Instruction counts do not move with the load of a shared machine, so CI compares them
//! with the checked-in `bench/instructions.json` (`scripts/bench-instructions.sh`) and fails
//! on a regression over the margin stated there. Wall-clock figures stay in the criterion
//! benches beside this one.
//!
//! Each benchmark runs its call `CALLS` times (setup is not counted), so the figure per call
//! is the count divided by `CALLS` and the first call's one-off work is spread thin.
#![allow(missing_docs, clippy::unwrap_used)]

use std::{hint::black_box, time::Duration};

use gungraun::{library_benchmark, library_benchmark_group, main};
use meterline_core::{
    Client, Config, Event, OverflowPolicy,
    codec::{Encoding, compress, encode_batch},
    entitlement::Entitlements,
    entitlement_cache::{CacheSettings, EntitlementCache, Lookup},
};
use serde_json::{Map, Value, json, value::RawValue};

/// Calls per benchmark; `scripts/bench-instructions.sh` divides by it.
const CALLS: usize = 1_000;

fn client() -> Client {
    let mut config = Config::new("ml_sk_bench_0123456789abcdef0123", "http://127.0.0.1:9");
    config.fetch_schemas = false;
    config.stream = false;
    // Nothing is sent while the benchmark runs: the sender is never due.
    config.flush_interval = Duration::from_secs(3600);
    config.flush_at = 10_000;
    config.max_queue_size = 100_000;
    config.overflow = OverflowPolicy::DropOldest;
    config.schemas = vec![(
        "api.request".into(),
        json!({"type":"object","required":["tokens","model"],"properties":{
            "tokens":{"type":"integer","minimum":0},"model":{"type":"string"},
            "region":{"type":"string"},"latency_ms":{"type":"number"},"cached":{"type":"boolean"}}}),
    )];
    Client::new(config).unwrap()
}

fn data(i: usize) -> Value {
    json!({"tokens": i, "model": "m-large", "region": "eu-west-1", "latency_ms": 12.5, "cached": false})
}

fn track_setup() -> (Client, Vec<Value>) {
    (client(), (0..CALLS).map(data).collect())
}

#[library_benchmark]
#[bench::five_fields_schema(setup = track_setup)]
fn track((client, values): (Client, Vec<Value>)) -> Client {
    for value in values {
        black_box(client.track("api.request", "customer-42", value, None, None).unwrap());
    }
    client
}

fn track_json_setup() -> (Client, Box<RawValue>) {
    let text = r#"{"tokens":7,"model":"m-large","region":"eu-west-1","latency_ms":12.5,"cached":false}"#;
    (client(), serde_json::from_str(text).unwrap())
}

#[library_benchmark]
#[bench::five_fields_schema(setup = track_json_setup)]
fn track_json((client, data): (Client, Box<RawValue>)) -> Client {
    for _ in 0..CALLS {
        black_box(
            client
                .track_json("api.request", "customer-42", &data, None, None)
                .unwrap(),
        );
    }
    client
}

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

fn cache_setup() -> EntitlementCache {
    let mut cache = EntitlementCache::new(CacheSettings::default());
    for i in 0..100 {
        cache.insert(answer(&format!("customer-{i}")), None, 1_000, 0);
    }
    cache
}

#[library_benchmark]
#[bench::one_hot_subject_sso(setup = cache_setup)]
fn cache_lookup(mut cache: EntitlementCache) -> EntitlementCache {
    for _ in 0..CALLS {
        match cache.lookup(black_box("customer-42"), black_box("sso"), 2_000) {
            Lookup::Hit(a) => drop(black_box(a)),
            other => panic!("{other:?}"),
        }
    }
    cache
}

fn client_cache_setup() -> Client {
    let client = client();
    for i in 0..100 {
        client.prime_entitlements(answer(&format!("customer-{i}"))).unwrap();
    }
    client
}

#[library_benchmark]
#[bench::one_hot_subject_api_calls(setup = client_cache_setup)]
fn client_entitlement(client: Client) -> Client {
    for _ in 0..CALLS {
        black_box(
            client
                .entitlement(black_box("customer-42"), black_box("api_calls"))
                .unwrap(),
        );
    }
    client
}

fn batch_setup() -> Vec<Vec<u8>> {
    (0..500)
        .map(|i| {
            let Value::Object(data) = data(i) else { unreachable!() };
            let data: Map<String, Value> = data;
            Event::new(
                format!("0193a1b2-c3d4-7e5f-8a9b-{i:012}"),
                "billing-api",
                "api.request",
                format!("customer-{}", i % 50),
                Some("2026-11-24T10:00:00.123Z".into()),
                data,
            )
            .to_json_bytes()
            .unwrap()
        })
        .collect()
}

#[library_benchmark]
#[bench::batch_500(setup = batch_setup)]
fn encode(events: Vec<Vec<u8>>) -> Vec<u8> {
    black_box(encode_batch(events.iter().map(|e| &e[..])))
}

#[library_benchmark]
#[bench::batch_500(setup = batch_setup)]
fn encode_gzip(events: Vec<Vec<u8>>) -> Vec<u8> {
    black_box(compress(Encoding::Gzip, &encode_batch(events.iter().map(|e| &e[..]))).unwrap())
}

library_benchmark_group!(name = client_track; benchmarks = track, track_json);
library_benchmark_group!(name = entitlement_hit; benchmarks = cache_lookup, client_entitlement);
library_benchmark_group!(name = batch; benchmarks = encode, encode_gzip);

main!(library_benchmark_groups = client_track, entitlement_hit, batch);
