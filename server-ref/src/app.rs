//! Application state, the router and the `serve` command.

use std::{io::Write, sync::Arc, time::Duration};

use axum::{
    Router,
    http::StatusCode,
    middleware,
    routing::{delete, get, post, put},
};
use meterline_core::key::KeyKind;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::{catch_panic::CatchPanicLayer, timeout::TimeoutLayer, trace::TraceLayer};

use crate::{
    admin,
    auth::{KeyVerifier, mint},
    browser,
    config::Config,
    entitlements::{self, change::Publish, metering::Metering},
    error, events, health, ingest,
    ratelimit::RateLimits,
    schemas::{self, SchemaCache},
    settings,
    store::{PgStore, Storage, Store, Writer},
    stream::{self, Hub, StreamControl},
};

/// Frames a stream connection may fall behind the hub before it is closed as a slow consumer.
pub const HUB_CAPACITY: usize = 4096;

/// Shared state of every handler. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database: SQLite with its event writer, or PostgreSQL.
    pub store: Storage,
    /// API key verification and its cache.
    pub keys: Arc<KeyVerifier>,
    /// Compiled schemas by project.
    pub schemas: Arc<SchemaCache>,
    /// The effective configuration.
    pub config: Arc<Config>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Fan-out of committed stream messages to open `/v1/stream` connections.
    pub hub: Arc<Hub>,
    /// Per-key token buckets (`[limits]`).
    pub limits: Arc<RateLimits>,
    /// Revocations and shutdown for the open stream connections.
    pub streams: Arc<StreamControl>,
}

impl AppState {
    /// The state of a server on `store` and `writer` (also used by in-process tests); the
    /// stream hub is the writer's.
    pub fn new(config: Config, store: Store, writer: Arc<Writer>, metrics: PrometheusHandle) -> Self {
        let hub = writer.hub();
        AppState::with_storage(config, Storage::Sqlite(store, Some(writer)), hub, metrics)
    }

    /// The state of a node on PostgreSQL; its hub is fed by [`crate::stream::follow`].
    pub fn on_postgres(config: Config, store: PgStore, metrics: PrometheusHandle) -> Self {
        let hub = Arc::new(Hub::new(HUB_CAPACITY));
        AppState::with_storage(config, Storage::Postgres(store), hub, metrics)
    }

    fn with_storage(config: Config, store: Storage, hub: Arc<Hub>, metrics: PrometheusHandle) -> Self {
        AppState {
            store,
            hub,
            keys: Arc::new(KeyVerifier::new(Duration::from_secs(config.auth.key_cache_secs))),
            schemas: Arc::new(SchemaCache::new(Duration::from_secs(config.auth.key_cache_secs))),
            limits: Arc::new(RateLimits::new(&config.limits)),
            config: Arc::new(config),
            metrics,
            streams: Arc::new(StreamControl::default()),
        }
    }
}

/// The full HTTP API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/events", post(ingest::post_events).get(events::list_events))
        .route("/api/v1/events", post(ingest::post_openmeter_events))
        .route("/v1/beacon", post(ingest::beacon::post_beacon))
        .route("/v1/schema", get(schemas::get_schema))
        .route("/v1/admin/schemas", get(schemas::list_schemas))
        .route(
            "/v1/admin/schemas/{type}",
            put(schemas::put_type_schema)
                .get(schemas::get_type_schema)
                .delete(schemas::delete_type_schema),
        )
        .route(
            "/v1/admin/settings",
            get(settings::get_settings).put(settings::put_settings),
        )
        .route("/v1/admin/keys", post(admin::post_key).get(admin::list_keys))
        .route("/v1/admin/keys/{id}", delete(admin::revoke_key))
        .merge(entitlements::routes())
        .route("/v1/stream", get(stream::socket::get_stream))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout(),
        ))
        .layer(CatchPanicLayer::new())
        .layer(middleware::from_fn(browser::refuse_credentials_in_url))
        .layer(middleware::map_response(error::json_errors))
        .layer(middleware::from_fn(browser::cors))
        .layer(middleware::from_fn(health::track_request))
        .layer(TraceLayer::new_for_http().make_span_with(browser::RequestSpan))
        .with_state(state)
}

/// Keys printed once when a project is created.
#[derive(Debug, Clone)]
pub struct NewProjectKeys {
    /// The project name.
    pub project: String,
    /// `ml_sk_…`.
    pub secret: String,
    /// `ml_ak_…`.
    pub admin: String,
}

