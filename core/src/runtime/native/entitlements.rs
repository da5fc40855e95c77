//! `entitlement()`, `customer_token()` and the local usage accounting of `track()`: the
//! caller's side. A cache hit is answered on the caller's thread; a miss waits on a
//! single-flight fetch run by the worker ([`super::fetch`]).

use std::{
    cell::Cell,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::{
    Client, Shared, fetch,
    flight::{Flight, Flights, Landing},
    stream::StreamControl,
};
use crate::{
    config::Config,
    customer_token,
    entitlement::Entitlements,
    entitlement_cache::{EntitlementAnswer, EntitlementCache, Lookup, Source},
    error::Error,
    throttle::ErrorThrottle,
};

/// Extra time a blocking caller waits past `entitlement_timeout` for the worker to end the
/// flight (the worker may be busy in an application callback).
const WAIT_GRACE: Duration = Duration::from_millis(250);

thread_local! {
    /// True on a client's worker thread, where blocking on a flight would deadlock.
    pub(crate) static ON_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Wall-clock milliseconds that never go backwards: the wall time at start plus a
/// monotonic clock, so a clock step does not expire or revive the whole cache. The monotonic
/// part is the coarse clock (resolution a few milliseconds, a fraction of the cost of a
/// precise read), which is plenty for TTLs and periods.
#[derive(Debug)]
pub(crate) struct Clock {
    start: coarsetime::Instant,
    wall_at_start: u64,
}

impl Clock {
    fn new() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        Clock {
            start: coarsetime::Instant::now(),
            wall_at_start: wall,
        }
    }

    /// Now, in Unix milliseconds.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        self.wall_at_start + coarsetime::Instant::now().duration_since(self.start).as_millis()
    }
}

/// Counters behind the entitlement part of `stats()`.
#[derive(Debug, Default)]
pub(crate) struct AnswerCounters {
    pub misses: AtomicU64,
    pub stale: AtomicU64,
    pub fallback: AtomicU64,
}

/// The entitlement half of the client's shared state.
#[derive(Debug)]
pub(crate) struct EntitlementState {
    pub cache: Mutex<EntitlementCache>,
    pub flights: Flights,
    pub counters: AnswerCounters,
    pub clock: Clock,
    /// Set once anything was cached: until then `track()` skips the cache entirely.
    pub any_cached: AtomicBool,
    /// Bumped (under the cache's lock) when `identify()`/`reset()` switch users: a fetch
    /// started before stores nothing.
    pub epoch: AtomicU64,
    /// Background failures reported to `on_error` at most once a minute per code.
    pub throttle: Mutex<ErrorThrottle>,
    pub stream: StreamControl,
    /// `{endpoint}/v1/customers/`, parsed once.
    pub base_url: reqwest::Url,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EntitlementState {
    pub fn new(config: &Config) -> Result<Self, Error> {
        let base_url = reqwest::Url::parse(config.base_url())
            .map_err(|e| Error::config("endpoint", format!("not a valid URL: {e}")))?;
        if base_url.cannot_be_a_base() {
            return Err(Error::config("endpoint", "not a valid base URL"));
        }
        Ok(EntitlementState {
            cache: Mutex::new(EntitlementCache::new(config.cache_settings())),
            flights: Flights::default(),
            counters: AnswerCounters::default(),
            clock: Clock::new(),
            any_cached: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            throttle: Mutex::new(ErrorThrottle::new(60_000)),
            stream: StreamControl::new(),
            base_url,
        })
    }

    /// Counts the answer by its source and returns it.
    fn counted(&self, answer: EntitlementAnswer) -> EntitlementAnswer {
        match answer.source {
            Source::Stale => self.counters.stale.fetch_add(1, Ordering::Relaxed),
            Source::Fallback => self.counters.fallback.fetch_add(1, Ordering::Relaxed),
            Source::Fresh | Source::Cache => 0,
        };
        answer
    }
}

/// Checks `entitlement()`'s arguments (see [`crate::entitlement_cache::check_lookup`]).
fn check_args(subject: &str, feature: &str) -> Result<(), Error> {
    crate::entitlement_cache::check_lookup(subject, feature)
}

/// What the fast path decided.
enum Next {
    Answer(EntitlementAnswer),
    Wait(Arc<Flight>),
}

/// What [`Client::try_entitlement`] found.
// The answer is returned by value (not boxed) on purpose: the hit is the hot path.
#[allow(clippy::large_enum_variant)]
pub enum TryEntitlement {
    /// The answer, at once (from the cache, or the fallback while a failed fetch backs off).
    Ready(EntitlementAnswer),
    /// Nothing servable is cached: one shared fetch is under way; wait on it.
    Pending(PendingEntitlement),
}

/// A cache miss waiting on the shared fetch (see [`Client::try_entitlement`]).
pub struct PendingEntitlement {
    client: Client,
    subject: String,
    feature: String,
    flight: Arc<Flight>,
}

impl PendingEntitlement {
    /// Blocks until the fetch lands, at most `entitlement_timeout`, then answers (the fresh
    /// answer, or the fallback with the reason). Never blocks on the client's own worker
    /// thread (from a callback): there it answers the fallback at once.
    pub fn wait(self) -> EntitlementAnswer {
        let shared = &self.client.shared;
        if ON_WORKER.get() {
            let ents = &shared.entitlements;
            let reason = "not waiting for the server: called on the meterline worker thread (from a callback)";
            let now = ents.clock.now_ms();
            return ents.counted(lock(&ents.cache).answer_or_fallback(&self.subject, &self.feature, reason, now));
        }
        let landing = self.flight.wait(shared.config.entitlement_timeout + WAIT_GRACE);
        self.client.after_flight(&self.subject, &self.feature, landing)
    }

