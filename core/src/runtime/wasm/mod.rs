//! The wasm32 runtime (feature `web`): the browser's [`Client`]. It drives the same sans-I/O
//! engine as the native runtime — [`crate::track`] builds and checks each event, the
//! [`Outbox`](crate::outbox::Outbox) decides batches, retries and drops, the
//! [`EntitlementCache`](crate::entitlement_cache::EntitlementCache) answers `entitlement()`
//! — with the host's `fetch`, timers (`setTimeout`, one at most, none while idle) and
//! `spawn_local` tasks on the page's one thread. `meterline-wasm` only converts JavaScript
//! values and Promises.
//!
//! Events not yet acknowledged are persisted in IndexedDB and sent by the next page load
//! ([`persist`]); the page's `pagehide`, `visibilitychange`, `online` and `offline` events
//! are followed ([`lifecycle`]).
//!
//! The realtime stream ([`stream`]) keeps the cache current over the page's `WebSocket`,
//! driven by the core's [`StreamSession`](crate::stream_session::StreamSession); the
//! customer token comes from the core's [`TokenState`](crate::credentials::TokenState)
//! ([`credentials`]: token provider, `token_expired` retries) per user ([`identity`]:
//! `identify`/`reset`).

mod consent;
mod credentials;
mod entitlements;
mod host;
mod http;
mod idb;
mod identity;
mod lifecycle;
mod persist;
mod schemas;
mod sender;
mod stream;

pub use self::{
    credentials::{TokenAnswer, TokenProvider},
    stream::{ConnectionCallback, StreamCallbacks, UsageThresholdCallback},
};

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    rc::Rc,
    time::Duration,
};

use self::http::CUSTOMER_TOKEN_HEADER;
use crate::{
    config::Config,
    entitlement_cache::EntitlementCache,
    error::Error,
    key::ApiKey,
    outbox::{Outbox, OutboxSettings, Pushed, Refusal},
    queue::BatchRules,
    schema::SchemaRegistry,
    sdk::{Sdk, SdkHeader},
    stats::Stats,
    track::{self, BuildRules, TrackData, TrackInput},
};

/// Receives errors that happen in the background (rejected events, batches given up on,
/// schema and entitlement fetch failures). Called from a task of its own, never inside
/// `track()`.
pub type ErrorCallback = Rc<dyn Fn(&Error)>;

/// A browser client. Cheap to clone; clones share one outbox and cache.
#[derive(Clone)]
pub struct Client {
    inner: Rc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.config.endpoint)
            .field("key", &self.inner.key)
            .finish_non_exhaustive()
    }
}

/// Everything a client's tasks share (one thread: `RefCell`s, never held across an await).
pub(crate) struct Inner {
    config: Config,
    key: ApiKey,
    /// `Authorization`, for a publishable key the customer token, and `X-Meterline-SDK`.
    credentials: Vec<(&'static str, String)>,
    ingest_url: String,
    schemas: RefCell<SchemaRegistry>,
    outbox: RefCell<Outbox>,
    sender: RefCell<sender::SenderState>,
    entitlements: entitlements::EntitlementState,
    /// The realtime stream (see [`stream`]).
    stream: stream::StreamState,
    /// The customer tokens, per user (see [`credentials`]).
    identity: credentials::Credentials,
    on_error: Option<ErrorCallback>,
    closed: Cell<bool>,
    /// The `localStorage` entry holding the consent choice (`consent`).
    consent_entry: String,
    /// The user opted out: `track()` keeps nothing.
    opted_out: Cell<bool>,
    /// Events `track()` refused or the queue discarded while opted out.
    opted_out_events: Cell<u64>,
    /// The outbox persisted in IndexedDB.
    persist: persist::Persist,
    /// The schema refresh schedule, shared with the stream (`schema.updated`; the default
    /// build has none).
    #[cfg_attr(not(feature = "schema"), allow(dead_code))]
    schema_refresh: schemas::Refresher,
}

impl Inner {
    /// The request headers every call carries.
    fn headers<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut headers: Vec<(&str, &str)> = self.credentials.iter().map(|(k, v)| (*k, v.as_str())).collect();
        headers.extend_from_slice(extra);
        headers
    }

    /// Hands a background error to the callback, from a microtask of its own.
    fn report(self: &Rc<Self>, err: Error) {
        if let Some(cb) = self.on_error.clone() {
            wasm_bindgen_futures::spawn_local(async move { cb(&err) });
        }
    }
}

impl Client {
    /// Starts a client. Fails with `invalid_config` naming the option that is wrong
    /// (`spool_dir` is refused: the browser has no disk spool).
    pub fn new(config: Config, on_error: Option<ErrorCallback>) -> Result<Client, Error> {
        Self::with_token_provider(config, on_error, None)
    }

