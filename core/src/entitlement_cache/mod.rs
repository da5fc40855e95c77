//! The local entitlement cache (DESIGN §4, §7): what `entitlement()` answers, sans I/O.
//!
//! [`EntitlementCache`] is an LRU of server answers keyed by subject. Every method takes the
//! time (`now`, Unix milliseconds) and returns a decision; the runtime does the fetching,
//! the waiting and the sockets. The shared vectors (`tests/vectors/entitlements.json`,
//! `stream.json`) drive exactly these methods.
//!
//! **Freshness.** An answer is fresh for the server's `ttl_ms` (capped by `max_ttl`, and
//! never past the end of a metered feature's period), then *stale* for `max_stale` more:
//! a stale answer is served at once while one background revalidation runs
//! (stale-while-revalidate). Older than that it is not served: the caller fetches, and on
//! failure answers the configured [`Fallbacks`].
//!
//! **Versions.** An answer replaces the cached one only if its `version` is ≥ the cached
//! version; an older answer only confirms that the server is reachable.
//!
//! **Local usage.** [`EntitlementCache::record_event`] counts a tracked event into every
//! cached metered feature of its subject that it feeds (same `event_type`, event time in the
//! current period): 1 for `count`, `data.<property>` for `sum`. Each record carries a
//! *mark*: a position in the caller's stream of tracked events (the native client uses the
//! event's queue sequence number). A server answer comes with `counted_through`: the caller
//! knows that every event with a smaller mark had been stored by the server (or given up on)
//! before the request was sent. Records below it are dropped — the answer contains them —
//! and the others are kept on top of the new answer. Events in flight while the request was
//! sent may be counted twice until the next answer: the estimate errs towards denying. A
//! stream update is the common case (the server emits one when this client's own batch
//! crosses a threshold, before the batch's answer arrives), so a subject updated over the
//! stream on top of local records is refetched once those records have settled
//! ([`EntitlementCache::settled`]).
//!
//! **Failures.** A failed fetch leaves a stale entry serving stale answers (with the failure
//! as `reason`) and a missing one answering the fallback; either way no new fetch is started
//! before a backoff (1 s doubling to 60 s, equal jitter, or the server's `Retry-After`).

mod answer;
mod entry;
mod fallback;
mod flight;
mod stream_apply;

use std::{collections::HashMap, num::NonZeroUsize, sync::Arc, time::Duration};

use lru::LruCache;
use serde_json::{Map, Value};

use self::entry::{Cached, Entry};
pub use self::{
    answer::{EntitlementAnswer, NOT_IN_PLAN, Source},
    fallback::{Fallback, Fallbacks},
    flight::{Flights, Join, Landing},
    stream_apply::{StreamEffect, UsageThresholdEvent},
};
use crate::{entitlement::Entitlements, retry::RetryPolicy};

/// Longest feature key accepted (characters).
pub const MAX_FEATURE_LEN: usize = 256;

/// How many subjects a runtime refetches at once after a stream `resync` (the session's
/// `Refetch` action): enough to refill a cache quickly, few enough not to flood the server.
pub const REFETCH_CONCURRENCY: usize = 4;

/// How the cache behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    /// Most subjects kept (least recently used evicted first).
    pub capacity: NonZeroUsize,
    /// Caps the server's `ttl_ms` (`None`: the server decides).
    pub max_ttl: Option<Duration>,
    /// How long past its TTL an answer may still be served while revalidating.
    pub max_stale: Duration,
    /// What to answer when nothing usable is cached and the server cannot answer.
    pub fallbacks: Fallbacks,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            capacity: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            max_ttl: None,
            max_stale: Duration::from_secs(24 * 3600),
            fallbacks: Fallbacks::default(),
        }
    }
}

/// The result of [`EntitlementCache::lookup`].
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// Within the TTL: answer it (source `cache`).
    Hit(EntitlementAnswer),
    /// Past the TTL but within `max_stale`: answer it (source `stale`) at once. When
    /// `revalidate` is true the caller must start one background fetch (the entry is now
    /// marked as revalidating, so concurrent lookups get `false`).
    Stale {
        /// The stale answer.
        answer: EntitlementAnswer,
        /// Whether this caller should start the revalidation.
        revalidate: bool,
    },
    /// A recent fetch for this subject failed and its backoff has not passed: answer this
    /// fallback without fetching.
    Backoff(EntitlementAnswer),
    /// Nothing servable: fetch (waiting for the result), then [`EntitlementCache::answer`].
    Miss,
}

