//! Event-type schemas: `GET /v1/schema` (with ETag), the admin schema endpoints and
//! `PUT /v1/admin/settings`, plus the per-project cache of compiled schemas that ingest uses.
//! A change that alters the `/v1/schema` ETag publishes `schema.updated` on the stream.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Json,
    extract::{Path, State, rejection::JsonRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use meterline_core::{
    event::MAX_ATTRIBUTE_LEN,
    schema::{SchemaDocument, SchemaRegistry},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    app::AppState,
    auth::{Caller, Scope},
    error::ApiError,
    store::{SchemaChange, SchemaOutcome, SchemaRecord, Store},
};

/// A project's schemas, compiled for validation and as served by `GET /v1/schema`.
#[derive(Debug)]
pub struct ProjectSchemas {
    /// Compiled validators (and the project's `strict_types`).
    pub registry: SchemaRegistry,
    /// The `GET /v1/schema` body.
    pub document: SchemaDocument,
}

/// Compiled schemas by project, rebuilt from the database after any change.
#[derive(Debug, Default)]
pub struct SchemaCache {
    projects: Mutex<HashMap<i64, Arc<ProjectSchemas>>>,
    /// Bumped by every invalidation, so a rebuild that raced with a change is not kept.
    generation: AtomicU64,
}

impl SchemaCache {
    /// The project's schemas, loading and compiling them on first use.
    pub async fn get(&self, store: &Store, project_id: i64) -> Result<Arc<ProjectSchemas>, ApiError> {
        if let Some(found) = self.lock().get(&project_id) {
            return Ok(found.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let project = store
            .project(project_id)
            .await
            .map_err(|e| ApiError::internal("reading the project failed", e))?;
        let records = store
            .schemas(project_id)
            .await
            .map_err(|e| ApiError::internal("reading the schemas failed", e))?;
        let document = document(project.strict_types, records);
        let registry = SchemaRegistry::from_document(&document, false)
            .map_err(|e| ApiError::internal("a stored schema does not compile", e))?;
        let built = Arc::new(ProjectSchemas { registry, document });
        let mut projects = self.lock();
        if self.generation.load(Ordering::Acquire) == generation {
            projects.insert(project_id, built.clone());
        }
        Ok(built)
    }

    /// Forgets a project's compiled schemas after a change.
    pub fn invalidate(&self, project_id: i64) {
        let mut projects = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        projects.remove(&project_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<ProjectSchemas>>> {
        self.projects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Builds the `GET /v1/schema` document; the ETag is a hash of its content.
fn document(strict_types: bool, records: Vec<SchemaRecord>) -> SchemaDocument {
    let types: std::collections::BTreeMap<String, Value> =
        records.into_iter().map(|r| (r.event_type, r.schema)).collect();
    let mut hasher = Sha256::new();
    hasher.update([u8::from(strict_types)]);
    for (event_type, schema) in &types {
        hasher.update(event_type.as_bytes());
        hasher.update([0]);
        hasher.update(schema.to_string().as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    SchemaDocument {
        etag: hex::encode(&digest[..12]),
        strict_types,
        types,
    }
}

/// Applies a schema or settings change and, when the `/v1/schema` ETag changed, publishes
/// the `schema.updated` message committed with it — after dropping the cached document, so
/// a client reacting to the message fetches the new one.
async fn apply_change(state: &AppState, project_id: i64, change: SchemaChange<'_>) -> Result<SchemaOutcome, ApiError> {
    let order = state.hub.sequence().await;
    let changed = state
        .store
        .change_schema(project_id, change, |strict, records| document(strict, records).etag)
        .await
        .map_err(|e| ApiError::internal("storing the schema change failed", e))?;
    state.schemas.invalidate(project_id);
    order.publish(changed.frame.into_iter().collect());
    Ok(changed.outcome)
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, lists and `*`).
pub(crate) fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/").trim_matches('"') == etag)
}

/// `GET /v1/schema`: every registered type with its JSON Schema; `304` when the client's
/// `If-None-Match` matches the current ETag.
pub async fn get_schema(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(Scope::ReadSchema)?;
    let schemas = state.schemas.get(&state.store, caller.project_id).await?;
    let etag = &schemas.document.etag;
    let etag_header = HeaderValue::from_str(&format!("\"{etag}\"")).map_err(|e| ApiError::internal("bad ETag", e))?;
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, etag));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Json(&schemas.document).into_response()
    };
    response.headers_mut().insert(header::ETAG, etag_header);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// One schema as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct SchemaView {
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Its JSON Schema.
    pub schema: Value,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<SchemaRecord> for SchemaView {
    fn from(r: SchemaRecord) -> Self {
        SchemaView {
            event_type: r.event_type,
            schema: r.schema,
            updated_at: r.updated_at,
        }
    }
}

/// `GET /v1/admin/schemas` body.
#[derive(Debug, Serialize)]
pub struct SchemaList {
    /// Every schema, by type.
    pub schemas: Vec<SchemaView>,
}

fn check_type(event_type: &str) -> Result<(), ApiError> {
    let len = event_type.chars().count();
    if len == 0 || len > MAX_ATTRIBUTE_LEN {
        return Err(ApiError::invalid_parameter(format!(
            "the event type in the path must be 1–{MAX_ATTRIBUTE_LEN} characters"
        )));
    }
    Ok(())
}

/// `GET /v1/admin/schemas`.
pub async fn list_schemas(State(state): State<AppState>, caller: Caller) -> Result<Json<SchemaList>, ApiError> {
    caller.require(Scope::Admin)?;
    let records = state
        .store
        .schemas(caller.project_id)
        .await
        .map_err(|e| ApiError::internal("reading the schemas failed", e))?;
    Ok(Json(SchemaList {
        schemas: records.into_iter().map(SchemaView::from).collect(),
    }))
}

/// `GET /v1/admin/schemas/{type}`; `404 not_found` when none is registered.
pub async fn get_type_schema(
    State(state): State<AppState>,
    caller: Caller,
    Path(event_type): Path<String>,
) -> Result<Json<SchemaView>, ApiError> {
    caller.require(Scope::Admin)?;
    let record = state
        .store
        .schema(caller.project_id, &event_type)
        .await
        .map_err(|e| ApiError::internal("reading the schema failed", e))?
        .ok_or_else(|| ApiError::not_found(format!("no schema is registered for event type {event_type:?}")))?;
    Ok(Json(record.into()))
}

/// `PUT /v1/admin/schemas/{type}`: body is the JSON Schema (draft 2020-12). `201` when new,
/// `200` when replaced, `422 invalid_schema` when it does not compile.
pub async fn put_type_schema(
    State(state): State<AppState>,
    caller: Caller,
    Path(event_type): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    check_type(&event_type)?;
    let Json(schema) = body?;
    SchemaRegistry::new(false)
        .insert(&event_type, &schema)
        .map_err(|e| ApiError::from_core(&e))?;
    let change = SchemaChange::Put {
        event_type: &event_type,
        schema: &schema,
    };
    let (status, record) = match apply_change(&state, caller.project_id, change).await? {
        SchemaOutcome::Created(record) => (StatusCode::CREATED, record),
        SchemaOutcome::Replaced(record) => (StatusCode::OK, record),
        other => return Err(ApiError::internal("storing the schema failed", format!("{other:?}"))),
    };
    Ok((status, Json(SchemaView::from(record))).into_response())
}

/// `DELETE /v1/admin/schemas/{type}`: `204`, or `404 not_found` when none is registered.
pub async fn delete_type_schema(
    State(state): State<AppState>,
    caller: Caller,
    Path(event_type): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Admin)?;
    let change = SchemaChange::Delete {
        event_type: &event_type,
    };
    if apply_change(&state, caller.project_id, change).await? == SchemaOutcome::NotFound {
        return Err(ApiError::not_found(format!(
            "no schema is registered for event type {event_type:?}"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Project settings (`GET`/`PUT /v1/admin/settings`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Reject events whose type has no schema (`unknown_type`).
    pub strict_types: bool,
}

/// `GET /v1/admin/settings`.
pub async fn get_settings(State(state): State<AppState>, caller: Caller) -> Result<Json<Settings>, ApiError> {
    caller.require(Scope::Admin)?;
    let project = state
        .store
        .project(caller.project_id)
        .await
        .map_err(|e| ApiError::internal("reading the project failed", e))?;
    Ok(Json(Settings {
        strict_types: project.strict_types,
    }))
}

/// `PUT /v1/admin/settings` `{"strict_types": bool}`.
pub async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Settings>, JsonRejection>,
) -> Result<Json<Settings>, ApiError> {
    caller.require(Scope::Admin)?;
    let Json(settings) = body?;
    apply_change(
        &state,
        caller.project_id,
        SchemaChange::StrictTypes(settings.strict_types),
    )
    .await?;
    Ok(Json(settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_comparison_is_weak_and_lists() {
        assert!(etag_matches("\"abc\"", "abc"));
        assert!(etag_matches("W/\"abc\"", "abc"));
        assert!(etag_matches("\"x\", \"abc\"", "abc"));
        assert!(etag_matches("*", "abc"));
        assert!(!etag_matches("\"abd\"", "abc"));
    }

    #[test]
    fn etag_follows_content() {
        let a = document(false, vec![]);
        let b = document(true, vec![]);
        assert_ne!(a.etag, b.etag);
        assert_eq!(a.etag, document(false, vec![]).etag);
    }
}
