//! Keeps the client's copy of the server's event schemas current: sends the `GET /v1/schema`
//! the core's [`SchemaRefresh`] schedule asks for and installs what comes back.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use reqwest::header::{ETAG, IF_NONE_MATCH};
use tokio::sync::Notify;

use super::{
    Shared,
    credentials::{self, Sent, Whose},
    entitlements::lock,
    sender::describe,
};
use crate::{
    config::Config,
    error::Error,
    schema::{SchemaDocument, SchemaRegistry},
    schema_refresh::{SchemaAnswer, SchemaRefresh, SchemaStatus, status_meaning},
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

/// The client's refresh schedule ([`SchemaRefresh`]) and the wake-up of the task that
/// follows it.
#[derive(Debug)]
pub(crate) struct SchemaRefresher {
    schedule: Mutex<SchemaRefresh>,
    wake: Notify,
}

impl SchemaRefresher {
    /// The first fetch is due at once.
    pub fn new(config: &Config) -> Self {
        SchemaRefresher {
            schedule: Mutex::new(SchemaRefresh::new(config.schema_refresh_interval, 0)),
            wake: Notify::new(),
        }
    }

    /// The stream announced schemas with `etag` (`schema.updated`) at `now`.
    pub fn announce(&self, etag: &str, now: u64) {
        lock(&self.schedule).announced(etag, now);
        self.wake.notify_one();
    }
}

/// Follows the schedule until the worker stops: sends each GET it asks for, hands it the
/// answer, and sleeps until its next wake-up (or an announcement).
pub(crate) async fn refresh_loop(shared: Arc<Shared>) {
    let refresher = &shared.schema_refresh;
    let now_ms = || shared.entitlements.clock.now_ms();
    loop {
        let request = lock(&refresher.schedule).poll(now_ms());
        if let Some(request) = request {
            let answer = match get(&shared, request.if_none_match.as_deref()).await {
                Ok(answer) => answer,
                Err(err) => {
                    tracing::warn!(code = err.code(), "schema refresh failed: {err}");
                    shared.callbacks.error(&err);
                    SchemaAnswer::Failed
                }
            };
            lock(&refresher.schedule).completed(answer, now_ms());
            continue;
        }
        let wake = lock(&refresher.schedule).next_wake();
        let wait = wake.map_or(Duration::from_secs(3600), |at| {
            Duration::from_millis(at.saturating_sub(now_ms()))
        });
        let _ = tokio::time::timeout(wait, refresher.wake.notified()).await;
    }
}

/// An explicit refresh ([`Client::refresh_schemas`](super::Client::refresh_schemas)):
/// unconditional; what it installs becomes the schedule's ETag.
pub(crate) async fn fetch(shared: &Shared, etag: Option<&str>) -> Result<(), Error> {
    let answer = get(shared, etag).await?;
    lock(&shared.schema_refresh.schedule).installed(answer);
    Ok(())
}

/// One GET: installs a new document into the client's registry.
async fn get(shared: &Shared, etag: Option<&str>) -> Result<SchemaAnswer, Error> {
    let url = format!("{}/v1/schema", shared.config.base_url());
    let request = || {
        let request = shared.http.get(&url);
        match etag {
            Some(etag) => request.header(IF_NONE_MATCH, etag),
            None => request,
        }
    };
    let resp = match credentials::send(shared, Whose::Current, request).await {
        Sent::Answered(resp) => resp,
        Sent::Failed(e) => return Err(Error::Network(describe(&e))),
        Sent::NoToken(err) => return Err(err),
    };
    if status_meaning(resp.status().as_u16())? == SchemaStatus::NotModified {
        return Ok(SchemaAnswer::NotModified);
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
    Ok(SchemaAnswer::Installed {
        etag: Some(header_etag.unwrap_or(doc.etag)),
    })
}
