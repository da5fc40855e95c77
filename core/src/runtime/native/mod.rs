//! The native runtime: [`Client`], backed by one background thread running a small tokio
//! runtime (reqwest for HTTP, tokio-tungstenite for the stream). `track()` never touches the
//! network: it validates, serializes and queues, and the background sender batches and
//! delivers. `entitlement()` answers cache hits on the caller's thread; fetches, the stream
//! and the callbacks run on the worker.

mod entitlements;
mod fetch;
mod flight;
mod pipeline;
mod schemas;
mod sender;
mod spool;
mod stream;

use std::{
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use serde_json::{Map, Value, value::RawValue};

pub use self::entitlements::{PendingEntitlement, TryEntitlement};
use self::{entitlements::EntitlementState, pipeline::Pipeline};
use crate::{
    config::{Config, OverflowPolicy},
    entitlement_cache::UsageThresholdEvent,
    error::{Error, ValidationError},
    event::{DATA_CONTENT_TYPE, EventRef, SPEC_VERSION, kind_of},
    key::ApiKey,
    queue::{BatchRules, Push},
    schema::{SchemaDocument, SchemaRegistry},
    stats::Stats,
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
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("on_error", &self.on_error.is_some())
            .field("on_usage_threshold", &self.on_usage_threshold.is_some())
            .field("on_connection_change", &self.on_connection_change.is_some())
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
}

/// Sends usage events to a meterline server. Cheap to clone; all clones share one queue.
///
/// Dropping the last clone without calling [`Client::shutdown`] flushes with a 5 s timeout.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    lifecycle: Arc<Lifecycle>,
}

/// Owns the worker thread; its `Drop` is the last-handle shutdown.
struct Lifecycle {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.shared.config.endpoint)
            .field("key", &self.shared.key)
            .finish_non_exhaustive()
    }
}

/// Grace period of the implicit shutdown when the last handle is dropped.
const DROP_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

impl Client {
    /// Starts a client. Fails with `invalid_config` naming the option that is wrong.
    pub fn new(config: Config) -> Result<Client, Error> {
        Client::with_callbacks(config, Callbacks::default())
    }

