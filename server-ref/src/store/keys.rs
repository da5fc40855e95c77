//! Key rows beyond the basics of `sqlite.rs`: what a new key stores, the customer-token
//! signer of a secret key, and which keys were revoked lately (so a running server notices
//! revocations made by the CLI).

use meterline_core::key::KeyKind;
use sqlx::Row;

use super::{Store, StoreError};

/// A key to store: everything but the key text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// Public id.
    pub id: String,
    /// What it may do.
    pub kind: KeyKind,
    /// SHA-256 of the secret part.
    pub secret_hash: Vec<u8>,
    /// For a secret key: `ApiKey::customer_token_signing_key()`, the HMAC key that verifies
    /// the customer tokens it signs. `None` for other kinds.
    pub token_signing_key: Option<[u8; 32]>,
}

/// What verifying a customer token needs to know about the key named by its `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSigner {
    /// Owning project.
    pub project_id: i64,
    /// The key's kind (only secret keys sign tokens).
    pub kind: KeyKind,
    /// Whether the key has been revoked.
    pub revoked: bool,
    /// The stored signing key; `None` for keys minted before migration 4 and for keys that
    /// are not secret keys.
    pub signing_key: Option<[u8; 32]>,
}

impl Store {
    /// The key with public id `kid` as a customer-token signer, or `None` when unknown.
    pub async fn token_signer(&self, kid: &str) -> Result<Option<TokenSigner>, StoreError> {
        let row = sqlx::query("SELECT project_id, kind, revoked_at, token_signing_key FROM api_keys WHERE id = ?")
            .bind(kid)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let kind: String = row.try_get("kind")?;
        let kind = KeyKind::from_name(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("key {kid:?} has an unknown kind {kind:?}").into()))?;
        let revoked_at: Option<String> = row.try_get("revoked_at")?;
        let signing_key: Option<Vec<u8>> = row.try_get("token_signing_key")?;
        let signing_key = signing_key
            .map(|bytes| {
                <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                    sqlx::Error::Decode(
                        format!("key {kid:?}: token_signing_key is {} bytes, not 32", bytes.len()).into(),
                    )
                })
            })
            .transpose()?;
        Ok(Some(TokenSigner {
            project_id: row.try_get("project_id")?,
            kind,
            revoked: revoked_at.is_some(),
            signing_key,
        }))
    }

    /// Keys revoked at or after `since` (RFC 3339 UTC, as stored), as `(id, revoked_at)`,
    /// oldest first.
    pub async fn keys_revoked_since(&self, since: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, revoked_at FROM api_keys WHERE revoked_at IS NOT NULL AND revoked_at >= ?
             ORDER BY revoked_at, id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("revoked_at")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }
}
