//! The core's counters (`stats()`) as a plain JavaScript object with camelCase keys.

use napi_derive::napi;

/// A snapshot of a client's counters since it started (DESIGN §7).
#[napi(object)]
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Events accepted by `track()` (validated and queued).
    pub enqueued: f64,
    /// Events the server stored for the first time.
    pub sent: f64,
    /// Events the server already had (a retry of a stored event, or a resent id).
    pub duplicates: f64,
    /// Events the server rejected (reported through `on('error')`; not retried).
    pub rejected: f64,
    /// Events dropped by the overflow policy, or given up on (a permanent send failure;
    /// without a spool also exhausted retries and shutdown's deadline).
    pub dropped: f64,
    /// Batch requests retried.
    pub retried: f64,
    /// Batches sent successfully.
    pub batches: f64,
    /// Events waiting in memory (including those in flight).
    pub queue_length: f64,
    /// Events waiting in the disk spool, including those given up on in this process (sent
    /// by the next client on the directory); after `shutdown()`, what it left there.
    pub spool_length: f64,
    /// Entitlement cache hits.
    pub cache_hits: f64,
    /// Entitlement cache misses.
    pub cache_misses: f64,
    /// Entitlement answers with source `stale`.
    pub stale_answers: f64,
    /// Entitlement answers with source `fallback`.
    pub fallback_answers: f64,
    /// Whether the realtime stream is connected.
    pub stream_connected: bool,
    /// Events not kept because the user opted out.
    pub opted_out: f64,
    /// `tokenProvider` calls that failed or returned no customer token.
    pub token_provider_failures: f64,
}

impl From<meterline_core::Stats> for Stats {
    // Counts stay far below 2^53, where an f64 (a JS number) is still exact.
    fn from(s: meterline_core::Stats) -> Self {
        Stats {
            enqueued: s.enqueued as f64,
            sent: s.sent as f64,
            duplicates: s.duplicates as f64,
            rejected: s.rejected as f64,
            dropped: s.dropped as f64,
            retried: s.retried as f64,
            batches: s.batches as f64,
            queue_length: s.queue_length as f64,
            spool_length: s.spool_length as f64,
            cache_hits: s.cache_hits as f64,
            cache_misses: s.cache_misses as f64,
            stale_answers: s.stale_answers as f64,
            fallback_answers: s.fallback_answers as f64,
            stream_connected: s.stream_connected,
            opted_out: s.opted_out as f64,
            token_provider_failures: s.token_provider_failures as f64,
        }
    }
}
