//! Replays the fuzz seeds and every kept fuzz regression input (`fuzz/seeds/<target>`,
//! `fuzz/regressions/<target>`) of the server's targets through the same calls as the fuzz
//! targets, so a fixed crash stays fixed in `make test` without the fuzz toolchain.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;

use meterline_core::schema::{SchemaDocument, SchemaRegistry};
use meterline_server::{
    config::{Config, IngestConfig},
    ingest::{BodyShape, parse_batch},
    schemas::ProjectSchemas,
};
use serde_json::json;

/// Every input file of a target (dotfiles skipped); at least the seeds exist.
fn inputs(target: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
                files.push(std::fs::read(&path).unwrap());
            }
        }
    }
    assert!(!files.is_empty(), "no fuzz inputs found for {target}");
    files
}

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
    for input in inputs("event_batch") {
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
    for input in inputs("server_config") {
        if let Ok(text) = std::str::from_utf8(&input)
            && let Err(e) = text.parse::<Config>()
        {
            assert!(!e.to_string().is_empty());
        }
    }
}
