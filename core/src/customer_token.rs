//! Customer tokens (DESIGN §6): JWTs, HS256, that let a publishable key act for one subject.
//!
//! A backend holding the secret key mints them offline ([`mint`]); the signing key is
//! [`ApiKey::customer_token_signing_key`], which the server stores beside the key's hash,
//! so it can check them ([`verify`]) without keeping the secret. Header
//! `{"alg":"HS256","typ":"JWT","kid":"<secret key id>"}`, claims `{"sub","iat","exp"}`
//! (Unix seconds). Sans I/O: the time is an argument.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{
    error::{Error, ValidationError},
    event::MAX_ATTRIBUTE_LEN,
    key::{ApiKey, KeyKind},
};

/// Longest lifetime of a customer token.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The JOSE header of every customer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always `HS256`.
    pub alg: String,
    /// Always `JWT`.
    pub typ: String,
    /// The id of the secret key whose signing key signed the token.
    pub kid: String,
}

/// The claims of a customer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The subject (customer) the token is for.
    pub sub: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds); invalid from this second on.
    pub exp: u64,
}

/// Why a token was refused; `code` is the HTTP API's (`invalid_token`, `token_expired`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct TokenError {
    /// `invalid_token` or `token_expired`.
    pub code: &'static str,
    /// What was wrong.
    pub message: String,
}

fn invalid(message: impl Into<String>) -> TokenError {
    TokenError {
        code: "invalid_token",
        message: message.into(),
    }
}

/// Mints a token for `subject` valid for `ttl` (rounded up to whole seconds) from `now`
/// (Unix seconds).
///
/// Errors: `invalid_config` (`api_key`) unless `key` is a secret key; `invalid_argument`
/// for an empty or overlong subject (`/subject`) or a `ttl` of 0 or over 30 days (`/ttl`).
pub fn mint(key: &ApiKey, subject: &str, ttl: Duration, now: u64) -> Result<String, Error> {
    if key.kind != KeyKind::Secret {
        return Err(Error::config(
            "api_key",
            "customer tokens are minted with a secret key (ml_sk_…)",
        ));
    }
    check_subject(subject)?;
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(ValidationError::invalid_argument("/ttl", "ttl must be more than 0 and at most 30 days").into());
    }
    let header = Header {
        alg: "HS256".into(),
        typ: "JWT".into(),
        kid: key.id.clone(),
    };
    let claims = Claims {
        sub: subject.to_owned(),
        iat: now,
        exp: now + ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0),
    };
    let signing_input = format!("{}.{}", encode_part(&header), encode_part(&claims));
    let signature = sign(&key.customer_token_signing_key(), signing_input.as_bytes());
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// Checks a subject as the entitlement calls do: 1–256 characters.
pub(crate) fn check_subject(subject: &str) -> Result<(), ValidationError> {
    if subject.is_empty() {
        return Err(ValidationError::invalid_argument(
            "/subject",
            "subject must not be empty",
        ));
    }
    if subject.chars().count() > MAX_ATTRIBUTE_LEN {
        return Err(ValidationError::invalid_argument(
            "/subject",
            format!("subject must be at most {MAX_ATTRIBUTE_LEN} characters"),
        ));
    }
    Ok(())
}

/// Reads a token's header without checking the signature (to find the key by `kid`).
/// Refuses any `alg` but `HS256`.
pub fn header(token: &str) -> Result<Header, TokenError> {
    let (header, _) = token.split_once('.').ok_or_else(|| invalid("not a JWT"))?;
    let header: Header = decode_part(header)?;
    if header.alg != "HS256" {
        return Err(invalid(format!("alg {:?} is not accepted; only HS256", header.alg)));
    }
    Ok(header)
}

/// Verifies a token's signature with `signing_key` (constant-time), then its expiry at
/// `now` (Unix seconds). Returns the claims.
pub fn verify(signing_key: &[u8; 32], token: &str, now: u64) -> Result<Claims, TokenError> {
    header(token)?;
    let (signing_input, signature) = token.rsplit_once('.').ok_or_else(|| invalid("not a JWT"))?;
    let (_, claims) = signing_input.split_once('.').ok_or_else(|| invalid("not a JWT"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| invalid("the signature is not base64url"))?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(signing_key).map_err(|_| invalid("bad signing key"))?;
    mac.update(signing_input.as_bytes());
    mac.verify_slice(&signature).map_err(|_| invalid("bad signature"))?;
    let claims: Claims = decode_part(claims)?;
    if now >= claims.exp {
        return Err(TokenError {
            code: "token_expired",
            message: format!("the token expired at {} (Unix seconds)", claims.exp),
        });
    }
    Ok(claims)
}

/// Reads a token's claims without checking its signature: what a client, which cannot
/// check it, learns of its subject and lifetime (to refresh it ahead of `exp`).
pub fn claims_unverified(token: &str) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(_), Some(claims), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(invalid("not a JWT (three parts separated by dots)"));
    };
    decode_part(claims)
}

