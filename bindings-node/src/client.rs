//! `NativeClient`: the core's [`Client`] as a JavaScript class. Each method clones the core
//! handle, calls the core and maps the error; `index.js` puts the idiomatic API on top.

use std::{sync::Arc, time::Duration};

use meterline_core::{
    Client, Error as CoreError, arguments,
    runtime::native::{Callbacks, ConnectionCallback, ErrorCallback, TokenProvider, UsageThresholdCallback},
    sdk::Sdk,
};
use napi::{
    Env, Result,
    bindgen_prelude::{Function, Object, Promise, PromiseRaw, spawn_blocking},
    threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode},
};
use napi_derive::napi;

use crate::{
    config::config_from_js,
    entitlements::{ConnectionChange, UsageThreshold},
    error::{ErrorReport, IntoNapiErr},
    stats::Stats,
};

/// A JS function the worker thread calls with `T`. Weak: it never keeps the event loop
/// alive.
type Listener<T> = ThreadsafeFunction<T, (), T, napi::Status, false, true>;

/// Wraps `f` in a weak thread-safe function (see [`Listener`]).
fn listener<T: 'static + napi::bindgen_prelude::ToNapiValue>(f: Function<T, ()>) -> Result<Listener<T>> {
    f.build_threadsafe_function::<T>().weak::<true>().build()
}

/// `tokenProvider` as the core calls it: on a blocking thread of the worker, which waits for
/// the JS thread to run the function and for its promise (the JS layer makes every answer
/// one, and turns a throw or a non-string into a rejection, which the core reports).
fn provider(f: Function<(), Promise<String>>) -> Result<TokenProvider> {
    let tsfn: ThreadsafeFunction<(), Promise<String>, (), napi::Status, false, true> =
        f.build_threadsafe_function::<()>().weak::<true>().build()?;
    let tsfn = Arc::new(tsfn);
    Ok(Arc::new(move || {
        let tsfn = tsfn.clone();
        let answer = async move { tsfn.call_async_catch(()).await?.await };
        tokio::runtime::Handle::try_current()
            .map_err(|e| format!("no runtime to wait on: {e}"))?
            .block_on(answer)
            .map_err(|e| e.reason)
    }))
}

/// The native half of `meterline.Client` (internal: use the `Client` class of the package).
#[napi]
pub struct NativeClient {
    /// `None` once handed to [`Drop`].
    inner: Option<Client>,
}

#[napi]
impl NativeClient {
    /// Starts a client: `options` as documented for `new Client()`. The listeners receive,
    /// on the JS thread, background errors (as error reports), the stream's usage threshold
    /// messages and its connection changes. Throws a `ConfigError` report naming the option.
    #[napi(constructor)]
    pub fn new(
        env: &Env,
        options: Object,
        on_error: Option<Function<ErrorReport, ()>>,
        on_usage_threshold: Option<Function<UsageThreshold, ()>>,
        on_connection: Option<Function<ConnectionChange, ()>>,
        token_provider: Option<Function<(), Promise<String>>>,
    ) -> Result<Self> {
        let mut config = config_from_js(env, &options, token_provider.is_some())?;
        let node = env.get_node_version()?;
        config.sdk = Sdk {
            name: "meterline-node".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            runtime: format!("Node.js v{}.{}.{}", node.major, node.minor, node.patch),
        };
        // Every call is non-blocking: the worker never waits for the JS thread. A call fails
        // only while the environment is going away, when nobody is left to listen.
        let mut callbacks = Callbacks::default();
        if let Some(f) = on_error {
            let tsfn = listener(f)?;
            let on_error: ErrorCallback = Arc::new(move |err| {
                let _ = tsfn.call(ErrorReport::from(err), ThreadsafeFunctionCallMode::NonBlocking);
            });
            callbacks.on_error = Some(on_error);
        }
        if let Some(f) = on_usage_threshold {
            let tsfn = listener(f)?;
            let on_usage: UsageThresholdCallback = Arc::new(move |event| {
                let _ = tsfn.call(UsageThreshold::from(event), ThreadsafeFunctionCallMode::NonBlocking);
            });
            callbacks.on_usage_threshold = Some(on_usage);
        }
        if let Some(f) = on_connection {
            let tsfn = listener(f)?;
            let on_connection: ConnectionCallback = Arc::new(move |connected, reason| {
                let change = ConnectionChange {
                    connected,
                    reason: reason.to_owned(),
                };
                let _ = tsfn.call(change, ThreadsafeFunctionCallMode::NonBlocking);
            });
            callbacks.on_connection_change = Some(on_connection);
        }
        if let Some(f) = token_provider {
            callbacks.token_provider = Some(provider(f)?);
        }
        let client = Client::with_callbacks(config, callbacks).map_err(|e| e.into_napi_err(env))?;
        Ok(NativeClient { inner: Some(client) })
    }

