//! API keys: minting, verification (constant-time, cached) and scopes (DESIGN §6).
//!
//! A key reads `ml_<sk|pk|ak>_<id>_<secret>`; only SHA-256 of the secret part is stored.
//! Verified keys are cached in memory for `auth.key_cache_secs`; revoking through the API
//! evicts the key at once.

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

use crate::{app::AppState, error::ApiError, store::Store};

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
    /// `POST /v1/events`, `POST /api/v1/events`.
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
            Some(own) if own != subject => Err(ApiError::forbidden(format!(
                "the customer token is for subject {own:?}, not {subject:?}"
            ))),
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
            KeyKind::Publishable => false,
        };
        if allowed {
            return Ok(());
        }
        Err(ApiError::forbidden(match (self.kind, scope) {
            (KeyKind::Publishable, _) => {
                "publishable keys (ml_pk_…) are only valid together with a customer token, which this server \
                 does not support yet; use a secret key (ml_sk_…) from a backend"
            }
            (_, Scope::Admin) => "this endpoint needs an admin key (ml_ak_…)",
            (_, Scope::Ingest) => "sending events needs a secret key (ml_sk_…)",
            _ => "this key may not call this endpoint",
        }))
    }
}

#[derive(Debug, Clone)]
struct CachedKey {
    project_id: i64,
    kind: KeyKind,
    secret_hash: [u8; 32],
    verified_at: Instant,
}

/// Verifies keys against the store, caching the ones found valid.
#[derive(Debug)]
pub struct KeyVerifier {
    cache: Mutex<HashMap<String, CachedKey>>,
    ttl: Duration,
}

/// Most keys kept in the cache; beyond it the cache is cleared (keys are re-read on use).
const MAX_CACHED_KEYS: usize = 10_000;

impl KeyVerifier {
    /// A verifier whose cache entries live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        KeyVerifier {
            cache: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// Checks an `Authorization` header value and returns the caller, or `401 unauthorized`.
    pub async fn verify(&self, store: &Store, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let header =
            authorization.ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <API key>` header"))?;
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must read `Bearer <API key>`"))?;
        let key = ApiKey::parse(token).map_err(|e| ApiError::from_core(&e))?;
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

    /// Drops a key from the cache so its revocation applies to the next request.
    pub fn evict(&self, key_id: &str) {
        self.lock().remove(key_id);
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

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = match parts.headers.get(axum::http::header::AUTHORIZATION) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?,
            ),
        };
        state.keys.verify(&state.store, header).await
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
    }
}
