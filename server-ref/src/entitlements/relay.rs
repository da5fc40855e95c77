//! Relays the stream messages of catalog changes made by the CLI — another process, which
//! cannot reach this server's hub — to the server's live subscribers: every
//! `entitlements.relay_poll_ms` the server takes the messages the CLI marked and publishes
//! them under the hub's sequencing guard. They were committed to the log with their own
//! seq, so a client resuming with `since` gets them from the log either way; a live
//! subscriber gets them up to one poll interval late, possibly after messages with a
//! higher seq.

use std::time::Duration;

use tokio::time::interval;

use crate::app::AppState;

/// Runs until the task is dropped (see `stream::upkeep`).
pub async fn run(state: AppState) {
    let mut tick = interval(Duration::from_millis(state.config.entitlements.relay_poll_ms));
    loop {
        tick.tick().await;
        let order = state.hub.sequence().await;
        match state.store.take_relayed().await {
            Ok(frames) if frames.is_empty() => {}
            Ok(frames) => {
                tracing::debug!(messages = frames.len(), "relaying stream messages of CLI changes");
                order.publish(frames);
            }
            Err(error) => tracing::warn!(%error, "reading the stream messages to relay failed"),
        }
    }
}
