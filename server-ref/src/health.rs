//! `/healthz`, `/readyz`, `/metrics` (Prometheus text) and the metrics themselves.

use std::{sync::OnceLock, time::Instant};

use axum::{
    Json,
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::{app::AppState, error::ApiError};

/// Events stored for the first time.
pub const EVENTS_ACCEPTED: &str = "meterline_events_accepted_total";
/// Events already stored.
pub const EVENTS_DUPLICATE: &str = "meterline_events_duplicate_total";
/// Events refused by validation.
pub const EVENTS_REJECTED: &str = "meterline_events_rejected_total";
/// HTTP request latency by route and status.
pub const HTTP_DURATION: &str = "meterline_http_request_duration_seconds";
/// Events per ingest request.
pub const BATCH_SIZE: &str = "meterline_ingest_batch_size";

/// Events per writer transaction (group commit).
pub const COMMIT_SIZE: &str = "meterline_commit_events";

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn install_metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(HTTP_DURATION.into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(BATCH_SIZE.into()),
                        &[1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(COMMIT_SIZE.into()),
                        &[1.0, 10.0, 100.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 20000.0],
                    )
                })
                .map(|b| b.build_recorder())
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "metric buckets rejected; using summaries");
                    PrometheusBuilder::new().build_recorder()
                });
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            metrics::describe_counter!(EVENTS_ACCEPTED, "Events stored for the first time.");
            metrics::describe_counter!(EVENTS_DUPLICATE, "Events whose (source, id) was already stored.");
            metrics::describe_counter!(EVENTS_REJECTED, "Events refused by validation.");
            metrics::describe_histogram!(HTTP_DURATION, metrics::Unit::Seconds, "HTTP request latency.");
            metrics::describe_histogram!(BATCH_SIZE, "Events per ingest request.");
            metrics::describe_histogram!(COMMIT_SIZE, "Events per writer transaction (group commit).");
            for name in [EVENTS_ACCEPTED, EVENTS_DUPLICATE, EVENTS_REJECTED] {
                metrics::counter!(name).increment(0);
            }
            crate::stream::describe_metrics();
            crate::ratelimit::describe_metrics();
            handle
        })
        .clone()
}

/// Counts one ingest request's events.
pub fn record_ingest(total: usize, accepted: u64, duplicates: u64, rejected: usize) {
    metrics::histogram!(BATCH_SIZE).record(total as f64);
    metrics::counter!(EVENTS_ACCEPTED).increment(accepted);
    metrics::counter!(EVENTS_DUPLICATE).increment(duplicates);
    metrics::counter!(EVENTS_REJECTED).increment(rejected as u64);
}

/// Middleware: records each request's latency by matched route and status.
pub async fn track_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::histogram!(
        HTTP_DURATION,
        "method" => method,
        "route" => route,
        "status" => response.status().as_u16().to_string()
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /healthz`: the process is up — always `200 {"status":"ok"}`.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: `200` when the database answers, else `503 unavailable`.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if state.store.ping().await {
        Ok(Json(json!({"status": "ready"})))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database does not answer",
        ))
    }
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The OpenAPI 3.1 description of this API (`server-ref/openapi.json`, kept in step with the
/// routes by `tests/it/openapi.rs` and checked against live answers by schemathesis in `make test`).
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// `GET /openapi.json`: the OpenAPI document; no key needed.
pub async fn openapi() -> Response {
    let mut response = OPENAPI_JSON.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
