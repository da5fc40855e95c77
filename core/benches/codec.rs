//! Batch encoding + compression throughput for a 500-event batch.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meterline_core::{
    Event,
    codec::{Encoding, compress, encode_batch},
};
use serde_json::json;

fn batch() -> Vec<Vec<u8>> {
    (0..500)
        .map(|i| {
            let data = json!({"tokens": i * 7, "model": "m-large", "region": "eu-west-1", "latency_ms": 12.5, "cached": i % 3 == 0});
            let e = Event::new(
                format!("0193a1b2-c3d4-7e5f-8a9b-{i:012}"),
                "billing-api",
                "api.request",
                format!("customer-{}", i % 50),
                Some("2026-11-24T10:00:00.123Z".into()),
                data.as_object().unwrap().clone(),
            );
            e.to_json_bytes().unwrap()
        })
        .collect()
}

fn codec(c: &mut Criterion) {
    let events = batch();
    let body = encode_batch(events.iter().map(|e| &e[..]));
    let mut group = c.benchmark_group("batch_500");
    group.throughput(Throughput::Elements(500));
    group.bench_function("encode", |b| b.iter(|| encode_batch(events.iter().map(|e| &e[..]))));
    for enc in [Encoding::Gzip, Encoding::Zstd] {
        let ratio = body.len() as f64 / compress(enc, &body).unwrap().len() as f64;
        group.bench_function(format!("encode+{} (ratio {ratio:.1}x)", enc.as_str()), |b| {
            b.iter(|| compress(enc, &encode_batch(events.iter().map(|e| &e[..]))).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
