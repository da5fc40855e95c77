//! `GET /v1/customers/{subject}/entitlements` (with a strong `ETag` and `304` on
//! `If-None-Match`) and `GET /v1/customers/{subject}/usage`. A secret key reads any subject
//! of its project; a publishable key with a customer token only the token's subject.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use meterline_core::entitlement::UsageReport;
use sha2::{Digest, Sha256};

use super::change::Collection;
use crate::{app::AppState, auth::Caller, error::ApiError, schemas::etag_matches};

/// The project's stream seq when an entitlement answer was read (see
/// `meterline_core::stream::STREAM_SEQ_HEADER`).
use meterline_core::stream::STREAM_SEQ_HEADER;

/// `GET /v1/customers/{subject}/entitlements` → the entitlement answer (DESIGN §4); a
/// subject that is not a customer has none (and `version` 0 unless it was one before).
/// `Meterline-Stream-Seq` says which stream seq the answer is current to.
pub async fn get_entitlements(
    State(state): State<AppState>,
    caller: Caller,
    Path(subject): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require_subject(&subject)?;
    Collection::Customers.check_id(&subject)?;
    // Read before the answer: every stream message after this seq is either in the answer
    // or still to come, so a client subscribing with `since` = this misses nothing.
    let stream_seq = state
        .store
        .stream_seq(caller.project_id)
        .await
        .map_err(|e| ApiError::internal("reading the stream seq failed", e))?;
    let answer = state
        .store
        .entitlements(caller.project_id, &subject, state.config.entitlements.ttl_ms)
        .await
        .map_err(|e| ApiError::internal("reading the entitlements failed", e))?;
    let body = serde_json::to_vec(&answer).map_err(|e| ApiError::internal("encoding the entitlements failed", e))?;
    let etag = hex::encode(&Sha256::digest(&body)[..16]);
    let etag_header = HeaderValue::from_str(&format!("\"{etag}\"")).map_err(|e| ApiError::internal("bad ETag", e))?;
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &etag));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag_header);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    headers.insert(STREAM_SEQ_HEADER, HeaderValue::from(stream_seq));
    Ok(response)
}

/// `GET /v1/customers/{subject}/usage` → every metered feature's usage in the current and
/// the previous period.
pub async fn get_usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(subject): Path<String>,
) -> Result<Json<UsageReport>, ApiError> {
    caller.require_subject(&subject)?;
    Collection::Customers.check_id(&subject)?;
    let report = state
        .store
        .usage_report(caller.project_id, &subject, chrono::Utc::now())
        .await
        .map_err(|e| ApiError::internal("reading the usage failed", e))?;
    Ok(Json(report))
}