fn sign(key: &[u8; 32], input: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(input);
    mac.finalize().into_bytes().into()
}

fn decode_part<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| invalid("a part is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|e| invalid(format!("a part is not the expected JSON: {e}")))
}

fn encode_part<T: Serialize>(part: &T) -> String {
    // Plain structs of strings and integers: serialization cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(part).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ml_sk_abc_0123456789abcdef0123";

    #[test]
    fn mints_a_verifiable_hs256_jwt() {
        let key = ApiKey::parse(KEY).unwrap();
        let token = mint(&key, "customer-42", Duration::from_secs(3600), 1_800_000_000).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg":"HS256","typ":"JWT","kid":"abc"}));
        assert_eq!(
            String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap(),
            r#"{"sub":"customer-42","iat":1800000000,"exp":1800003600}"#
        );
        let claims = verify(&key.customer_token_signing_key(), &token, 1_800_000_001).unwrap();
        assert_eq!(claims.sub, "customer-42");
        assert_eq!(
            verify(&key.customer_token_signing_key(), &token, 1_800_003_600)
                .unwrap_err()
                .code,
            "token_expired"
        );
    }

    #[test]
    fn known_answer_matches_an_independent_hs256() {
        // python3: base64url(hmac(signing_key, header_b64 + "." + claims_b64, sha256))
        let key = ApiKey::parse(KEY).unwrap();
        let token = mint(&key, "c1", Duration::from_secs(60), 1_800_000_000).unwrap();
        assert_eq!(
            token.rsplit_once('.').unwrap().1,
            "7IRIkRCtNce9fLlU7c1INoUrDYUb568uV4Xxg2kNlwM"
        );
    }

    #[test]
    fn refuses_tampering_other_keys_and_algorithms() {
        let key = ApiKey::parse(KEY).unwrap();
        let token = mint(&key, "c1", Duration::from_secs(60), 100).unwrap();
        let other = ApiKey::parse("ml_sk_abc_0123456789abcdef9999").unwrap();
        assert_eq!(
            verify(&other.customer_token_signing_key(), &token, 101)
                .unwrap_err()
                .code,
            "invalid_token"
        );
        let forged_claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"c2","iat":100,"exp":160}"#);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
        assert!(verify(&key.customer_token_signing_key(), &forged, 101).is_err());
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"abc"}"#),
            parts[1]
        );
        assert!(header(&none).unwrap_err().message.contains("none"));
        assert!(verify(&key.customer_token_signing_key(), "garbage", 1).is_err());
    }

    #[test]
    fn validates_key_kind_subject_and_ttl() {
        let pk = ApiKey::parse("ml_pk_abc_0123456789abcdef0123").unwrap();
        assert!(matches!(
            mint(&pk, "c1", Duration::from_secs(1), 0),
            Err(Error::Config { field, .. }) if field == "api_key"
        ));
        let key = ApiKey::parse(KEY).unwrap();
        let path = |r: Result<String, Error>| match r {
            Err(Error::Validation(v)) => v.path,
            other => panic!("{other:?}"),
        };
        assert_eq!(path(mint(&key, "", Duration::from_secs(1), 0)), "/subject");
        assert_eq!(
            path(mint(&key, &"x".repeat(257), Duration::from_secs(1), 0)),
            "/subject"
        );
        assert_eq!(path(mint(&key, "c1", Duration::ZERO, 0)), "/ttl");
        assert_eq!(path(mint(&key, "c1", MAX_TTL + Duration::from_secs(1), 0)), "/ttl");
        let t = mint(&key, "c1", Duration::from_millis(1500), 10).unwrap();
        assert_eq!(verify(&key.customer_token_signing_key(), &t, 10).unwrap().exp, 12);
    }
}
