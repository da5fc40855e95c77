//! API keys: minting, verification (constant-time, cached), customer tokens, per-key rate
//! limits and scopes (DESIGN §6).
//!
//! A key reads `ml_<sk|pk|ak>_<id>_<secret>`; only SHA-256 of the secret part is stored
//! (and, for a secret key, the HMAC key that verifies the customer tokens it signs).
//! Verified keys are cached in memory for `auth.key_cache_secs`; revoking through the API
//! evicts the key at once, revoking with the CLI within `auth.revocation_poll_ms`.
//! A publishable key is only valid together with a customer token ([`token`]), and then
//! only for the token's subject: [`Scope::ReadEntitlements`], [`Scope::ReadSchema`] (the
//! schemas of the project's `client_event_types`) and [`Scope::Ingest`] (events of that
//! subject and those types; the others are rejected one by one at ingest). Every request
//! with an `Origin` header is checked against the key's project's `allowed_origins`
//! ([`crate::browser`]); a publishable key's requests are also charged to a bucket of its
//! subject ([`crate::ratelimit`]).

pub mod token;

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{extract::FromRequestParts, http::request::Parts};
use meterline_core::key::{ApiKey, KeyKind};
use rand::RngExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use token::{CUSTOMER_TOKEN_HEADER, VerifiedToken};

use crate::{
    app::AppState,
    browser::CorsGrant,
    error::ApiError,
    store::{NewKey, Storage},
};

/// Length of a minted key's id part.
pub const KEY_ID_LEN: usize = 12;
/// Length of a minted key's secret part.
pub const KEY_SECRET_LEN: usize = 32;

/// A freshly minted key: the full key (to show once) and the hash to store.
#[derive(Debug, Clone)]
pub struct MintedKey {
    /// The key; its secret part is never stored.
    pub key: ApiKey,
    /// SHA-256 of the secret part.
    pub secret_hash: Vec<u8>,
}

impl MintedKey {
    /// The row to store: the hash and, for a secret key, its customer-token signing key.
    pub fn to_new_key(&self) -> NewKey {
        NewKey {
            id: self.key.id.clone(),
            kind: self.key.kind,
            secret_hash: self.secret_hash.clone(),
            token_signing_key: (self.key.kind == KeyKind::Secret).then(|| self.key.customer_token_signing_key()),
        }
    }
}

/// Mints a key of `kind` from the thread-local CSPRNG (ChaCha, seeded by the OS).
pub fn mint(kind: KeyKind) -> MintedKey {
    const ID_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut pick = |alphabet: &[u8], len: usize| -> String {
        (0..len)
            .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
            .collect()
    };
    let id = pick(ID_CHARS, KEY_ID_LEN);
    let secret = pick(SECRET_CHARS, KEY_SECRET_LEN);
    let secret_hash = hash_secret(&secret).to_vec();
    MintedKey {
        key: ApiKey::new(kind, id, secret),
        secret_hash,
    }
}

/// SHA-256 of a key's secret part.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// What a request wants to do; each kind of key allows some.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `POST /v1/events`, `POST /api/v1/events`, `POST /v1/beacon`.
    Ingest,
    /// `GET /v1/events`.
    ReadEvents,
    /// `GET /v1/schema`.
    ReadSchema,
    /// `/v1/admin/*`.
    Admin,
    /// `GET /v1/customers/{subject}/entitlements|usage` and `GET /v1/stream`.
    ReadEntitlements,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's project; every query is limited to it.
    pub project_id: i64,
    /// The key's public id.
    pub key_id: String,
    /// The key's kind.
    pub kind: KeyKind,
    /// For a publishable key: the subject of the verified customer token, the only subject
    /// the caller may read. `None` for secret and admin keys.
    pub subject: Option<String>,
}

