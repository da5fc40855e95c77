//! Background work of keys and streams, running while the server runs: pruning the
//! retained log, noticing keys revoked by another process (the CLI), forgetting idle
//! rate-limit buckets, and relaying the stream messages of catalog changes the CLI made.

use std::{collections::HashSet, time::Duration};

use tokio::{task::JoinHandle, time::interval};

use crate::{app::AppState, store::now_rfc3339};

/// The running background tasks; dropping this stops them.
#[derive(Debug)]
pub struct Upkeep(Vec<JoinHandle<()>>);

impl Drop for Upkeep {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Starts the background tasks of `state`.
pub fn spawn(state: &AppState) -> Upkeep {
    Upkeep(vec![
        tokio::spawn(prune_stream_log(state.clone())),
        tokio::spawn(watch_revocations(state.clone())),
        tokio::spawn(forget_idle_buckets(state.clone())),
        tokio::spawn(crate::entitlements::relay::run(state.clone())),
    ])
}

/// Deletes log messages older than `stream.retention_secs`, checking every tenth of it
/// (between 100 ms and a minute).
async fn prune_stream_log(state: AppState) {
    let retention = state.config.stream.retention();
    let mut tick = interval((retention / 10).clamp(Duration::from_millis(100), Duration::from_secs(60)));
    loop {
        tick.tick().await;
        let before_ms =
            chrono::Utc::now().timestamp_millis() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        match state.store.prune_stream_log(before_ms).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "pruned the stream log"),
            Err(error) => tracing::warn!(%error, "pruning the stream log failed"),
        }
    }
}

/// Every `auth.revocation_poll_ms`, finds keys revoked since the last look (by the CLI, or
/// by this server), evicts them from the key cache and closes their streams.
async fn watch_revocations(state: AppState) {
    let mut since = now_rfc3339();
    // Keys already announced whose revocation time equals `since`.
    let mut announced: HashSet<String> = HashSet::new();
    let mut tick = interval(Duration::from_millis(state.config.auth.revocation_poll_ms));
    loop {
        tick.tick().await;
        let revoked = match state.store.keys_revoked_since(&since).await {
            Ok(revoked) => revoked,
            Err(error) => {
                tracing::warn!(%error, "looking for revoked keys failed");
                continue;
            }
        };
        for (id, at) in revoked {
            if at > since {
                since = at;
                announced.clear();
            }
            if announced.insert(id.clone()) {
                state.keys.evict(&id);
                state.streams.key_revoked(&id);
            }
        }
    }
}

async fn forget_idle_buckets(state: AppState) {
    let mut tick = interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        state.limits.forget_idle();
    }
}