/// A fetch in progress, from [`EntitlementCache::begin_fetch`] to
/// [`EntitlementCache::complete_fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTicket {
    /// The subject fetched.
    pub subject: String,
    /// Send as `If-None-Match` (the cached answer's ETag).
    pub etag: Option<String>,
    /// Every tracked event with a smaller mark was counted by the server when the request
    /// was sent.
    pub counted_through: u64,
}

/// How a fetch ended.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchResult {
    /// `200` with the answer and its `ETag`.
    Fetched {
        /// The body.
        answer: Entitlements,
        /// The `ETag` header.
        etag: Option<String>,
    },
    /// `304 Not Modified`: the cached answer is current.
    NotModified,
    /// No usable answer; `reason` says why (`server unreachable: …`, `timeout after 1s`,
    /// `unauthorized: …`).
    Failed {
        /// Reported in the answers' `reason`.
        reason: String,
        /// The server's `Retry-After`, which replaces the backoff.
        retry_after: Option<Duration>,
    },
}

/// What a completed fetch changed, for the runtime's stream subscriptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchCompletion {
    /// The subject's answer is now cached and was not before: subscribe to it.
    pub added: bool,
    /// A subject evicted to make room: unsubscribe from it.
    pub evicted: Option<String>,
    /// `304` arrived but the cached answer was evicted meanwhile: fetch again without ETag.
    pub refetch: bool,
}

/// Backoff of fetches after a failure: 1 s doubling to 60 s.
const FAILURE_BACKOFF: RetryPolicy = RetryPolicy {
    initial_delay: Duration::from_secs(1),
    max_delay: Duration::from_secs(60),
    max_retry_after: Duration::from_secs(300),
    max_retries: None,
};

/// Entitlement answers by subject, with local usage and stream state. See the module docs.
#[derive(Debug)]
pub struct EntitlementCache {
    /// Keys are shared with the cached answers' `subject` (see [`Cached::new`]).
    entries: LruCache<Arc<str>, Entry>,
    /// Fetches under way per subject (a stream update for such a subject is kept even if
    /// nothing is cached yet).
    pending: HashMap<String, u32>,
    settings: CacheSettings,
    last_seq: Option<u64>,
    /// Subjects whose answer came over the stream while local usage records were kept on
    /// top of it, with the mark past which those records are all settled: see
    /// [`EntitlementCache::settled`].
    unsettled: HashMap<Arc<str>, u64>,
    /// Lookups answered from the cache (`cache` or `stale`): counted here, under the lock the
    /// caller already holds, rather than with an atomic add per hit.
    hits: u64,
}

