//! One cached subject: the server's answer, when it stops being fresh, and the usage this
//! client tracked that the server had not counted yet.

use std::{collections::VecDeque, sync::Arc};

use crate::entitlement::{Aggregation, Entitlement, Entitlements, FeatureKind};

/// Most local usage records kept per metered feature; past it the two oldest are merged
/// (the merged record is dropped only once the later of the two is counted, so the estimate
/// errs towards too much usage, never too little).
pub(super) const MAX_DELTAS: usize = 256;

/// A cache slot. `data` is `None` for a subject whose last fetch failed before anything was
/// known about it (a negative entry: answered by the fallback until `retry_at`).
#[derive(Debug)]
pub(super) struct Entry {
    pub data: Option<Cached>,
    pub etag: Option<String>,
    pub fetched_at: u64,
    /// Fresh before this (server TTL, capped by `max_ttl` and the earliest period end).
    pub expires_at: u64,
    /// Set by a stream `resync`: revalidate even if still fresh.
    pub refetch_due: bool,
    /// A fetch for this subject is under way (no second revalidation is started).
    pub revalidating: bool,
    /// After a failure, no new fetch before this.
    pub retry_at: u64,
    pub failures: u32,
    pub last_error: Option<String>,
}

impl Entry {
    pub fn negative() -> Self {
        Entry {
            data: None,
            etag: None,
            fetched_at: 0,
            expires_at: 0,
            refetch_due: false,
            revalidating: false,
            retry_at: 0,
            failures: 0,
            last_error: None,
        }
    }

    /// Marks a successful fetch or update at `now`.
    pub fn refreshed(&mut self, now: u64, max_ttl: Option<u64>) {
        let Some(data) = &self.data else { return };
        let ttl = max_ttl.map_or(data.ttl_ms, |cap| data.ttl_ms.min(cap));
        let mut expires = now.saturating_add(ttl);
        if let Some(end) = data.earliest_period_end() {
            expires = expires.min(end);
        }
        self.fetched_at = now;
        self.expires_at = expires;
        self.refetch_due = false;
        self.revalidating = false;
        self.retry_at = 0;
        self.failures = 0;
        self.last_error = None;
    }
}

/// A server answer as cached.
#[derive(Debug)]
pub(super) struct Cached {
    /// Shared with every answer built from it.
    pub subject: Arc<str>,
    pub version: u64,
    pub ttl_ms: u64,
    pub features: Features,
}

impl Cached {
    /// `subject` is shared with the cache's key (one allocation to touch on a hit).
    pub fn new(answer: Entitlements, subject: Arc<str>) -> Self {
        Cached {
            subject,
            version: answer.version,
            ttl_ms: answer.ttl_ms,
            features: Features::new(
                answer
                    .entitlements
                    .into_iter()
                    .map(|(key, e)| CachedFeature::new(&key, e))
                    .collect(),
            ),
        }
    }

    /// Replaces `self` with a newer answer, keeping the local usage the new answer cannot
    /// contain: records with `mark ≥ counted_through` that fall in the new period.
    pub fn replace(&mut self, newer: Entitlements, counted_through: u64) {
        let mut next = Cached::new(newer, self.subject.clone());
        for feature in next.features.values_mut() {
            if let Some(old) = self.features.get(&feature.key) {
                feature.carry_from(old, counted_through);
            }
        }
        *self = next;
    }

    /// Drops the local usage the server has counted (every record with `mark < counted_through`).
    pub fn forget_counted(&mut self, counted_through: u64) {
        for feature in self.features.values_mut() {
            feature.keep_uncounted(counted_through);
        }
    }

    /// The highest mark of the local usage records kept (`None`: none kept).
    pub fn last_local_mark(&self) -> Option<u64> {
        self.features
            .values()
            .filter_map(|f| f.deltas.back().map(|d| d.mark))
            .max()
    }

    fn earliest_period_end(&self) -> Option<u64> {
        self.features
            .values()
            .filter_map(|f| f.period.map(|(_, end)| end))
            .min()
    }
}

/// The features of a cached answer, in key order. Looked up through a compact list of the
/// keys searched by length first: a lookup reads one or two cache lines of keys and compares
/// the bytes of one key at most (each key is its own allocation, so every comparison may be
/// a cache miss), which a map cannot promise.
#[derive(Debug, Default)]
pub(super) struct Features {
    keys: Vec<Arc<str>>,
    features: Vec<CachedFeature>,
}

impl Features {
    fn new(features: Vec<CachedFeature>) -> Self {
        Features {
            keys: features.iter().map(|f| f.key.clone()).collect(),
            features,
        }
    }

    #[inline]
    pub fn get(&self, key: &str) -> Option<&CachedFeature> {
        let i = self.keys.iter().position(|k| k.len() == key.len() && **k == *key)?;
        self.features.get(i)
    }

