//! `POST /v1/events` and OpenMeter's `POST /api/v1/events` (DESIGN §3).
//!
//! A request goes: key and scope → `Content-Type` and `Content-Encoding` → body read within
//! `ingest.max_body_bytes` → on a blocking thread, decompression within
//! `ingest.max_decompressed_bytes`, JSON parsing and per-event validation (envelope by
//! `Event::from_value`, data by the project's `SchemaRegistry`) → the valid events go to the
//! [`Writer`](crate::store::Writer) → the answer after the commit.
//!
//! A publishable key with a customer token sends only events whose `subject` is the
//! token's and whose `type` the project lists in `client_event_types` ([`ClientPermit`]);
//! every other event of its batch is rejected on its own with `forbidden` (path `/subject`
//! or `/type`), before its data is checked against a schema. Browsers that cannot set
//! headers send the same through [`beacon`]. OpenMeter's route takes no publishable key.

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use meterline_core::key::KeyKind;
use meterline_core::{
    codec::{Encoding, decompress_limited},
    error::ValidationError,
    event::{Event, MAX_ID_LEN},
    wire::{IngestResponse, Rejection},
};
use serde_json::{Map, Value, value::RawValue};
use wire::{DataCheck, WireEvent};

use crate::{
    app::AppState,
    auth::{Caller, Scope},
    config::IngestConfig,
    error::ApiError,
    health,
    schemas::ProjectSchemas,
    store::{EventRow, WriteBatch, WriteError},
};

/// Which JSON shapes a `Content-Type` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyShape {
    /// `application/cloudevents-batch+json`: an array.
    Batch,
    /// `application/cloudevents+json`: one event.
    Single,
    /// `application/json`: either.
    Either,
}

pub mod beacon;
mod permit;
mod wire;

pub use permit::ClientPermit;

/// `POST /v1/events`: `202` with the accepted, duplicate and rejected counts.
pub async fn post_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let outcome = ingest(&state, &caller, &headers, body).await?;
    Ok((StatusCode::ACCEPTED, Json(outcome)).into_response())
}

/// `POST /api/v1/events` (OpenMeter's contract): `204` when every event was stored (new or
/// duplicate); `400 invalid_event` with the `rejected` list when any was refused — the valid
/// events of the request are stored all the same. Secret keys only: a publishable key is
/// refused `403 forbidden` (OpenMeter's clients are backends; apps send to `/v1/events`).
pub async fn post_openmeter_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    if caller.kind == KeyKind::Publishable {
        return Err(ApiError::forbidden(
            "POST /api/v1/events (OpenMeter's contract) takes a secret key; a publishable key with a \
             customer token sends to POST /v1/events or POST /v1/beacon",
        ));
    }
    let outcome = ingest(&state, &caller, &headers, body).await?;
    if outcome.rejected.is_empty() {
        return Ok(StatusCode::NO_CONTENT);
    }
    let total = outcome.accepted + outcome.duplicates + outcome.rejected.len() as u64;
    let mut err = ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_event",
        format!(
            "{} of {total} events were rejected (see `rejected`); the other {} were stored",
            outcome.rejected.len(),
            outcome.accepted + outcome.duplicates
        ),
    );
    err.rejected = outcome.rejected;
    Err(err)
}

async fn ingest(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
) -> Result<IngestResponse, ApiError> {
    caller.require(Scope::Ingest)?;
    let shape = body_shape(headers)?;
    let encoding = content_encoding(headers)?;
    let limits = state.config.ingest.clone();
    let compressed = crate::body::read_limited(headers, body, limits.max_body_bytes).await?;
    store_events(
        state,
        caller,
        move |limits| {
            decompress_limited(encoding, &compressed, limits.max_decompressed_bytes)
                .map_err(|e| ApiError::from_core(&e))
        },
        shape,
    )
    .await
}

