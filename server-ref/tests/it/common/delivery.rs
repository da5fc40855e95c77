//! What the SDK-delivery tests share: a runtime for the async helpers, the client settings
//! they start from, and the exactly-once check of what the server stored.

use std::{collections::HashSet, time::Duration};

use meterline_core::Config;

use super::Server;

/// A tokio runtime for the harness's async helpers and the proxy (the SDK calls are blocking).
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The client settings the delivery tests start from: quick flushes and quick retries.
pub fn config(key: &str, endpoint: &str) -> Config {
    let mut c = Config::new(key, endpoint);
    c.source = "sdk-delivery-test".into();
    c.flush_interval = Duration::from_millis(50);
    c.retry.initial_delay = Duration::from_millis(10);
    c.retry.max_delay = Duration::from_millis(200);
    c
}

/// The ids of every event the server stored for `key`'s project.
pub fn stored_ids(rt: &tokio::runtime::Runtime, server: &Server, key: &str) -> Vec<String> {
    rt.block_on(server.all_events(key, ""))
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every tracked event was stored, once, and nothing else.
pub fn assert_exactly_once(stored: &[String], tracked: &HashSet<String>) {
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "an event was stored twice");
    assert_eq!(
        stored.len(),
        tracked.len(),
        "stored {} of {} tracked events",
        stored.len(),
        tracked.len()
    );
    assert!(
        stored.iter().all(|id| tracked.contains(id)),
        "an untracked event was stored"
    );
}