impl NewProjectKeys {
    /// Writes the lines `project: NAME`, `secret key: …`, `admin key: …` to stdout.
    pub fn print(&self) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "project: {}", self.project)?;
        writeln!(out, "secret key: {}", self.secret)?;
        writeln!(out, "admin key: {}", self.admin)?;
        out.flush()
    }
}

/// Creates a project with one secret and one admin key.
pub async fn create_project(store: &Storage, name: &str) -> Result<NewProjectKeys, crate::store::StoreError> {
    let secret = mint(KeyKind::Secret);
    let admin = mint(KeyKind::Admin);
    store
        .create_project(name, &[secret.to_new_key(), admin.to_new_key()])
        .await?;
    Ok(NewProjectKeys {
        project: name.to_owned(),
        secret: secret.key.expose(),
        admin: admin.key.expose(),
    })
}

/// Runs the server until SIGTERM/SIGINT: opens the store, creates the `default` project on
/// an empty database (printing its keys once), prints `meterline-server listening on
/// http://ADDR`, serves, and on a signal stops accepting, lets in-flight requests finish,
/// commits what the writer holds and returns.
pub async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let metrics = health::install_metrics();
    let (state, writer, followers, membership) = if config.storage.is_postgres() {
        let settings = crate::store::PgSettings {
            answer_ttl_ms: config.entitlements.ttl_ms,
            ..config.storage.pg_settings()
        };
        let store = PgStore::open(&config.storage.database_url, &settings).await?;
        let state = AppState::on_postgres(config.clone(), store.clone(), metrics.clone());
        // Following starts before serving: every message committed from here on reaches
        // this node's hub, whichever node committed it.
        let followers = stream::follow::spawn(&state, &store).await?;
        // Each node enforces its share of [limits] over the live nodes (DR-115).
        let membership = crate::nodes::Membership::join(&store, state.limits.clone()).await;
        (state, None, Some(followers), Some(membership))
    } else {
        let (store, write_conn) = Store::open(&config.storage).await?;
        let metering = Metering::new(Arc::new(Hub::new(HUB_CAPACITY)), config.entitlements.ttl_ms);
        let writer = Arc::new(Writer::spawn(
            write_conn,
            config.storage.writer_queue,
            config.storage.max_commit_events,
            metering,
        ));
        let state = AppState::new(config.clone(), store, writer.clone(), metrics.clone());
        (state, Some(writer), None, None)
    };
    let store = state.store.clone();
    if store.project_count().await? == 0 {
        match create_project(&store, "default").await {
            Ok(keys) => keys.print()?,
            // Another node starting on the same database created it first.
            Err(crate::store::StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(catalog) = &config.catalog {
        let summary = catalog
            .apply(&store, Publish::Hub(&state.hub), config.entitlements.ttl_ms)
            .await
            .map_err(|e| format!("applying the [catalog] of the config file failed: {e}"))?;
        tracing::info!(
            created = summary.created,
            replaced = summary.replaced,
            unchanged = summary.unchanged,
            "applied the [catalog] of the config file"
        );
    }
    let stream_upkeep = stream::upkeep::spawn(&state);
    let streams = state.streams.clone();
    let rate_limits = state.limits.clone();
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            metrics.run_upkeep();
            rate_limits.forget_idle();
        }
    });
    let checkpoints = store.sqlite().cloned().map(|store| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if let Err(e) = store.checkpoint().await {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
        })
    });

    let listener = tokio::net::TcpListener::bind(config.server.bind).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "meterline-server listening on http://{addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, database = %crate::store::redact_url(&config.storage.database_url), "listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let limits = crate::listener::ConnectionLimits {
        header_read_timeout: Duration::from_secs(config.server.header_read_timeout_secs),
        max_connections: config.server.max_connections,
    };
    let mut server = tokio::spawn(crate::listener::serve(listener, router(state), limits, async move {
        let mut stop_rx = stop_rx;
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    tokio::select! {
        result = &mut server => {
            result?;
        }
        signal = shutdown_signal() => {
            tracing::info!(signal, "shutting down: finishing in-flight requests");
            let _ = stop_tx.send(true);
            streams.shutting_down();
            match tokio::time::timeout(config.shutdown_timeout(), &mut server).await {
                Ok(result) => result?,
                Err(_) => {
                    tracing::warn!("in-flight requests did not finish in time; closing them");
                    server.abort();
                }
            }
        }
    }
    if let Some(writer) = writer {
        writer.shutdown().await;
    }
    if let Some(membership) = membership {
        membership.leave().await;
    }
    drop(stream_upkeep);
    drop(followers);
    upkeep.abort();
    if let Some(checkpoints) = checkpoints {
        checkpoints.abort();
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM, naming the signal.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
