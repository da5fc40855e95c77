//! What `entitlement(subject, feature)` returns, and where the answer came from.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{entry::CachedFeature, fallback::Fallback};
use crate::entitlement::{FeatureKind, whole};

/// Where an [`EntitlementAnswer`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Fetched from the server for this call.
    Fresh,
    /// Served from the local cache within the server's TTL.
    Cache,
    /// Served from the cache past its TTL: being revalidated in the background, or the
    /// server is unreachable (`reason` says which).
    Stale,
    /// Nothing usable was cached and the server could not answer: the configured fallback
    /// (deny when none); `reason` says why.
    Fallback,
}

impl Source {
    /// The spelling used by every binding (`fresh`, `cache`, `stale`, `fallback`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Fresh => "fresh",
            Source::Cache => "cache",
            Source::Stale => "stale",
            Source::Fallback => "fallback",
        }
    }
}

/// Reason given when the server's answer does not list the feature.
pub const NOT_IN_PLAN: &str = "feature not in plan";

/// One feature's entitlement for one subject, as `entitlement()` answers it.
///
/// Metered usage includes the events this client tracked since the server last counted
/// (so `has_access` turns false at the limit without a round trip).
///
/// The strings and the config value are shared with the cache (`Arc`), so a cache hit
/// allocates nothing; they read like `&str` / `&Value` through `Deref`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntitlementAnswer {
    /// The customer.
    pub subject: Arc<str>,
    /// The feature key.
    pub feature: Arc<str>,
    /// The feature's kind; `None` when the feature is not in the subject's plan, or for a
    /// deny-by-default fallback.
    pub kind: Option<FeatureKind>,
    /// Whether the subject may use the feature now.
    pub has_access: bool,
    /// Metered: the limit for the current period (`None`: unlimited or unknown).
    #[serde(default, with = "whole")]
    pub limit: Option<f64>,
    /// Metered: the usage in the current period, local estimate included.
    #[serde(default, with = "whole")]
    pub usage: Option<f64>,
    /// Metered: `limit - usage`, never below 0.
    #[serde(default, with = "whole")]
    pub remaining: Option<f64>,
    /// Config: the feature's value.
    pub value: Option<Arc<Value>>,
    /// Metered: end of the current period (RFC 3339, UTC).
    pub period_end: Option<Arc<str>>,
    /// The server answer's `version`; `None` for a fallback.
    pub version: Option<u64>,
    /// Where the answer came from.
    pub source: Source,
    /// Why the answer is not a plain cached or fresh one: `feature not in plan`, the last
    /// failure while serving stale data, or why the fallback applied
    /// (`server unreachable: …`, `timeout after 1s`, `unauthorized: …`).
    pub reason: Option<String>,
}

impl EntitlementAnswer {
    /// Answer for `feature` from a cached server answer (`None`: the feature is not listed).
    #[inline(always)]
    pub(super) fn from_cached(
        subject: &Arc<str>,
        feature: &str,
        cached: Option<&CachedFeature>,
        version: u64,
        source: Source,
        reason: Option<&str>,
    ) -> Self {
        let Some(f) = cached else {
            return EntitlementAnswer {
                subject: subject.clone(),
                feature: Arc::from(feature),
                kind: None,
                has_access: false,
                limit: None,
                usage: None,
                remaining: None,
                value: None,
                period_end: None,
                version: Some(version),
                source,
                reason: Some(NOT_IN_PLAN.to_owned()),
            };
        };
        let e = &f.entitlement;
        let (usage, remaining, has_access) = if f.local == 0.0 {
            (e.usage, e.remaining, e.has_access)
        } else {
            let usage = e.usage.unwrap_or(0.0) + f.local;
            let over = e.limit.is_some_and(|limit| usage >= limit);
            let remaining = e.limit.map(|limit| (limit - usage).max(0.0));
            (Some(usage), remaining, e.has_access && !over)
        };
        EntitlementAnswer {
            subject: subject.clone(),
            feature: f.key.clone(),
            kind: Some(e.kind),
            has_access,
            limit: e.limit,
            usage,
            remaining,
            value: f.value.clone(),
            period_end: f.period_end.clone(),
            version: Some(version),
            source,
            reason: reason.map(str::to_owned),
        }
    }

    /// Answer for `feature` straight from a server answer (no local usage), labelled `source`.
    pub fn from_entitlements(answer: &crate::entitlement::Entitlements, feature: &str, source: Source) -> Self {
        let cached = answer
            .entitlements
            .get_key_value(feature)
            .map(|(key, e)| CachedFeature::new(key, e.clone()));
        let subject = Arc::from(answer.subject.as_str());
        EntitlementAnswer::from_cached(&subject, feature, cached.as_ref(), answer.version, source, None)
    }

    /// The configured fallback for `feature` (`None`: deny), with why it applied.
    pub(super) fn from_fallback(subject: &str, feature: &str, fallback: Option<&Fallback>, reason: &str) -> Self {
        let mut answer = EntitlementAnswer {
            subject: Arc::from(subject),
            feature: Arc::from(feature),
            kind: fallback.map(Fallback::kind),
            has_access: false,
            limit: None,
            usage: None,
            remaining: None,
            value: None,
            period_end: None,
            version: None,
            source: Source::Fallback,
            reason: Some(reason.to_owned()),
        };
        match fallback {
            None => {}
            Some(Fallback::Access(access)) => answer.has_access = *access,
            Some(Fallback::Value(value)) => {
                answer.has_access = true;
                answer.value = Some(Arc::new(value.clone()));
            }
            Some(Fallback::Limit(limit)) => {
                answer.has_access = *limit > 0.0;
                answer.limit = Some(*limit);
            }
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fallbacks_by_kind() {
        let a = EntitlementAnswer::from_fallback("c1", "x", None, "timeout after 1s");
        assert_eq!((a.kind, a.has_access, a.source), (None, false, Source::Fallback));
        assert_eq!(a.reason.as_deref(), Some("timeout after 1s"));
        let a = EntitlementAnswer::from_fallback("c1", "x", Some(&Fallback::Value(json!(3))), "r");
        assert_eq!((a.kind, a.has_access), (Some(FeatureKind::Config), true));
        assert_eq!(a.value.as_deref(), Some(&json!(3)));
        let a = EntitlementAnswer::from_fallback("c1", "x", Some(&Fallback::Limit(0.0)), "r");
        assert_eq!(
            (a.kind, a.has_access, a.limit),
            (Some(FeatureKind::Metered), false, Some(0.0))
        );
    }

    #[test]
    fn serializes_whole_numbers_and_source_names() {
        let mut a = EntitlementAnswer::from_fallback("c1", "api", Some(&Fallback::Limit(100.0)), "r");
        a.usage = Some(1.5);
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["limit"], json!(100));
        assert_eq!(v["usage"], json!(1.5));
        assert_eq!(v["source"], json!("fallback"));
        assert_eq!(v["kind"], json!("metered"));
        assert_eq!(Source::Stale.as_str(), "stale");
    }
}
