//! `track()` cost per event, including validation of a typical 5-field event against its
//! JSON Schema, serialization and queueing. No network: nothing listens at the endpoint, so
//! the queue stays full (100,000 events, `drop_oldest`) and each call also frees the oldest
//! event — the steady state of a client whose sender keeps up, with bounded memory (an
//! unbounded queue would add the cost of growing it to every call).
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use meterline_core::{Client, Config, OverflowPolicy, SpoolFsync};
use serde_json::{json, value::RawValue};

fn client() -> Client {
    Client::new(config()).unwrap()
}

fn config() -> Config {
    let mut config = Config::new("ml_sk_bench_0123456789abcdef0123", "http://127.0.0.1:9");
    config.fetch_schemas = false;
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
    config
}

fn track(c: &mut Criterion) {
    let client = client();
    let mut group = c.benchmark_group("track");
    // The caller's side of every case below: subtract it to get what track() itself costs.
    group.bench_function("baseline: building the 5-field data value", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            json!({"tokens": i, "model": "m-large", "region": "eu-west-1", "latency_ms": 12.5, "cached": false})
        })
    });
    group.bench_function("5-field event, schema-validated", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let data =
                json!({"tokens": i, "model": "m-large", "region": "eu-west-1", "latency_ms": 12.5, "cached": false});
            client.track("api.request", "customer-42", data, None, None).unwrap()
        })
    });
    group.bench_function("5-field event, caller-supplied id and time", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let data =
                json!({"tokens": i, "model": "m-large", "region": "eu-west-1", "latency_ms": 12.5, "cached": false});
            client
                .track(
                    "api.request",
                    "customer-42",
                    data,
                    Some(format!("evt-{i}")),
                    Some("2026-11-24T10:00:00.123Z".into()),
                )
                .unwrap()
        })
    });
    // The Node binding's path: `data` arrives as JSON text (from `JSON.stringify`), made once
    // here as the binding's caller would have.
    let text = r#"{"tokens":7,"model":"m-large","region":"eu-west-1","latency_ms":12.5,"cached":false}"#;
    let data: &RawValue = serde_json::from_str(text).unwrap();
    group.bench_function("5-field event as JSON text (track_json), schema-validated", |b| {
        b.iter(|| {
            client
                .track_json("api.request", "customer-42", data, None, None)
                .unwrap()
        })
    });
    group.bench_function("5-field event as JSON text (track_json), type without a schema", |b| {
        b.iter(|| client.track_json("api.other", "customer-42", data, None, None).unwrap())
    });
    group.finish();
    let _ = client.shutdown(Duration::from_millis(1));
}

/// The same event with the disk spool on, under each fsync policy (the spool directory is a
/// temporary directory on the machine's disk; nothing is sent, so the spool only grows).
fn track_spooled(c: &mut Criterion) {
    let mut group = c.benchmark_group("track_spool");
    group.sample_size(20).measurement_time(Duration::from_secs(3));
    for policy in [SpoolFsync::Never, SpoolFsync::Interval, SpoolFsync::Always] {
        if policy == SpoolFsync::Always {
            group.sample_size(10);
        }
        let dir = tempfile::tempdir().unwrap();
        let mut config = config();
        config.spool_dir = Some(dir.path().to_owned());
        config.spool_fsync = policy;
        let client = Client::new(config).unwrap();
        group.bench_function(format!("5-field event, spool_fsync={}", policy.as_str()), |b| {
            let mut i = 0u64;
            b.iter(|| {
                i += 1;
                let data = json!({"tokens": i, "model": "m-large", "region": "eu-west-1", "latency_ms": 12.5, "cached": false});
                client.track("api.request", "customer-42", data, None, None).unwrap()
            })
        });
        let _ = client.shutdown(Duration::from_millis(1));
    }
    group.finish();
}

criterion_group!(benches, track, track_spooled);
criterion_main!(benches);