    /// Starts a client that reports background errors to `callbacks`.
    pub fn with_callbacks(config: Config, callbacks: Callbacks) -> Result<Client, Error> {
        let key = config.validate()?;
        // Local schemas only until the first fetch from the server completes.
        let registry = schemas::registry(&config, &SchemaDocument::default())
            .map_err(|e| Error::config("schemas", e.to_string()))?;
        let http = build_http(&config, &key)?;
        let rules = BatchRules {
            flush_at: config.flush_at,
            max_batch_bytes: config.max_batch_bytes,
            flush_interval: config.flush_interval,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("meterline-worker")
            .build()
            .map_err(|e| Error::config("runtime", format!("cannot start the I/O runtime: {e}")))?;
        let mut pipeline = Pipeline::new(rules, config.max_in_flight, config.max_queue_size, config.overflow);
        if let Some(dir) = &config.spool_dir {
            let (spool, mut recovered) = spool::Spool::open(dir, config.spool_fsync)?;
            if let Some(report) = recovered.moved_aside.take() {
                tracing::warn!("{report}");
                callbacks.error(&report);
            }
            if recovered.skipped > 0 {
                tracing::warn!(
                    entries = recovered.skipped,
                    spool_dir = %dir.display(),
                    "skipped spool entries that are not events (counted as dropped)"
                );
                pipeline::Counters::add(&pipeline.counters.dropped, recovered.skipped);
            }
            pipeline.attach_spool(spool, recovered);
        }
        let shared = Arc::new(Shared {
            ingest_url: format!("{}/v1/events", config.base_url()),
            pipeline,
            schemas: RwLock::new(registry),
            closed: AtomicBool::new(false),
            entitlements: EntitlementState::new(&config)?,
            runtime: runtime.handle().clone(),
            schema_refresh: schemas::SchemaRefresher::new(&config),
            http,
            key,
            config,
            callbacks,
        });
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name("meterline-worker".into())
            .spawn(move || {
                entitlements::ON_WORKER.set(true);
                runtime.block_on(async move {
                    if worker_shared.config.fetch_schemas {
                        tokio::spawn(schemas::refresh_loop(worker_shared.clone()));
                    }
                    sender::run(worker_shared.clone()).await;
                    worker_shared.entitlements.stream.close().await;
                });
                // Dropping the runtime cancels what is left (the schema refresher, batches
                // abandoned by an expired shutdown).
                runtime.shutdown_timeout(Duration::from_millis(100));
            })
            .map_err(|e| Error::config("runtime", format!("cannot start the worker thread: {e}")))?;
        let lifecycle = Arc::new(Lifecycle {
            shared: shared.clone(),
            worker: Mutex::new(Some(worker)),
        });
        Ok(Client { shared, lifecycle })
    }

    /// Validates an event and queues it for sending; never waits on the network.
    ///
    /// `data` must be a JSON object. `id` defaults to a new UUIDv7 and `time` to now (RFC
    /// 3339, UTC). Returns the event id. Errors: a [`ValidationError`] naming the JSON pointer
    /// and rule (the event is not queued), `queue_full` when the overflow policy refused it,
    /// `client_closed` after shutdown.
    pub fn track(
        &self,
        event_type: &str,
        subject: &str,
        data: Value,
        id: Option<String>,
        time: Option<String>,
    ) -> Result<String, Error> {
        let Value::Object(data) = data else {
            return Err(not_an_object(kind_of(&data)));
        };
        self.track_data(event_type, subject, TrackData::Map(data), id, time)
    }

    /// [`Client::track`] with `data` as JSON text, for bindings whose host language makes
    /// JSON text faster than a [`Value`] (Node's `JSON.stringify`). The text is embedded in
    /// the event as it is — send it compact — and parsed into a map only when the event
    /// type has a schema to check or its usage is counted in the entitlement cache. Same
    /// answers and errors as [`Client::track`].
    pub fn track_json(
        &self,
        event_type: &str,
        subject: &str,
        data: &RawValue,
        id: Option<String>,
        time: Option<String>,
    ) -> Result<String, Error> {
        let text = data.get().trim();
        let kind = match text.as_bytes().first() {
            Some(b'{') => None,
            Some(b'[') => Some("an array"),
            Some(b'"') => Some("a string"),
            Some(b't' | b'f') => Some("a boolean"),
            Some(b'n') => Some("null"),
            _ => Some("a number"),
        };
        if let Some(kind) = kind {
            return Err(not_an_object(kind));
        }
        self.track_data(event_type, subject, TrackData::Json { text, parsed: None }, id, time)
    }

    fn track_data(
        &self,
        event_type: &str,
        subject: &str,
        mut data: TrackData<'_>,
        id: Option<String>,
        time: Option<String>,
    ) -> Result<String, Error> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        // A caller's time is parsed to check it; the one generated here is known to be valid.
        let time_given = time.is_some();
        // One clock read serves the generated id and time.
        let now = std::time::SystemTime::now();
        let id = id.unwrap_or_else(|| new_event_id(now));
        let generated;
        let time = match &time {
            Some(time) => time.as_str(),
            None => {
                generated = now_rfc3339(now);
                generated.as_str()
            }
        };
        let event = EventRef {
            specversion: SPEC_VERSION,
            id: &id,
            source: &self.shared.config.source,
            event_type,
            subject,
            time: time_given.then_some(time),
            datacontenttype: Some(DATA_CONTENT_TYPE),
            data: None,
        };
        event.check_envelope()?;
        let event = EventRef {
            time: Some(time),
            ..event
        };
        data.validate(&read_lock(&self.shared.schemas), event_type)?;
        let bytes = match &data {
            TrackData::Map(map) => EventRef {
                data: Some(map),
                ..event
            }
            .to_json_bytes()?,
            TrackData::Json { text, .. } => event.to_json_bytes_with_raw_data(text)?,
        };
        if bytes.len() + 2 > self.shared.config.max_batch_bytes {
            return Err(ValidationError::too_large(bytes.len(), self.shared.config.max_batch_bytes - 2).into());
        }
        let block = match self.shared.config.overflow {
            OverflowPolicy::Block => self.shared.config.block_timeout,
            _ => Duration::ZERO,
        };
        match self.shared.pipeline.push(bytes, block)? {
            (Push::Queued | Push::Evicted, seq) => {
                let time = time_given.then_some(time);
                self.shared.record_usage(event_type, subject, &mut data, time, seq);
                Ok(id)
            }
            (Push::Full(_), _) => Err(Error::QueueFull {
                capacity: self.shared.config.max_queue_size,
                policy: self.shared.config.overflow.as_str(),
            }),
        }
    }