    /// [`Client::new`] with a token provider (a publishable key then needs no
    /// `customer_token`: the provider gives the first one).
    pub fn with_token_provider(
        config: Config,
        on_error: Option<ErrorCallback>,
        token_provider: Option<TokenProvider>,
    ) -> Result<Client, Error> {
        let key = config.validate_for(token_provider.is_some())?;
        let identity = credentials::Credentials::new(
            config.customer_token.as_deref(),
            token_provider,
            key.kind == crate::key::KeyKind::Publishable,
        )?;
        if config.spool_dir.is_some() {
            return Err(Error::config(
                "spool_dir",
                "the browser has no disk spool; leave it unset",
            ));
        }
        let mut registry = SchemaRegistry::new(config.strict_types);
        for (event_type, schema) in &config.schemas {
            registry.insert(event_type, schema)?;
        }
        let mut credentials = vec![("authorization", format!("Bearer {}", key.expose()))];
        if let Some(token) = &config.customer_token {
            credentials.push((CUSTOMER_TOKEN_HEADER, token.clone()));
        }
        credentials.push((SdkHeader::MeterlineSdk.name(), sdk_header_value(&config.sdk)));
        let persist = persist::Persist::new(&key.id, config.persist);
        let outbox = Outbox::new(
            OutboxSettings {
                rules: BatchRules {
                    flush_at: config.flush_at,
                    max_batch_bytes: config.max_batch_bytes,
                    flush_interval: config.flush_interval,
                },
                capacity: config.max_queue_size,
                overflow: config.overflow,
                max_in_flight: config.max_in_flight,
                retry: config.retry,
                // As with a disk spool: given up on for a failure that may pass, a batch
                // stays persisted for the next page load.
                keep_undelivered: persist.available(),
            },
            host::monotonic_ms(),
        );
        let consent_entry = consent::entry(&key.id);
        let inner = Rc::new(Inner {
            opted_out: Cell::new(consent::load(&consent_entry)),
            opted_out_events: Cell::new(0),
            consent_entry,
            ingest_url: format!("{}/v1/events", config.base_url()),
            schemas: RefCell::new(registry),
            outbox: RefCell::new(outbox),
            sender: RefCell::new(sender::SenderState::default()),
            entitlements: entitlements::EntitlementState::new(&config),
            stream: stream::StreamState::new(&config),
            identity,
            credentials,
            key,
            on_error,
            closed: Cell::new(false),
            config,
            persist,
            schema_refresh: schemas::Refresher::default(),
        });
        schemas::start(&inner);
        persist::start(&inner);
        lifecycle::install(&inner);
        Ok(Client { inner })
    }

    /// Validates an event and queues it; never waits. `data` is the JSON text of one object
    /// (the binding's `JSON.stringify`). Returns the event's id, or `None` when the overflow
    /// policy dropped it (`block` cannot wait on the page's one thread: it drops as
    /// `drop_newest` does). Errors: a validation error naming the JSON pointer (nothing is
    /// queued), `queue_full` under `reject`, `client_closed` after shutdown.
    pub fn track(
        &self,
        event_type: &str,
        subject: &str,
        data: &str,
        id: Option<String>,
        time: Option<String>,
    ) -> Result<Option<String>, Error> {
        let inner = &self.inner;
        if inner.closed.get() {
            return Err(Error::Closed);
        }
        if inner.opted_out.get() {
            inner.opted_out_events.set(inner.opted_out_events.get() + 1);
            return Ok(None);
        }
        if inner.identity.anonymous.get() {
            return Err(identity::no_identity());
        }
        let data = TrackData::from_json_text(data)?;
        let rules = BuildRules {
            source: &inner.config.source,
            max_batch_bytes: inner.config.max_batch_bytes,
        };
        let input = TrackInput {
            event_type,
            subject,
            data,
            id,
            time,
        };
        let built = track::build(rules, &inner.schemas.borrow(), input, host::wall(), host::new_event_id)?;
        let pushed = {
            let mut outbox = inner.outbox.borrow_mut();
            match outbox.push(built.bytes, host::monotonic_ms) {
                Pushed::Full(_) => Pushed::Dropped(outbox.refuse(host::monotonic_ms())),
                other => other,
            }
        };
        let seq = match pushed {
            Pushed::Queued { seq, wake } => {
                persist::remember(inner, seq);
                if wake {
                    sender::wake(inner);
                }
                seq
            }
            Pushed::Evicted { seq, evicted_seq } => {
                persist::forget(inner, evicted_seq, 1);
                persist::remember(inner, seq);
                seq
            }
            Pushed::Dropped(refusal) => return self.refused(refusal),
            Pushed::Full(_) => unreachable!("a full queue was refused above"),
        };
        let mut usage = built.usage;
        entitlements::record_usage(
            inner,
            usage.event_type,
            usage.subject,
            &mut usage.data,
            usage.time.as_deref(),
            seq,
        );
        Ok(Some(built.id))
    }

