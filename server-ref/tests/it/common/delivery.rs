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

/// What a recording front saw the client send: attempts, event sends, and ids sent more
/// than once.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resends {
    /// Ingest requests.
    pub attempts: usize,
    /// Event ids summed over every attempt.
    pub sends: usize,
    /// Ids that went out more than once.
    pub resent_ids: usize,
}

/// The resend bound the SDK promises (DESIGN §7: retries resend the same ids): an id goes
/// out again only after an attempt that carried it failed or got no answer. `attempts` are
/// each ingest request's event ids in arrival order with the status answered (`0`: none,
/// the client went away); `unknown(i)` marks attempt `i` as one whose answer the client may
/// not have received although it was a 2xx (e.g. the connection was cut after it). For every
/// id: sends ≤ 1 + its failed or unknown attempts, and nothing carries it after an attempt
/// that succeeded. Panics naming the first id that breaks it.
pub fn assert_resent_only_after_failures(attempts: &[(Vec<String>, u16)], unknown: impl Fn(usize) -> bool) -> Resends {
    use std::collections::HashMap;
    #[derive(Default)]
    struct Seen {
        sends: usize,
        failed: usize,
        succeeded_at: Option<usize>,
    }
    let mut seen: HashMap<&str, Seen> = HashMap::new();
    let mut sends = 0;
    for (i, (ids, status)) in attempts.iter().enumerate() {
        let succeeded = (200..300).contains(status) && !unknown(i);
        for id in ids {
            sends += 1;
            let s = seen.entry(id.as_str()).or_default();
            if let Some(at) = s.succeeded_at {
                panic!("{id} was sent again in attempt {i} after attempt {at} succeeded (status {status})");
            }
            s.sends += 1;
            if succeeded {
                s.succeeded_at = Some(i);
            } else {
                s.failed += 1;
            }
            assert!(
                s.sends <= 1 + s.failed - usize::from(!succeeded),
                "{id}: sent {} times after only {} failed or unanswered attempts",
                s.sends,
                s.failed - usize::from(!succeeded)
            );
        }
    }
    Resends {
        attempts: attempts.len(),
        sends,
        resent_ids: seen.values().filter(|s| s.sends > 1).count(),
    }
}
