//! The core's counters (`stats()`) as a record.

/// A snapshot of a client's counters since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct Stats {
    /// Events accepted by `track()` (validated and queued).
    pub enqueued: u64,
    /// Events the server stored for the first time.
    pub sent: u64,
    /// Events the server already had (a retry of a stored event, or a resent id).
    pub duplicates: u64,
    /// Events the server rejected (reported to the listener; not retried).
    pub rejected: u64,
    /// Events dropped by the overflow policy, or given up on.
    pub dropped: u64,
    /// Batch requests retried.
    pub retried: u64,
    /// Batches sent successfully.
    pub batches: u64,
    /// Events waiting in memory (including those in flight).
    pub queue_length: u64,
    /// Events waiting in the disk spool.
    pub spool_length: u64,
    /// Entitlement cache hits.
    pub cache_hits: u64,
    /// Entitlement cache misses.
    pub cache_misses: u64,
    /// Entitlement answers with source `stale`.
    pub stale_answers: u64,
    /// Entitlement answers with source `fallback`.
    pub fallback_answers: u64,
    /// Whether the realtime stream is connected.
    pub stream_connected: bool,
    /// Events `track()` kept nothing of, or discarded from the queue, after `optOut()`.
    pub opted_out: u64,
    /// Calls of the `TokenProvider` that threw or gave no token.
    pub token_provider_failures: u64,
}

impl From<meterline_core::Stats> for Stats {
    fn from(s: meterline_core::Stats) -> Self {
        Stats {
            enqueued: s.enqueued,
            sent: s.sent,
            duplicates: s.duplicates,
            rejected: s.rejected,
            dropped: s.dropped,
            retried: s.retried,
            batches: s.batches,
            queue_length: s.queue_length,
            spool_length: s.spool_length,
            cache_hits: s.cache_hits,
            cache_misses: s.cache_misses,
            stale_answers: s.stale_answers,
            fallback_answers: s.fallback_answers,
            stream_connected: s.stream_connected,
            opted_out: s.opted_out,
            token_provider_failures: s.token_provider_failures,
        }
    }
}
