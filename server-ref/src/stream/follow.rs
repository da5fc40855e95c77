//! On PostgreSQL, what every node learns from the others (DR-100, DR-106): the stream
//! messages committed through any node, published on this node's hub in seq order, and
//! the configuration changes (key revocations, schemas, settings) that make this node drop
//! what it cached. Both follow `LISTEN` connections that reconnect by themselves; a failed
//! read is retried, so a database restart costs latency, never a message.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::{
    app::AppState,
    store::{ConfigFollower, ConfigNotice, PgStore, StoreError, StreamFollower},
};

/// Pause after a failed read before the next try.
const RETRY: Duration = Duration::from_millis(250);

/// The running follower tasks; dropping this stops them.
#[derive(Debug)]
pub struct Followers(Vec<JoinHandle<()>>);

impl Drop for Followers {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Starts listening (before returning, so nothing committed afterwards is missed) and
/// spawns the tasks that feed `state`'s hub and caches.
pub async fn spawn(state: &AppState, store: &PgStore) -> Result<Followers, StoreError> {
    let stream = store.follow().await?;
    let config = store.follow_config().await?;
    Ok(Followers(vec![
        tokio::spawn(publish_stream(state.clone(), stream)),
        tokio::spawn(apply_config(state.clone(), config)),
    ]))
}

async fn publish_stream(state: AppState, mut follower: StreamFollower) {
    loop {
        match follower.next().await {
            Ok(frames) => state.hub.sequence().await.publish(frames),
            Err(error) => {
                tracing::warn!(%error, "following the stream log failed; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

async fn apply_config(state: AppState, mut follower: ConfigFollower) {
    loop {
        match follower.next().await {
            Ok(ConfigNotice::KeyRevoked(id)) => {
                state.keys.evict(&id);
                state.streams.key_revoked(&id);
            }
            Ok(ConfigNotice::Project(project_id)) => state.schemas.invalidate(project_id),
            Ok(ConfigNotice::Lost) => {
                // Revocations missed meanwhile also reach the streams through the
                // revocation poll (`auth.revocation_poll_ms`).
                tracing::warn!("the config LISTEN connection was lost; dropping every cache");
                state.keys.evict_all();
                state.schemas.invalidate_all();
            }
            Err(error) => {
                tracing::warn!(%error, "following configuration changes failed; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}
