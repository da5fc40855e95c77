//! `NativeClient`: the core [`Client`] as a Python class. `meterline.Client` and
//! `meterline.AsyncClient` (Python) subclass it and add the context-manager forms, `stats()`
//! as a dataclass and the exit flush.
//!
//! Each method is the binding's three moves — take the core handle, call the core, map the
//! error — plus the two things only a binding can do: release the GIL while waiting, and
//! replace the core client after `fork()` (see `fork.rs`).

use std::{
    sync::{Arc, Mutex, MutexGuard, mpsc},
    time::Duration,
};

use meterline_core::{
    Client, Config, Error, arguments,
    entitlement_cache::UsageThresholdEvent,
    runtime::native::{
        Callbacks, ConnectionCallback, ErrorCallback, TokenProvider, TryEntitlement, UsageThresholdCallback,
    },
    sdk::Sdk,
};
use pyo3::{
    PyTraverseError, PyVisit,
    prelude::*,
    types::{PyBool, PyDict, PyFloat, PyInt, PyString},
};
use pyo3_async_runtimes::generic::future_into_py;

use crate::{
    config, convert,
    entitlements::{self, Entitlement},
    error::{IntoPyErr, to_py_err},
    fork,
    notices::{self, Callback, Notice},
    runtime::{self, AsyncRuntime},
};

/// How often a blocking wait wakes up to let Python handle signals (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// The native half of `meterline.Client` / `meterline.AsyncClient`.
#[pyclass(subclass, frozen, weakref, module = "meterline._native")]
pub struct NativeClient {
    slot: Mutex<Slot>,
    config: Config,
    callbacks: Callbacks,
    on_error: Option<Arc<Callback>>,
    on_threshold: Option<Arc<Callback>>,
    on_connection: Option<Arc<Callback>>,
    token_provider: Option<Arc<Callback>>,
    /// `overflow="block"`: `track()` may wait for room, so it releases the GIL.
    may_block: bool,
}

/// The core client of this process, and whether it was shut down. Locked only with the GIL
/// held, so never across a fork.
struct Slot {
    /// `None` only while the object is being dropped.
    client: Option<Client>,
    /// Fork generation the client was started in.
    born: u64,
    closed: bool,
}

impl Slot {
    /// Started in a parent process: its worker thread does not exist here.
    fn inherited(&self) -> bool {
        self.born != fork::generation()
    }

    /// The client to use in this process, replacing an inherited one (which is leaked: its
    /// locks may be held by threads that did not survive the fork).
    fn client(&mut self, config: &Config, callbacks: &Callbacks) -> Result<&Client, Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        if self.inherited() {
            let fresh = Client::with_callbacks(config.clone(), callbacks.clone())?;
            std::mem::forget(self.client.replace(fresh));
            self.born = fork::generation();
        }
        self.client.as_ref().ok_or(Error::Closed)
    }
}

/// The result of an awaited call, resolved to `None` or the exception to raise. (The error is
/// turned into a Python object when the asyncio future is completed, with the GIL held, not
/// on the runtime's threads.)
struct Outcome(Result<(), Error>);

impl<'py> IntoPyObject<'py> for Outcome {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.0 {
            Ok(()) => py.None().into_bound(py),
            Err(err) => to_py_err(py, &err).into_value(py).into_any().into_bound(py),
        })
    }
}

