//! The entitlement half of `NativeClient`: `entitlement()`, `cachedEntitlement()`,
//! `customerToken()`, `primeEntitlements()`, and the objects the background events carry.
//! Each method clones the core handle, calls the core and maps the error.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker},
    time::Duration,
};

use meterline_core::{
    EntitlementAnswer, Error as CoreError, ValidationError, entitlement::Entitlements,
    entitlement_cache::UsageThresholdEvent,
};
use napi::{Either, Env, Result, bindgen_prelude::PromiseRaw};
use napi_derive::napi;
use serde_json::Value;

use crate::{client::NativeClient, error::IntoNapiErr};

/// One feature's entitlement for one subject, as `entitlement()` answers it (the core's
/// `EntitlementAnswer` with camelCase keys; absent values are `null`).
#[napi(object, use_nullable = true, object_from_js = false)]
#[derive(Debug, Clone)]
pub struct Entitlement {
    /// The customer.
    pub subject: String,
    /// The feature key.
    pub feature: String,
    /// `boolean`, `metered` or `config`; `null` when the feature is not in the subject's plan
    /// or for a deny-by-default fallback.
    #[napi(ts_type = "'boolean' | 'metered' | 'config'")]
    pub kind: Option<&'static str>,
    /// Whether the subject may use the feature now.
    pub has_access: bool,
    /// Metered: the limit of the current period (`null`: unlimited or unknown).
    pub limit: Option<f64>,
    /// Metered: the usage in the current period, including events this client tracked that
    /// the server has not counted yet.
    pub usage: Option<f64>,
    /// Metered: `limit - usage`, never below 0.
    pub remaining: Option<f64>,
    /// Config: the feature's value.
    #[napi(ts_type = "any")]
    pub value: Option<Value>,
    /// Metered: end of the current period (RFC 3339, UTC).
    pub period_end: Option<String>,
    /// The server answer's `version`; `null` for a fallback.
    pub version: Option<f64>,
    /// Where the answer came from: `fresh`, `cache`, `stale` or `fallback`.
    #[napi(ts_type = "'fresh' | 'cache' | 'stale' | 'fallback'")]
    pub source: &'static str,
    /// Why the answer is not a plain fresh or cached one (`feature not in plan`,
    /// `server unreachable: …`, `timeout after 1s`, `forbidden: …`).
    pub reason: Option<String>,
}

impl From<EntitlementAnswer> for Entitlement {
    fn from(a: EntitlementAnswer) -> Self {
        Entitlement {
            subject: a.subject.as_ref().to_owned(),
            feature: a.feature.as_ref().to_owned(),
            kind: a.kind.map(|k| match k {
                meterline_core::entitlement::FeatureKind::Boolean => "boolean",
                meterline_core::entitlement::FeatureKind::Metered => "metered",
                meterline_core::entitlement::FeatureKind::Config => "config",
            }),
            has_access: a.has_access,
            limit: a.limit,
            usage: a.usage,
            remaining: a.remaining,
            value: a.value.map(|v| v.as_ref().clone()),
            period_end: a.period_end.map(|p| p.as_ref().to_owned()),
            // Versions stay far below 2^53, where a JS number is exact.
            version: a.version.map(|v| v as f64),
            source: a.source.as_str(),
            reason: a.reason,
        }
    }
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

type AnswerFuture = Pin<Box<dyn Future<Output = std::result::Result<EntitlementAnswer, CoreError>> + Send>>;

#[napi]
impl NativeClient {
    /// The core's `entitlement_async`. It is polled once on the calling thread: a cache hit
    /// (or a stale or backoff answer) is returned as the answer itself, without a thread hop;
    /// a miss returns a promise that settles when the shared fetch lands (at most
    /// `entitlementTimeoutMs`). Throws an argument or `client_closed` report.
    #[napi(ts_return_type = "Entitlement | Promise<Entitlement>")]
    pub fn entitlement<'env>(
        &self,
        env: &'env Env,
        subject: String,
        feature: String,
    ) -> Result<Either<Entitlement, PromiseRaw<'env, Entitlement>>> {
        let client = self.client(env)?.clone();
        let mut pending: AnswerFuture = Box::pin(async move { client.entitlement_async(&subject, &feature).await });
        match pending.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(done) => done.map(|a| Either::A(a.into())).map_err(|e| e.into_napi_err(env)),
            // The next poll, on napi-rs's runtime, registers the real waker.
            Poll::Pending => env
                .spawn_future_with_callback(async move { Ok(pending.await) }, |env, done| {
                    done.map(Entitlement::from).map_err(|e| e.into_napi_err(env))
                })
                .map(Either::B),
        }
    }

    /// The core's `cached_entitlement`: never waits. A miss answers the fallback (reason
    /// `not cached yet: fetching in the background`) and starts one fetch.
    #[napi]
    pub fn cached_entitlement(&self, env: &Env, subject: String, feature: String) -> Result<Entitlement> {
        self.client(env)?
            .cached_entitlement(&subject, &feature)
            .map(Entitlement::from)
            .map_err(|e| e.into_napi_err(env))
    }

    /// Mints a customer token for `subject`, valid `ttlMs` (1 s–30 days, rounded up to whole
    /// seconds). Throws a `ConfigError` report without a secret key.
    #[napi]
    pub fn customer_token(&self, env: &Env, subject: String, ttl_ms: f64) -> Result<String> {
        let ttl = Duration::try_from_secs_f64(ttl_ms / 1000.0).unwrap_or(Duration::ZERO);
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
