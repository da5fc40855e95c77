//! `POST /v1/events` body parsing and validation: arbitrary bytes as a decompressed body, in
//! each accepted shape, against a project with one schema (strict and lax). Must never panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use meterline_core::schema::{SchemaDocument, SchemaRegistry};
use meterline_server::{
    config::IngestConfig,
    ingest::{BodyShape, parse_batch},
    schemas::ProjectSchemas,
};

static SCHEMAS: LazyLock<[ProjectSchemas; 2]> = LazyLock::new(|| [schemas(false), schemas(true)]);

fn schemas(strict: bool) -> ProjectSchemas {
    let mut registry = SchemaRegistry::new(strict);
    let schema = serde_json::json!({"type":"object","required":["tokens"],"properties":{
        "tokens":{"type":"integer","minimum":0},"model":{"type":"string","maxLength":64}}});
    registry.insert("api.call", &schema).expect("the fuzz schema compiles");
    ProjectSchemas {
        registry,
        document: SchemaDocument::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let shape = match selector % 3 {
        0 => BodyShape::Batch,
        1 => BodyShape::Single,
        _ => BodyShape::Either,
    };
    let limits = IngestConfig::default();
    let schemas = &SCHEMAS[usize::from(selector & 4 != 0)];
    if let Ok(batch) = parse_batch(body, shape, schemas, &limits, 0) {
        assert_eq!(batch.rows.len() + batch.rejected.len(), batch.total);
    }
});
