//! [`Client`]: the native runtime's handle. It builds events with [`crate::track`], queues
//! them in the [`Outbox`](crate::outbox::Outbox) behind [`Pipeline`], and starts the worker
//! thread that drives the sender, the schema refresher and the stream.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use serde_json::{Value, value::RawValue};

use super::{
    Callbacks, GATE_OPTED_OUT, Shared, build_http, consent,
    credentials::Credentials,
    entitlements,
    entitlements::EntitlementState,
    ids::new_event_id,
    lifecycle::Lifecycle,
    pipeline::{Accepted, Pipeline},
    read_lock, schemas, sender, spool,
};
use crate::{
    config::{Config, OverflowPolicy},
    error::Error,
    key::KeyKind,
    outbox::{OutboxSettings, Refusal},
    queue::BatchRules,
    schema::SchemaDocument,
    stats::Stats,
    track::{self, BuildRules, TrackData, TrackInput},
};

/// Sends usage events to a meterline server. Cheap to clone; all clones share one queue.
///
/// Dropping the last clone without calling [`Client::shutdown`] does not wait: the worker
/// thread goes on delivering what is queued for up to 5 s, but a program that exits at once
/// loses it (unless a `spool_dir` keeps it for the next start).
#[derive(Clone)]
pub struct Client {
    pub(super) shared: Arc<Shared>,
    lifecycle: Arc<Lifecycle>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.shared.config.endpoint)
            .field("key", &self.shared.key)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts a client. Fails with `invalid_config` naming the option that is wrong.
    pub fn new(config: Config) -> Result<Client, Error> {
        Client::with_callbacks(config, Callbacks::default())
    }

    /// Starts a client that reports background errors to `callbacks`.
    pub fn with_callbacks(config: Config, callbacks: Callbacks) -> Result<Client, Error> {
        let key = config.validate_for(callbacks.token_provider.is_some())?;
        // Local schemas only until the first fetch from the server completes.
        let registry = schemas::registry(&config, &SchemaDocument::default())
            .map_err(|e| Error::config("schemas", e.to_string()))?;
        let http = build_http(&config, &key)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("meterline-worker")
            .build()
            .map_err(|e| Error::config("runtime", format!("cannot start the I/O runtime: {e}")))?;
        let mut pipeline = Pipeline::new(OutboxSettings {
            rules: BatchRules {
                flush_at: config.flush_at,
                max_batch_bytes: config.max_batch_bytes,
                flush_interval: config.flush_interval,
            },
            capacity: config.max_queue_size,
            overflow: config.overflow,
            max_in_flight: config.max_in_flight,
            retry: config.retry,
            keep_undelivered: config.spool_dir.is_some(),
        });
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
                pipeline.lock().outbox.count_dropped(recovered.skipped);
            }
            pipeline.attach_spool(spool, recovered);
        }
        let opted_out = consent::load(config.spool_dir.as_deref());
        let shared = Arc::new(Shared {
            ingest_url: format!("{}/v1/events", config.base_url()),
            pipeline,
            schemas: RwLock::new(registry),
            closed: AtomicBool::new(false),
            entitlements: EntitlementState::new(&config)?,
            runtime: runtime.handle().clone(),
            schema_refresh: schemas::SchemaRefresher::new(&config),
            credentials: Credentials::new(
                config.customer_token.as_deref(),
                callbacks.token_provider.clone(),
                key.kind == KeyKind::Publishable,
            )?,
            gate: AtomicU8::new(if opted_out { GATE_OPTED_OUT } else { 0 }),
            opted_out_events: AtomicU64::new(0),
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
                runtime.block_on(async {
                    if worker_shared.config.fetch_schemas {
                        tokio::spawn(schemas::refresh_loop(worker_shared.clone()));
                    }
                    sender::run(worker_shared.clone()).await;
                    worker_shared.entitlements.stream.close().await;
                });
                // Dropping the runtime cancels what is left (the schema refresher, batches
                // abandoned by an expired shutdown).
                runtime.shutdown_timeout(Duration::from_millis(100));
                // After a drop without `shutdown()` nobody else closes it.
                worker_shared.pipeline.close_spool();
            })
            .map_err(|e| Error::config("runtime", format!("cannot start the worker thread: {e}")))?;
        let lifecycle = Arc::new(Lifecycle::new(shared.clone(), worker));
        Ok(Client { shared, lifecycle })
    }

    /// Validates an event and queues it for sending; never waits on the network (nor, but
    /// under the `block` policy, on room in the queue).
    ///
    /// `data` must be a JSON object. `id` defaults to a new UUIDv7 and `time` to now (RFC
    /// 3339, UTC). Returns the event id, or `None` when the overflow policy dropped the event
    /// (counted in `stats().dropped` and reported, rate-limited, to the error callback).
    /// Errors: a [`ValidationError`](crate::ValidationError) naming the JSON pointer and
    /// rule (the event is not queued), `queue_full` under the `reject` policy,
    /// `client_closed` after shutdown.
    pub fn track(
        &self,
        event_type: &str,
        subject: &str,
        data: Value,
        id: Option<String>,
        time: Option<String>,
    ) -> Result<Option<String>, Error> {
        self.track_data(event_type, subject, TrackData::from_value(data)?, id, time)
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
    ) -> Result<Option<String>, Error> {
        self.track_data(event_type, subject, TrackData::from_json_text(data.get())?, id, time)
    }

    fn track_data(
        &self,
        event_type: &str,
        subject: &str,
        data: TrackData<'_>,
        id: Option<String>,
        time: Option<String>,
    ) -> Result<Option<String>, Error> {
        let shared = &self.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let gate = shared.gate.load(Ordering::Relaxed);
        if gate != 0 {
            return self.gated(gate);
        }
        let rules = BuildRules {
            source: &shared.config.source,
            max_batch_bytes: shared.config.max_batch_bytes,
        };
        let input = TrackInput {
            event_type,
            subject,
            data,
            id,
            time,
        };
        let built = track::build(
            rules,
            &read_lock(&shared.schemas),
            input,
            SystemTime::now(),
            new_event_id,
        )?;
        let block = match shared.config.overflow {
            OverflowPolicy::Block => shared.config.block_timeout,
            _ => Duration::ZERO,
        };
        match shared.pipeline.push(built.bytes, block)? {
            Accepted::Queued(seq) => {
                let mut usage = built.usage;
                shared.record_usage(
                    usage.event_type,
                    usage.subject,
                    &mut usage.data,
                    usage.time.as_deref(),
                    seq,
                );
                Ok(Some(built.id))
            }
            Accepted::Refused(refusal) => self.refused(refusal),
        }
    }

    /// Carries out the outbox's word on an event the full queue refused.
    fn refused(&self, refusal: Refusal) -> Result<Option<String>, Error> {
        let err = Error::QueueFull {
            capacity: self.shared.config.max_queue_size,
            policy: self.shared.config.overflow.as_str(),
        };
        if let Some(held_back) = refusal.warn {
            tracing::warn!(
                unlogged_drops = held_back,
                "{err}; dropped events are counted in stats().dropped (logged at most once a minute)"
            );
        }
        if refusal.raise {
            return Err(err);
        }
        if refusal.report && self.shared.callbacks.on_error.is_some() {
            // Callbacks run on the worker thread, never on the caller's.
            let shared = self.shared.clone();
            self.shared.runtime.spawn(async move { shared.callbacks.error(&err) });
        }
        Ok(None)
    }

    /// Sends everything queued so far and waits until the server has answered for it (or
    /// it was given up on). A retry's backoff is cut short: one attempt at once. Fails with
    /// `timeout` if that takes longer than `timeout` (what is undelivered stays queued).
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

    /// Stops accepting events, delivers what is queued within `timeout` (cutting a retry's
    /// backoff short), and stops the worker. Events still undelivered at the deadline are
    /// counted as dropped — or, with a `spool_dir`, stay in the spool for the next start
    /// (counted in `spool_length`, not `dropped`) — and the call fails with `timeout`.
    /// Either way the spool is closed before it returns (its store and the directory's lock
    /// released), so a new client can open the same `spool_dir` at once, while this handle
    /// still exists. Calling it again is harmless.
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
            opted_out: load(&self.shared.opted_out_events),
            token_provider_failures: self.shared.credentials.failures(),
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

    /// The user withdrew consent: from now on `track()` keeps nothing and sends nothing
    /// (it returns `None`, counted in `stats().opted_out`), and the events queued but not
    /// yet sent are discarded (counted there too; a batch already on the wire finishes).
    /// With a `spool_dir` the choice is recorded there and holds at the next start; without
    /// one it lasts as long as the process. Entitlements still work. Errors: `spool_error`
    /// when the choice cannot be recorded (it applies in memory all the same).
    pub fn opt_out(&self) -> Result<(), Error> {
        let shared = &self.shared;
        shared.gate.fetch_or(GATE_OPTED_OUT, Ordering::Relaxed);
        let discarded = shared.pipeline.discard();
        shared.opted_out_events.fetch_add(discarded, Ordering::Relaxed);
        consent::store(shared.config.spool_dir.as_deref(), true)
    }

    /// The user consents again: `track()` queues and sends events from now on (nothing
    /// discarded before comes back). Errors: `spool_error` when the choice cannot be
    /// recorded in `spool_dir` (it applies in memory all the same).
    pub fn opt_in(&self) -> Result<(), Error> {
        self.shared.gate.fetch_and(!GATE_OPTED_OUT, Ordering::Relaxed);
        consent::store(self.shared.config.spool_dir.as_deref(), false)
    }

    /// Whether the user opted out ([`Client::opt_out`]), in this run or a recorded earlier one.
    pub fn is_opted_out(&self) -> bool {
        self.shared.gate.load(Ordering::Relaxed) & GATE_OPTED_OUT != 0
    }

    /// The client's configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config() -> Config {
        // Nothing listens on port 9: every send fails with a connection error.
        let mut config = Config::new("ml_sk_tests_0123456789abcdef0123", "http://127.0.0.1:9");
        config.fetch_schemas = false;
        config.stream = false;
        config
    }

    #[test]
    fn an_idle_sender_sleeps_without_a_timer() {
        let mut c = config();
        c.flush_interval = Duration::from_millis(20);
        let client = Client::new(c).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let before = client.shared.pipeline.wakeups.load(Ordering::Relaxed);
        // 50 flush intervals with an empty queue.
        std::thread::sleep(Duration::from_secs(1));
        let idle = client.shared.pipeline.wakeups.load(Ordering::Relaxed) - before;
        assert_eq!(idle, 0, "the idle sender woke {idle} times");
        // A tracked event still leaves within about one interval (the push wakes the sender).
        client.track("t", "c", json!({}), None, None).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(client.shared.pipeline.wakeups.load(Ordering::Relaxed) > before);
        assert_eq!(client.stats().retried.min(1), 1, "{:?}", client.stats());
        let _ = client.shutdown(Duration::from_millis(10));
    }

    #[test]
    fn dropping_the_last_handle_inside_an_async_runtime_returns_at_once() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let client = Client::new(config()).unwrap();
            for i in 0..100 {
                client.track("t", "c", json!({"i": i}), None, None).unwrap();
            }
            let start = std::time::Instant::now();
            drop(client);
            let took = start.elapsed();
            assert!(took < Duration::from_millis(50), "drop took {took:?}");
        });
    }

    #[test]
    fn a_full_queue_drops_by_default_and_raises_only_under_reject() {
        let mut c = config();
        c.max_queue_size = 2;
        c.flush_interval = Duration::from_secs(3600);
        let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = reports.clone();
        let callbacks = Callbacks {
            on_error: Some(Arc::new(move |e: &Error| {
                sink.lock().unwrap().push(e.code().to_owned())
            })),
            ..Callbacks::default()
        };
        let client = Client::with_callbacks(c.clone(), callbacks).unwrap();
        for i in 0..2 {
            assert!(client.track("t", "c", json!({"i": i}), None, None).unwrap().is_some());
        }
        for i in 2..10 {
            assert_eq!(client.track("t", "c", json!({"i": i}), None, None).unwrap(), None);
        }
        assert_eq!(client.stats().dropped, 8);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(*reports.lock().unwrap(), ["queue_full"], "one report per window");
        let _ = client.shutdown(Duration::from_millis(10));

        c.overflow = OverflowPolicy::Reject;
        let client = Client::new(c).unwrap();
        for i in 0..2 {
            client.track("t", "c", json!({"i": i}), None, None).unwrap();
        }
        let err = client.track("t", "c", json!({}), None, None).unwrap_err();
        assert!(
            matches!(
                err,
                Error::QueueFull {
                    capacity: 2,
                    policy: "reject"
                }
            ),
            "{err:?}"
        );
        assert_eq!(client.stats().dropped, 1);
        let _ = client.shutdown(Duration::from_millis(10));
    }
}