    fn refused(&self, refusal: Refusal) -> Result<Option<String>, Error> {
        let err = Error::QueueFull {
            capacity: self.inner.config.max_queue_size,
            policy: self.inner.config.overflow.as_str(),
        };
        if refusal.raise {
            return Err(err);
        }
        if refusal.report {
            self.inner.report(err);
        }
        Ok(None)
    }

    /// The user withdrew consent: from now on `track()` keeps nothing and sends nothing (it
    /// returns `None`, counted in `stats().opted_out`), and the events queued or waiting for
    /// a retry are discarded (counted there too; a batch already on the wire finishes). The
    /// choice is recorded in `localStorage` for this API key and holds after a reload.
    /// Entitlements still work. Errors: `spool_error` when `localStorage` refuses the entry
    /// (the choice applies in memory all the same).
    pub fn opt_out(&self) -> Result<(), Error> {
        let inner = &self.inner;
        inner.opted_out.set(true);
        let discarded = sender::discard(inner);
        inner.opted_out_events.set(inner.opted_out_events.get() + discarded);
        consent::store(&inner.consent_entry, true)
    }

    /// The user consents again: `track()` queues and sends events from now on (nothing
    /// discarded before comes back). Errors: `spool_error` when `localStorage` refuses to
    /// drop the entry (the choice applies in memory all the same).
    pub fn opt_in(&self) -> Result<(), Error> {
        self.inner.opted_out.set(false);
        consent::store(&self.inner.consent_entry, false)
    }

    /// Whether the user opted out, in this page or a recorded earlier load.
    pub fn is_opted_out(&self) -> bool {
        self.inner.opted_out.get()
    }

    /// Sends everything queued so far and resolves once the server answered for it (or it
    /// was given up on); a retry's backoff is cut short. Fails with `timeout` after
    /// `timeout` (what is undelivered stays queued).
    pub async fn flush(&self, timeout: Duration) -> Result<(), Error> {
        let target = self.inner.outbox.borrow_mut().request_flush(host::monotonic_ms());
        sender::drive(&self.inner);
        sender::wait_settled(&self.inner, target, timeout).await
    }

    /// Stops accepting events and delivers what is queued within `timeout`; what is still
    /// undelivered then is dropped (counted in `dropped`) and the call fails with `timeout`.
    /// Calling it again is harmless.
    pub async fn shutdown(&self, timeout: Duration) -> Result<(), Error> {
        let inner = &self.inner;
        inner.closed.set(true);
        stream::close(inner);
        let target = inner.outbox.borrow_mut().drain(host::monotonic_ms());
        sender::drive(inner);
        let done = sender::wait_settled(inner, target, timeout).await;
        if done.is_err() {
            inner.outbox.borrow_mut().abort();
            sender::drive(inner);
        }
        done
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let ents = &self.inner.entitlements;
        let counters = ents.counters.get();
        Stats {
            cache_hits: ents.cache.borrow().hits(),
            cache_misses: counters.misses,
            stale_answers: counters.stale,
            fallback_answers: counters.fallback,
            opted_out: self.inner.opted_out_events.get(),
            spool_length: self.inner.persist.length(),
            stream_connected: self.inner.stream.connected(),
            token_provider_failures: self.inner.identity.failures(),
            ..self.inner.outbox.borrow().stats()
        }
    }

    /// The client's configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Whether the background is idle: no timer set and no request out (tests check that an
    /// idle client keeps no timer).
    pub fn idle(&self) -> bool {
        self.inner.sender.borrow().idle()
    }
}

/// The `X-Meterline-SDK` value of every request (DR-103: a page may not set `User-Agent`):
/// `meterline-web/0.1.0 (<runtime>)`, the runtime being what the binding named (the
/// browser's `navigator.userAgent`), else `browser`.
fn sdk_header_value(sdk: &Sdk) -> String {
    let mut sdk = sdk.clone();
    if sdk.runtime.trim().is_empty() {
        sdk.runtime = "browser".to_owned();
    }
    sdk.header_value("", "")
}

/// The entitlement cache shared by the client (for [`entitlements`]).
fn new_cache(config: &Config) -> RefCell<EntitlementCache> {
    RefCell::new(EntitlementCache::new(config.cache_settings()))
}

/// Bodies of the batches not yet settled, by first sequence number.
type Bodies = HashMap<u64, Rc<Vec<u8>>>;
