//! Keeps the client's copy of the server's event schemas current (`GET /v1/schema`, ETag).

use std::sync::Arc;

use reqwest::{
    StatusCode,
    header::{ETAG, IF_NONE_MATCH},
};

use super::{Shared, sender::describe};
use crate::{
    config::Config,
    error::Error,
    schema::{SchemaDocument, SchemaRegistry},
};

/// The schemas a client validates against: the server's document, then the local `schemas`
/// option on top; strict when either the document or the option says so.
pub(crate) fn registry(config: &Config, doc: &SchemaDocument) -> Result<SchemaRegistry, Error> {
    let mut registry = SchemaRegistry::from_document(doc, config.strict_types)?;
    for (event_type, schema) in &config.schemas {
        registry.insert(event_type, schema)?;
    }
    Ok(registry)
}

/// Fetches at start, then every `schema_refresh_interval`, until the worker stops.
pub(crate) async fn refresh_loop(shared: Arc<Shared>) {
    let mut etag = None;
    loop {
        match fetch(&shared, etag.as_deref()).await {
            Ok(Some(new)) => etag = Some(new),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(code = err.code(), "schema refresh failed: {err}");
                shared.callbacks.error(&err);
            }
        }
        // A stream `schema.updated` wakes it early.
        let _ = tokio::time::timeout(shared.config.schema_refresh_interval, shared.schema_refresh.notified()).await;
    }
}

/// One conditional fetch. Returns the new ETag when the schemas changed, `None` on 304.
pub(crate) async fn fetch(shared: &Shared, etag: Option<&str>) -> Result<Option<String>, Error> {
    let url = format!("{}/v1/schema", shared.config.base_url());
    let mut request = shared.http.get(&url);
    if let Some(etag) = etag {
        request = request.header(IF_NONE_MATCH, etag);
    }
    let resp = request.send().await.map_err(|e| Error::Network(describe(&e)))?;
    match resp.status() {
        StatusCode::NOT_MODIFIED => return Ok(None),
        StatusCode::UNAUTHORIZED => {
            return Err(Error::Unauthorized {
                message: "the server refused the API key while fetching schemas".into(),
            });
        }
        s if !s.is_success() => {
            return Err(Error::Http {
                status: s.as_u16(),
                code: format!("http_{}", s.as_u16()),
                message: format!("GET /v1/schema answered {s}"),
            });
        }
        _ => {}
    }
    let header_etag = resp
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let doc: SchemaDocument = resp.json().await.map_err(|e| Error::Codec {
        code: "invalid_json",
        message: format!("GET /v1/schema returned an unreadable body: {}", describe(&e)),
    })?;
    let registry = registry(&shared.config, &doc)?;
    tracing::debug!(types = registry.len(), "schemas refreshed");
    *shared.schemas.write().unwrap_or_else(|p| p.into_inner()) = registry;
    Ok(Some(header_etag.unwrap_or(doc.etag)))
}