    /// Sends everything queued so far and waits until the server has answered for it (or
    /// it was given up on). Fails with `timeout` if that takes longer than `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        let target = self.shared.pipeline.request_flush();
        if self.shared.pipeline.wait_settled(target, timeout) {
            Ok(())
        } else {
            Err(Error::Timeout(timeout))
        }
    }

    /// [`Client::flush`] for async callers (needs a tokio runtime with timers; never blocks
    /// the executor).
    pub async fn flush_async(&self, timeout: Duration) -> Result<(), Error> {
        let target = self.shared.pipeline.request_flush();
        if self.shared.pipeline.wait_settled_async(target, timeout).await {
            Ok(())
        } else {
            Err(Error::Timeout(timeout))
        }
    }

    /// Stops accepting events, delivers what is queued within `timeout`, and stops the
    /// worker. Events still undelivered at the deadline are counted as dropped — or, with a
    /// `spool_dir`, stay in the spool for the next start (counted in `spool_length`, not
    /// `dropped`) — and the call fails with `timeout`. Either way the spool is closed before
    /// it returns (its store and the directory's lock released), so a new client can open
    /// the same `spool_dir` at once, while this handle still exists. Calling it again is
    /// harmless.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), Error> {
        self.lifecycle.shutdown(timeout)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let answers = &self.shared.entitlements.counters;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            cache_hits: entitlements::lock(&self.shared.entitlements.cache).hits(),
            cache_misses: load(&answers.misses),
            stale_answers: load(&answers.stale),
            fallback_answers: load(&answers.fallback),
            stream_connected: self.shared.entitlements.stream.connected.load(Ordering::Relaxed),
            ..self.shared.pipeline.snapshot()
        }
    }

    /// Fetches the server's schemas now (normally done in the background at start and every
    /// `schema_refresh_interval`). Blocking; do not call from inside an async task.
    pub fn refresh_schemas(&self, timeout: Duration) -> Result<(), Error> {
        let shared = self.shared.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Network(format!("cannot start a runtime: {e}")))?;
        runtime.block_on(async move {
            tokio::time::timeout(timeout, schemas::fetch(&shared, None))
                .await
                .map_err(|_| Error::Timeout(timeout))?
                .map(|_| ())
        })
    }

    /// The client's configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }
}

impl Lifecycle {
    fn shutdown(&self, timeout: Duration) -> Result<(), Error> {
        let Some(worker) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Ok(());
        };
        let pipeline = &self.shared.pipeline;
        self.shared.closed.store(true, Ordering::Release);
        let target = {
            let mut state = pipeline.lock();
            state.draining = true;
            state.next_seq()
        };
        pipeline.wake_sender.notify_one();
        let settled = pipeline.wait_settled(target, timeout);
        if !settled {
            pipeline.abandon_queued();
            pipeline.abort();
        }
        if worker.join().is_err() {
            tracing::error!("the meterline worker thread panicked");
        }
        pipeline.close_spool();
        if settled {
            Ok(())
        } else {
            let stats = pipeline.snapshot();
            tracing::warn!(
                dropped = stats.dropped,
                spooled = stats.spool_length,
                "shutdown timed out; undelivered events were dropped (or stay in the spool for the next start)"
            );
            Err(Error::Timeout(timeout))
        }
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        let _ = self.shutdown(DROP_FLUSH_TIMEOUT);
    }
}

