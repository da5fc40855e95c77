//! Admin API for keys: `POST`/`GET /v1/admin/keys`, `DELETE /v1/admin/keys/{id}`.
//! An admin key only sees and revokes keys of its own project.

use axum::{
    Json,
    extract::{Path, State, rejection::JsonRejection},
    http::StatusCode,
};
use meterline_core::key::KeyKind;
use serde::{Deserialize, Serialize};

use crate::{
    app::AppState,
    auth::{Caller, Scope, mint},
    error::ApiError,
    store::{KeyRecord, StoreError},
};

/// `POST /v1/admin/keys` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// `secret`, `publishable` or `admin`.
    pub kind: String,
}

/// `POST /v1/admin/keys` answer; `key` is shown this once.
#[derive(Debug, Serialize)]
pub struct CreatedKey {
    /// Public id.
    pub id: String,
    /// `secret`, `publishable` or `admin`.
    pub kind: &'static str,
    /// The full key.
    pub key: String,
    /// RFC 3339.
    pub created_at: String,
}

/// A key as listed (never the secret).
#[derive(Debug, Serialize)]
pub struct KeyView {
    /// Public id.
    pub id: String,
    /// `secret`, `publishable` or `admin`.
    pub kind: &'static str,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339 when revoked, else `null`.
    pub revoked_at: Option<String>,
}

impl From<KeyRecord> for KeyView {
    fn from(k: KeyRecord) -> Self {
        KeyView {
            id: k.id,
            kind: k.kind.as_str(),
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// `GET /v1/admin/keys` answer.
#[derive(Debug, Serialize)]
pub struct KeyList {
    /// The project's keys, oldest first, revoked ones included.
    pub keys: Vec<KeyView>,
}

/// Mints and stores a key for a project, retrying on the (astronomically unlikely) id clash.
pub async fn create_key(
    store: &crate::store::Storage,
    project_id: i64,
    kind: KeyKind,
) -> Result<(String, KeyRecord), StoreError> {
    let mut attempts = 0;
    loop {
        let minted = mint(kind);
        match store.insert_key(project_id, &minted.to_new_key()).await {
            Ok(record) => return Ok((minted.key.expose(), record)),
            Err(StoreError::Conflict(_)) if attempts < 3 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

/// `POST /v1/admin/keys` `{"kind": …}` → `201 {"id","kind","key","created_at"}`.
pub async fn post_key(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<CreateKey>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    caller.require(Scope::Admin)?;
    let Json(request) = body?;
    let kind = KeyKind::from_name(&request.kind).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "`kind` must be \"secret\", \"publishable\" or \"admin\"",
        )
    })?;
    let (key, record) = create_key(&state.store, caller.project_id, kind)
        .await
        .map_err(|e| ApiError::internal("storing the key failed", e))?;
    tracing::info!(key_id = %record.id, kind = kind.as_str(), by = %caller.key_id, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            id: record.id,
            kind: kind.as_str(),
            key,
            created_at: record.created_at,
        }),
    ))
}

/// `GET /v1/admin/keys`.
pub async fn list_keys(State(state): State<AppState>, caller: Caller) -> Result<Json<KeyList>, ApiError> {
    caller.require(Scope::Admin)?;
    let keys = state
        .store
        .keys(caller.project_id)
        .await
        .map_err(|e| ApiError::internal("reading the keys failed", e))?;
    Ok(Json(KeyList {
        keys: keys.into_iter().map(KeyView::from).collect(),
    }))
}

/// `DELETE /v1/admin/keys/{id}`: revokes at once (`204`), closing the key's open streams
/// (and those of customer tokens it signed) with 4403; `404 not_found` for a key that does
/// not exist in the caller's project. Revoking a revoked key is a no-op `204`.
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Admin)?;
    let revoked = state
        .store
        .revoke_key(Some(caller.project_id), &id)
        .await
        .map_err(|e| ApiError::internal("revoking the key failed", e))?;
    if revoked.is_none() {
        return Err(ApiError::not_found(format!(
            "no key with id {:?} in this project",
            id.chars().take(64).collect::<String>()
        )));
    }
    state.keys.evict(&id);
    state.streams.key_revoked(&id);
    tracing::info!(key_id = %id, by = %caller.key_id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