/// A lookup with nothing servable cached: the fallback while a failed fetch's backoff runs
/// (no new request), else a miss.
fn backoff_or_miss(entry: &Entry, settings: &CacheSettings, subject: &str, feature: &str, now: u64) -> Lookup {
    match &entry.last_error {
        Some(reason) if now < entry.retry_at => Lookup::Backoff(EntitlementAnswer::from_fallback(
            subject,
            feature,
            settings.fallbacks.get(feature),
            reason,
        )),
        _ => Lookup::Miss,
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl EntitlementCache {
    /// An empty cache.
    pub fn new(settings: CacheSettings) -> Self {
        EntitlementCache {
            entries: LruCache::new(settings.capacity),
            pending: HashMap::new(),
            settings,
            last_seq: None,
            unsettled: HashMap::new(),
            hits: 0,
        }
    }

    /// Forgets every cached subject, fetch and unsettled usage (`identify()` switched users:
    /// nothing of one is shown to the next); the hit counter stays.
    pub fn forget_all(&mut self) {
        self.entries.clear();
        self.pending.clear();
        self.unsettled.clear();
        self.last_seq = None;
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// What to answer for `feature` of `subject` at `now`, without I/O. See [`Lookup`].
    // `always`: with plain `#[inline]` the answer was built here and copied out through
    // `Lookup` and the client's own enum (≈ 150 bytes each time; ≈ 20 % of a hit).
    #[inline(always)]
    pub fn lookup(&mut self, subject: &str, feature: &str, now: u64) -> Lookup {
        let max_stale = ms(self.settings.max_stale);
        let Some(entry) = self.entries.get_mut(subject) else {
            return Lookup::Miss;
        };
        let Some(data) = &entry.data else {
            return backoff_or_miss(entry, &self.settings, subject, feature, now);
        };
        let cached = data.features.get(feature);
        self.hits += 1;
        if now < entry.expires_at && !entry.refetch_due {
            return Lookup::Hit(EntitlementAnswer::from_cached(
                &data.subject,
                feature,
                cached,
                data.version,
                Source::Cache,
                None,
            ));
        }
        if now >= entry.expires_at.saturating_add(max_stale) {
            // Too old to serve: like a negative entry, honour the backoff of a failure.
            return backoff_or_miss(entry, &self.settings, subject, feature, now);
        }
        let revalidate = !entry.revalidating && now >= entry.retry_at;
        entry.revalidating |= revalidate;
        let reason = entry.last_error.as_deref().unwrap_or(if entry.refetch_due {
            "resync: revalidating"
        } else {
            "past ttl: revalidating"
        });
        Lookup::Stale {
            answer: EntitlementAnswer::from_cached(
                &data.subject,
                feature,
                cached,
                data.version,
                Source::Stale,
                Some(reason),
            ),
            revalidate,
        }
    }

    /// How many [`EntitlementCache::lookup`]s were answered from the cache (`Hit` or `Stale`).
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// The answer for `feature` from the cached server answer, labelled `source` (use
    /// [`Source::Fresh`] right after a fetch for this call). `None` if nothing is cached.
    pub fn answer(&self, subject: &str, feature: &str, source: Source) -> Option<EntitlementAnswer> {
        let entry = self.entries.peek(subject)?;
        let data = entry.data.as_ref()?;
        Some(EntitlementAnswer::from_cached(
            &data.subject,
            feature,
            data.features.get(feature),
            data.version,
            source,
            None,
        ))
    }

    /// What to answer when a fetch for this call failed with `reason`: the cached answer
    /// (`cache` within the TTL, else `stale` with the reason) if one is servable, else the
    /// fallback.
    pub fn answer_or_fallback(&self, subject: &str, feature: &str, reason: &str, now: u64) -> EntitlementAnswer {
        let max_stale = ms(self.settings.max_stale);
        if let Some(entry) = self.entries.peek(subject)
            && let Some(data) = &entry.data
            && now < entry.expires_at.saturating_add(max_stale)
        {
            let cached = data.features.get(feature);
            return if now < entry.expires_at && !entry.refetch_due {
                EntitlementAnswer::from_cached(&data.subject, feature, cached, data.version, Source::Cache, None)
            } else {
                EntitlementAnswer::from_cached(
                    &data.subject,
                    feature,
                    cached,
                    data.version,
                    Source::Stale,
                    Some(reason),
                )
            };
        }
        self.fallback(subject, feature, reason)
    }

    /// The configured fallback for `feature` with `reason` (deny when none is configured).
    pub fn fallback(&self, subject: &str, feature: &str, reason: &str) -> EntitlementAnswer {
        EntitlementAnswer::from_fallback(subject, feature, self.settings.fallbacks.get(feature), reason)
    }

    /// Registers a fetch about to be sent. `counted_through`: see [`FetchTicket`].
    pub fn begin_fetch(&mut self, subject: &str, counted_through: u64) -> FetchTicket {
        *self.pending.entry(subject.to_owned()).or_default() += 1;
        let etag = self.entries.peek_mut(subject).and_then(|entry| {
            entry.revalidating = true;
            entry.data.as_ref().and(entry.etag.clone())
        });
        FetchTicket {
            subject: subject.to_owned(),
            etag,
            counted_through,
        }
    }

    /// Applies the end of a fetch. `jitter` is a uniform draw in `[0, 1)` for the backoff
    /// after a failure.
    pub fn complete_fetch(
        &mut self,
        ticket: FetchTicket,
        result: FetchResult,
        now: u64,
        jitter: f64,
    ) -> FetchCompletion {
        if let Some(count) = self.pending.get_mut(&ticket.subject) {
            *count -= 1;
            if *count == 0 {
                self.pending.remove(&ticket.subject);
            }
        }
        if !matches!(result, FetchResult::Failed { .. })
            && self
                .unsettled
                .get(ticket.subject.as_str())
                .is_some_and(|at| *at <= ticket.counted_through)
        {
            // This answer was asked for after those records settled: it counts them.
            self.unsettled.remove(ticket.subject.as_str());
        }
        match result {
            FetchResult::Fetched { answer, etag } => {
                self.store(&ticket.subject, answer, etag, ticket.counted_through, now)
            }
            FetchResult::NotModified => {
                let max_ttl = self.settings.max_ttl.map(ms);
                match self.entries.get_mut(ticket.subject.as_str()) {
                    Some(entry) if entry.data.is_some() => {
                        if let Some(data) = &mut entry.data {
                            data.forget_counted(ticket.counted_through);
                        }
                        entry.refreshed(now, max_ttl);
                        FetchCompletion::default()
                    }
                    _ => FetchCompletion {
                        refetch: true,
                        ..FetchCompletion::default()
                    },
                }
            }
            FetchResult::Failed { reason, retry_after } => {
                let mut evicted = None;
                if !self.entries.contains(ticket.subject.as_str()) {
                    evicted = self.push(Arc::from(ticket.subject.as_str()), Entry::negative());
                }
                if let Some(entry) = self.entries.get_mut(ticket.subject.as_str()) {
                    let delay = retry_after.unwrap_or_else(|| {
                        let ceiling = FAILURE_BACKOFF.ceiling(entry.failures);
                        ceiling / 2 + ceiling.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
                    });
                    entry.failures = entry.failures.saturating_add(1);
                    entry.retry_at = now.saturating_add(ms(delay));
                    entry.revalidating = false;
                    entry.last_error = Some(reason);
                }
                FetchCompletion {
                    evicted,
                    ..FetchCompletion::default()
                }
            }
        }
    }

    /// Caches an answer obtained without a ticket (bootstrapped by the application, or a
    /// test), as if fetched at `now` with `counted_through`. Obeys the version rule.
    pub fn insert(
        &mut self,
        answer: Entitlements,
        etag: Option<String>,
        now: u64,
        counted_through: u64,
    ) -> FetchCompletion {
        let subject = answer.subject.clone();
        self.store(&subject, answer, etag, counted_through, now)
    }

    fn store(
        &mut self,
        subject: &str,
        answer: Entitlements,
        etag: Option<String>,
        counted_through: u64,
        now: u64,
    ) -> FetchCompletion {
        let max_ttl = self.settings.max_ttl.map(ms);
        if let Some(entry) = self.entries.get_mut(subject) {
            let added = entry.data.is_none();
            match &mut entry.data {
                Some(data) if data.version > answer.version => {}
                Some(data) => {
                    data.replace(answer, counted_through);
                    entry.etag = etag;
                }
                None => {
                    entry.data = Some(Cached::new(answer, Arc::from(subject)));
                    entry.etag = etag;
                }
            }
            entry.refreshed(now, max_ttl);
            return FetchCompletion {
                added,
                ..FetchCompletion::default()
            };
        }
        let key: Arc<str> = Arc::from(subject);
        let mut entry = Entry::negative();
        entry.data = Some(Cached::new(answer, key.clone()));
        entry.etag = etag;
        entry.refreshed(now, max_ttl);
        FetchCompletion {
            added: true,
            evicted: self.push(key, entry),
            refetch: false,
        }
    }

    /// Inserts, returning the subject evicted to make room if it had an answer (the stream
    /// subscribes only subjects with answers).
    fn push(&mut self, subject: Arc<str>, entry: Entry) -> Option<String> {
        match self.entries.push(subject, entry) {
            Some((evicted, old)) if old.data.is_some() && !self.entries.contains(&evicted) => Some(evicted.to_string()),
            _ => None,
        }
    }

    /// Whether a tracked event of `event_type` for `subject` would count towards a cached
    /// metered feature (so [`EntitlementCache::record_event`] needs its data).
    pub fn counts_usage(&self, event_type: &str, subject: &str) -> bool {
        self.entries
            .peek(subject)
            .and_then(|e| e.data.as_ref())
            .is_some_and(|cached| cached.features.values().any(|f| f.meters(event_type)))
    }

    /// Counts one tracked event into the cached metered features of `subject` it feeds.
    /// `at` is the event time (Unix ms), `mark` its position (see the module docs). Returns
    /// whether any feature counted it. Cheap when the subject is not cached.
    pub fn record_event(
        &mut self,
        event_type: &str,
        subject: &str,
        data: &Map<String, Value>,
        at: u64,
        mark: u64,
    ) -> bool {
        let Some(cached) = self.entries.peek_mut(subject).and_then(|e| e.data.as_mut()) else {
            return false;
        };
        let mut counted = false;
        for feature in cached.features.values_mut() {
            if let Some(amount) = feature.usage_of(event_type, at, data) {
                feature.add(mark, at, amount);
                counted = true;
            }
        }
        counted
    }

    /// Claims every entry a `resync` marked for refetch (so lookups will not start a second
    /// fetch for them) and returns their subjects, most recently used first.
    pub fn take_refetch_due(&mut self) -> Vec<String> {
        let mut due = Vec::new();
        for (subject, entry) in self.entries.iter_mut() {
            if entry.refetch_due && !entry.revalidating && entry.data.is_some() {
                entry.revalidating = true;
                due.push(subject.to_string());
            }
        }
        due
    }

    /// Subjects with a cached answer, most recently used first.
    pub fn subjects(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| e.data.is_some())
            .map(|(s, _)| s.to_string())
            .collect()
    }

    /// The cached answer's version for `subject`.
    pub fn version(&self, subject: &str) -> Option<u64> {
        self.entries.peek(subject)?.data.as_ref().map(|d| d.version)
    }

    /// Whether `subject` has a cached answer.
    pub fn contains(&self, subject: &str) -> bool {
        self.entries.peek(subject).is_some_and(|e| e.data.is_some())
    }

    /// Number of entries (negative ones included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Remembers that `subject`'s answer just came over the stream with local usage kept on
    /// top of it. A stream update is often caused by this client's own events (a threshold
    /// crossed, access flipped), committed by the server while their batch was still in
    /// flight: the answer may already count them, and keeping them would count them twice
    /// until the next answer — the client would deny early.
    fn note_unsettled(&mut self, subject: &str) {
        let Some(entry) = self.entries.peek(subject) else {
            return;
        };
        if let Some(mark) = entry.data.as_ref().and_then(Cached::last_local_mark) {
            let settled_at = mark.saturating_add(1);
            let at = self.unsettled.entry(Arc::from(subject)).or_insert(settled_at);
            *at = (*at).max(settled_at);
        }
    }

    /// The subjects to refetch now that every event below `counted_through` has been
    /// stored by the server (or given up on): those whose streamed answer was kept under
    /// local usage records that are all settled by now. Their refetch (with this
    /// `counted_through`) replaces the estimate with the server's exact count. Cheap when
    /// nothing is unsettled: call it after every batch.
    pub fn settled(&mut self, counted_through: u64) -> Vec<String> {
        if self.unsettled.is_empty() {
            return Vec::new();
        }
        let mut due = Vec::new();
        self.unsettled.retain(|subject, at| {
            if *at > counted_through {
                return true;
            }
            due.push(subject.to_string());
            false
        });
        due.retain(|subject| self.entries.contains(subject.as_str()));
        due
    }

    /// The last stream `seq` applied: resume with `since` = this.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }
}

/// Checks `entitlement()`'s arguments: 1–256 characters each (`invalid_argument` naming
/// `/subject` or `/feature`). Every runtime's `entitlement()` calls it first.
pub fn check_lookup(subject: &str, feature: &str) -> Result<(), crate::error::Error> {
    // Up to 256 bytes is up to 256 characters: skip counting on the hot path.
    if subject.is_empty() || subject.len() > crate::event::MAX_ATTRIBUTE_LEN {
        crate::customer_token::check_subject(subject)?;
    }
    if feature.is_empty() || feature.len() > MAX_FEATURE_LEN {
        if feature.is_empty() {
            return Err(
                crate::error::ValidationError::invalid_argument("/feature", "feature must not be empty").into(),
            );
        }
        if feature.chars().count() > MAX_FEATURE_LEN {
            return Err(crate::error::ValidationError::invalid_argument(
                "/feature",
                format!("feature must be at most {MAX_FEATURE_LEN} characters"),
            )
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