/// Validates and stores the events `body` gives (run on a blocking thread), as `caller`
/// may send them; the answer after the commit.
async fn store_events(
    state: &AppState,
    caller: &Caller,
    body: impl FnOnce(&IngestConfig) -> Result<Vec<u8>, ApiError> + Send + 'static,
    shape: BodyShape,
) -> Result<IngestResponse, ApiError> {
    let limits = state.config.ingest.clone();
    let schemas = state.schemas.get(&state.store, caller.project_id).await?;
    let permit = match &caller.subject {
        Some(subject) => Some(ClientPermit {
            subject: subject.clone(),
            access: state.schemas.client(&state.store, caller.project_id).await?,
        }),
        None => None,
    };
    let received_at = chrono::Utc::now();
    let parsed = tokio::task::spawn_blocking(move || {
        let json = body(&limits)?;
        let now_us = received_at.timestamp_micros();
        parse_batch_for(&json, shape, &schemas, &limits, now_us, permit.as_ref())
    })
    .await
    .map_err(|e| ApiError::internal("the ingest worker failed", e))??;

    let total = parsed.total;
    let outcome = state
        .store
        .write(WriteBatch {
            project_id: caller.project_id,
            received_at: received_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            rows: parsed.rows,
        })
        .await
        .map_err(|e| match e {
            WriteError::Overloaded(_) => ApiError::overloaded(format!("{e}; retry shortly")),
            WriteError::Closed => ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the server is shutting down",
                )
            },
            WriteError::Contended(_) => {
                tracing::warn!(error = %e, "an event transaction lost every retry to concurrent writers");
                ApiError {
                    retry_after: Some(1),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "storing the events kept losing to concurrent writers; nothing of this request was stored, retry shortly",
                    )
                }
            }
            WriteError::Database(cause) => ApiError {
                retry_after: Some(1),
                ..ApiError::internal("storing the events failed; nothing of this request was stored", cause)
            },
        })?;
    health::record_ingest(total, outcome.accepted, outcome.duplicates, parsed.rejected.len());
    Ok(IngestResponse {
        accepted: outcome.accepted,
        duplicates: outcome.duplicates,
        rejected: parsed.rejected,
    })
}

fn body_shape(headers: &HeaderMap) -> Result<BodyShape, ApiError> {
    let unsupported = |what: &str| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "{what}; send application/cloudevents-batch+json (an array), application/cloudevents+json \
                 (one event) or application/json"
            ),
        )
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .ok_or_else(|| unsupported("the Content-Type header is missing"))?
        .to_str()
        .map_err(|_| unsupported("the Content-Type header is not valid text"))?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    for param in parts {
        let (name, val) = param.split_once('=').unwrap_or((param, ""));
        if name.trim().eq_ignore_ascii_case("charset") && !val.trim().trim_matches('"').eq_ignore_ascii_case("utf-8") {
            return Err(unsupported("only charset=utf-8 is supported"));
        }
    }
    match essence.as_str() {
        "application/cloudevents-batch+json" => Ok(BodyShape::Batch),
        "application/cloudevents+json" => Ok(BodyShape::Single),
        "application/json" => Ok(BodyShape::Either),
        _ => Err(unsupported(&format!(
            "Content-Type {:?} is not supported",
            essence.chars().take(100).collect::<String>()
        ))),
    }
}

fn content_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    match headers.get(header::CONTENT_ENCODING) {
        None => Ok(Encoding::Identity),
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_encoding",
                    "the Content-Encoding header is not valid text",
                )
            })?;
            text.parse().map_err(|e| ApiError::from_core(&e))
        }
    }
}

/// The outcome of parsing and validating one request body.
#[derive(Debug)]
pub struct ParsedBatch {
    /// Events in the body.
    pub total: usize,
    /// The valid ones, ready to store.
    pub rows: Vec<EventRow>,
    /// The invalid ones, with the reason.
    pub rejected: Vec<Rejection>,
}

/// Parses a decompressed body and validates each event; invalid events become rejections,
/// a body that is not acceptable JSON as a whole an error. Public for the fuzz targets.
pub fn parse_batch(
    json: &[u8],
    shape: BodyShape,
    schemas: &ProjectSchemas,
    limits: &IngestConfig,
    now_us: i64,
) -> Result<ParsedBatch, ApiError> {
    parse_batch_for(json, shape, schemas, limits, now_us, None)
}