fn build_http(config: &Config, key: &ApiKey) -> Result<reqwest::Client, Error> {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.expose()))
        .map_err(|_| Error::config("api_key", "contains characters not allowed in a header"))?;
    auth.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, auth);
    if let Some(token) = &config.customer_token {
        let mut value = reqwest::header::HeaderValue::from_str(token)
            .map_err(|_| Error::config("customer_token", "contains characters not allowed in a header"))?;
        value.set_sensitive(true);
        headers.insert(CUSTOMER_TOKEN_HEADER, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .user_agent(concat!("meterline-rust/", env!("CARGO_PKG_VERSION")))
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

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

/// A new UUIDv7 (hyphenated, lowercase).
///
/// The random part comes from a thread-local generator, whose state a forked child inherits:
/// two children of one parent (gunicorn workers, a `multiprocessing` pool) would draw the same
/// bits and — within one millisecond — mint the same id, which the server then drops as a
/// duplicate. Mixing the process id into the random bits keeps ids of forked processes apart.
/// The id is read once per thread and again after a fork (`forkguard`'s `pthread_atfork`
/// handler), not per event: `getpid` is a system call (0.2–0.5 µs on these VMs, where a
/// whole `track()` is ≈ 1 µs).
fn new_event_id(now: std::time::SystemTime) -> String {
    use std::cell::RefCell;
    thread_local! {
        static PID_MASK: RefCell<Option<(forkguard::Guard, u128)>> = const { RefCell::new(None) };
    }
    let pid_mask = || u128::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    let millis = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let pid_mask = PID_MASK.with_borrow_mut(|cached| match cached {
        Some((guard, mask)) => {
            if guard.detected_fork() {
                *mask = pid_mask();
            }
            *mask
        }
        None => {
            // The guard first, then the id: a fork between the two is seen on the next call.
            // Without a fork handler (`pthread_atfork` failed) nothing is cached: a getpid per id.
            let guard = forkguard::Guard::try_new().ok();
            let mask = pid_mask();
            *cached = guard.map(|guard| (guard, mask));
            mask
        }
    });
    let random = (fastrand::u128(..) ^ pid_mask).to_le_bytes();
    let mut bits = [0u8; 10];
    bits.copy_from_slice(&random[..10]);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &bits).into_uuid();
    let mut buf = uuid::Uuid::encode_buffer();
    id.hyphenated().encode_lower(&mut buf).to_owned()
}

/// Now, RFC 3339 with milliseconds, UTC (`2026-11-24T10:00:00.123Z`), on the stack.
///
/// Formatting a date is ~700 instructions with chrono; within one second only the
/// milliseconds change, so each thread keeps the formatted second and appends them.
fn now_rfc3339(now: std::time::SystemTime) -> TimeText {
    use std::cell::RefCell;
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since_epoch = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let (secs, millis) = (since_epoch.as_secs(), since_epoch.subsec_millis());
    SECOND.with_borrow_mut(|(cached, prefix)| {
        if *cached != secs {
            let second = chrono::DateTime::<chrono::Utc>::from(std::time::UNIX_EPOCH + Duration::from_secs(secs));
            *prefix = second.format("%Y-%m-%dT%H:%M:%S").to_string();
            *cached = secs;
        }
        let mut out = TimeText {
            buf: [0; TimeText::CAPACITY],
            len: prefix.len() + 5,
        };
        out.buf[..prefix.len()].copy_from_slice(prefix.as_bytes());
        let digits = [millis / 100, millis / 10 % 10, millis % 10].map(|d| b'0' + d as u8);
        out.buf[prefix.len()] = b'.';
        out.buf[prefix.len() + 1..prefix.len() + 4].copy_from_slice(&digits);
        out.buf[prefix.len() + 4] = b'Z';
        out
    })
}

/// A generated event time: formatted into a buffer on the stack, not a `String` per event.
struct TimeText {
    buf: [u8; TimeText::CAPACITY],
    len: usize,
}

impl TimeText {
    /// `+YYYYYY-MM-DDTHH:MM:SS.mmmZ` is 27 bytes: every year chrono can format fits.
    const CAPACITY: usize = 32;

    fn as_str(&self) -> &str {
        // ASCII digits and separators, written above.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// `data` of a tracked event, as the caller gave it.
pub(crate) enum TrackData<'a> {
    /// From [`Client::track`].
    Map(Map<String, Value>),
    /// From [`Client::track_json`]: the text of one JSON object, and its map once
    /// validation or usage counting needed it.
    Json {
        text: &'a str,
        parsed: Option<Map<String, Value>>,
    },
}

impl TrackData<'_> {
    /// Checks the data against its type's schema, parsing JSON text only if there is one.
    fn validate(&mut self, schemas: &SchemaRegistry, event_type: &str) -> Result<(), ValidationError> {
        if !schemas.checks(event_type) {
            return Ok(());
        }
        let map = match self {
            TrackData::Map(map) => map,
            TrackData::Json { text, parsed } => parsed.insert(parse_object(text)?),
        };
        let (checked_map, checked) = schemas.validate_map(event_type, std::mem::take(map));
        *map = checked_map;
        checked
    }

    /// The data as a map, parsing JSON text the first time (`None` only if the text is not
    /// one JSON object, which `track_json`'s caller has ruled out).
    pub(crate) fn map(&mut self) -> Option<&Map<String, Value>> {
        match self {
            TrackData::Map(map) => Some(map),
            TrackData::Json { text, parsed } => {
                if parsed.is_none() {
                    *parsed = parse_object(text).ok();
                }
                parsed.as_ref()
            }
        }
    }
}

fn parse_object(text: &str) -> Result<Map<String, Value>, ValidationError> {
    serde_json::from_str(text)
        .map_err(|e| ValidationError::invalid_event("/data", format!("`data` is not a JSON object: {e}")))
}

fn not_an_object(kind: &str) -> Error {
    ValidationError::invalid_event("/data", format!("`data` must be a JSON object, got {kind}")).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_version_7_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..10_000)
            .map(|_| new_event_id(std::time::SystemTime::now()))
            .collect();
        assert_eq!(ids.len(), 10_000);
        let id = uuid::Uuid::parse_str(ids.iter().next().expect("ids")).expect("a UUID");
        assert_eq!(id.get_version_num(), 7);
    }

    #[test]
    fn generated_times_match_chrono_for_fixed_instants() {
        use std::time::UNIX_EPOCH;
        for (after_epoch, text) in [
            (Duration::from_millis(1_500), "1970-01-01T00:00:01.500Z"),
            (Duration::from_millis(1_795_521_600_007), "2026-11-24T12:00:00.007Z"),
            (Duration::from_millis(1_795_521_600_999), "2026-11-24T12:00:00.999Z"),
            (Duration::from_secs(253_402_300_800), "+10000-01-01T00:00:00.000Z"),
        ] {
            assert_eq!(now_rfc3339(UNIX_EPOCH + after_epoch).as_str(), text);
        }
    }

    #[test]
    fn now_matches_chrono_formatting() {
        for _ in 0..3 {
            let ours = now_rfc3339(std::time::SystemTime::now());
            let ours = ours.as_str();
            let parsed = chrono::DateTime::parse_from_rfc3339(ours).expect("valid RFC 3339");
            assert_eq!(ours, parsed.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            let age = chrono::Utc::now().signed_duration_since(parsed);
            assert!(age.num_milliseconds().abs() < 1000, "{ours}");
            std::thread::sleep(Duration::from_millis(600));
        }
    }
}
