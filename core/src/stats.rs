//! Counters a client reports through `stats()` (DESIGN §7).

use serde::Serialize;

/// Hands the fields of [`Stats`] — each one's doc, name and type — to the macro `$then`, so
/// that a binding needing a typed record of them (Kotlin and Swift's uniffi record) declares
/// it from this one list: `meterline_core::stats_fields!(my_record)` calls
/// `my_record! { $(#[doc] pub name: type,)* }`.
#[macro_export]
macro_rules! stats_fields {
    ($then:ident) => {
        $then! {
            /// Events accepted by `track()` (validated and queued).
            pub enqueued: u64,
            /// Events the server stored for the first time.
            pub sent: u64,
            /// Events the server already had (a retry of a stored event, or a resent id).
            pub duplicates: u64,
            /// Events the server rejected (reported through the error callback; not retried).
            pub rejected: u64,
            /// Events dropped by the overflow policy, or given up on (a permanent send failure;
            /// without a spool also exhausted retries and shutdown's deadline). Events the disk
            /// spool keeps for the next start are not dropped: they are in `spool_length`.
            pub dropped: u64,
            /// Batch requests retried.
            pub retried: u64,
            /// Batches sent successfully.
            pub batches: u64,
            /// Events waiting in memory (including those in flight).
            pub queue_length: u64,
            /// Events waiting in the disk spool, including batches given up on in this process
            /// (sent at the next start). After `shutdown()`: what it left in the spool.
            pub spool_length: u64,
            /// `entitlement()` calls answered from the cache (within the TTL or stale).
            pub cache_hits: u64,
            /// `entitlement()` calls with nothing servable cached (a fetch, or a fallback while a
            /// recent failure backs off).
            pub cache_misses: u64,
            /// `entitlement()` answers with source `stale`.
            pub stale_answers: u64,
            /// `entitlement()` answers with source `fallback`.
            pub fallback_answers: u64,
            /// Whether the realtime stream is connected.
            pub stream_connected: bool,
            /// Events not kept because the user opted out: refused by `track()` while opted out, or
            /// discarded from the queue by `opt_out()`.
            pub opted_out: u64,
            /// Token provider calls that failed or returned no customer token.
            pub token_provider_failures: u64,
        }
    };
}

/// Declares [`Stats`] from [`stats_fields!`].
macro_rules! stats_struct {
    ($($(#[$doc:meta])* $vis:vis $field:ident: $ty:ty,)*) => {
        /// A snapshot of a client's counters since it started.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
        pub struct Stats {
            $($(#[$doc])* $vis $field: $ty,)*
        }
    };
}

stats_fields!(stats_struct);
