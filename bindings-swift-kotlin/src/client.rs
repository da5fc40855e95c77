//! [`Client`]: the core's client as a uniffi object (Kotlin `dev.meterline.Client`, Swift
//! `Client`). Each method clones the core handle, calls the core and maps the error.

use std::sync::Arc;

use meterline_core::{
    Error as CoreError, ValidationError, arguments,
    options::{self, Spelling},
    runtime::native::{Callbacks, ConnectionCallback, ErrorCallback, UsageThresholdCallback},
};
use serde_json::value::RawValue;

use crate::{
    entitlements::UsageThreshold,
    error::MeterlineError,
    identity::{self, TokenProvider},
    options::ClientOptions,
    stats::Stats,
};

/// What a client tells the application from the background. Its methods run on the client's
/// worker thread: return quickly and never call `entitlement()` blocking from them.
#[uniffi::export(with_foreign)]
pub trait ClientListener: Send + Sync {
    /// A metered feature of a cached subject crossed a fraction of its limit (the stream's
    /// `usage.threshold`); delivered at least once, dedupe by `seq`.
    fn on_usage_threshold(&self, event: UsageThreshold);
    /// Something failed in the background: a rejected event (`RejectedError`, with `path`),
    /// a batch given up on, a schema refresh, an entitlement fetch, the stream, a dropped event.
    fn on_error(&self, error: MeterlineError);
    /// The realtime stream connected (`connected` true, reason `connected`) or was lost (why).
    fn on_connection_change(&self, connected: bool, reason: String);
}

/// Sends usage events to a meterline server and answers entitlements. Thread-safe; one per
/// application. Call `shutdown()` before the app or process ends (and `flush()` when an app
/// goes to the background: Android `onStop`, iOS `sceneDidEnterBackground`).
#[derive(uniffi::Object)]
pub struct Client {
    pub(crate) inner: meterline_core::Client,
}

#[uniffi::export]
impl Client {
    /// Starts a client with `options` (see [`ClientOptions`]); `listener` receives the
    /// background notices; `tokenProvider` (publishable keys) supplies fresh customer tokens,
    /// and with it `customerToken` may be left out. Throws `ConfigException` naming the
    /// option that is wrong.
    #[uniffi::constructor(default(listener = None, token_provider = None))]
    pub fn new(
        options: ClientOptions,
        listener: Option<Arc<dyn ClientListener>>,
        token_provider: Option<Arc<dyn TokenProvider>>,
    ) -> Result<Arc<Self>, MeterlineError> {
        let given = options.given().map_err(|e| MeterlineError::as_named(&e))?;
        let mut config = options::config_from_host_with_provider(given, Spelling::Camel, &[], token_provider.is_some())
            .map_err(|e| MeterlineError::as_named(&e))?;
        config.sdk = identity::sdk();
        let callbacks = Callbacks {
            token_provider: token_provider.map(identity::core_provider),
            ..callbacks(listener)
        };
        let inner = meterline_core::Client::with_callbacks(config, callbacks)?;
        Ok(Arc::new(Client { inner }))
    }

    /// Acts for `subject` from now on, with its customer `token` (publishable keys; later
    /// tokens come from the `TokenProvider`). Events tracked before stay the previous user's;
    /// its cached entitlements are dropped. Throws `ConfigException` for a secret key,
    /// `ArgumentException` for a token that is not a customer token for `subject`.
    pub fn identify(&self, subject: String, token: String) -> Result<(), MeterlineError> {
        Ok(self.inner.identify(&subject, &token)?)
    }

    /// Drops the identity (sign-out): events tracked before are still delivered; `track()`
    /// throws `ForbiddenException` until `identify()`. Throws `ConfigException` for a
    /// secret key.
    pub fn reset(&self) -> Result<(), MeterlineError> {
        Ok(self.inner.reset()?)
    }

