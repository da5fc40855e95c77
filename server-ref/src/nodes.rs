//! Node membership on PostgreSQL (DR-115): every node registers in `server_nodes` and
//! heartbeats every [`HEARTBEAT`]; the nodes seen within [`LIVE_WINDOW`] are the live ones,
//! and each enforces its share of `[limits]` ([`crate::ratelimit::Share`]). Nothing of this
//! is on a request's path: the count is read in the background and the limiter swapped when
//! it changes. While the database is away a node keeps its last share. On SQLite there is
//! one node and none of this runs.

use std::{sync::Arc, time::Duration};

use tokio::task::JoinHandle;

use crate::{ratelimit::RateLimits, store::PgStore};

/// How often a node records that it is alive and counts the others.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// A node last seen longer ago than this is not counted: a node that died stops taking a
/// share of the limits at most this long (plus one heartbeat of the others) after its last
/// beat.
pub const LIVE_WINDOW: Duration = Duration::from_secs(3);

/// This node's registration; its heartbeat task runs until [`Membership::leave`] or drop.
#[derive(Debug)]
pub struct Membership {
    node_id: String,
    store: PgStore,
    task: JoinHandle<()>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Membership {
    /// Registers this node with a new random id, sets `limits` to its share of the nodes live
    /// now (before the node serves), and starts the heartbeat.
    pub async fn join(store: &PgStore, limits: Arc<RateLimits>) -> Membership {
        let node_id = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
        let mut beat = Beat {
            node_id: node_id.clone(),
            store: store.clone(),
            limits,
            failing: false,
        };
        beat.once().await;
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                beat.once().await;
            }
        });
        tracing::info!(node_id, "registered in server_nodes");
        Membership {
            node_id,
            store: store.clone(),
            task,
        }
    }

    /// Stops the heartbeat and deletes this node's row, so the others take its share back at
    /// their next heartbeat (a node stopping gracefully).
    pub async fn leave(self) {
        self.task.abort();
        match tokio::time::timeout(Duration::from_secs(2), self.store.node_leave(&self.node_id)).await {
            Ok(Ok(())) => tracing::info!(node_id = self.node_id, "left server_nodes"),
            Ok(Err(error)) => tracing::warn!(%error, "could not delete this node from server_nodes"),
            Err(_) => tracing::warn!("deleting this node from server_nodes timed out"),
        }
    }
}

/// One node's heartbeat state.
struct Beat {
    node_id: String,
    store: PgStore,
    limits: Arc<RateLimits>,
    /// The last beat failed (logged once per outage).
    failing: bool,
}

impl Beat {
    async fn once(&mut self) {
        let counted = tokio::time::timeout(LIVE_WINDOW, self.store.node_heartbeat(&self.node_id, LIVE_WINDOW)).await;
        match counted {
            Ok(Ok(live)) => {
                if self.failing {
                    tracing::info!(live, "node heartbeat recovered");
                    self.failing = false;
                }
                self.limits.set_live_nodes(live);
            }
            Ok(Err(error)) if !self.failing => {
                tracing::warn!(%error, "node heartbeat failed; keeping the current share of [limits]");
                self.failing = true;
            }
            Err(_) if !self.failing => {
                tracing::warn!("node heartbeat timed out; keeping the current share of [limits]");
                self.failing = true;
            }
            _ => {}
        }
    }
}