    /// A function that tracks on this client: `(type, subject, data, id?, time?) => id`, the
    /// hot path of `Client.track()` (see [`crate::track`]). It shares the core client; when
    /// it is garbage-collected its share is released off the JavaScript thread.
    #[napi(
        ts_return_type = "(type: string, subject: string, data: string, id?: string | null, time?: string | null) => string"
    )]
    pub fn tracker<'env>(&self, env: &'env Env) -> Result<crate::track::Tracker<'env>> {
        crate::track::tracker(env, self.client(env)?.clone())
    }

    /// Acts for `subject` from now on with its customer `token` (publishable keys): events
    /// tracked before stay the previous user's; its cached entitlements are dropped.
    #[napi]
    pub fn identify(&self, env: &Env, subject: String, token: String) -> Result<()> {
        self.client(env)?
            .identify(&subject, &token)
            .map_err(|e| e.into_napi_err(env))
    }

    /// Drops the identity (sign-out): `track()` throws `ForbiddenError` until `identify()`.
    #[napi]
    pub fn reset(&self, env: &Env) -> Result<()> {
        self.client(env)?.reset().map_err(|e| e.into_napi_err(env))
    }

    /// Consent withdrawn: `track()` keeps nothing (returns `null`, counted in
    /// `stats().optedOut`) and what is queued is discarded; recorded in `spoolDir` if set.
    #[napi]
    pub fn opt_out(&self, env: &Env) -> Result<()> {
        self.client(env)?.opt_out().map_err(|e| e.into_napi_err(env))
    }

    /// Consent given again: `track()` queues and sends events from now on.
    #[napi]
    pub fn opt_in(&self, env: &Env) -> Result<()> {
        self.client(env)?.opt_in().map_err(|e| e.into_napi_err(env))
    }

    /// Whether the user opted out (in this run, or as recorded in `spoolDir`).
    #[napi(getter)]
    pub fn opted_out(&self, env: &Env) -> Result<bool> {
        Ok(self.client(env)?.is_opted_out())
    }

    /// Resolves once everything tracked before the call is settled; rejects with a
    /// `timeout` report after `timeoutMs` (default: the core's 10 s).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn flush<'env>(&self, env: &'env Env, timeout_ms: Option<f64>) -> Result<PromiseRaw<'env, ()>> {
        let client = self.client(env)?.clone();
        let timeout = wait(env, timeout_ms)?;
        env.spawn_future_with_callback(async move { Ok(client.flush_async(timeout).await) }, |env, done| {
            done.map_err(|e| e.into_napi_err(env))
        })
    }

    /// Stops accepting events and delivers what is queued within `timeoutMs` (on a blocking
    /// thread: the core's shutdown joins its worker). Rejects with a `timeout` report when
    /// events had to be dropped (or, with `spoolDir`, left in the spool). The spool directory is
    /// released before it settles. Harmless to call twice.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn shutdown<'env>(&self, env: &'env Env, timeout_ms: Option<f64>) -> Result<PromiseRaw<'env, ()>> {
        let client = self.client(env)?.clone();
        let timeout = wait(env, timeout_ms)?;
        env.spawn_future_with_callback(
            async move {
                Ok(spawn_blocking(move || client.shutdown(timeout))
                    .await
                    .unwrap_or_else(|e| Err(CoreError::Internal(format!("the shutdown task failed: {e}")))))
            },
            |env, done| done.map_err(|e| e.into_napi_err(env)),
        )
    }

    /// A snapshot of the counters.
    #[napi]
    pub fn stats(&self, env: &Env) -> Result<Stats> {
        Ok(self.client(env)?.stats().into())
    }

    /// The core client, or a `client_closed` report once it was released.
    pub(crate) fn client(&self, env: &Env) -> Result<&Client> {
        self.inner
            .as_ref()
            .ok_or_else(|| meterline_core::Error::Closed.into_napi_err(env))
    }
}

impl Drop for NativeClient {
    /// A client garbage-collected (or torn down with its worker thread) without `shutdown()`
    /// still delivers what it queued — the core's last-handle drop flushes for up to 5 s —
    /// but on a thread of its own, never on the JavaScript thread.
    fn drop(&mut self) {
        release(self.inner.take());
    }
}

/// Drops a core client handle off the JavaScript thread: when it is the last one, the core's
/// drop flushes the queue for up to 5 s.
pub(crate) fn release(client: Option<Client>) {
    if let Some(client) = client {
        let spawned = std::thread::Builder::new()
            .name("meterline-drop".into())
            .spawn(move || drop(client));
        if let Err(e) = spawned {
            // Without a thread the client is dropped here after all; say why it may block.
            eprintln!("meterline: cannot start a thread to release a client ({e}); releasing it inline");
        }
    }
}

/// `timeoutMs` → `Duration` by the core's rule (`undefined`: 10 s; else a finite number ≥ 0,
/// or an `ArgumentError` report naming `timeoutMs`).
fn wait(env: &Env, timeout_ms: Option<f64>) -> Result<Duration> {
    arguments::wait_from_millis(timeout_ms).map_err(|e| e.into_napi_err(env))
}
