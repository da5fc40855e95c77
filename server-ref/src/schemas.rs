//! Event-type schemas: `GET /v1/schema` (with ETag) and the admin schema endpoints, plus
//! the per-project cache of compiled schemas and client settings that ingest, CORS and
//! publishable keys use (the settings themselves: [`crate::settings`]).
//! A change that alters the `/v1/schema` ETag publishes `schema.updated` on the stream.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
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
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    app::AppState,
    auth::{Caller, Scope},
    error::ApiError,
    store::{SchemaChange, SchemaOutcome, SchemaRecord, Storage},
};

/// A project's schemas, compiled for validation and as served by `GET /v1/schema`.
#[derive(Debug)]
pub struct ProjectSchemas {
    /// Compiled validators (and the project's `strict_types`).
    pub registry: SchemaRegistry,
    /// The `GET /v1/schema` body.
    pub document: SchemaDocument,
}

/// What a publishable key with a customer token may do in a project, and the schemas it
/// is served (DESIGN §6).
#[derive(Debug)]
pub struct ClientAccess {
    /// `client_event_types`: the types it may send.
    pub event_types: BTreeSet<String>,
    /// `allowed_origins`: browser origins served CORS (normalised, see
    /// [`crate::settings::normalize_origin`]).
    pub allowed_origins: Vec<String>,
    /// `GET /v1/schema` for it: only the schemas of `event_types`, with an ETag of its own.
    pub document: SchemaDocument,
}

impl ClientAccess {
    /// Whether `origin` (an `Origin` header value) is one of `allowed_origins`.
    pub fn allows_origin(&self, origin: &str) -> bool {
        crate::settings::normalize_origin(origin).is_ok_and(|o| self.allowed_origins.contains(&o))
    }
}

#[derive(Debug, Clone)]
struct CachedProject {
    schemas: Arc<ProjectSchemas>,
    client: Arc<ClientAccess>,
    loaded_at: Instant,
}

/// Compiled schemas and settings by project, rebuilt from the database after any change
/// made through the API, and at most `ttl` old otherwise (changes made by the CLI).
#[derive(Debug)]
pub struct SchemaCache {
    projects: Mutex<HashMap<i64, CachedProject>>,
    /// Bumped by every invalidation, so a rebuild that raced with a change is not kept.
    generation: AtomicU64,
    ttl: Duration,
}

impl Default for SchemaCache {
    fn default() -> Self {
        SchemaCache::new(Duration::from_secs(5))
    }
}

impl SchemaCache {
    /// A cache whose entries are reloaded once older than `ttl`.
    pub fn new(ttl: Duration) -> Self {
        SchemaCache {
            projects: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            ttl,
        }
    }

    /// The project's schemas, loading and compiling them on first use.
    pub async fn get(&self, store: &Storage, project_id: i64) -> Result<Arc<ProjectSchemas>, ApiError> {
        Ok(self.load(store, project_id).await?.schemas)
    }

    /// What a publishable key may do in the project (its settings and filtered schemas).
    pub async fn client(&self, store: &Storage, project_id: i64) -> Result<Arc<ClientAccess>, ApiError> {
        Ok(self.load(store, project_id).await?.client)
    }