#[pymethods]
impl NativeClient {
    /// See `meterline.Client` for the options (the core's option table, in snake_case).
    #[new]
    #[pyo3(signature = (
        api_key=None, endpoint=None, *, on_error=None, on_usage_threshold=None,
        on_connection_change=None, token_provider=None, **options
    ))]
    fn new(
        api_key: Option<&Bound<'_, PyAny>>,
        endpoint: Option<&Bound<'_, PyAny>>,
        on_error: Option<&Bound<'_, PyAny>>,
        on_usage_threshold: Option<&Bound<'_, PyAny>>,
        on_connection_change: Option<&Bound<'_, PyAny>>,
        token_provider: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let has_provider = token_provider.is_some_and(|p| !p.is_none());
        let mut config = config::build(api_key, endpoint, options, has_provider)?;
        config.sdk = Python::attach(sdk);
        let on_error = callback("on_error", on_error)?;
        let on_threshold = callback("on_usage_threshold", on_usage_threshold)?;
        let on_connection = callback("on_connection_change", on_connection_change)?;
        let token_provider = callback("token_provider", token_provider)?;
        let callbacks = Callbacks {
            on_error: on_error.clone().map(|callback| -> ErrorCallback {
                Arc::new(move |error: &Error| {
                    notices::push(Notice::Error {
                        callback: callback.clone(),
                        error: error.clone(),
                    })
                })
            }),
            on_usage_threshold: on_threshold.clone().map(|callback| -> UsageThresholdCallback {
                Arc::new(move |event: &UsageThresholdEvent| {
                    notices::push(Notice::Threshold {
                        callback: callback.clone(),
                        event: event.clone(),
                    })
                })
            }),
            on_connection_change: on_connection.clone().map(|callback| -> ConnectionCallback {
                Arc::new(move |connected: bool, reason: &str| {
                    notices::push(Notice::Connection {
                        callback: callback.clone(),
                        connected,
                        reason: reason.to_owned(),
                    })
                })
            }),
            token_provider: token_provider.clone().map(provider),
        };
        let client = Client::with_callbacks(config.clone(), callbacks.clone()).map_err(IntoPyErr::into_py_err)?;
        Ok(NativeClient {
            slot: Mutex::new(Slot {
                client: Some(client),
                born: fork::generation(),
                closed: false,
            }),
            may_block: matches!(config.overflow, meterline_core::OverflowPolicy::Block),
            config,
            callbacks,
            on_error,
            on_threshold,
            on_connection,
            token_provider,
        })
    }

    /// Acts for `subject` from now on, with its customer `token` (publishable keys): events
    /// tracked before stay the previous user's; its cached entitlements are dropped.
    fn identify(&self, subject: &Bound<'_, PyAny>, token: &Bound<'_, PyAny>) -> PyResult<()> {
        let subject = entitlements::arg_str(subject, "subject").map_err(IntoPyErr::into_py_err)?;
        let token = convert::required_str(token, "token", "/token").map_err(IntoPyErr::into_py_err)?;
        self.current()
            .and_then(|client| client.identify(subject, token))
            .map_err(IntoPyErr::into_py_err)
    }

    /// Drops the identity (sign-out): `track()` raises `ForbiddenError` until `identify()`.
    fn reset(&self) -> PyResult<()> {
        self.current()
            .and_then(|client| client.reset())
            .map_err(IntoPyErr::into_py_err)
    }

    /// The user withdrew consent: `track()` keeps nothing until `opt_in()`; what is queued
    /// is discarded. Kept in `spool_dir` when one is set.
    fn opt_out(&self) -> PyResult<()> {
        self.current()
            .and_then(|client| client.opt_out())
            .map_err(IntoPyErr::into_py_err)
    }

    /// The user consents again: `track()` queues and sends events from now on.
    fn opt_in(&self) -> PyResult<()> {
        self.current()
            .and_then(|client| client.opt_in())
            .map_err(IntoPyErr::into_py_err)
    }

    /// Whether the user opted out (in this run, or as recorded in `spool_dir`).
    #[getter]
    fn opted_out(&self) -> PyResult<bool> {
        self.current()
            .map(|client| client.is_opted_out())
            .map_err(IntoPyErr::into_py_err)
    }

    /// Validates an event and queues it; never waits on the network. Returns the event id,
    /// or `None` when the overflow policy dropped it.
    #[pyo3(signature = (r#type, subject, data, *, id=None, time=None))]
    fn track(
        &self,
        py: Python<'_>,
        r#type: &Bound<'_, PyAny>,
        subject: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
        id: Option<&Bound<'_, PyAny>>,
        time: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Py<PyString>>> {
        let event_type = convert::required_str(r#type, "type", "/type").map_err(IntoPyErr::into_py_err)?;
        let subject = convert::required_str(subject, "subject", "/subject").map_err(IntoPyErr::into_py_err)?;
        let data = convert::to_json(data).map_err(|e| e.into_validation("/data").into_py_err())?;
        let id = convert::optional_string(id, "id", "/id").map_err(IntoPyErr::into_py_err)?;
        let time = convert::event_time(time).map_err(IntoPyErr::into_py_err)?;
        let tracked = if self.may_block {
            // The overflow policy may wait for room: do not hold the GIL meanwhile.
            let client = self.current().map_err(IntoPyErr::into_py_err)?;
            let (event_type, subject) = (event_type.to_owned(), subject.to_owned());
            py.detach(move || client.track(&event_type, &subject, data, id, time))
        } else {
            // Errors become Python exceptions only after the lock is released: building one
            // runs Python code, which may switch threads.
            let mut slot = self.lock();
            slot.client(&self.config, &self.callbacks)
                .and_then(|client| client.track(event_type, subject, data, id, time))
        };
        let id = tracked.map_err(IntoPyErr::into_py_err)?;
        Ok(id.map(|id| PyString::new(py, &id).unbind()))
    }

    /// Blocks (GIL released, Ctrl-C honoured) until everything queued so far is delivered.
    #[pyo3(signature = (timeout=None))]
    fn _flush(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let timeout = deadline(timeout)?;
        let Some(client) = self.in_this_process() else {
            return Ok(());
        };
        let (done, result) = mpsc::sync_channel(1);
        let task = runtime::spawn(async move {
            let _ = done.send(client.flush_async(timeout).await);
        })?;
        wait(py, result, &|| task.abort())
    }

    /// Stops accepting events and delivers what is queued (GIL released, Ctrl-C honoured:
    /// an interrupted shutdown goes on in the background).
    #[pyo3(signature = (timeout=None))]
    fn _shutdown(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let timeout = deadline(timeout)?;
        let Some(client) = self.close() else {
            return Ok(());
        };
        let (done, result) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("meterline-shutdown".into())
            .spawn(move || {
                let _ = done.send(client.shutdown(timeout));
            })
            .map_err(|e| Error::Internal(format!("cannot start the shutdown thread: {e}")).into_py_err())?;
        wait(py, result, &|| {})
    }

    /// `flush()` for asyncio: an awaitable resolving to `None` or the exception to raise.
    #[pyo3(signature = (timeout=None))]
    fn _flush_async<'py>(&self, py: Python<'py>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        let timeout = deadline(timeout)?;
        let client = self.in_this_process();
        runtime::handle()?;
        future_into_py::<AsyncRuntime, _, _>(py, async move {
            Ok(Outcome(match client {
                Some(client) => client.flush_async(timeout).await,
                None => Ok(()),
            }))
        })
    }

    /// `shutdown()` for asyncio: an awaitable resolving to `None` or the exception to raise.
    #[pyo3(signature = (timeout=None))]
    fn _shutdown_async<'py>(&self, py: Python<'py>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        let timeout = deadline(timeout)?;
        let client = self.close();
        runtime::handle()?;
        future_into_py::<AsyncRuntime, _, _>(py, async move {
            let Some(client) = client else {
                return Ok(Outcome(Ok(())));
            };
            tokio::task::spawn_blocking(move || client.shutdown(timeout))
                .await
                .map(Outcome)
                .map_err(|e| Error::Internal(format!("shutdown stopped unexpectedly: {e}")).into_py_err())
        })
    }

    /// Whether `subject` may use `feature`: a cache hit is answered on this thread; a miss
    /// waits (GIL released) for the shared fetch, at most `entitlement_timeout`.
    fn entitlement(
        &self,
        py: Python<'_>,
        subject: &Bound<'_, PyAny>,
        feature: &Bound<'_, PyAny>,
    ) -> PyResult<Entitlement> {
        let subject = entitlements::arg_str(subject, "subject").map_err(IntoPyErr::into_py_err)?;
        let feature = entitlements::arg_str(feature, "feature").map_err(IntoPyErr::into_py_err)?;
        let client = self.current().map_err(IntoPyErr::into_py_err)?;
        let answer = match client.try_entitlement(subject, feature) {
            Ok(TryEntitlement::Ready(answer)) => Ok(answer),
            Ok(TryEntitlement::Pending(pending)) => Ok(py.detach(move || pending.wait())),
            Err(e) => Err(e),
        };
        answer.map(Entitlement).map_err(IntoPyErr::into_py_err)
    }

    /// `entitlement()` for asyncio: the `Entitlement` itself on a cache hit (no thread hop),
    /// else an awaitable resolving to it.
    fn _entitlement_async<'py>(
        &self,
        py: Python<'py>,
        subject: &Bound<'_, PyAny>,
        feature: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let subject = entitlements::arg_str(subject, "subject").map_err(IntoPyErr::into_py_err)?;
        let feature = entitlements::arg_str(feature, "feature").map_err(IntoPyErr::into_py_err)?;
        let client = self.current().map_err(IntoPyErr::into_py_err)?;
        match client
            .try_entitlement(subject, feature)
            .map_err(IntoPyErr::into_py_err)?
        {
            TryEntitlement::Ready(answer) => Ok(Bound::new(py, Entitlement(answer))?.into_any()),
            TryEntitlement::Pending(pending) => {
                runtime::handle()?;
                future_into_py::<AsyncRuntime, _, _>(py, async move { Ok(Entitlement(pending.wait_async().await)) })
            }
        }
    }

    /// The cached answer without ever waiting (on a miss: the fallback, while one
    /// background fetch fills the cache).
    fn cached_entitlement(&self, subject: &Bound<'_, PyAny>, feature: &Bound<'_, PyAny>) -> PyResult<Entitlement> {
        let subject = entitlements::arg_str(subject, "subject").map_err(IntoPyErr::into_py_err)?;
        let feature = entitlements::arg_str(feature, "feature").map_err(IntoPyErr::into_py_err)?;
        let answer = {
            let mut slot = self.lock();
            slot.client(&self.config, &self.callbacks)
                .and_then(|client| client.cached_entitlement(subject, feature))
        };
        answer.map(Entitlement).map_err(IntoPyErr::into_py_err)
    }

    /// Mints a customer token for `subject` valid for `ttl` (seconds or a `timedelta`).
    fn customer_token(&self, subject: &Bound<'_, PyAny>, ttl: &Bound<'_, PyAny>) -> PyResult<String> {
        let subject = entitlements::arg_str(subject, "subject").map_err(IntoPyErr::into_py_err)?;
        let ttl = entitlements::ttl(ttl).map_err(IntoPyErr::into_py_err)?;
        let token = {
            let mut slot = self.lock();
            slot.client(&self.config, &self.callbacks)
                .and_then(|client| client.customer_token(subject, ttl))
        };
        token.map_err(IntoPyErr::into_py_err)
    }

    /// Caches the server's entitlements JSON body for its subject, as if just fetched.
    fn prime_entitlements(&self, payload: &Bound<'_, PyAny>) -> PyResult<()> {
        let answer = entitlements::prime_payload(payload).map_err(IntoPyErr::into_py_err)?;
        let primed = {
            let mut slot = self.lock();
            slot.client(&self.config, &self.callbacks)
                .and_then(|client| client.prime_entitlements(answer))
        };
        primed.map_err(IntoPyErr::into_py_err)
    }

    /// The core's counters as a dict (`meterline.Stats` is built from it).
    fn _stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = match self.in_this_process() {
            Some(client) => client.stats(),
            None => meterline_core::Stats::default(),
        };
        let dict = PyDict::new(py);
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(stats) {
            for (name, value) in fields {
                match value {
                    serde_json::Value::Bool(b) => dict.set_item(name, b)?,
                    serde_json::Value::Number(n) => dict.set_item(name, n.as_u64().unwrap_or_default())?,
                    _ => {}
                }
            }
        }
        Ok(dict)
    }

    /// The configured endpoint.
    #[getter]
    fn endpoint(&self) -> &str {
        &self.config.endpoint
    }

    /// The CloudEvents `source` of every event.
    #[getter]
    fn source(&self) -> &str {
        &self.config.source
    }

    /// Whether `shutdown()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.lock().closed
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        for callback in [
            &self.on_error,
            &self.on_threshold,
            &self.on_connection,
            &self.token_provider,
        ]
        .into_iter()
        .flatten()
        {
            callback.visit(&visit)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        for callback in [
            &self.on_error,
            &self.on_threshold,
            &self.on_connection,
            &self.token_provider,
        ]
        .into_iter()
        .flatten()
        {
            callback.clear();
        }
    }
}

