//! What browsers need from the API (DESIGN §6): CORS, and keeping credentials out of URLs
//! and logs.
//!
//! - A preflight (`OPTIONS /v1/…`) carries no key, so it cannot be checked against a
//!   project: [`cors`] answers every one permissively (the methods, the headers the SDKs
//!   send, `Access-Control-Max-Age`). The real request is checked instead: its `Origin`
//!   must be one of the key's project's `allowed_origins` ([`check_origin`], called by
//!   authentication), or it is refused `403 origin_not_allowed` without
//!   `Access-Control-Allow-Origin`, so the page can read nothing. An allowed origin gets
//!   `Access-Control-Allow-Origin: <origin>` and `Vary: Origin` on the answer, errors
//!   included. Requests without `Origin` (servers, mobile apps) are not affected.
//! - A key or customer token in a URL ends up in proxy logs, browser history and
//!   `Referer` headers: [`refuse_credentials_in_url`] answers `400 credentials_in_url`
//!   on every route, and the request log ([`RequestSpan`]) records the path only.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tower_http::trace::MakeSpan;

use crate::{app::AppState, error::ApiError};

/// Methods a browser may use on `/v1/…`.
pub const ALLOWED_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS";
/// Request headers a browser may send (the SDKs' and conditional GETs').
pub const ALLOWED_HEADERS: &str =
    "Authorization, Content-Type, Content-Encoding, X-Meterline-Customer-Token, X-Meterline-SDK, If-None-Match";
/// Answer headers a page may read besides the CORS-safelisted ones.
pub const EXPOSED_HEADERS: &str = "Retry-After, ETag";
/// How long a browser may reuse a preflight's answer, in seconds (Chromium's cap).
pub const PREFLIGHT_MAX_AGE_SECS: u32 = 7200;

/// Query parameters that carry credentials by their name.
const CREDENTIAL_PARAMS: &[&str] = &[
    "key",
    "api_key",
    "apikey",
    "token",
    "customer_token",
    "access_token",
    "authorization",
];

/// Set by authentication when the request's `Origin` is allowed, read by [`cors`] when the
/// answer goes out.
#[derive(Debug, Clone, Default)]
pub struct CorsGrant(Arc<AtomicBool>);

impl CorsGrant {
    /// Marks the origin as allowed.
    pub fn allow(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn allowed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The request's `Origin` header as text; `None` without one. Two of them, or one that is
/// not text, are refused (`400 bad_request`).
pub fn origin(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let bad = |what: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the Origin header {what}"),
        )
    };
    match crate::auth::single_header(headers, header::ORIGIN.as_str()) {
        Err(_) => Err(bad("is given more than once")),
        Ok(None) => Ok(None),
        Ok(Some(value)) => value.to_str().map(Some).map_err(|_| bad("is not valid text")),
    }
}

/// `403 origin_not_allowed` unless `origin` is one of project `project_id`'s
/// `allowed_origins`.
pub async fn check_origin(state: &AppState, project_id: i64, origin: &str) -> Result<(), ApiError> {
    let client = state.schemas.client(&state.store, project_id).await?;
    if client.allows_origin(origin) {
        return Ok(());
    }
    let shown: String = origin.chars().take(100).collect();
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "origin_not_allowed",
        format!(
            "origin {shown:?} is not in this project's allowed_origins; an admin adds it with \
             PUT /v1/admin/settings {{\"allowed_origins\": [...]}}"
        ),
    ))
}

/// Middleware: answers preflights of `/v1/…`, and adds the CORS headers to the answer of a
/// request whose origin authentication allowed.
pub async fn cors(mut request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let is_api = request.uri().path().starts_with("/v1/");
    if is_api && request.method() == Method::OPTIONS {
        return preflight(origin);
    }
    let grant = CorsGrant::default();
    request.extensions_mut().insert(grant.clone());
    let mut response = next.run(request).await;
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if grant.allowed() {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
        }
    }
    response
}

/// `204` with the CORS preflight headers; the origin is echoed (a key is checked on the
/// real request).
fn preflight(origin: Option<HeaderValue>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(PREFLIGHT_MAX_AGE_SECS),
    );
    response
}

/// Middleware: `400 credentials_in_url` for a request whose query names a credential
/// (`key`, `token` …) or holds a value that reads as an API key (`ml_sk_…`) or a JWT.
pub async fn refuse_credentials_in_url(request: Request, next: Next) -> Response {
    if let Some(found) = request.uri().query().and_then(credential_in_query) {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "credentials_in_url",
            format!(
                "the URL's query carries a credential ({found}); send keys in the Authorization header, \
                 customer tokens in X-Meterline-Customer-Token (or, for POST /v1/beacon, in the body) — \
                 URLs end up in logs and browser history"
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// What in `query` looks like a credential, described without repeating it.
fn credential_in_query(query: &str) -> Option<String> {
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name).to_ascii_lowercase();
        if CREDENTIAL_PARAMS.contains(&name.as_str()) {
            return Some(format!("parameter `{name}`"));
        }
        let value = percent_decode(value);
        let value = value.trim();
        if ["ml_sk_", "ml_pk_", "ml_ak_"].iter().any(|p| value.starts_with(p)) {
            return Some(format!("an API key in parameter `{name}`"));
        }
        if value.starts_with("eyJ") && value.matches('.').count() == 2 {
            return Some(format!("a JWT in parameter `{name}`"));
        }
    }
    None
}

/// `%XX` and `+` decoded; invalid escapes are kept as they are.
fn percent_decode(text: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The request log's span: method and path, never the query (which may hold credentials a
/// client put there by mistake) and never headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> tracing::Span {
        tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_queries_are_found() {
        for query in [
            "token=abc",
            "limit=5&Key=x",
            "customer%5Ftoken=x",
            "subject=ml_sk_abc_def",
            "s=ml%5Fpk%5Fa%5Fb",
            "t2=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjMSJ9.sig",
        ] {
            assert!(credential_in_query(query).is_some(), "{query}");
        }
        for query in ["limit=5&type=api.call&subject=c1", "cursor=abc.def", "", "subject=eyJ"] {
            assert_eq!(credential_in_query(query), None, "{query}");
        }
        let found = credential_in_query("x=ml_pk_abc_SECRET").unwrap();
        assert!(!found.contains("SECRET"), "{found}");
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%e2%82%ac€%"), "€€%");
    }
}
