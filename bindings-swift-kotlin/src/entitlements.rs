//! The entitlement half of [`Client`]: `entitlement()` (Kotlin `suspend` / Swift `async`),
//! `entitlementBlocking()`, `cachedEntitlement()`, `customerToken()`, `primeEntitlements()`,
//! and the records the answers and background notices carry. Each method clones the core
//! handle, calls the core and maps the error.

use meterline_core::{ValidationError, arguments, entitlement::Entitlements, entitlement_cache::UsageThresholdEvent};

use crate::{client::Client, error::MeterlineError};

/// What an entitlement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum FeatureKind {
    /// Access or not.
    Boolean,
    /// A limit per period over the customer's usage.
    Metered,
    /// A JSON value (tier, quota numbers).
    Config,
}

impl From<meterline_core::entitlement::FeatureKind> for FeatureKind {
    fn from(kind: meterline_core::entitlement::FeatureKind) -> Self {
        use meterline_core::entitlement::FeatureKind as Core;
        match kind {
            Core::Boolean => FeatureKind::Boolean,
            Core::Metered => FeatureKind::Metered,
            Core::Config => FeatureKind::Config,
        }
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Source {
    /// Fetched from the server for this call.
    Fresh,
    /// From the local cache, within the server's TTL.
    Cache,
    /// From the cache past its TTL (revalidating, or the server is unreachable: `reason`).
    Stale,
    /// Nothing usable cached and the server could not answer: the configured fallback.
    Fallback,
}

impl From<meterline_core::Source> for Source {
    fn from(source: meterline_core::Source) -> Self {
        use meterline_core::Source as Core;
        match source {
            Core::Fresh => Source::Fresh,
            Core::Cache => Source::Cache,
            Core::Stale => Source::Stale,
            Core::Fallback => Source::Fallback,
        }
    }
}

/// One feature's entitlement for one subject, and where the answer came from.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct EntitlementAnswer {
    /// The customer.
    pub subject: String,
    /// The feature.
    pub feature: String,
    /// The feature's kind (null when the feature is unknown and no fallback names one).
    pub kind: Option<FeatureKind>,
    /// Whether the subject may use the feature now.
    pub has_access: bool,
    /// Metered: the limit of the current period.
    pub limit: Option<f64>,
    /// Metered: usage so far, including events this client tracked that the server has not
    /// counted yet.
    pub usage: Option<f64>,
    /// Metered: what is left of the limit.
    pub remaining: Option<f64>,
    /// Config: the value, as JSON text.
    pub value: Option<String>,
    /// Metered: when the period ends (RFC 3339).
    pub period_end: Option<String>,
    /// The server's version of the subject's entitlements.
    pub version: Option<u64>,
    /// Where the answer came from.
    pub source: Source,
    /// Why a `stale` or `fallback` answer was given.
    pub reason: Option<String>,
}

impl From<meterline_core::EntitlementAnswer> for EntitlementAnswer {
    fn from(a: meterline_core::EntitlementAnswer) -> Self {
        EntitlementAnswer {
            subject: a.subject.to_string(),
            feature: a.feature.to_string(),
            kind: a.kind.map(FeatureKind::from),
            has_access: a.has_access,
            limit: a.limit,
            usage: a.usage,
            remaining: a.remaining,
            value: a.value.map(|v| v.to_string()),
            period_end: a.period_end.map(|p| p.to_string()),
            version: a.version,
            source: a.source.into(),
            reason: a.reason,
        }
    }
}

/// Declares [`UsageThreshold`] with the core's fields of a `usage.threshold` message.
macro_rules! usage_threshold_record {
    ($($(#[$doc:meta])* $vis:vis $field:ident: $ty:ty,)*) => {
        /// A stream `usage.threshold` message: a metered feature of a cached subject crossed
        /// a fraction of its limit.
        #[derive(Debug, Clone, PartialEq, uniffi::Record)]
        pub struct UsageThreshold {
            $($(#[$doc])* $vis $field: $ty,)*
        }

        impl From<&UsageThresholdEvent> for UsageThreshold {
            #[allow(clippy::clone_on_copy)] // the numbers are Copy, the strings are not
            fn from(e: &UsageThresholdEvent) -> Self {
                UsageThreshold { $($field: e.$field.clone(),)* }
            }
        }
    };
}

meterline_core::usage_threshold_fields!(usage_threshold_record);

#[uniffi::export]
impl Client {
    /// Whether `subject` may use `feature`: from the local cache when it has an answer,
    /// else fetched (concurrent callers share one request) within `entitlementTimeout`,
    /// else the configured fallback. Suspends (Kotlin) / awaits (Swift) without blocking a
    /// thread. Throws `ArgumentException` for an empty or overlong subject or feature and
    /// `ClosedException` after shutdown; server failures give `stale` or `fallback` answers.
    pub async fn entitlement(&self, subject: String, feature: String) -> Result<EntitlementAnswer, MeterlineError> {
        Ok(self.inner.entitlement_async(&subject, &feature).await?.into())
    }

    /// [`Client::entitlement`], blocking the calling thread (at most about
    /// `entitlementTimeout`) on a cache miss. For JVM code outside coroutines.
    pub fn entitlement_blocking(&self, subject: String, feature: String) -> Result<EntitlementAnswer, MeterlineError> {
        Ok(self.inner.entitlement(&subject, &feature)?.into())
    }

    /// Never waits: the cached answer, or on a miss the fallback at once (reason `not
    /// cached yet: fetching in the background`) while one fetch fills the cache. For a UI
    /// thread.
    pub fn cached_entitlement(&self, subject: String, feature: String) -> Result<EntitlementAnswer, MeterlineError> {
        Ok(self.inner.cached_entitlement(&subject, &feature)?.into())
    }

    /// Mints a customer token for `subject`, valid `ttl` seconds (1 s to 30 days), for an
    /// app that tracks with a publishable key. Needs a secret key (`ConfigException`
    /// otherwise). Offline.
    pub fn customer_token(&self, subject: String, ttl: f64) -> Result<String, MeterlineError> {
        let ttl = arguments::token_ttl_from_secs(ttl)?;
        Ok(self.inner.customer_token(&subject, ttl)?)
    }

    /// Caches an entitlement answer obtained elsewhere: `payload` is the JSON text of a
    /// `GET /v1/customers/{subject}/entitlements` answer.
    pub fn prime_entitlements(&self, payload: String) -> Result<(), MeterlineError> {
        let answer: Entitlements = serde_json::from_str(&payload).map_err(|e| {
            ValidationError::invalid_argument(
                "/payload",
                format!("not an entitlements answer ({{ subject, version, ttl_ms, entitlements }}): {e}"),
            )
        })?;
        Ok(self.inner.prime_entitlements(answer)?)
    }
}
