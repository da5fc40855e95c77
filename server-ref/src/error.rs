//! `ApiError`: every failure of the HTTP API as a status and a `{"code","message"}` body.
//!
//! Handlers return `Result<_, ApiError>`; [`json_errors`] rewrites any other error response
//! (axum's own 404/405/413 and extractor rejections, timeouts, panics) into the same shape,
//! so a client never has to parse a plain-text error.

use axum::{
    Json,
    body::Body,
    extract::rejection::JsonRejection,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use meterline_core::wire::{ErrorBody, Rejection};
use serde::Serialize;

/// An error answered to an API client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (`unauthorized`, `invalid_json` …).
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Seconds for a `Retry-After` header (`503 overloaded`).
    pub retry_after: Option<u64>,
    /// Per-event rejections (the OpenMeter route's `400 invalid_event`).
    pub rejected: Vec<Rejection>,
}

impl ApiError {
    /// Builds an error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            rejected: Vec::new(),
        }
    }

    /// `400 invalid_json`.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    /// `400 invalid_parameter`; the message should name the parameter.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
    }

    /// `401 unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// `403 forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// `404 not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// `413` with the given code (`payload_too_large`, `too_many_events`).
    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }

    /// `503 overloaded` with `Retry-After: 1`.
    pub fn overloaded(message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
        }
    }

    /// `500 internal_error`; the cause is logged, not sent.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("{context}; see the server log"),
        )
    }

    /// Maps a core codec/config error (`bad_encoding`, `payload_too_large`,
    /// `unsupported_encoding`, `invalid_schema` …) to its HTTP status.
    pub fn from_core(err: &meterline_core::Error) -> Self {
        let (status, code) = match err.code() {
            "payload_too_large" => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            "unsupported_encoding" => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_encoding"),
            "bad_encoding" => (StatusCode::BAD_REQUEST, "bad_encoding"),
            "invalid_schema" => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_schema"),
            "unauthorized" => (StatusCode::UNAUTHORIZED, "unauthorized"),
            _ => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        let message = match err {
            meterline_core::Error::Codec { message, .. } => message.clone(),
            meterline_core::Error::Unauthorized { message } => message.clone(),
            other => other.to_string(),
        };
        Self::new(status, code, message)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON with `Content-Type: application/json`",
            ),
            JsonRejection::JsonDataError(e) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", e.body_text())
            }
            JsonRejection::JsonSyntaxError(e) => Self::invalid_json(e.body_text()),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::too_large("payload_too_large", other.body_text())
            }
            other => Self::new(other.status(), "bad_request", other.body_text()),
        }
    }
}

#[derive(Serialize)]
struct ErrorWithRejections<'a> {
    code: &'a str,
    message: &'a str,
    rejected: &'a [Rejection],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = if self.rejected.is_empty() {
            let body = ErrorBody {
                code: self.code.to_owned(),
                message: self.message,
            };
            (self.status, Json(body)).into_response()
        } else {
            let body = ErrorWithRejections {
                code: self.code,
                message: &self.message,
                rejected: &self.rejected,
            };
            (self.status, Json(body)).into_response()
        };
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of an oversized body may be unread: the connection must not be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The code used when an error response from outside a handler is rewritten.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal_error",
        _ => "error",
    }
}

/// Middleware body: turns every error response that is not already JSON into
/// `{"code","message"}` (the original text, if short, becomes the message).
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let body = ErrorBody {
        code: code_for(status).to_owned(),
        message,
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

/// Fallback for unknown paths: `404 not_found`.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

/// Fallback for a known path with the wrong method: `405 method_not_allowed`.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