    /// The user withdrew consent: `track()` keeps nothing (returns null, counted in
    /// `stats().optedOut`) until `optIn()`; what is queued is discarded. Recorded in
    /// `spoolDir` when one is set (throws `SpoolException` when it cannot be; it applies
    /// all the same).
    pub fn opt_out(&self) -> Result<(), MeterlineError> {
        Ok(self.inner.opt_out()?)
    }

    /// The user consents again: `track()` queues and sends events from now on.
    pub fn opt_in(&self) -> Result<(), MeterlineError> {
        Ok(self.inner.opt_in()?)
    }

    /// Whether the user opted out (in this run, or as recorded in `spoolDir`).
    pub fn is_opted_out(&self) -> bool {
        self.inner.is_opted_out()
    }

    /// Validates an event and queues it; never waits on the network. `data` is the event's
    /// data as JSON text of an object (`"{\"tokens\": 12}"`). `id` defaults to a new UUIDv7,
    /// `time` to now (RFC 3339). Returns the event id, or null when the overflow policy
    /// dropped it. Throws `ValidationException` (with `path`) for an invalid event — it is
    /// not queued — `QueueFullException` under the `reject` policy, `ClosedException` after
    /// shutdown.
    #[uniffi::method(default(id = None, time = None))]
    pub fn track(
        &self,
        r#type: String,
        subject: String,
        data: String,
        id: Option<String>,
        time: Option<String>,
    ) -> Result<Option<String>, MeterlineError> {
        self.track_text(&r#type, &subject, &data, id, time)
    }

    /// Sends everything queued so far and waits (at most `timeout` seconds, default 10) until
    /// the server has answered for it. Throws `TimeoutException` when that takes longer
    /// (what is undelivered stays queued). Blocking: call it off the main thread.
    #[uniffi::method(default(timeout = None))]
    pub fn flush(&self, timeout: Option<f64>) -> Result<(), MeterlineError> {
        let timeout = arguments::wait_from_secs(timeout)?;
        Ok(self.inner.flush(timeout)?)
    }

    /// Stops accepting events, delivers what is queued within `timeout` seconds (default
    /// 10) and stops the background worker. Throws `TimeoutException` when events had to be
    /// dropped (or, with `spoolDir`, left in the spool for the next start). Harmless to call
    /// twice. Blocking.
    #[uniffi::method(default(timeout = None))]
    pub fn shutdown(&self, timeout: Option<f64>) -> Result<(), MeterlineError> {
        let timeout = arguments::wait_from_secs(timeout)?;
        Ok(self.inner.shutdown(timeout)?)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.stats().into()
    }
}

impl Client {
    /// `track()` of both lanes: uniffi's (above) and the JVM's packed one ([`crate::lean`]).
    pub(crate) fn track_text(
        &self,
        event_type: &str,
        subject: &str,
        data: &str,
        id: Option<String>,
        time: Option<String>,
    ) -> Result<Option<String>, MeterlineError> {
        let data: &RawValue = serde_json::from_str(data)
            .map_err(|e| ValidationError::invalid_event("/data", format!("`data` is not one JSON value: {e}")))?;
        Ok(self.inner.track_json(event_type, subject, data, id, time)?)
    }
}

/// The core's callbacks, each calling the listener.
fn callbacks(listener: Option<Arc<dyn ClientListener>>) -> Callbacks {
    let Some(listener) = listener else {
        return Callbacks::default();
    };
    let on_error: ErrorCallback = {
        let listener = listener.clone();
        Arc::new(move |err: &CoreError| listener.on_error(MeterlineError::from(err.clone())))
    };
    let on_usage_threshold: UsageThresholdCallback = {
        let listener = listener.clone();
        Arc::new(move |event| listener.on_usage_threshold(UsageThreshold::from(event)))
    };
    let on_connection_change: ConnectionCallback =
        Arc::new(move |connected, reason| listener.on_connection_change(connected, reason.to_owned()));
    Callbacks {
        on_error: Some(on_error),
        on_usage_threshold: Some(on_usage_threshold),
        on_connection_change: Some(on_connection_change),
        ..Callbacks::default()
    }
}
