//! `POST /v1/beacon`: unload delivery from browsers (DESIGN §6).
//!
//! `navigator.sendBeacon` cannot set headers and `fetch(…, {keepalive: true})` caps bodies at
//! 64 KiB, so the credentials travel in the body, which is sent as `text/plain` (a
//! CORS-safelisted type: no preflight is needed):
//! `{"key": "ml_pk_…", "token": "<customer token>", "events": [ … ]}`.
//! It is answered like `POST /v1/events` — the same per-event rejections, the same rate
//! limits (per key and per subject), the same `Origin` check — with these differences:
//! - publishable keys only (a secret key in a web page is a leaked key: `403 forbidden`);
//! - the body is at most `ingest.max_beacon_bytes` (64 KiB, what browsers allow in flight);
//! - no `Content-Encoding` (a beacon cannot set one: anything but `identity` is `415`);
//! - `Content-Type` `text/plain` or `application/json` (charset utf-8), anything else `415`.

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use meterline_core::key::KeyKind;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{BodyShape, store_events};
use crate::{
    app::AppState,
    auth::{Scope, authenticate},
    browser::CorsGrant,
    error::ApiError,
};

/// The body of a beacon. `Debug` never shows the key's secret or the token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BeaconBody {
    key: String,
    #[serde(default)]
    token: Option<String>,
    events: Box<RawValue>,
}

/// `POST /v1/beacon`: `202` with the accepted, duplicate and rejected counts, as
/// `POST /v1/events` answers.
pub async fn post_beacon(
    State(state): State<AppState>,
    headers: HeaderMap,
    grant: Option<axum::Extension<CorsGrant>>,
    body: Body,
) -> Result<Response, ApiError> {
    check_content_type(&headers)?;
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING)
        && !encoding.as_bytes().eq_ignore_ascii_case(b"identity")
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            "POST /v1/beacon takes an uncompressed body (a beacon cannot set Content-Encoding)",
        ));
    }
    let max = state.config.ingest.max_beacon_bytes;
    let bytes = crate::body::read_limited(&headers, body, max).await?;
    let beacon: BeaconBody = serde_json::from_slice(&bytes).map_err(|e| {
        let message =
            format!("the beacon body must be JSON {{\"key\": \"ml_pk_…\", \"token\": \"…\", \"events\": [...]}}: {e}");
        if e.is_data() {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
        } else {
            ApiError::invalid_json(message)
        }
    })?;
    if !beacon.key.starts_with("ml_pk_") {
        // Checked before the key is looked up: a secret key in a page is refused as such.
        return Err(ApiError::forbidden(
            "POST /v1/beacon takes a publishable key (ml_pk_…) with a customer token; a secret key must \
             never be sent from a browser",
        ));
    }
    let origin = crate::browser::origin(&headers)?;
    let grant = grant.map(|axum::Extension(grant)| grant);
    let auth = authenticate(&state, &beacon.key, beacon.token.as_deref(), origin, grant.as_ref()).await?;
    debug_assert_eq!(auth.caller.kind, KeyKind::Publishable);
    auth.caller.require(Scope::Ingest)?;
    let events = beacon.events.get().as_bytes().to_vec();
    drop(bytes);
    let outcome = store_events(&state, &auth.caller, move |_| Ok(events), BodyShape::Either).await?;
    Ok((StatusCode::ACCEPTED, Json(outcome)).into_response())
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let unsupported = |what: String| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("{what}; POST /v1/beacon takes text/plain (or application/json), charset utf-8"),
        )
    };
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(unsupported("the Content-Type header is missing".into()));
    };
    let value = value
        .to_str()
        .map_err(|_| unsupported("the Content-Type header is not valid text".into()))?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    for param in parts {
        let (name, val) = param.split_once('=').unwrap_or((param, ""));
        if name.trim().eq_ignore_ascii_case("charset") && !val.trim().trim_matches('"').eq_ignore_ascii_case("utf-8") {
            return Err(unsupported("only charset=utf-8 is supported".into()));
        }
    }
    match essence.as_str() {
        "text/plain" | "application/json" => Ok(()),
        _ => Err(unsupported(format!(
            "Content-Type {:?} is not supported",
            essence.chars().take(100).collect::<String>()
        ))),
    }
}
