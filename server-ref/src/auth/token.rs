//! Customer tokens (DESIGN §6): a JWT signed with HS256 by the backend SDK, with header
//! `kid` = the id of a secret key of the same project and claims `sub`, `exp`, `iat`.
//!
//! The signing key is `ApiKey::customer_token_signing_key()` of that secret key; the server
//! stores it beside the key's hash when the key is minted. Verification uses
//! `jsonwebtoken` with an HS256-only crypto provider built on `hmac` + `sha2` (constant-time
//! comparison), so no other algorithm — `none` included — can ever be accepted and neither
//! aws-lc nor the RSA/EC crates are compiled.

use std::{
    sync::Once,
    time::{Duration, Instant},
};

use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey, Validation,
    crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils},
    errors::{ErrorKind, new_error},
    signature::{self, Signer, Verifier},
};
use meterline_core::{event::MAX_ATTRIBUTE_LEN, key::KeyKind};
use serde::Deserialize;
use sha2::Sha256;

use super::KeyVerifier;
use crate::{error::ApiError, store::Storage};

/// The HTTP header that carries a customer token next to a publishable key.
pub const CUSTOMER_TOKEN_HEADER: &str = "x-meterline-customer-token";
/// Longest token accepted, in bytes (a real one is ~250); longer is `invalid_token` before
/// any parsing.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Most signing keys kept in the cache; beyond it the cache is cleared.
const MAX_CACHED_SIGNERS: usize = 10_000;

/// A customer token that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The customer (`sub`) the token grants access to.
    pub subject: String,
    /// The secret key that signed it (`kid`); revoking that key invalidates the token.
    pub signing_key_id: String,
    /// `exp` plus the leeway, in Unix seconds: when an open stream must close.
    pub valid_until: u64,
}

/// The claims the server reads; other claims are ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: u64,
}

/// A valid signing key of a non-revoked secret key, as cached. `Debug` omits the key.
#[derive(Clone)]
pub(super) struct CachedSigner {
    project_id: i64,
    signing_key: [u8; 32],
    fetched_at: Instant,
}

impl std::fmt::Debug for CachedSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedSigner")
            .field("project_id", &self.project_id)
            .field("fetched_at", &self.fetched_at)
            .finish_non_exhaustive()
    }
}

/// `401 invalid_token` with a message saying what was wrong.
fn invalid_token(message: String) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", message)
}