impl Caller {
    /// Checks that the caller may read `subject`'s entitlements: any subject with a secret
    /// key, only the token's subject with a publishable key (`403 wrong_subject` otherwise).
    pub fn require_subject(&self, subject: &str) -> Result<(), ApiError> {
        self.require(Scope::ReadEntitlements)?;
        match &self.subject {
            Some(own) if own != subject => Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "wrong_subject",
                format!(
                    "the customer token is for subject {own:?}, not {:?}",
                    subject.chars().take(256).collect::<String>()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Checks that the caller's key allows `scope`; `403 forbidden` otherwise.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        let allowed = match self.kind {
            KeyKind::Secret => matches!(
                scope,
                Scope::Ingest | Scope::ReadEvents | Scope::ReadSchema | Scope::ReadEntitlements
            ),
            KeyKind::Admin => matches!(scope, Scope::Admin | Scope::ReadEvents | Scope::ReadSchema),
            // The extractor only lets a publishable key through with a verified token.
            KeyKind::Publishable => {
                matches!(scope, Scope::ReadEntitlements | Scope::ReadSchema | Scope::Ingest) && self.subject.is_some()
            }
        };
        if allowed {
            return Ok(());
        }
        Err(ApiError::forbidden(match (self.kind, scope) {
            (KeyKind::Publishable, _) => {
                "a publishable key (ml_pk_…) with a customer token may only read its subject's entitlements \
                 and usage, subscribe to its stream, read the schemas of and send the event types the \
                 project allows (client_event_types); use a secret key (ml_sk_…) from a backend"
            }
            (_, Scope::Admin) => "this endpoint needs an admin key (ml_ak_…)",
            (_, Scope::Ingest) => "sending events needs a secret key (ml_sk_…)",
            _ => "this key may not call this endpoint",
        }))
    }
}

/// A caller whose key (and, for a publishable key, customer token) checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// Who is calling; `subject` is set for a publishable key.
    pub caller: Caller,
    /// The verified customer token of a publishable key (its signing key and expiry matter
    /// to long-lived streams).
    pub token: Option<VerifiedToken>,
}

/// Authenticates one request or stream: verifies the key; checks `origin` (the request's
/// `Origin` header, if any) against the project's `allowed_origins` (`403
/// origin_not_allowed`; allowed, it is recorded in `grant` so the answer carries CORS
/// headers, errors included); for a publishable key verifies the customer token (`401
/// token_required` without one) and charges its subject's bucket; and charges one request
/// to the key's rate limit (`429 rate_limited`). A refused token is charged to the key, so
/// guessing tokens is limited too. A token sent with another kind of key is ignored.
pub async fn authenticate(
    state: &AppState,
    key: &str,
    token: Option<&str>,
    origin: Option<&str>,
    grant: Option<&CorsGrant>,
) -> Result<Authenticated, ApiError> {
    let mut caller = state.keys.verify_key(&state.store, key).await?;
    if let Some(origin) = origin {
        crate::browser::check_origin(state, caller.project_id, origin).await?;
        if let Some(grant) = grant {
            grant.allow();
        }
    }
    if caller.kind != KeyKind::Publishable {
        state.limits.check(&caller.key_id)?;
        return Ok(Authenticated { caller, token: None });
    }
    let verified = match verify_customer_token(state, caller.project_id, token).await {
        Ok(verified) => verified,
        Err(refused) => {
            state.limits.check(&caller.key_id)?;
            return Err(refused);
        }
    };
    // The subject's bucket first: a user over its own limit does not spend the key's.
    state.limits.check_subject(caller.project_id, &verified.subject)?;
    state.limits.check(&caller.key_id)?;
    caller.subject = Some(verified.subject.clone());
    Ok(Authenticated {
        caller,
        token: Some(verified),
    })
}

async fn verify_customer_token(
    state: &AppState,
    project_id: i64,
    token: Option<&str>,
) -> Result<VerifiedToken, ApiError> {
    let token = token.ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "token_required",
            "a publishable key (ml_pk_…) needs a customer token: send `X-Meterline-Customer-Token: <JWT>`",
        )
    })?;
    state
        .keys
        .verify_token(&state.store, project_id, token, state.config.token_leeway())
        .await
}

