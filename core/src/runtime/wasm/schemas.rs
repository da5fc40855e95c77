//! Keeps the client's copy of the server's event schemas current, as the core's
//! [`SchemaRefresh`](crate::schema_refresh::SchemaRefresh) schedules it: at start, then every
//! `schema_refresh_interval`, and at once when the stream announces new ones
//! (`schema.updated`, [`announce`]). Only in the full build (`schema` feature): the default
//! build checks the envelope alone and leaves the data to the server.

use std::rc::Rc;

use super::Inner;

/// The refresh schedule the task and the stream share (the full build's; the default build
/// holds nothing: it has no client-side schemas, so `schema.updated` needs nothing there).
#[derive(Default)]
pub(crate) struct Refresher {
    /// The core's schedule, once the task started (`fetch_schemas` on).
    #[cfg(feature = "schema")]
    schedule: std::cell::RefCell<Option<crate::schema_refresh::SchemaRefresh>>,
    /// Wakes the task from its wait (an announcement).
    #[cfg(feature = "schema")]
    wake: std::cell::RefCell<Option<futures_channel::oneshot::Sender<()>>>,
}

/// The stream announced schemas with `etag` (`schema.updated`): the task fetches them at
/// once, with the ETag it holds, unless they are the ones it holds (the core's
/// [`SchemaRefresh::announced`](crate::schema_refresh::SchemaRefresh::announced)), as the
/// native runtime does. Nothing in the default build.
#[cfg(feature = "schema")]
pub(crate) fn announce(inner: &Rc<Inner>, etag: &str) {
    let refresher = &inner.schema_refresh;
    match refresher.schedule.borrow_mut().as_mut() {
        Some(schedule) => schedule.announced(etag, super::host::wall_ms()),
        None => return,
    }
    if let Some(wake) = refresher.wake.borrow_mut().take() {
        let _ = wake.send(());
    }
}

/// The default build has no client-side schemas: nothing to refresh.
#[cfg(not(feature = "schema"))]
pub(crate) fn announce(_inner: &Rc<Inner>, _etag: &str) {}

/// Starts the refresh task (when the build validates schemas and `fetch_schemas` is on).
#[cfg(feature = "schema")]
pub(crate) fn start(inner: &Rc<Inner>) {
    use futures_util::future::select;

    if !inner.config.fetch_schemas {
        return;
    }
    let interval = inner.config.schema_refresh_interval;
    *inner.schema_refresh.schedule.borrow_mut() = Some(crate::schema_refresh::SchemaRefresh::new(
        interval,
        super::host::wall_ms(),
    ));
    let weak = Rc::downgrade(inner);
    wasm_bindgen_futures::spawn_local(async move {
        loop {
            let Some(inner) = weak.upgrade().filter(|i| !i.closed.get()) else {
                return;
            };
            let refresher = &inner.schema_refresh;
            let now = super::host::wall_ms();
            let request = refresher.schedule.borrow_mut().as_mut().and_then(|s| s.poll(now));
            if let Some(request) = request {
                let answer = match fetch(&inner, request.if_none_match.as_deref()).await {
                    Ok(answer) => answer,
                    Err(err) => {
                        inner.report(err);
                        crate::schema_refresh::SchemaAnswer::Failed
                    }
                };
                if let Some(s) = refresher.schedule.borrow_mut().as_mut() {
                    s.completed(answer, super::host::wall_ms());
                }
                continue;
            }
            let next = refresher.schedule.borrow().as_ref().and_then(|s| s.next_wake());
            let wait = next.map_or(3_600_000, |at| at.saturating_sub(now));
            let (wake, woken) = futures_channel::oneshot::channel();
            *refresher.wake.borrow_mut() = Some(wake);
            drop(inner);
            // An announcement wakes it early; a client dropped meanwhile drops the sender.
            let timer = gloo_timers::future::TimeoutFuture::new(u32::try_from(wait).unwrap_or(u32::MAX));
            let _ = select(woken, timer).await;
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
