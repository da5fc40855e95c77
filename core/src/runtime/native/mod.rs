//! The native runtime: [`Client`], backed by one background thread running a small tokio
//! runtime (reqwest for HTTP, tokio-tungstenite for the stream). `track()` never touches the
//! network: it validates, serializes and queues, and the background sender batches and
//! delivers. `entitlement()` answers cache hits on the caller's thread; fetches, the stream
//! and the callbacks run on the worker.

mod client;
mod consent;
mod credentials;
mod entitlements;
mod fetch;
mod flight;
mod identity;
mod ids;
mod lifecycle;
mod pipeline;
mod schemas;
mod sender;
mod spool;
mod stream;

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU8, AtomicU64},
    },
    time::Duration,
};

pub use self::client::Client;
pub use self::credentials::TokenProvider;
pub use self::entitlements::{PendingEntitlement, TryEntitlement};
use self::{credentials::Credentials, entitlements::EntitlementState, pipeline::Pipeline};
pub(crate) use crate::track::TrackData;
use crate::{
    config::Config, entitlement_cache::UsageThresholdEvent, error::Error, key::ApiKey, schema::SchemaRegistry,
};

/// A callback receiving errors that happen in the background (rejected events, batches
/// given up on, schema refresh failures, entitlement fetch and stream failures — the last
/// two at most once a minute per kind). It runs on the client's worker thread; a panic in
/// it is caught and logged.
pub type ErrorCallback = Arc<dyn Fn(&Error) + Send + Sync>;

/// A callback receiving the stream's `usage.threshold` messages (a metered feature of a
/// cached subject crossed 80 %, 100 % … of its limit). Runs on the worker thread; after a
/// reconnect a message may come again (same `seq`).
pub type UsageThresholdCallback = Arc<dyn Fn(&UsageThresholdEvent) + Send + Sync>;

/// A callback told when the realtime stream connects (`true`, `"connected"`) or is lost
/// (`false`, why). Runs on the worker thread.
pub type ConnectionCallback = Arc<dyn Fn(bool, &str) + Send + Sync>;

/// Functions the client calls from the background. Build with `Callbacks::default()` and
/// set the ones you need.
#[derive(Clone, Default)]
pub struct Callbacks {
    /// See [`ErrorCallback`].
    pub on_error: Option<ErrorCallback>,
    /// See [`UsageThresholdCallback`].
    pub on_usage_threshold: Option<UsageThresholdCallback>,
    /// See [`ConnectionCallback`].
    pub on_connection_change: Option<ConnectionCallback>,
    /// With a publishable key: where fresh customer tokens come from (see
    /// [`TokenProvider`]). With it, `customer_token` may be left out (the provider is asked
    /// before the first request).
    pub token_provider: Option<TokenProvider>,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("on_error", &self.on_error.is_some())
            .field("on_usage_threshold", &self.on_usage_threshold.is_some())
            .field("on_connection_change", &self.on_connection_change.is_some())
            .field("token_provider", &self.token_provider.is_some())
            .finish()
    }
}

impl Callbacks {
    /// Calls `on_error`, containing a panicking callback.
    pub(crate) fn error(&self, err: &Error) {
        if let Some(cb) = &self.on_error {
            contain("on_error", || cb(err));
        }
    }

    /// Calls `on_usage_threshold`, containing a panicking callback.
    pub(crate) fn usage_threshold(&self, event: &UsageThresholdEvent) {
        if let Some(cb) = &self.on_usage_threshold {
            contain("on_usage_threshold", || cb(event));
        }
    }

    /// Calls `on_connection_change`, containing a panicking callback.
    pub(crate) fn connection_change(&self, connected: bool, reason: &str) {
        if let Some(cb) = &self.on_connection_change {
            contain("on_connection_change", || cb(connected, reason));
        }
    }
}

fn contain(name: &str, call: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).is_err() {
        tracing::error!("the {name} callback panicked; ignored");
    }
}

/// [`Shared::gate`] bit: the user opted out; `track()` keeps nothing.
pub(crate) const GATE_OPTED_OUT: u8 = 1;
/// [`Shared::gate`] bit: `reset()` left a publishable key without identity; `track()` fails.
pub(crate) const GATE_NO_IDENTITY: u8 = 2;

/// The header that carries a publishable key's customer token (DESIGN §6).
pub(crate) const CUSTOMER_TOKEN_HEADER: &str = "x-meterline-customer-token";

/// State shared by the client handles and the worker thread.
pub(crate) struct Shared {
    config: Config,
    key: ApiKey,
    http: reqwest::Client,
    ingest_url: String,
    schemas: RwLock<SchemaRegistry>,
    pipeline: Pipeline,
    callbacks: Callbacks,
    closed: AtomicBool,
    entitlements: EntitlementState,
    /// The worker's runtime, for spawning fetches from callers' threads.
    runtime: tokio::runtime::Handle,
    /// When to refresh the schemas (and the wake-up of the task that does).
    schema_refresh: schemas::SchemaRefresher,
    /// The customer token (publishable keys) and its provider.
    credentials: Credentials,
    /// What stops `track()`: [`GATE_OPTED_OUT`] ([`Client::opt_out`]) and
    /// [`GATE_NO_IDENTITY`] ([`Client::reset`]); one relaxed load on the hot path.
    gate: AtomicU8,
    /// Events `track()` refused or the queue discarded while opted out.
    opted_out_events: AtomicU64,
}

fn build_http(config: &Config, key: &ApiKey) -> Result<reqwest::Client, Error> {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.expose()))
        .map_err(|_| Error::config("api_key", "contains characters not allowed in a header"))?;
    auth.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, auth);
    // The customer token is not a default header: it is set per request
    // (`credentials::send`), so a refreshed token applies at once.
    reqwest::Client::builder()
        .default_headers(headers)
        .user_agent(user_agent(config))
        .timeout(config.request_timeout)
        .connect_timeout(config.request_timeout.min(Duration::from_secs(5)))
        // Below the server's idle limit (meterline-server: 30 s), so a pooled connection is
        // dropped here before the server closes it under a request.
        .pool_idle_timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| {
            Error::config(
                "endpoint",
                format!("cannot build the HTTP client: {}", sender::describe(&e)),
            )
        })
}

/// The `User-Agent` of every request and of the stream's upgrade: the SDK, its language,
/// version and runtime (set by the binding in `config.sdk`).
pub(crate) fn user_agent(config: &Config) -> String {
    config.sdk.header_value(std::env::consts::OS, std::env::consts::ARCH)
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}
