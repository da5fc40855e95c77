//! Event-type JSON Schemas (draft 2020-12) and the validation of an event's `data`.
//!
//! The server is authoritative; the SDK holds a copy (fetched from `GET /v1/schema` or given
//! locally) so an invalid event fails at `track()` instead of at the server. Without the
//! `schema` cargo feature (the small browser build) only the envelope is checked and every
//! registered schema is accepted as-is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, ValidationError};

/// The body of `GET /v1/schema`: every registered event type with its schema.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchemaDocument {
    /// Changes whenever any schema (or `strict_types`) changes.
    pub etag: String,
    /// Whether the project rejects event types without a schema (`unknown_type`).
    #[serde(default)]
    pub strict_types: bool,
    /// Event type → JSON Schema of its `data`.
    #[serde(default)]
    pub types: BTreeMap<String, Value>,
}

/// Compiled schemas by event type.
#[derive(Default)]
pub struct SchemaRegistry {
    strict_types: bool,
    types: BTreeMap<String, CompiledSchema>,
}

struct CompiledSchema {
    #[cfg(feature = "schema")]
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("strict_types", &self.strict_types)
            .field("types", &self.types.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SchemaRegistry {
    /// An empty registry: every type is accepted unless `strict_types`.
    pub fn new(strict_types: bool) -> Self {
        SchemaRegistry {
            strict_types,
            types: BTreeMap::new(),
        }
    }

    /// Compiles every schema of a [`SchemaDocument`]; `strict_types` is on if either the
    /// document or `force_strict` says so.
    pub fn from_document(doc: &SchemaDocument, force_strict: bool) -> Result<Self, Error> {
        let mut registry = SchemaRegistry::new(doc.strict_types || force_strict);
        for (event_type, schema) in &doc.types {
            registry.insert(event_type, schema)?;
        }
        Ok(registry)
    }

    /// Compiles and registers the schema of one event type, replacing any earlier one.
    ///
    /// Errors with `invalid_schema` when the schema is not a valid draft 2020-12 schema.
    pub fn insert(&mut self, event_type: &str, schema: &Value) -> Result<(), Error> {
        let compiled = compile(event_type, schema)?;
        self.types.insert(event_type.to_owned(), compiled);
        Ok(())
    }

    /// Whether [`SchemaRegistry::validate`] checks events of this type at all (it has a
    /// schema, or types without one are refused). When false, `data` needs no parsing.
    pub fn checks(&self, event_type: &str) -> bool {
        self.strict_types || self.types.contains_key(event_type)
    }

    /// Whether types without a schema are rejected.
    pub fn strict_types(&self) -> bool {
        self.strict_types
    }

    /// Number of registered types.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// True when no type is registered.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Validates an event's `data` against its type's schema. Errors carry the JSON pointer
    /// (prefixed with `/data`) and the keyword that failed.
    pub fn validate(&self, event_type: &str, data: &Value) -> Result<(), ValidationError> {
        match self.types.get(event_type) {
            Some(compiled) => compiled.validate(data),
            None if self.strict_types => Err(ValidationError::unknown_type(event_type)),
            None => Ok(()),
        }
    }

    /// Like [`SchemaRegistry::validate`] for data held as a map (wraps it without copying).
    pub fn validate_map(
        &self,
        event_type: &str,
        data: Map<String, Value>,
    ) -> (Map<String, Value>, Result<(), ValidationError>) {
        if !self.checks(event_type) {
            return (data, Ok(()));
        }
        let value = Value::Object(data);
        let result = self.validate(event_type, &value);
        match value {
            Value::Object(map) => (map, result),
            _ => unreachable!("wrapped an object above"),
        }
    }
}

#[cfg(feature = "schema")]
fn compile(event_type: &str, schema: &Value) -> Result<CompiledSchema, Error> {
    let validator = jsonschema::draft202012::new(schema).map_err(|e| Error::Codec {
        code: "invalid_schema",
        message: format!("schema for `{event_type}` is not a valid JSON Schema (draft 2020-12): {e}"),
    })?;
    Ok(CompiledSchema { validator })
}

#[cfg(not(feature = "schema"))]
fn compile(event_type: &str, schema: &Value) -> Result<CompiledSchema, Error> {
    if schema.is_object() || schema.is_boolean() {
        Ok(CompiledSchema {})
    } else {
        Err(Error::Codec {
            code: "invalid_schema",
            message: format!("schema for `{event_type}` must be a JSON object or boolean"),
        })
    }
}

impl CompiledSchema {
    #[cfg(feature = "schema")]
    fn validate(&self, data: &Value) -> Result<(), ValidationError> {
        // `is_valid` keeps no error location: the cheap check for the usual valid event.
        if self.validator.is_valid(data) {
            return Ok(());
        }
        match self.validator.validate(data) {
            Ok(()) => Ok(()),
            Err(e) => {
                let pointer = e.instance_path().to_string();
                let keyword = e
                    .schema_path()
                    .to_string()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                Err(ValidationError::schema_violation(
                    format!("/data{pointer}"),
                    format!("{e} (rule `{keyword}`)"),
                ))
            }
        }
    }

    #[cfg(not(feature = "schema"))]
    fn validate(&self, _data: &Value) -> Result<(), ValidationError> {
        Ok(())
    }
}

#[cfg(all(test, feature = "schema"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn registry() -> SchemaRegistry {
        let mut r = SchemaRegistry::new(false);
        r.insert(
            "api.call",
            &json!({"type":"object","required":["tokens"],
                    "properties":{"tokens":{"type":"integer","minimum":0},"model":{"type":"string"}}}),
        )
        .unwrap();
        r
    }

    #[test]
    fn names_pointer_and_rule() {
        let err = registry().validate("api.call", &json!({"tokens": "many"})).unwrap_err();
        assert_eq!(err.code, "schema_violation");
        assert_eq!(err.path, "/data/tokens");
        assert!(err.message.contains("rule `type`"), "{}", err.message);
        let err = registry().validate("api.call", &json!({})).unwrap_err();
        assert_eq!(err.path, "/data");
        assert!(err.message.contains("required"), "{}", err.message);
    }

    #[test]
    fn unknown_types_depend_on_strictness() {
        assert!(registry().validate("other", &json!({})).is_ok());
        let strict = SchemaRegistry::from_document(&SchemaDocument::default(), true).unwrap();
        assert_eq!(strict.validate("other", &json!({})).unwrap_err().code, "unknown_type");
    }

    #[test]
    fn rejects_invalid_schemas() {
        let err = SchemaRegistry::new(false)
            .insert("t", &json!({"type": 12}))
            .unwrap_err();
        assert_eq!(err.code(), "invalid_schema");
    }

    #[test]
    fn validate_map_returns_the_data() {
        let mut m = Map::new();
        m.insert("tokens".into(), json!(5));
        let (back, res) = registry().validate_map("api.call", m.clone());
        assert!(res.is_ok());
        assert_eq!(back, m);
    }
}