impl NativeClient {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handle on this process's core client (replacing an inherited one).
    fn current(&self) -> Result<Client, Error> {
        self.lock().client(&self.config, &self.callbacks).cloned()
    }

    /// This process's core client, unless it was inherited and never used here (then there
    /// is nothing to flush and nothing to count).
    fn in_this_process(&self) -> Option<Client> {
        let slot = self.lock();
        if slot.inherited() { None } else { slot.client.clone() }
    }

    /// Marks the client closed; returns the core client to shut down, if this process has one.
    fn close(&self) -> Option<Client> {
        let mut slot = self.lock();
        slot.closed = true;
        if slot.inherited() { None } else { slot.client.clone() }
    }
}

impl Drop for NativeClient {
    fn drop(&mut self) {
        let slot = self.slot.get_mut().unwrap_or_else(|p| p.into_inner());
        let Some(client) = slot.client.take() else {
            return;
        };
        if slot.inherited() {
            std::mem::forget(client);
        } else {
            // The last handle's drop flushes (bounded by the core); do not hold the GIL.
            Python::attach(|py| py.detach(move || drop(client)));
        }
    }
}

/// A callback option: `None` or a callable (else `ConfigError` naming it).
/// The SDK header's names: this package, its version, the Python implementation.
fn sdk(py: Python<'_>) -> Sdk {
    let version = py.version_info();
    let implementation = py
        .import("platform")
        .and_then(|platform| platform.call_method0("python_implementation"))
        .and_then(|name| name.extract::<String>())
        .unwrap_or_else(|_| "Python".to_owned());
    Sdk {
        name: "meterline-python".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        runtime: format!("{implementation} {}.{}.{}", version.major, version.minor, version.patch),
    }
}

