//! Replays the fuzz seeds and every kept fuzz regression input (`fuzz/seeds/<target>`,
//! `fuzz/regressions/<target>`) of the server's targets through the same calls as the fuzz
//! targets, so a fixed crash stays fixed in `make test` without the fuzz toolchain.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../../../fuzz/inputs.rs"]
mod kept;

use meterline_core::schema::{SchemaDocument, SchemaRegistry};
use meterline_server::{
    config::{Config, IngestConfig},
    ingest::{BodyShape, parse_batch},
    schemas::ProjectSchemas,
};
use serde_json::json;

#[test]
fn event_batch_inputs_parse_or_fail_cleanly() {
    let schemas = |strict| {
        let mut registry = SchemaRegistry::new(strict);
        let schema = json!({"type":"object","required":["tokens"],"properties":{
            "tokens":{"type":"integer","minimum":0},"model":{"type":"string","maxLength":64}}});
        registry.insert("api.call", &schema).unwrap();
        ProjectSchemas {
            registry,
            document: SchemaDocument::default(),
        }
    };
    let schemas = [schemas(false), schemas(true)];
    let limits = IngestConfig::default();
    let mut stored = 0;
    for input in kept::inputs("event_batch") {
        let Some((&selector, body)) = input.split_first() else {
            continue;
        };
        let shape = [BodyShape::Batch, BodyShape::Single, BodyShape::Either][usize::from(selector % 3)];
        if let Ok(batch) = parse_batch(body, shape, &schemas[usize::from(selector & 4 != 0)], &limits, 0) {
            assert_eq!(batch.rows.len() + batch.rejected.len(), batch.total);
            stored += batch.rows.len();
        }
    }
    assert!(stored >= 2, "the seeds hold valid events");
}

#[test]
fn server_config_inputs_parse_or_fail_with_a_message() {
    for input in kept::inputs("server_config") {
        if let Ok(text) = std::str::from_utf8(&input)
            && let Err(e) = text.parse::<Config>()
        {
            assert!(!e.to_string().is_empty());
        }
    }
}
