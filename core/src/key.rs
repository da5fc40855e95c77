//! API keys: `ml_<kind>_<id>_<secret>` (DESIGN §6).
//!
//! The id travels with the key, so the server finds the stored hash by id and compares in
//! constant time, and an SDK knows its key id without asking.

use std::fmt;

use crate::error::Error;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// `ml_sk_…`: servers — ingest, read any subject, subscribe.
    Secret,
    /// `ml_pk_…`: browsers and apps — only with a customer token, only for its subject.
    Publishable,
    /// `ml_ak_…`: the admin API.
    Admin,
}

impl KeyKind {
    /// The two-letter prefix (`sk`, `pk`, `ak`).
    pub fn prefix(self) -> &'static str {
        match self {
            KeyKind::Secret => "sk",
            KeyKind::Publishable => "pk",
            KeyKind::Admin => "ak",
        }
    }

    /// The name used by the admin API (`secret`, `publishable`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Secret => "secret",
            KeyKind::Publishable => "publishable",
            KeyKind::Admin => "admin",
        }
    }

    /// Parses the admin API's name of a kind.
    pub fn from_name(name: &str) -> Option<KeyKind> {
        match name {
            "secret" => Some(KeyKind::Secret),
            "publishable" => Some(KeyKind::Publishable),
            "admin" => Some(KeyKind::Admin),
            _ => None,
        }
    }
}

/// A parsed key. `Debug` and `Display` never print the secret part.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// What it may do.
    pub kind: KeyKind,
    /// Public id (lowercase letters and digits).
    pub id: String,
    secret: String,
}

/// The HMAC message that derives a secret key's customer-token signing key.
pub const CUSTOMER_TOKEN_CONTEXT: &[u8] = b"meterline customer token v1";

/// Shortest secret part accepted.
pub const MIN_SECRET_LEN: usize = 16;
/// Longest id and secret parts accepted.
pub const MAX_PART_LEN: usize = 128;

impl ApiKey {
    /// Assembles a key from its parts (the server uses this when minting keys).
    pub fn new(kind: KeyKind, id: impl Into<String>, secret: impl Into<String>) -> Self {
        ApiKey {
            kind,
            id: id.into(),
            secret: secret.into(),
        }
    }

    /// Parses `ml_<kind>_<id>_<secret>`; the error says which part is wrong without echoing
    /// the secret.
    pub fn parse(text: &str) -> Result<ApiKey, Error> {
        let bad = |why: &str| Error::Unauthorized {
            message: format!("malformed API key: {why} (expected ml_sk_…, ml_pk_… or ml_ak_…)"),
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(bad("the key is empty"));
        }
        let rest = text
            .strip_prefix("ml_")
            .ok_or_else(|| bad("it does not start with `ml_`"))?;
        let (kind, rest) = rest.split_once('_').ok_or_else(|| bad("the kind is missing"))?;
        let kind = match kind {
            "sk" => KeyKind::Secret,
            "pk" => KeyKind::Publishable,
            "ak" => KeyKind::Admin,
            _ => return Err(bad("unknown kind")),
        };
        let (id, secret) = rest.split_once('_').ok_or_else(|| bad("the id or secret is missing"))?;
        if id.is_empty() || id.len() > MAX_PART_LEN || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(bad("the id must be 1–128 lowercase letters or digits"));
        }
        if secret.len() < MIN_SECRET_LEN
            || secret.len() > MAX_PART_LEN
            || !secret.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(bad("the secret must be 16–128 letters or digits"));
        }
        Ok(ApiKey::new(kind, id, secret))
    }

    /// The secret part (for hashing on the server, signing in the SDK).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The full key text, as sent in `Authorization: Bearer …`.
    pub fn expose(&self) -> String {
        format!("ml_{}_{}_{}", self.kind.prefix(), self.id, self.secret)
    }

    /// The key that signs customer tokens (DESIGN §6): HMAC-SHA256 keyed with the full key
    /// text, over `meterline customer token v1`. The server stores it beside the key's hash
    /// when it mints a secret key, so it can verify tokens without keeping the secret.
    pub fn customer_token_signing_key(&self) -> [u8; 32] {
        use hmac::{Mac, SimpleHmac};
        // `SimpleHmac` accepts keys of any length, so this cannot fail.
        let mut mac = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(self.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(CUSTOMER_TOKEN_CONTEXT);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey(ml_{}_{}_***)", self.kind.prefix(), self.id)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_token_signing_key_is_hmac_of_the_full_key() {
        // python3: hmac.new(b"ml_sk_abc_0123456789abcdef0123", b"meterline customer token v1", sha256)
        let k = ApiKey::parse("ml_sk_abc_0123456789abcdef0123").unwrap();
        assert_eq!(
            k.customer_token_signing_key()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            "d9642a3e76f36d02d285b678374fc7e68e62d8e05f026ce7598814fe3218167a"
        );
    }

    #[test]
    fn parses_and_round_trips() {
        let k = ApiKey::parse("ml_sk_ab12_0123456789abcdefXYZ").unwrap();
        assert_eq!(k.kind, KeyKind::Secret);
        assert_eq!(k.id, "ab12");
        assert_eq!(k.expose(), "ml_sk_ab12_0123456789abcdefXYZ");
        assert!(!format!("{k:?}").contains("0123456789"));
    }

    #[test]
    fn rejects_malformed_keys() {
        for bad in [
            "",
            "sk_live_123",
            "ml_xx_ab_0123456789abcdef",
            "ml_sk_AB_0123456789abcdef",
            "ml_sk_ab_short",
            "ml_sk__0123456789abcdef",
            "ml_sk_ab",
            "ml_sk_ab_0123456789abcdef\r\nX-Injected: 1",
        ] {
            let err = ApiKey::parse(bad).unwrap_err();
            assert_eq!(err.code(), "unauthorized", "{bad:?}");
            assert!(!err.to_string().contains("0123456789abcdef"), "{err}");
        }
    }
}