impl KeyVerifier {
    /// Verifies the customer token presented with a publishable key of `project_id`:
    /// HS256 only, `kid` naming a non-revoked secret key of the same project, a valid
    /// signature, `sub`, `exp` and `iat` present, not expired and not issued in the future
    /// (both with `leeway`). `401 invalid_token` or `401 token_expired` otherwise.
    pub async fn verify_token(
        &self,
        store: &Storage,
        project_id: i64,
        token: &str,
        leeway: Duration,
    ) -> Result<VerifiedToken, ApiError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid_token(format!(
                "the customer token is {} bytes; at most {MAX_TOKEN_BYTES} are accepted",
                token.len()
            )));
        }
        install_hs256_provider();
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            invalid_token(
                "the customer token is not a JWT with a JSON header naming alg HS256 (alg none and other \
                 algorithms are refused)"
                    .to_owned(),
            )
        })?;
        if header.alg != Algorithm::HS256 {
            return Err(invalid_token(format!(
                "customer token alg {:?} is not allowed; only HS256",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| invalid_token("the customer token header has no `kid` (the secret key's id)".to_owned()))?;
        let signing_key = self.signing_key(store, project_id, &kid).await?;

        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway.as_secs();
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&signing_key), &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "token_expired",
                    "the customer token has expired; mint a new one",
                ),
                ErrorKind::InvalidSignature => invalid_token(format!(
                    "the customer token's signature does not verify with secret key {kid}'s signing key"
                )),
                ErrorKind::MissingRequiredClaim(claim) => {
                    invalid_token(format!("the customer token has no `{claim}` claim"))
                }
                ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => invalid_token(
                    "the customer token's claims must hold a string `sub` and integer `exp` and `iat`".to_owned(),
                ),
                _ => invalid_token("the customer token is malformed".to_owned()),
            })?
            .claims;
        let now = jsonwebtoken::get_current_timestamp();
        if claims.iat > now.saturating_add(leeway.as_secs()) {
            return Err(invalid_token("the customer token's `iat` is in the future".to_owned()));
        }
        let sub_len = claims.sub.chars().count();
        if sub_len == 0 || sub_len > MAX_ATTRIBUTE_LEN {
            return Err(invalid_token(format!(
                "the customer token's `sub` must be 1–{MAX_ATTRIBUTE_LEN} characters"
            )));
        }
        Ok(VerifiedToken {
            subject: claims.sub,
            signing_key_id: kid,
            valid_until: claims.exp.saturating_add(leeway.as_secs()),
        })
    }

    /// The signing key of secret key `kid` in `project_id`, from the cache or the store.
    async fn signing_key(&self, store: &Storage, project_id: i64, kid: &str) -> Result<[u8; 32], ApiError> {
        let shown: String = kid.chars().take(64).collect();
        let unknown = || {
            invalid_token(format!(
                "the customer token's kid {shown:?} is not a secret key of this project"
            ))
        };
        let cached = {
            let signers = self.signers.lock().unwrap_or_else(|p| p.into_inner());
            signers.get(kid).filter(|s| s.fetched_at.elapsed() < self.ttl).cloned()
        };
        if let Some(signer) = cached {
            return if signer.project_id == project_id {
                Ok(signer.signing_key)
            } else {
                Err(unknown())
            };
        }
        let signer = store
            .token_signer(kid)
            .await
            .map_err(|e| ApiError::internal("reading the token's signing key failed", e))?
            .filter(|s| s.project_id == project_id && s.kind == KeyKind::Secret)
            .ok_or_else(unknown)?;
        if signer.revoked {
            return Err(invalid_token(format!(
                "secret key {shown} that signed the customer token has been revoked"
            )));
        }
        let signing_key = signer.signing_key.ok_or_else(|| {
            invalid_token(format!(
                "secret key {shown} was created before customer tokens were supported and cannot sign them; \
                 create a new secret key"
            ))
        })?;
        let mut signers = self.signers.lock().unwrap_or_else(|p| p.into_inner());
        if signers.len() >= MAX_CACHED_SIGNERS {
            signers.clear();
        }
        signers.insert(
            kid.to_owned(),
            CachedSigner {
                project_id,
                signing_key,
                fetched_at: Instant::now(),
            },
        );
        Ok(signing_key)
    }
}

/// Makes the HS256-only provider the process's `jsonwebtoken` crypto provider (once). If
/// another provider was installed first it is used instead; `Validation` still admits
/// HS256 alone.
fn install_hs256_provider() {
    static HS256_ONLY: CryptoProvider = CryptoProvider {
        signer_factory: |alg, key| Ok(Box::new(Hs256::new(*alg, key.family(), key.as_bytes())?)),
        verifier_factory: |alg, key| Ok(Box::new(Hs256::new(*alg, key.family(), key.try_get_as_bytes()?)?)),
        key_utils: KeyUtils::new_unimplemented(),
    };
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // `Err` means a provider is already installed; that one stays.
        let _ = HS256_ONLY.install_default();
    });
}

/// HMAC-SHA256 as a `jsonwebtoken` signer and verifier.
struct Hs256(Hmac<Sha256>);

impl Hs256 {
    fn new(alg: Algorithm, family: AlgorithmFamily, key: &[u8]) -> jsonwebtoken::errors::Result<Self> {
        if alg != Algorithm::HS256 {
            return Err(new_error(ErrorKind::UnsupportedAlgorithm));
        }
        if family != AlgorithmFamily::Hmac {
            return Err(new_error(ErrorKind::InvalidKeyFormat));
        }
        Hmac::new_from_slice(key)
            .map(Hs256)
            .map_err(|_| new_error(ErrorKind::InvalidKeyFormat))
    }
}

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        mac.verify_slice(signature).map_err(signature::Error::from_source)
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