    async fn load(&self, store: &Storage, project_id: i64) -> Result<CachedProject, ApiError> {
        if let Some(found) = self.lock().get(&project_id)
            && found.loaded_at.elapsed() < self.ttl
        {
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
        let event_types: BTreeSet<String> = project.client_event_types.iter().cloned().collect();
        let client_records = records
            .iter()
            .filter(|r| event_types.contains(&r.event_type))
            .cloned()
            .collect();
        let document = document(project.strict_types, &project.client_event_types, records);
        let registry = SchemaRegistry::from_document(&document, false)
            .map_err(|e| ApiError::internal("a stored schema does not compile", e))?;
        let built = CachedProject {
            schemas: Arc::new(ProjectSchemas { registry, document }),
            client: Arc::new(ClientAccess {
                document: client_document(project.strict_types, &project.client_event_types, client_records),
                event_types,
                allowed_origins: project.allowed_origins,
            }),
            loaded_at: Instant::now(),
        };
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

    /// Drops every project's compiled schemas and settings.
    pub fn invalidate_all(&self) {
        let mut projects = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        projects.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, CachedProject>> {
        self.projects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Builds the `GET /v1/schema` document; the ETag is a hash of its content and of
/// `client_event_types` (so a change of those announces `schema.updated`, after which
/// publishable clients refetch their share).
fn document(strict_types: bool, client_event_types: &[String], records: Vec<SchemaRecord>) -> SchemaDocument {
    let mut hasher = Sha256::new();
    for event_type in client_event_types {
        hasher.update(event_type.as_bytes());
        hasher.update([0]);
    }
    hasher.update([1]);
    hashed_document(hasher, strict_types, records)
}

/// The document a publishable key is served: the schemas of the types it may send. Its
/// ETag is hashed under another prefix, so it never equals the full document's.
fn client_document(strict_types: bool, client_event_types: &[String], records: Vec<SchemaRecord>) -> SchemaDocument {
    let mut hasher = Sha256::new();
    hasher.update(b"client\0");
    for event_type in client_event_types {
        hasher.update(event_type.as_bytes());
        hasher.update([0]);
    }
    hasher.update([1]);
    hashed_document(hasher, strict_types, records)
}

fn hashed_document(mut hasher: Sha256, strict_types: bool, records: Vec<SchemaRecord>) -> SchemaDocument {
    let types: std::collections::BTreeMap<String, Value> =
        records.into_iter().map(|r| (r.event_type, r.schema)).collect();
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
pub(crate) async fn apply_change(
    state: &AppState,
    project_id: i64,
    change: SchemaChange<'_>,
) -> Result<SchemaOutcome, ApiError> {
    let order = state.hub.sequence().await;
    let changed = state
        .store
        .change_schema(project_id, change, etag_of, false)
        .await
        .map_err(|e| ApiError::internal("storing the schema change failed", e))?;
    state.schemas.invalidate(project_id);
    // On PostgreSQL every node's stream follower publishes it, this one's included.
    if state.store.publishes_locally() {
        order.publish(changed.frame.into_iter().collect());
    }
    Ok(changed.outcome)
}

/// The full document's ETag, as the store computes it around a change.
pub fn etag_of(strict_types: bool, client_event_types: &[String], records: Vec<SchemaRecord>) -> String {
    document(strict_types, client_event_types, records).etag
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, lists and `*`).
pub(crate) fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/").trim_matches('"') == etag)
}

/// `GET /v1/schema`: every registered type with its JSON Schema — for a publishable key
/// with a customer token only those of `client_event_types`; `304` when the client's
/// `If-None-Match` matches the current ETag.
pub async fn get_schema(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(Scope::ReadSchema)?;
    let (full, client);
    let document = if caller.subject.is_some() {
        client = state.schemas.client(&state.store, caller.project_id).await?;
        &client.document
    } else {
        full = state.schemas.get(&state.store, caller.project_id).await?;
        &full.document
    };
    let etag = &document.etag;
    let etag_header = HeaderValue::from_str(&format!("\"{etag}\"")).map_err(|e| ApiError::internal("bad ETag", e))?;
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, etag));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Json(document).into_response()
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
        let a = document(false, &[], vec![]);
        let b = document(true, &[], vec![]);
        assert_ne!(a.etag, b.etag);
        assert_eq!(a.etag, document(false, &[], vec![]).etag);
        let listed = document(false, &["t".to_owned()], vec![]);
        assert_ne!(a.etag, listed.etag, "client_event_types are part of the ETag");
        assert_ne!(
            listed.etag,
            client_document(false, &["t".to_owned()], vec![]).etag,
            "the client document's ETag is its own"
        );
    }
}