    pub fn values(&self) -> impl Iterator<Item = &CachedFeature> {
        self.features.iter()
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut CachedFeature> {
        self.features.iter_mut()
    }
}

/// One feature of a cached answer, with the usage tracked locally since the server counted.
#[derive(Debug)]
pub(crate) struct CachedFeature {
    /// The feature key, `period_end` and `value`, shared with the answers (a cache hit
    /// allocates nothing).
    pub key: Arc<str>,
    pub period_end: Option<Arc<str>>,
    pub value: Option<Arc<serde_json::Value>>,
    pub entitlement: Entitlement,
    /// Metered: `[period_start, period_end)` in Unix ms, when the server gave both.
    pub period: Option<(u64, u64)>,
    deltas: VecDeque<Delta>,
    /// Sum of `deltas`.
    pub local: f64,
}

/// Usage of one tracked event (or of merged neighbours).
#[derive(Debug, Clone, Copy)]
struct Delta {
    mark: u64,
    at: u64,
    amount: f64,
}

impl CachedFeature {
    pub fn new(key: &str, entitlement: Entitlement) -> Self {
        let parse = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp_millis().max(0) as u64)
        };
        let period = match (parse(&entitlement.period_start), parse(&entitlement.period_end)) {
            (Some(start), Some(end)) => Some((start, end)),
            (None, Some(end)) => Some((0, end)),
            _ => None,
        };
        CachedFeature {
            key: Arc::from(key),
            period_end: entitlement.period_end.as_deref().map(Arc::from),
            value: entitlement.value.clone().map(Arc::new),
            entitlement,
            period,
            deltas: VecDeque::new(),
            local: 0.0,
        }
    }

    /// The usage one event of `event_type` at `at` adds to this feature, if it counts here.
    /// Whether this is a metered feature over events of `event_type`.
    pub fn meters(&self, event_type: &str) -> bool {
        let e = &self.entitlement;
        e.kind == FeatureKind::Metered && e.event_type.as_deref() == Some(event_type)
    }

    pub fn usage_of(
        &self,
        event_type: &str,
        at: u64,
        data: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<f64> {
        if !self.meters(event_type) {
            return None;
        }
        let e = &self.entitlement;
        if self.period.is_some_and(|(start, end)| at < start || at >= end) {
            return None;
        }
        let amount = match e.aggregation {
            Some(Aggregation::Sum) => e
                .property
                .as_deref()
                .and_then(|p| data.get(p))
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0),
            Some(Aggregation::Count) | None => 1.0,
        };
        (amount != 0.0 && amount.is_finite()).then_some(amount)
    }

    pub fn add(&mut self, mark: u64, at: u64, amount: f64) {
        if self.deltas.len() >= MAX_DELTAS
            && let (Some(first), Some(second)) = (self.deltas.pop_front(), self.deltas.pop_front())
        {
            self.deltas.push_front(Delta {
                amount: first.amount + second.amount,
                ..second
            });
        }
        self.deltas.push_back(Delta { mark, at, amount });
        self.local += amount;
    }

    fn keep_uncounted(&mut self, counted_through: u64) {
        let before = self.deltas.len();
        self.deltas.retain(|d| d.mark >= counted_through);
        if self.deltas.len() != before {
            self.local = self.deltas.iter().map(|d| d.amount).sum();
        }
    }

    fn carry_from(&mut self, old: &CachedFeature, counted_through: u64) {
        if self.entitlement.kind != FeatureKind::Metered {
            return;
        }
        let period = self.period;
        self.deltas = old
            .deltas
            .iter()
            .filter(|d| d.mark >= counted_through && period.is_none_or(|(start, end)| d.at >= start && d.at < end))
            .copied()
            .collect();
        self.local = self.deltas.iter().map(|d| d.amount).sum();
    }

    #[cfg(test)]
    pub fn deltas(&self) -> usize {
        self.deltas.len()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn metered() -> CachedFeature {
        CachedFeature::new(
            "tokens",
            serde_json::from_value(json!({"kind":"metered","has_access":true,"limit":10,"usage":2,
                "period_start":"2026-11-01T00:00:00Z","period_end":"2026-12-01T00:00:00Z",
                "event_type":"api.call","aggregation":"sum","property":"tokens"}))
            .unwrap(),
        )
    }

    #[test]
    fn sums_the_property_within_the_period_only() {
        let f = metered();
        let data = json!({"tokens": 3}).as_object().unwrap().clone();
        let nov = 1_795_000_000_000; // 2026-11-18
        assert_eq!(f.usage_of("api.call", nov, &data), Some(3.0));
        assert_eq!(f.usage_of("other", nov, &data), None);
        assert_eq!(f.usage_of("api.call", 1_700_000_000_000, &data), None);
        let none = json!({"tokens": "x"}).as_object().unwrap().clone();
        assert_eq!(f.usage_of("api.call", nov, &none), None);
    }

    #[test]
    fn merges_old_records_and_keeps_the_total() {
        let mut f = metered();
        for i in 0..(MAX_DELTAS as u64 + 10) {
            f.add(i, 0, 1.0);
        }
        assert_eq!(f.deltas(), MAX_DELTAS);
        assert_eq!(f.local, MAX_DELTAS as f64 + 10.0);
        f.keep_uncounted(MAX_DELTAS as u64);
        assert_eq!(f.local, 10.0);
    }
}