/// [`parse_batch`] for a caller that may send only what `permit` allows (a publishable
/// key); events it may not send are rejected with `forbidden`.
pub fn parse_batch_for(
    json: &[u8],
    shape: BodyShape,
    schemas: &ProjectSchemas,
    limits: &IngestConfig,
    now_us: i64,
    permit: Option<&ClientPermit>,
) -> Result<ParsedBatch, ApiError> {
    let text =
        std::str::from_utf8(json).map_err(|e| ApiError::invalid_json(format!("the body is not valid UTF-8: {e}")))?;
    let first = text.trim_start().as_bytes().first().copied();
    let elements: Vec<&RawValue> = match first {
        Some(b'[') => {
            if shape == BodyShape::Single {
                return Err(invalid_body(
                    "application/cloudevents+json carries one event; send an array as application/cloudevents-batch+json",
                ));
            }
            serde_json::from_str(text)
                .map_err(|e| ApiError::invalid_json(format!("the body is not valid JSON: {e}")))?
        }
        Some(b'{') => {
            if shape == BodyShape::Batch {
                return Err(invalid_body(
                    "application/cloudevents-batch+json carries a JSON array of events",
                ));
            }
            vec![
                serde_json::from_str(text)
                    .map_err(|e| ApiError::invalid_json(format!("the body is not valid JSON: {e}")))?,
            ]
        }
        None => return Err(ApiError::invalid_json("the body is empty")),
        Some(_) => {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| ApiError::invalid_json(format!("the body is not valid JSON: {e}")))?;
            return Err(invalid_body(&format!(
                "the body must be a JSON array of events or one event object, got {}",
                meterline_core::event::kind_of(&value)
            )));
        }
    };
    if elements.len() > limits.max_events_per_batch {
        return Err(ApiError::too_large(
            "too_many_events",
            format!(
                "the batch holds {} events; at most {} are allowed per request",
                elements.len(),
                limits.max_events_per_batch
            ),
        ));
    }
    let mut rows = Vec::with_capacity(elements.len());
    let mut rejected = Vec::new();
    for (index, raw) in elements.iter().enumerate() {
        let not_json =
            |e: serde_json::Error| ApiError::invalid_json(format!("event {index} is not acceptable JSON: {e}"));
        let text = raw.get();
        // Objects take the one-parse path; anything else is refused by `Event::from_value`
        // with the message it gives for that kind.
        let (id, checked) = if text.starts_with('{') {
            let wire: WireEvent = serde_json::from_str(text).map_err(not_json)?;
            let data = match wire.data {
                Some(data) => Some((data.get(), DataCheck::run(data.get()).map_err(not_json)?)),
                None => None,
            };
            let id = readable_id(wire.envelope.get("id"));
            let checks = Checks {
                schemas,
                limits,
                permit,
                now_us,
            };
            (id, validate(wire.envelope, data, text.len(), &checks))
        } else {
            let value: Value = serde_json::from_str(text).map_err(not_json)?;
            (None, not_an_object(&value, text.len(), limits))
        };
        match checked {
            Ok(row) => rows.push(row),
            Err(err) => rejected.push(Rejection::new(index, id, err)),
        }
    }
    Ok(ParsedBatch {
        total: elements.len(),
        rows,
        rejected,
    })
}

fn invalid_body(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
}

/// The event's id for a rejection report, when it is a string of acceptable length.
fn readable_id(id: Option<&Value>) -> Option<String> {
    id.and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.chars().count() <= MAX_ID_LEN)
        .map(str::to_owned)
}

/// The rejection of an array element that is not an object.
fn not_an_object(value: &Value, raw_len: usize, limits: &IngestConfig) -> Result<EventRow, ValidationError> {
    if raw_len > limits.max_event_bytes {
        return Err(ValidationError::too_large(raw_len, limits.max_event_bytes));
    }
    Err(ValidationError::invalid_event(
        "",
        format!(
            "an event must be a JSON object, got {}",
            meterline_core::event::kind_of(value)
        ),
    ))
}

