//! Single flight, sans I/O: concurrent `entitlement()` misses for one subject share one
//! fetch, and what its waiters answer when it lands.
//!
//! [`Flights`] decides who starts a fetch and who waits for the one under way; it holds,
//! per subject, the runtime's waiting handle `W` (the native runtime's condvar + `Notify`,
//! a browser's promise), so the runtime only waits on it. The fetch ends with a
//! [`Landing`]; [`EntitlementCache::answer_after_flight`] turns it into each waiter's answer
//! (`fresh`, or the cached answer / fallback with the failure as `reason`).

use std::{collections::HashMap, sync::Arc, time::Duration};

use super::{EntitlementAnswer, EntitlementCache, FetchResult, Source};
use crate::entitlement::Entitlements;

/// How a flight ended for its waiters.
#[derive(Debug, Clone, PartialEq)]
pub enum Landing {
    /// The server answered; its body when it sent one (`None` for 304).
    Answered(Option<Arc<Entitlements>>),
    /// No answer for the waiters (`server unreachable: …`, `timeout after 1s`, …).
    Failed(String),
}

impl Landing {
    /// The landing of a fetch that ended with `result`.
    pub fn of(result: &FetchResult) -> Landing {
        match result {
            FetchResult::Fetched { answer, .. } => Landing::Answered(Some(Arc::new(answer.clone()))),
            FetchResult::NotModified => Landing::Answered(None),
            FetchResult::Failed { reason, .. } => Landing::Failed(reason.clone()),
        }
    }

    /// The waiters stop waiting after `after` (`entitlement_timeout`); the fetch goes on to
    /// fill the cache.
    pub fn timed_out(after: Duration) -> Landing {
        Landing::Failed(format!("timeout after {after:?}"))
    }
}

/// Whether a caller starts the subject's fetch or waits for the one under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Join<W> {
    /// Nothing under way: this caller starts the fetch (and later [`Flights::finish`]es it).
    Start(W),
    /// A fetch is under way: wait on its handle.
    Wait(W),
}

impl<W> Join<W> {
    /// The waiting handle, whichever it is.
    pub fn handle(&self) -> &W {
        match self {
            Join::Start(w) | Join::Wait(w) => w,
        }
    }
}

/// The fetches under way, by subject, each with its waiters' handle.
#[derive(Debug)]
pub struct Flights<W> {
    by_subject: HashMap<String, W>,
}

impl<W> Default for Flights<W> {
    fn default() -> Self {
        Flights {
            by_subject: HashMap::new(),
        }
    }
}

impl<W: Clone> Flights<W> {
    /// Joins the flight for `subject`, or starts one with the handle `new` makes.
    pub fn join(&mut self, subject: &str, new: impl FnOnce() -> W) -> Join<W> {
        if let Some(handle) = self.by_subject.get(subject) {
            return Join::Wait(handle.clone());
        }
        let handle = new();
        self.by_subject.insert(subject.to_owned(), handle.clone());
        Join::Start(handle)
    }

    /// The flight of `subject` ended: the next miss starts a new one. Only removes the
    /// flight `is_this` recognises (a later flight for the subject stays).
    pub fn finish(&mut self, subject: &str, is_this: impl FnOnce(&W) -> bool) {
        if self.by_subject.get(subject).is_some_and(is_this) {
            self.by_subject.remove(subject);
        }
    }

    /// Whether a fetch for `subject` is under way.
    pub fn in_flight(&self, subject: &str) -> bool {
        self.by_subject.contains_key(subject)
    }
}

impl EntitlementCache {
    /// What a caller that waited on a flight answers at `now`. `landing`: how the flight
    /// ended, `None` when the wait itself gave up after `timeout`. An answer is `fresh`
    /// (from the cache it was stored into, or the landed body if evicted meanwhile); a
    /// failure answers the cached answer (`cache` / `stale`) or the fallback, with the
    /// failure as `reason`.
    pub fn answer_after_flight(
        &self,
        subject: &str,
        feature: &str,
        landing: Option<&Landing>,
        timeout: Duration,
        now: u64,
    ) -> EntitlementAnswer {
        let reason = match landing {
            Some(Landing::Answered(body)) => {
                let fresh = self.answer(subject, feature, Source::Fresh).or_else(|| {
                    body.as_deref()
                        .map(|b| EntitlementAnswer::from_entitlements(b, feature, Source::Fresh))
                });
                if let Some(answer) = fresh {
                    return answer;
                }
                "the answer was evicted from the cache before it could be read (cache_size too small)".to_owned()
            }
            Some(Landing::Failed(reason)) => reason.clone(),
            None => format!("timeout after {timeout:?}"),
        };
        self.answer_or_fallback(subject, feature, &reason, now)
    }
}