    /// Awaits the fetch without blocking the executor, then answers as [`Self::wait`].
    pub async fn wait_async(self) -> EntitlementAnswer {
        let landing = self.flight.wait_async().await;
        self.client.after_flight(&self.subject, &self.feature, Some(landing))
    }
}

impl Client {
    /// Whether `subject` may use `feature`, with the details of the entitlement and where the
    /// answer came from ([`Source`]).
    ///
    /// A cached answer within its TTL is returned at once, on the caller's thread. Past its
    /// TTL (up to `max_stale`) it is still returned at once, as `stale`, while one
    /// background revalidation runs. Otherwise the subject's entitlements are fetched —
    /// concurrent callers for one subject share one request — and this call waits at most
    /// `entitlement_timeout` before answering the configured fallback (deny when none).
    /// Metered usage includes the events this client tracked that the server has not
    /// counted yet.
    ///
    /// Errors only for bad arguments (`invalid_argument` naming `/subject` or `/feature`:
    /// empty or over 256 characters) and after shutdown (`client_closed`). Network and
    /// server failures give `stale` or `fallback` answers whose `reason` says what happened;
    /// they also go to `on_error` (at most once a minute per kind). Blocking: from async
    /// code use [`Client::entitlement_async`].
    ///
    /// ```no_run
    /// # use meterline_core::{Client, Config};
    /// # let client = Client::new(Config::new("ml_sk_abc_0123456789abcdef0123", "http://127.0.0.1:8080"))?;
    /// let answer = client.entitlement("customer-42", "api_calls")?;
    /// if !answer.has_access {
    ///     println!("limit reached ({:?}, {:?})", answer.source, answer.reason);
    /// }
    /// # Ok::<(), meterline_core::Error>(())
    /// ```
    pub fn entitlement(&self, subject: &str, feature: &str) -> Result<EntitlementAnswer, Error> {
        Ok(match self.try_entitlement(subject, feature)? {
            TryEntitlement::Ready(answer) => answer,
            TryEntitlement::Pending(pending) => pending.wait(),
        })
    }

    /// [`Client::entitlement`] for async callers: the same answers, and a miss awaits the
    /// shared fetch without blocking the executor. Works under any executor (the client's
    /// own worker runs the fetch and its timeout).
    pub async fn entitlement_async(&self, subject: &str, feature: &str) -> Result<EntitlementAnswer, Error> {
        Ok(match self.try_entitlement(subject, feature)? {
            TryEntitlement::Ready(answer) => answer,
            TryEntitlement::Pending(pending) => pending.wait_async().await,
        })
    }

    /// [`Client::entitlement`] without waiting: the answer when the cache has one (fresh,
    /// stale while it revalidates, or the fallback while a failed fetch backs off), else the
    /// fetch it started, to wait on — blocking ([`PendingEntitlement::wait`]) or awaited
    /// ([`PendingEntitlement::wait_async`]). The one cache-hit shortcut every binding uses:
    /// a hit is answered on the caller's thread, with no allocation and no thread hop.
    ///
    /// Errors only for bad arguments and after shutdown, as [`Client::entitlement`].
    #[inline]
    pub fn try_entitlement(&self, subject: &str, feature: &str) -> Result<TryEntitlement, Error> {
        Ok(match self.lookup(subject, feature)? {
            Next::Answer(answer) => TryEntitlement::Ready(answer),
            Next::Wait(flight) => TryEntitlement::Pending(PendingEntitlement {
                client: self.clone(),
                subject: subject.to_owned(),
                feature: feature.to_owned(),
                flight,
            }),
        })
    }