/// `token_provider` as the core calls it: on a worker thread, with the GIL taken for the
/// call. Whatever it raises or returns instead of a string becomes the failure the core
/// reports (never raised into the application).
fn provider(callback: Arc<Callback>) -> TokenProvider {
    Arc::new(move || {
        Python::attach(|py| {
            let Some(callable) = callback.get(py) else {
                return Err("the token provider was cleared".to_owned());
            };
            match callable.call0(py) {
                Ok(value) => value
                    .extract::<String>(py)
                    .map_err(|_| format!("returned {}, not a str", describe_type(value.bind(py)))),
                Err(err) => Err(format!("raised {}", describe_exception(py, &err))),
            }
        })
    })
}

fn describe_type(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "an object".to_owned(), |n| n.to_string())
}

fn describe_exception(py: Python<'_>, err: &PyErr) -> String {
    let kind = describe_type(err.value(py).as_any());
    format!("{kind}: {}", err.value(py))
}

fn callback(name: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Arc<Callback>>> {
    match value.filter(|c| !c.is_none()) {
        None => Ok(None),
        Some(callable) if callable.is_callable() => Ok(Some(Arc::new(Callback::new(callable.clone().unbind())))),
        Some(other) => Err(crate::error::config_error(
            name,
            format!("must be callable, got {}", other.get_type().name()?),
        )),
    }
}

/// `timeout` in seconds (`None`: the core's default wait, 10 s) → a duration; anything but a
/// number is an `ArgumentError` (also a `TypeError`).
fn deadline(timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Duration> {
    let secs = match timeout.filter(|t| !t.is_none()) {
        None => None,
        Some(t) if t.is_instance_of::<PyBool>() || !(t.is_instance_of::<PyInt>() || t.is_instance_of::<PyFloat>()) => {
            return Err(crate::error::argument_error(
                "/timeout",
                format!(
                    "`timeout` must be a number of seconds or None, got {}",
                    convert::type_name(t)
                ),
            ));
        }
        Some(t) => Some(t.extract::<f64>()?),
    };
    arguments::wait_from_secs(secs).map_err(IntoPyErr::into_py_err)
}

/// Waits for a background result without the GIL, waking up to let Python raise
/// `KeyboardInterrupt`; `interrupted` cancels the work when that happens.
fn wait(py: Python<'_>, mut result: mpsc::Receiver<Result<(), Error>>, interrupted: &dyn Fn()) -> PyResult<()> {
    loop {
        // The receiver moves in and out of the GIL-free section (it is `Send`, not `Sync`).
        let (received, receiver) = py.detach(move || (result.recv_timeout(SIGNAL_CHECK), result));
        result = receiver;
        match received {
            Ok(outcome) => return outcome.map_err(IntoPyErr::into_py_err),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(signal) = py.check_signals() {
                    interrupted();
                    return Err(signal);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Internal("the background task stopped unexpectedly".to_owned()).into_py_err());
            }
        }
    }
}
