//! How a realtime stream message changes the cache (DESIGN §5).

use serde::{Deserialize, Serialize};

use super::EntitlementCache;
use crate::stream::ServerMessage;

/// Hands the fields of [`UsageThresholdEvent`] — each one's doc, name and type — to the macro
/// `$then`, so that a binding needing a typed record of them (Kotlin and Swift's uniffi
/// record) declares it from this one list (as [`crate::stats_fields!`] does for the stats).
#[macro_export]
macro_rules! usage_threshold_fields {
    ($then:ident) => {
        $then! {
            /// The message's seq (a message may be delivered again after a reconnect: dedupe by it).
            pub seq: u64,
            /// The customer.
            pub subject: String,
            /// The metered feature.
            pub feature: String,
            /// The threshold crossed, as a fraction of the limit (0.8, 1.0).
            pub threshold: f64,
            /// Usage after the crossing.
            pub usage: f64,
            /// The limit.
            pub limit: f64,
        }
    };
}

/// Declares [`UsageThresholdEvent`] from [`usage_threshold_fields!`].
macro_rules! usage_threshold_struct {
    ($($(#[$doc:meta])* $vis:vis $field:ident: $ty:ty,)*) => {
        /// A `usage.threshold` message, as handed to the application's callback.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct UsageThresholdEvent {
            $($(#[$doc])* $vis $field: $ty,)*
        }
    };
}

usage_threshold_fields!(usage_threshold_struct);

/// What the runtime must do after [`EntitlementCache::apply`].
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEffect {
    /// Nothing.
    None,
    /// A cached subject's answer was replaced.
    Updated {
        /// The subject.
        subject: String,
    },
    /// Call the application's `on_usage_threshold`.
    UsageThreshold(UsageThresholdEvent),
    /// Refresh the event schemas (their document now has this ETag).
    SchemaUpdated {
        /// The new ETag.
        etag: String,
    },
    /// The stream could not resume: every cached answer is marked for refetch (claim them
    /// with [`EntitlementCache::take_refetch_due`]).
    Resync,
    /// The server refused a request; report it.
    Error {
        /// Stable code (`bad_message`, `too_many_subjects`, `forbidden`).
        code: String,
        /// What was wrong.
        message: String,
    },
}

impl EntitlementCache {
    /// Applies one server message received at `now`. `counted_through` is the mark below
    /// which every tracked event had been stored by the server when the message arrived
    /// (see the module docs).
    ///
    /// - `subscribed` sets the resume point only when none is known (a resume's replay may
    ///   follow it);
    /// - `entitlements.updated` replaces the answer of a subject that is cached or being
    ///   fetched (version rule applies); others are ignored, so the stream never grows the
    ///   cache;
    /// - `resync` marks every entry for refetch and restarts from its `seq` (which may be
    ///   lower than the last one: the server's log was reset);
    /// - every other message with a `seq` advances the resume point.
    pub fn apply(&mut self, message: ServerMessage, now: u64, counted_through: u64) -> StreamEffect {
        let advance = |last: &mut Option<u64>, seq: u64| *last = Some(last.map_or(seq, |l| l.max(seq)));
        match message {
            ServerMessage::Subscribed { seq, .. } => {
                self.last_seq.get_or_insert(seq);
                StreamEffect::None
            }
            ServerMessage::EntitlementsUpdated { seq, subject, data } => {
                advance(&mut self.last_seq, seq);
                if data.subject != subject || !(self.contains(&subject) || self.pending.contains_key(&subject)) {
                    return StreamEffect::None;
                }
                let max_ttl = self.settings.max_ttl.map(super::ms);
                if let Some(entry) = self.entries.peek_mut(subject.as_str())
                    && let Some(cached) = &mut entry.data
                {
                    if cached.version > data.version {
                        return StreamEffect::None;
                    }
                    cached.replace(data, counted_through);
                    // The stream's body has no ETag; the next fetch is unconditional.
                    entry.etag = None;
                    let revalidating = entry.revalidating;
                    entry.refreshed(now, max_ttl);
                    // A fetch still under way must not start a second one when it ends.
                    entry.revalidating = revalidating;
                } else {
                    // Being fetched: keep it; the fetch's answer replaces it only if not older.
                    self.store(&subject, data, None, counted_through, now);
                }
                self.note_unsettled(&subject);
                StreamEffect::Updated { subject }
            }
            ServerMessage::UsageThreshold { seq, subject, data } => {
                advance(&mut self.last_seq, seq);
                StreamEffect::UsageThreshold(UsageThresholdEvent {
                    seq,
                    subject,
                    feature: data.feature,
                    threshold: data.threshold,
                    usage: data.usage,
                    limit: data.limit,
                })
            }
            ServerMessage::SchemaUpdated { seq, data } => {
                advance(&mut self.last_seq, seq);
                StreamEffect::SchemaUpdated { etag: data.etag }
            }
            ServerMessage::Resync { seq } => {
                self.last_seq = Some(seq);
                self.mark_all_for_refetch();
                StreamEffect::Resync
            }
            ServerMessage::Error { code, message } => StreamEffect::Error { code, message },
        }
    }

    /// Marks every cached answer for refetch (a `resync`, or a reconnect that cannot
    /// resume): lookups serve them as stale until refetched.
    pub fn mark_all_for_refetch(&mut self) {
        for (_, entry) in self.entries.iter_mut() {
            if entry.data.is_some() {
                entry.refetch_due = true;
            }
        }
    }
}