    /// [`Client::entitlement`] without ever waiting: the cached answer (`cache`, or `stale`
    /// past its TTL while a revalidation runs), or on a miss the configured fallback at once
    /// (reason `not cached yet: fetching in the background`) while one fetch fills the cache
    /// for the next call. For synchronous code on a thread that must not block (a Node
    /// request handler, a UI thread), and to warm the cache early.
    ///
    /// Errors only for bad arguments and after shutdown, as [`Client::entitlement`].
    pub fn cached_entitlement(&self, subject: &str, feature: &str) -> Result<EntitlementAnswer, Error> {
        match self.lookup(subject, feature)? {
            Next::Answer(answer) => Ok(answer),
            Next::Wait(_) => {
                let ents = &self.shared.entitlements;
                let now = ents.clock.now_ms();
                let reason = "not cached yet: fetching in the background";
                Ok(ents.counted(lock(&ents.cache).answer_or_fallback(subject, feature, reason, now)))
            }
        }
    }

    /// The fast path: a cached answer, or the flight to wait on. Inlined so the answer is
    /// built where the caller returns it (each move of it is a ~150-byte copy).
    #[inline(always)]
    fn lookup(&self, subject: &str, feature: &str) -> Result<Next, Error> {
        check_args(subject, feature)?;
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let ents = &self.shared.entitlements;
        let now = ents.clock.now_ms();
        let lookup = lock(&ents.cache).lookup(subject, feature, now);
        let counters = &ents.counters;
        match lookup {
            Lookup::Hit(answer) => Ok(Next::Answer(answer)),
            Lookup::Stale { answer, revalidate } => {
                if revalidate {
                    fetch::start(&self.shared, subject);
                }
                Ok(Next::Answer(ents.counted(answer)))
            }
            Lookup::Backoff(answer) => {
                counters.misses.fetch_add(1, Ordering::Relaxed);
                Ok(Next::Answer(ents.counted(answer)))
            }
            Lookup::Miss => {
                counters.misses.fetch_add(1, Ordering::Relaxed);
                Ok(Next::Wait(fetch::start(&self.shared, subject)))
            }
        }
    }

    /// The answer once the flight landed (`None`: the worker did not end it in time).
    fn after_flight(&self, subject: &str, feature: &str, landing: Option<Landing>) -> EntitlementAnswer {
        let ents = &self.shared.entitlements;
        let now = ents.clock.now_ms();
        let timeout = self.shared.config.entitlement_timeout;
        let answer = lock(&ents.cache).answer_after_flight(subject, feature, landing.as_ref(), timeout, now);
        ents.counted(answer)
    }

    /// Caches an entitlement answer obtained elsewhere (bootstrapped into the page, computed
    /// by a test), as if just fetched; an answer older than the cached one is ignored. The
    /// subject then gets stream updates like any cached subject.
    ///
    /// Errors: `invalid_argument` for a bad `subject`, `client_closed` after shutdown.
    pub fn prime_entitlements(&self, answer: Entitlements) -> Result<(), Error> {
        customer_token::check_subject(&answer.subject)?;
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let counted_through = self.shared.pipeline.lock().low_watermark();
        let ents = &self.shared.entitlements;
        let subject = answer.subject.clone();
        let completion = lock(&ents.cache).insert(answer, None, ents.clock.now_ms(), counted_through);
        fetch::after_completion(&self.shared, &subject, &completion, None);
        Ok(())
    }

    /// Mints a customer token (DESIGN §6) for `subject`, valid for `ttl` (rounded up to
    /// whole seconds; at most 30 days): a JWT signed with HS256 by this secret key's
    /// customer-token signing key. Hand it to a browser or app, which passes it with its
    /// publishable key (`customer_token` option). Offline: no request is made.
    ///
    /// Errors: `invalid_config` (`api_key`) unless the client has a secret key;
    /// `invalid_argument` for a bad `/subject` or `/ttl`.
    pub fn customer_token(&self, subject: &str, ttl: Duration) -> Result<String, Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        customer_token::mint(&self.shared.key, subject, ttl, now)
    }
}

impl Shared {
    /// Counts a tracked event into the cached usage of its subject (see
    /// [`EntitlementCache::record_event`]). `seq` is the event's queue sequence number.
    pub(crate) fn record_usage(
        &self,
        event_type: &str,
        subject: &str,
        data: &mut super::TrackData<'_>,
        time: Option<&str>,
        seq: u64,
    ) {
        let ents = &self.entitlements;
        if !ents.any_cached.load(Ordering::Relaxed) {
            return;
        }

        let at = match time {
            None => ents.clock.now_ms(),
            Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
                Ok(t) => t.timestamp_millis().max(0) as u64,
                Err(_) => return,
            },
        };
        let mut cache = lock(&ents.cache);
        // JSON text is parsed only for events that count.
        if !cache.counts_usage(event_type, subject) {
            return;
        }
        if let Some(data) = data.map() {
            cache.record_event(event_type, subject, data, at, seq);
        }
    }
}
