//! The entitlement domain (DESIGN §4): the catalog admin API (features, plans, customers),
//! the customer answers (`GET /v1/customers/{subject}/entitlements|usage`), and the
//! `entitlements.updated` / `usage.threshold` stream messages their changes produce.
//!
//! - [`catalog`]: definitions and their validation (shared by HTTP, CLI and `meterline.toml`);
//! - [`period`]: usage periods (pure functions);
//! - [`answer`]: resolving plan + overrides and building the answers;
//! - [`declarative`]: the `[catalog]` section of `meterline.toml`, applied at start;
//! - `store::catalog`: the SQL, the change transactions and the usage counters.

pub mod answer;
pub mod catalog;
pub mod declarative;
pub mod period;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{
    app::AppState,
    auth::{Caller, Scope},
    error::ApiError,
    store::{
        Store,
        catalog::{self as sql, Applied, CatalogError, CatalogKind, Change, Outcome},
    },
    stream::Hub,
};
use catalog::Invalid;

/// `[entitlements]` section of `meterline.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EntitlementsConfig {
    /// `ttl_ms` of every entitlement answer: how long an SDK may serve it from its cache.
    pub ttl_ms: u64,
}

impl Default for EntitlementsConfig {
    fn default() -> Self {
        EntitlementsConfig { ttl_ms: 60_000 }
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, e.code, e.message)
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Unknown(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_reference", m),
            CatalogError::KindMismatch(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "kind_mismatch", m),
            CatalogError::InUse(m) => ApiError::new(StatusCode::CONFLICT, "in_use", m),
            CatalogError::Store(e) => ApiError::internal("storing the catalog change failed", e),
        }
    }
}

/// Which admin collection a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    /// `/v1/admin/features`.
    Features,
    /// `/v1/admin/plans`.
    Plans,
    /// `/v1/admin/customers`.
    Customers,
}

impl Collection {
    /// The collection's name (`features` …), also the key of its list answer.
    pub fn name(self) -> &'static str {
        match self {
            Collection::Features => "features",
            Collection::Plans => "plans",
            Collection::Customers => "customers",
        }
    }

    fn table(self, project_id: i64) -> CatalogKind {
        match self {
            Collection::Features => CatalogKind::Features(project_id),
            Collection::Plans => CatalogKind::Plans(project_id),
            Collection::Customers => CatalogKind::Customers(project_id),
        }
    }

    /// Checks the id in the path (feature/plan key or subject).
    pub fn check_id(self, id: &str) -> Result<(), Invalid> {
        match self {
            Collection::Features => catalog::check_key(id, "the feature key in the path"),
            Collection::Plans => catalog::check_key(id, "the plan key in the path"),
            Collection::Customers => catalog::check_subject(id, "the subject in the path"),
        }
    }

    /// Validates a PUT body (JSON text) into a change; `path` prefixes field names in errors.
    pub fn put_change(self, id: &str, body: &[u8]) -> Result<Change, Invalid> {
        self.check_id(id)?;
        let value = catalog::parse_json(body)?;
        self.put_change_value(id, &value, "")
    }

    /// Validates an already parsed body.
    pub fn put_change_value(self, id: &str, value: &serde_json::Value, path: &str) -> Result<Change, Invalid> {
        Ok(match self {
            Collection::Features => Change::PutFeature(id.to_owned(), catalog::parse_feature(value, path)?),
            Collection::Plans => Change::PutPlan(id.to_owned(), catalog::parse_plan(value, path)?),
            Collection::Customers => Change::PutCustomer(id.to_owned(), catalog::parse_customer(value, path)?),
        })
    }

    /// The delete change of an id.
    pub fn delete_change(self, id: &str) -> Result<Change, Invalid> {
        self.check_id(id)?;
        Ok(match self {
            Collection::Features => Change::DeleteFeature(id.to_owned()),
            Collection::Plans => Change::DeletePlan(id.to_owned()),
            Collection::Customers => Change::DeleteCustomer(id.to_owned()),
        })
    }
}

/// Applies a change and publishes its messages: the hub's order is taken before the
/// transaction begins and the frames are published after it commits. `hub` is `None` for
/// the CLI (no stream connections in that process).
pub async fn apply(
    store: &Store,
    hub: Option<&Hub>,
    project_id: i64,
    change: Change,
    ttl_ms: u64,
) -> Result<Outcome, CatalogError> {
    let guard = match hub {
        Some(hub) => Some(hub.sequence().await),
        None => None,
    };
    let Applied { outcome, frames } = store.apply_catalog_change(project_id, change, ttl_ms).await?;
    if let Some(guard) = guard {
        guard.publish(frames);
    }
    Ok(outcome)
}

