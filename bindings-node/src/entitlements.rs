//! The entitlement half of `NativeClient`: `entitlement()`, `cachedEntitlement()`,
//! `customerToken()`, `primeEntitlements()`, and the objects the background events carry.
//! Each method clones the core handle, calls the core and maps the error.

use meterline_core::{
    EntitlementAnswer, Source, ValidationError,
    entitlement::{Entitlements, FeatureKind},
    entitlement_cache::UsageThresholdEvent,
    runtime::native::TryEntitlement,
};
use napi::{Either, Env, Result, bindgen_prelude::PromiseRaw};
use napi_derive::napi;
use serde::Serialize;
use serde_json::Value;

use crate::{client::NativeClient, error::IntoNapiErr};

/// One feature's entitlement for one subject, as the JSON text `entitlement()` answers with:
/// the core's `EntitlementAnswer` with camelCase keys, absent values `null`. JSON text, parsed
/// by the JS layer, because building a 12-property object through napi costs ~4× more per
/// call than `JSON.parse` (bench/node_entitlement.mjs).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AnswerJson<'a> {
    subject: &'a str,
    feature: &'a str,
    kind: Option<FeatureKind>,
    has_access: bool,
    limit: Option<f64>,
    usage: Option<f64>,
    remaining: Option<f64>,
    value: Option<&'a Value>,
    period_end: Option<&'a str>,
    version: Option<u64>,
    source: Source,
    reason: Option<&'a str>,
}

/// The answer as JSON text (see [`AnswerJson`]).
fn answer_json(a: &EntitlementAnswer) -> String {
    let json = AnswerJson {
        subject: &a.subject,
        feature: &a.feature,
        kind: a.kind,
        has_access: a.has_access,
        limit: a.limit,
        usage: a.usage,
        remaining: a.remaining,
        value: a.value.as_deref(),
        period_end: a.period_end.as_deref(),
        version: a.version,
        source: a.source,
        reason: a.reason.as_deref(),
    };
    // Serializing borrowed strings, numbers and a `Value` into a `String` cannot fail;
    // `null` would still be a well-formed answer for the JS layer to refuse.
    serde_json::to_string(&json).unwrap_or_else(|_| "null".to_owned())
}

/// A stream `usage.threshold` message: a metered feature of a cached subject crossed a
/// fraction of its limit. Delivered at least once (dedupe by `seq`).
#[napi(object, object_from_js = false)]
#[derive(Debug, Clone)]
pub struct UsageThreshold {
    /// The message's sequence number.
    pub seq: f64,
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

impl From<&UsageThresholdEvent> for UsageThreshold {
    fn from(e: &UsageThresholdEvent) -> Self {
        UsageThreshold {
            seq: e.seq as f64,
            subject: e.subject.clone(),
            feature: e.feature.clone(),
            threshold: e.threshold,
            usage: e.usage,
            limit: e.limit,
        }
    }
}

/// The realtime stream connected (`connected: true`, reason `connected`) or was lost (why).
#[napi(object, object_from_js = false)]
#[derive(Debug, Clone)]
pub struct ConnectionChange {
    /// Whether the stream is connected now.
    pub connected: bool,
    /// `connected`, or why the connection was lost.
    pub reason: String,
}

#[napi]
impl NativeClient {
    /// The core's `try_entitlement`: a cache hit (or a stale or backoff answer) is returned as
    /// the answer itself, on the calling thread; a miss returns a promise that settles when
    /// the shared fetch lands (at most `entitlementTimeoutMs`). Throws an argument or `client_closed` report.
    /// The answer is JSON text (see [`AnswerJson`]).
    #[napi(ts_return_type = "string | Promise<string>")]
    pub fn entitlement<'env>(
        &self,
        env: &'env Env,
        subject: String,
        feature: String,
    ) -> Result<Either<String, PromiseRaw<'env, String>>> {
        let answer = self.client(env)?.try_entitlement(&subject, &feature);
        match answer.map_err(|e| e.into_napi_err(env))? {
            TryEntitlement::Ready(answer) => Ok(Either::A(answer_json(&answer))),
            TryEntitlement::Pending(pending) => env
                .spawn_future_with_callback(async move { Ok(pending.wait_async().await) }, |_, answer| {
                    Ok(answer_json(&answer))
                })
                .map(Either::B),
        }
    }

    /// The core's `cached_entitlement`: never waits. A miss answers the fallback (reason
    /// `not cached yet: fetching in the background`) and starts one fetch. JSON text, as
    /// [`NativeClient::entitlement`].
    #[napi]
    pub fn cached_entitlement(&self, env: &Env, subject: String, feature: String) -> Result<String> {
        self.client(env)?
            .cached_entitlement(&subject, &feature)
            .map(|a| answer_json(&a))
            .map_err(|e| e.into_napi_err(env))
    }

    /// Mints a customer token for `subject`, valid `ttlMs` (1 s–30 days, rounded up to whole
    /// seconds). Throws a `ConfigError` report without a secret key.
    #[napi]
    pub fn customer_token(&self, env: &Env, subject: String, ttl_ms: f64) -> Result<String> {
        let ttl = meterline_core::arguments::token_ttl_from_millis(ttl_ms).map_err(|e| e.into_napi_err(env))?;
        self.client(env)?
            .customer_token(&subject, ttl)
            .map_err(|e| e.into_napi_err(env))
    }

    /// Caches an entitlement answer obtained elsewhere; `payload` is the JSON text of a
    /// `GET /v1/customers/{subject}/entitlements` answer.
    #[napi]
    pub fn prime_entitlements(&self, env: &Env, payload: String) -> Result<()> {
        let client = self.client(env)?;
        let answer: Entitlements = serde_json::from_str(&payload).map_err(|e| {
            ValidationError::invalid_argument(
                "/payload",
                format!("not an entitlements answer ({{ subject, version, ttl_ms, entitlements }}): {e}"),
            )
            .into_napi_err(env)
        })?;
        client.prime_entitlements(answer).map_err(|e| e.into_napi_err(env))
    }
}