/// What one event is checked against.
struct Checks<'a> {
    schemas: &'a ProjectSchemas,
    limits: &'a IngestConfig,
    permit: Option<&'a ClientPermit>,
    now_us: i64,
}

/// Checks one event (size, envelope, permit, schema) and turns it into a row. `data` is
/// the text of its `data` member as sent and what [`DataCheck`] found in it.
fn validate(
    mut envelope: Map<String, Value>,
    data: Option<(&str, DataCheck)>,
    raw_len: usize,
    checks: &Checks<'_>,
) -> Result<EventRow, ValidationError> {
    let Checks {
        schemas,
        limits,
        permit,
        now_us,
    } = *checks;
    if raw_len > limits.max_event_bytes {
        return Err(ValidationError::too_large(raw_len, limits.max_event_bytes));
    }
    let parsed = |text: &str| {
        serde_json::from_str::<Value>(text)
            .map_err(|e| ValidationError::invalid_event("/data", format!("cannot parse: {e}")))
    };
    // `from_value` checks `data`'s kind in its place among the envelope's checks: give it
    // an empty object for an object (parsed below only when needed), the value otherwise.
    if let Some((text, _)) = data {
        let stand_in = if text.starts_with('{') {
            Value::Object(Map::new())
        } else {
            parsed(text)?
        };
        envelope.insert("data".to_owned(), stand_in);
    }
    let mut event = Event::from_value(Value::Object(envelope))?;
    if let Some(permit) = permit {
        permit.check(&event)?;
    }
    // Some only when `data` is an object (`null` reads as absent).
    let data = event.data.take().and(data);
    let stored = match data {
        // Repeated member names: store what serde keeps (the last), as validated.
        Some((text, check)) if check.repeated_names => {
            let value = parsed(text)?;
            schemas.registry.validate(&event.event_type, &value)?;
            Some(
                serde_json::to_string(&value)
                    .map_err(|e| ValidationError::invalid_event("/data", format!("cannot serialize: {e}")))?,
            )
        }
        Some((text, _)) => {
            if schemas.registry.checks(&event.event_type) {
                schemas.registry.validate(&event.event_type, &parsed(text)?)?;
            }
            Some(text.to_owned())
        }
        None => {
            if schemas.registry.checks(&event.event_type) {
                schemas
                    .registry
                    .validate(&event.event_type, &Value::Object(Map::new()))?;
            }
            None
        }
    };
    let time_us = match &event.time {
        // `from_value` checked the format, so this only fails for out-of-range years.
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| ValidationError::invalid_event("/time", format!("`time` is not a usable timestamp: {e}")))?
            .timestamp_micros(),
        None => now_us,
    };
    Ok(EventRow {
        source: event.source,
        id: event.id,
        event_type: event.event_type,
        subject: event.subject,
        time: event.time,
        time_us,
        datacontenttype: event.datacontenttype,
        data: stored,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use meterline_core::schema::SchemaDocument;
    use serde_json::json;

    use super::*;

    fn schemas(strict: bool) -> ProjectSchemas {
        let mut registry = SchemaRegistry::new(strict);
        registry
            .insert(
                "api.call",
                &json!({"type":"object","properties":{"tokens":{"type":"integer"}}}),
            )
            .unwrap();
        ProjectSchemas {
            registry,
            document: SchemaDocument::default(),
        }
    }

    use meterline_core::schema::SchemaRegistry;

    fn event(id: &str) -> Value {
        json!({"specversion":"1.0","id":id,"source":"s","type":"api.call","subject":"c","data":{"tokens":1}})
    }

    #[test]
    fn shapes_follow_content_type() {
        let limits = IngestConfig::default();
        let one = serde_json::to_vec(&event("a")).unwrap();
        let many = serde_json::to_vec(&json!([event("a"), event("b")])).unwrap();
        assert_eq!(
            parse_batch(&one, BodyShape::Single, &schemas(false), &limits, 0)
                .unwrap()
                .rows
                .len(),
            1
        );
        assert_eq!(
            parse_batch(&many, BodyShape::Either, &schemas(false), &limits, 0)
                .unwrap()
                .rows
                .len(),
            2
        );
        assert_eq!(
            parse_batch(&many, BodyShape::Single, &schemas(false), &limits, 0)
                .unwrap_err()
                .code,
            "invalid_body"
        );
        assert_eq!(
            parse_batch(&one, BodyShape::Batch, &schemas(false), &limits, 0)
                .unwrap_err()
                .code,
            "invalid_body"
        );
        assert_eq!(
            parse_batch(b"42", BodyShape::Either, &schemas(false), &limits, 0)
                .unwrap_err()
                .code,
            "invalid_body"
        );
        assert_eq!(
            parse_batch(b"[{", BodyShape::Either, &schemas(false), &limits, 0)
                .unwrap_err()
                .code,
            "invalid_json"
        );
    }

    #[test]
    fn rejections_carry_index_id_and_path() {
        let mut bad = event("b");
        bad["data"]["tokens"] = json!("many");
        let body = serde_json::to_vec(&json!([event("a"), bad])).unwrap();
        let parsed = parse_batch(&body, BodyShape::Batch, &schemas(false), &IngestConfig::default(), 0).unwrap();
        assert_eq!(parsed.rows.len(), 1);
        let r = &parsed.rejected[0];
        assert_eq!(
            (r.index, r.id.as_deref(), r.code.as_str(), r.path.as_str()),
            (1, Some("b"), "schema_violation", "/data/tokens")
        );
    }

    /// Whatever way `data` is stored (as sent, or rewritten for repeated names), it reads
    /// back as the value a `serde_json::Value` parse of the event gives, and as one object.
    #[test]
    fn stored_data_reads_as_the_value_parse_gives() {
        let datas = [
            r#"{}"#,
            r#"{ "tokens" : 1 , "model":"m" }"#,
            r#"{"tokens":1,"s":"\u00e9\n\"q\"","f":1.50e2,"neg":-0,"big":123456789012345678901234567890}"#,
            r#"{"tokens":1,"tokens":2}"#,
            r#"{"tokens":3,"nested":{"a":[{"b":1,"b":2}],"a":null}}"#,
            r#"{"tokens":4,"\u0074okens":5}"#,
            r#"{"tokens":5,"arr":[1,"x",true,null,{"k":{}}]}"#,
        ];
        let events: Vec<String> = datas
            .iter()
            .enumerate()
            .map(|(i, d)| {
                format!(
                    r#"{{"specversion":"1.0","id":"e{i}","source":"s","type":"api.call","subject":"c","data":{d}}}"#
                )
            })
            .collect();
        let body = format!("[{}]", events.join(","));
        for strict in [false, true] {
            let parsed = parse_batch(
                body.as_bytes(),
                BodyShape::Batch,
                &schemas(strict),
                &IngestConfig::default(),
                0,
            )
            .unwrap();
            assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
            for (row, event) in parsed.rows.iter().zip(&events) {
                let expected = serde_json::from_str::<Value>(event).unwrap()["data"].clone();
                let stored: Value = serde_json::from_str(row.data.as_deref().unwrap()).unwrap();
                assert!(stored.is_object());
                assert_eq!(stored, expected, "{event}");
            }
        }
    }

    #[test]
    fn rows_keep_time_and_default_to_receive_time() {
        let mut e = event("a");
        e["time"] = json!("2026-01-01T00:00:00+02:00");
        let body = serde_json::to_vec(&json!([e, event("b")])).unwrap();
        let parsed = parse_batch(&body, BodyShape::Batch, &schemas(false), &IngestConfig::default(), 42).unwrap();
        assert_eq!(parsed.rows[0].time.as_deref(), Some("2026-01-01T00:00:00+02:00"));
        assert_eq!(parsed.rows[0].time_us, 1_767_218_400_000_000);
        assert_eq!(parsed.rows[1].time_us, 42);
    }
}
