//! Keeps the client's copy of the server's event schemas current, as the core's
//! [`SchemaRefresh`] schedules it: at start, then every `schema_refresh_interval`. Only in
//! the full build (`schema` feature): the default build checks the envelope alone and
//! leaves the data to the server.

use std::rc::Rc;

use super::Inner;

/// Starts the refresh task (when the build validates schemas and `fetch_schemas` is on).
#[cfg(feature = "schema")]
pub(crate) fn start(inner: &Rc<Inner>) {
    if !inner.config.fetch_schemas {
        return;
    }
    let weak = Rc::downgrade(inner);
    let interval = inner.config.schema_refresh_interval;
    wasm_bindgen_futures::spawn_local(async move {
        let mut schedule = crate::schema_refresh::SchemaRefresh::new(interval, super::host::wall_ms());
        loop {
            let Some(inner) = weak.upgrade().filter(|i| !i.closed.get()) else {
                return;
            };
            let now = super::host::wall_ms();
            if let Some(request) = schedule.poll(now) {
                let answer = match fetch(&inner, request.if_none_match.as_deref()).await {
                    Ok(answer) => answer,
                    Err(err) => {
                        inner.report(err);
                        crate::schema_refresh::SchemaAnswer::Failed
                    }
                };
                schedule.completed(answer, super::host::wall_ms());
                continue;
            }
            let wait = schedule.next_wake().map_or(3_600_000, |at| at.saturating_sub(now));
            drop(inner);
            gloo_timers::future::TimeoutFuture::new(u32::try_from(wait).unwrap_or(u32::MAX)).await;
        }
    });
}

/// The default build does not fetch schemas.
#[cfg(not(feature = "schema"))]
pub(crate) fn start(_inner: &Rc<Inner>) {}

/// One `GET /v1/schema`: installs a new document (the local `schemas` option on top).
#[cfg(feature = "schema")]
async fn fetch(
    inner: &Rc<Inner>,
    etag: Option<&str>,
) -> Result<crate::schema_refresh::SchemaAnswer, crate::error::Error> {
    use crate::{
        error::Error,
        schema::{SchemaDocument, SchemaRegistry},
        schema_refresh::{SchemaAnswer, SchemaStatus, status_meaning},
    };
    let url = format!("{}/v1/schema", inner.config.base_url());
    let mut extra = vec![("accept", "application/json")];
    if let Some(etag) = etag {
        extra.push(("if-none-match", etag));
    }
    let headers = inner.headers(&extra);
    let call = super::http::Call {
        method: "GET",
        url: &url,
        headers: &headers,
        body: None,
        keepalive: false,
    };
    let timeout = inner.config.request_timeout;
    let reply = match super::credentials::send(inner, super::credentials::Whose::Current, call).await {
        super::credentials::Sent::Answered(reply) => reply,
        super::credentials::Sent::Failed(failure) => return Err(failure.into_error(timeout)),
        super::credentials::Sent::NoToken(err) => return Err(err),
    };
    if status_meaning(reply.status)? == SchemaStatus::NotModified {
        return Ok(SchemaAnswer::NotModified);
    }
    let doc: SchemaDocument = serde_json::from_slice(&reply.body).map_err(|e| Error::Codec {
        code: "invalid_json",
        message: format!("GET /v1/schema returned an unreadable body: {e}"),
    })?;
    let mut registry = SchemaRegistry::from_document(&doc, inner.config.strict_types)?;
    for (event_type, schema) in &inner.config.schemas {
        registry.insert(event_type, schema)?;
    }
    *inner.schemas.borrow_mut() = registry;
    Ok(SchemaAnswer::Installed {
        etag: Some(reply.header("etag").unwrap_or(doc.etag)),
    })
}
