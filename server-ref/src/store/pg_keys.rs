//! Projects and API keys on PostgreSQL: the reads and admin writes of `sqlite.rs` and
//! `keys.rs`, for the server when it runs on PostgreSQL. A revocation also notifies every
//! node ([`super::pg_config`]), so each drops the key from its cache and closes its streams.

use meterline_core::key::KeyKind;
use sqlx::{PgConnection, Row, postgres::PgRow};

use super::{KeyRecord, NewKey, PgStore, Project, StoreError, TokenSigner, now_rfc3339, pg::project_from_row};

const PROJECT_COLUMNS: &str = "id, name, strict_types, client_event_types, allowed_origins, created_at";
const KEY_COLUMNS: &str = "id, project_id, kind, secret_hash, created_at, revoked_at";

fn key_from_row(row: &PgRow) -> Result<KeyRecord, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    Ok(KeyRecord {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        kind: KeyKind::from_name(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown key kind {kind:?}").into()))?,
        secret_hash: row.try_get("secret_hash")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Inserts a key row inside the caller's transaction (`Conflict` when the id is taken).
pub(super) async fn insert_key(
    conn: &mut PgConnection,
    project_id: i64,
    key: &NewKey,
    now: &str,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "INSERT INTO api_keys (id, project_id, kind, secret_hash, token_signing_key, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&key.id)
    .bind(project_id)
    .bind(key.kind.as_str())
    .bind(&key.secret_hash)
    .bind(key.token_signing_key.map(|k| k.to_vec()))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!("key id {:?} is already taken", key.id)));
    }
    Ok(())
}

impl PgStore {
    /// Number of projects (0 on a fresh database).
    pub async fn project_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM projects")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Looks a project up by name.
    pub async fn project_by_name(&self, name: &str) -> Result<Option<Project>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(project_from_row).transpose()?)
    }

    /// Looks a project up by id.
    pub async fn project(&self, project_id: i64) -> Result<Project, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1"
        )))
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("project {project_id} does not exist")))?;
        Ok(project_from_row(&row)?)
    }

    /// Stores a new key's hash (and, for a secret key, its customer-token signing key).
    pub async fn insert_key(&self, project_id: i64, key: &NewKey) -> Result<KeyRecord, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let now = now_rfc3339();
        insert_key(&mut conn, project_id, key, &now).await?;
        Ok(KeyRecord {
            id: key.id.clone(),
            project_id,
            kind: key.kind,
            secret_hash: key.secret_hash.clone(),
            created_at: now,
            revoked_at: None,
        })
    }

    /// Finds a key by its public id (revoked ones included).
    pub async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(key_from_row).transpose()?)
    }

    /// A project's keys, oldest first.
    pub async fn keys(&self, project_id: i64) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE project_id = $1 ORDER BY created_at, id"
        )))
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
    }

    /// Revokes a key (see [`super::Store::revoke_key`]) and, when it was not revoked yet,
    /// tells every node in the same transaction.
    pub async fn revoke_key(&self, project_id: Option<i64>, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1
             WHERE id = $2 AND revoked_at IS NULL AND ($3::int8 IS NULL OR project_id = $3)",
        )
        .bind(now_rfc3339())
        .bind(id)
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            super::pg_config::notify(&mut tx, super::pg_config::ConfigChange::KeyRevoked(id)).await?;
        }
        tx.commit().await?;
        let key = self.key(id).await?;
        Ok(key.filter(|k| project_id.is_none_or(|p| p == k.project_id)))
    }

    /// The key with public id `kid` as a customer-token signer, or `None` when unknown.
    pub async fn token_signer(&self, kid: &str) -> Result<Option<TokenSigner>, StoreError> {
        let row = sqlx::query("SELECT project_id, kind, revoked_at, token_signing_key FROM api_keys WHERE id = $1")
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
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, revoked_at FROM api_keys WHERE revoked_at IS NOT NULL AND revoked_at >= $1
             ORDER BY revoked_at, id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}
