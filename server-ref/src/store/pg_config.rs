//! Configuration changes between nodes on PostgreSQL: a transaction that revokes a key or
//! changes a project's schemas or settings sends `NOTIFY meterline_config` (delivered at
//! commit) naming what changed; every node's [`ConfigFollower`] drops what it cached about
//! it — the key from the key-verify cache (and closes its streams), the project's compiled
//! schemas and settings. When the listening connection is lost, a node cannot know what it
//! missed and drops everything ([`ConfigNotice::Lost`]).

use sqlx::{PgConnection, postgres::PgListener};

use super::{PgStore, StoreError};

/// The NOTIFY channel of configuration changes.
const CHANNEL: &str = "meterline_config";

/// What a committed transaction changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigChange<'a> {
    /// The key with this public id was revoked.
    KeyRevoked(&'a str),
    /// The project's schemas or settings changed.
    Project(i64),
}

/// What a node learns from the config channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigNotice {
    /// The key with this public id was revoked.
    KeyRevoked(String),
    /// The project's schemas or settings changed.
    Project(i64),
    /// The listening connection was lost (and is being re-established): anything may have
    /// changed meanwhile.
    Lost,
}

/// Sends the notification of `change` inside the caller's transaction.
pub(super) async fn notify(conn: &mut PgConnection, change: ConfigChange<'_>) -> Result<(), StoreError> {
    let payload = match change {
        ConfigChange::KeyRevoked(id) => format!("key:{id}"),
        ConfigChange::Project(project_id) => format!("project:{project_id}"),
    };
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// One node's view of the configuration changes every node commits.
#[derive(Debug)]
pub struct ConfigFollower {
    store: PgStore,
    /// The listening connection; `None` after it failed, until it is made again.
    listener: Option<PgListener>,
}

impl PgStore {
    /// Starts listening for configuration changes committed through any node.
    pub async fn follow_config(&self) -> Result<ConfigFollower, StoreError> {
        Ok(ConfigFollower {
            store: self.clone(),
            listener: Some(self.listen(CHANNEL).await?),
        })
    }
}

impl ConfigFollower {
    /// Waits for the next change. After the listening connection failed, the next call
    /// makes it again and answers [`ConfigNotice::Lost`].
    pub async fn next(&mut self) -> Result<ConfigNotice, StoreError> {
        loop {
            let Some(listener) = &mut self.listener else {
                self.listener = Some(self.store.listen(CHANNEL).await?);
                return Ok(ConfigNotice::Lost);
            };
            let notification = match listener.try_recv().await {
                Ok(Some(notification)) => notification,
                Ok(None) => return Ok(ConfigNotice::Lost),
                Err(e) => {
                    // sqlx reconnects only after some I/O errors: start over with a new one.
                    self.listener = None;
                    return Err(e.into());
                }
            };
            let payload = notification.payload();
            if let Some(id) = payload.strip_prefix("key:") {
                return Ok(ConfigNotice::KeyRevoked(id.to_owned()));
            }
            if let Some(project) = payload.strip_prefix("project:").and_then(|p| p.parse().ok()) {
                return Ok(ConfigNotice::Project(project));
            }
            tracing::warn!(payload, "ignoring an unknown configuration notification");
        }
    }
}