/// The key of an `Authorization: Bearer <key>` header value; `401 unauthorized` when absent
/// or not a bearer credential.
pub fn bearer_key(authorization: Option<&str>) -> Result<&str, ApiError> {
    let header =
        authorization.ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <API key>` header"))?;
    header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must read `Bearer <API key>`"))
}

#[derive(Debug, Clone)]
struct CachedKey {
    project_id: i64,
    kind: KeyKind,
    secret_hash: [u8; 32],
    verified_at: Instant,
}

/// Verifies keys and customer tokens against the store, caching the keys found valid.
#[derive(Debug)]
pub struct KeyVerifier {
    cache: Mutex<HashMap<String, CachedKey>>,
    signers: Mutex<HashMap<String, token::CachedSigner>>,
    ttl: Duration,
}

/// Most keys kept in the cache; beyond it the cache is cleared (keys are re-read on use).
const MAX_CACHED_KEYS: usize = 10_000;

impl KeyVerifier {
    /// A verifier whose cache entries live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        KeyVerifier {
            cache: Mutex::new(HashMap::new()),
            signers: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// Checks a key's text (`ml_…`) and returns the caller (without a token subject), or
    /// `401 unauthorized` for a malformed, unknown or revoked key.
    pub async fn verify_key(&self, store: &Storage, text: &str) -> Result<Caller, ApiError> {
        let key = ApiKey::parse(text).map_err(|e| ApiError::from_core(&e))?;
        let presented = hash_secret(key.secret());
        let unknown = || ApiError::unauthorized(format!("unknown API key {key}"));

        if let Some(cached) = self.cached(&key.id) {
            return if bool::from(cached.secret_hash.ct_eq(&presented)) && cached.kind == key.kind {
                Ok(Caller {
                    project_id: cached.project_id,
                    key_id: key.id,
                    kind: cached.kind,
                    subject: None,
                })
            } else {
                Err(unknown())
            };
        }

        let record = store
            .key(&key.id)
            .await
            .map_err(|e| ApiError::internal("reading the API key failed", e))?
            .ok_or_else(unknown)?;
        let hash_matches = bool::from(record.secret_hash.as_slice().ct_eq(&presented));
        if !hash_matches || record.kind != key.kind {
            return Err(unknown());
        }
        if record.revoked_at.is_some() {
            return Err(ApiError::unauthorized(format!("API key {key} has been revoked")));
        }
        self.remember(
            &key.id,
            CachedKey {
                project_id: record.project_id,
                kind: record.kind,
                secret_hash: presented,
                verified_at: Instant::now(),
            },
        );
        Ok(Caller {
            project_id: record.project_id,
            key_id: key.id,
            kind: record.kind,
            subject: None,
        })
    }

    /// Drops a key from the caches so its revocation applies to the next request (and to
    /// the next customer token signed with it).
    pub fn evict(&self, key_id: &str) {
        self.lock().remove(key_id);
        self.signers.lock().unwrap_or_else(|p| p.into_inner()).remove(key_id);
    }

    /// Forgets every cached key and signer (another node's changes may have been missed).
    pub fn evict_all(&self) {
        self.lock().clear();
        self.signers.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn cached(&self, key_id: &str) -> Option<CachedKey> {
        let cache = self.lock();
        cache
            .get(key_id)
            .filter(|c| c.verified_at.elapsed() < self.ttl)
            .cloned()
    }

    fn remember(&self, key_id: &str, entry: CachedKey) {
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED_KEYS {
            cache.clear();
        }
        cache.insert(key_id.to_owned(), entry);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedKey>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The one value of a credential header; two or more are refused (a proxy in front might
/// check one and this server use another).
pub fn single_header<'a>(
    headers: &'a axum::http::HeaderMap,
    name: &str,
) -> Result<Option<&'a axum::http::HeaderValue>, String> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(format!("the {name} header is given more than once"));
    }
    Ok(first)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    /// `Authorization: Bearer <key>`, plus `X-Meterline-Customer-Token` for a publishable
    /// key, and the `Origin` header; see [`authenticate`].
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let authorization = single_header(&parts.headers, axum::http::header::AUTHORIZATION.as_str())
            .map_err(ApiError::unauthorized)?;
        let header = match authorization {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?,
            ),
        };
        let key = bearer_key(header)?;
        // A token header that is not text is verified as an empty (malformed) token.
        let token = single_header(&parts.headers, CUSTOMER_TOKEN_HEADER)
            .map_err(ApiError::unauthorized)?
            .map(|value| value.to_str().unwrap_or_default());
        let origin = crate::browser::origin(&parts.headers)?;
        let grant = parts.extensions.get::<CorsGrant>();
        Ok(authenticate(state, key, token, origin, grant).await?.caller)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn minted_keys_parse_and_hash() {
        let minted = mint(KeyKind::Secret);
        let text = minted.key.expose();
        assert!(text.starts_with("ml_sk_"));
        let parsed = ApiKey::parse(&text).unwrap();
        assert_eq!(parsed.id.len(), KEY_ID_LEN);
        assert_eq!(parsed.secret().len(), KEY_SECRET_LEN);
        assert_eq!(hash_secret(parsed.secret()).to_vec(), minted.secret_hash);
        assert_ne!(mint(KeyKind::Secret).key.id, minted.key.id);
    }

    #[test]
    fn scopes_follow_the_kind() {
        let caller = |kind| Caller {
            project_id: 1,
            key_id: "k".into(),
            kind,
            subject: None,
        };
        assert!(caller(KeyKind::Secret).require(Scope::Ingest).is_ok());
        assert!(caller(KeyKind::Secret).require(Scope::Admin).is_err());
        assert!(caller(KeyKind::Admin).require(Scope::ReadEvents).is_ok());
        assert!(caller(KeyKind::Admin).require(Scope::Ingest).is_err());
        let err = caller(KeyKind::Publishable).require(Scope::ReadSchema).unwrap_err();
        assert!(err.message.contains("customer token"));
        assert!(caller(KeyKind::Publishable).require(Scope::Ingest).is_err());
        // Without a verified token a publishable key may do nothing at all.
        assert!(caller(KeyKind::Publishable).require(Scope::ReadEntitlements).is_err());
    }

    #[test]
    fn publishable_callers_read_only_their_subject() {
        let caller = Caller {
            project_id: 1,
            key_id: "k".into(),
            kind: KeyKind::Publishable,
            subject: Some("c1".into()),
        };
        assert!(caller.require_subject("c1").is_ok());
        for scope in [Scope::ReadEntitlements, Scope::ReadSchema, Scope::Ingest] {
            assert!(caller.require(scope).is_ok(), "{scope:?}");
        }
        for scope in [Scope::ReadEvents, Scope::Admin] {
            assert_eq!(caller.require(scope).unwrap_err().code, "forbidden", "{scope:?}");
        }
        let err = caller.require_subject("c2").unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (403, "wrong_subject"));
        let secret = Caller {
            kind: KeyKind::Secret,
            subject: None,
            ..caller
        };
        assert!(secret.require_subject("anyone").is_ok());
    }

    #[test]
    fn only_secret_keys_get_a_signing_key() {
        let secret = mint(KeyKind::Secret);
        assert_eq!(
            secret.to_new_key().token_signing_key,
            Some(secret.key.customer_token_signing_key())
        );
        assert_eq!(mint(KeyKind::Publishable).to_new_key().token_signing_key, None);
        assert_eq!(mint(KeyKind::Admin).to_new_key().token_signing_key, None);
    }

    #[test]
    fn bearer_header_is_required() {
        assert_eq!(bearer_key(Some("Bearer ml_sk_a_b")).unwrap(), "ml_sk_a_b");
        assert_eq!(bearer_key(Some("bearer  ml_sk_a_b ")).unwrap(), "ml_sk_a_b");
        assert!(bearer_key(None).is_err());
        assert!(bearer_key(Some("Basic abc")).is_err());
    }
}