fn put_response(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Created(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Outcome::Replaced(v) | Outcome::Unchanged(v) => (StatusCode::OK, Json(v)).into_response(),
        Outcome::Deleted | Outcome::NotFound => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn put_item(state: AppState, caller: Caller, what: Collection, id: String, body: Bytes) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let change = what.put_change(&id, &body)?;
    let outcome = apply(&state.store, Some(&state.hub), caller.project_id, change, state.config.entitlements.ttl_ms).await?;
    Ok(put_response(outcome))
}

async fn get_item(state: AppState, caller: Caller, what: Collection, id: String) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    what.check_id(&id)?;
    let item = state
        .store
        .catalog_get(what.table(caller.project_id), &id)
        .await
        .map_err(|e| ApiError::internal("reading the catalog failed", e))?
        .ok_or_else(|| ApiError::not_found(format!("no {} entry {:?} in this project", what.name(), id)))?;
    Ok(Json(item).into_response())
}

async fn delete_item(state: AppState, caller: Caller, what: Collection, id: String) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let change = what.delete_change(&id)?;
    match apply(&state.store, Some(&state.hub), caller.project_id, change, state.config.entitlements.ttl_ms).await? {
        Outcome::NotFound => Err(ApiError::not_found(format!("no {} entry {:?} in this project", what.name(), id))),
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

async fn list_items(state: AppState, caller: Caller, what: Collection) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let items = state
        .store
        .catalog_list(what.table(caller.project_id))
        .await
        .map_err(|e| ApiError::internal("reading the catalog failed", e))?;
    Ok(Json(serde_json::json!({ what.name(): items })).into_response())
}

macro_rules! handlers {
    ($what:expr, $put:ident, $get:ident, $delete:ident, $list:ident) => {
        #[doc = concat!("`PUT` of one item of ", stringify!($what), ".")]
        pub async fn $put(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, body: Bytes) -> Result<Response, ApiError> {
            put_item(state, caller, $what, id, body).await
        }
        #[doc = concat!("`GET` of one item of ", stringify!($what), ".")]
        pub async fn $get(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
            get_item(state, caller, $what, id).await
        }
        #[doc = concat!("`DELETE` of one item of ", stringify!($what), ".")]
        pub async fn $delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
            delete_item(state, caller, $what, id).await
        }
        #[doc = concat!("`GET` of the collection ", stringify!($what), ".")]
        pub async fn $list(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
            list_items(state, caller, $what).await
        }
    };
}

handlers!(Collection::Features, put_feature, get_feature, delete_feature, list_features);
handlers!(Collection::Plans, put_plan, get_plan, delete_plan, list_plans);
handlers!(Collection::Customers, put_customer, get_customer, delete_customer, list_customers);

/// Whether a strong `If-None-Match` matches `etag` (quoted), lists and `*` included.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').map(str::trim).any(|c| c == "*" || c == etag))
}

/// `GET /v1/customers/{subject}/entitlements`: the answer with a strong ETag (a hash of the
/// body); `304` when `If-None-Match` matches. An unknown subject has no entitlements.
pub async fn get_entitlements(
    State(state): State<AppState>,
    caller: Caller,
    Path(subject): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    catalog::check_subject(&subject, "the subject in the path")?;
    caller.require_subject(&subject)?;
    let mut conn = state
        .store
        .connection()
        .await
        .map_err(|e| ApiError::internal("reading the entitlements failed", e))?;
    let version = sql::version(&mut conn, caller.project_id, &subject)
        .await
        .map_err(|e| ApiError::internal("reading the entitlements failed", e))?;
    let body = answer::answer(
        &mut conn,
        caller.project_id,
        &subject,
        chrono::Utc::now(),
        state.config.entitlements.ttl_ms,
        version,
    )
    .await
    .map_err(|e| ApiError::internal("reading the entitlements failed", e))?;
    drop(conn);
    let bytes = serde_json::to_vec(&body).map_err(|e| ApiError::internal("encoding the entitlements failed", e))?;
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..16]));
    let mut response = if if_none_match(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(&etag).map_err(|e| ApiError::internal("bad ETag", e))?);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    Ok(response)
}

/// `GET /v1/customers/{subject}/usage`: every metered feature's current and previous period.
pub async fn get_usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(subject): Path<String>,
) -> Result<Response, ApiError> {
    catalog::check_subject(&subject, "the subject in the path")?;
    caller.require_subject(&subject)?;
    let mut conn = state
        .store
        .connection()
        .await
        .map_err(|e| ApiError::internal("reading the usage failed", e))?;
    let report = answer::usage_report(&mut conn, caller.project_id, &subject, chrono::Utc::now())
        .await
        .map_err(|e| ApiError::internal("reading the usage failed", e))?;
    Ok(Json(report).into_response())
}
