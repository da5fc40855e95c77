//! Memory under a long outage (issue 8): the server is down, the SDK is under constant load
//! with its queue full, and the process's resident memory must stay flat; when the server
//! comes back every accepted event is stored once. Runs in a process of its own
//! (`crate::run_alone`) because it measures this process's RSS, which other tests running in
//! parallel in the same process would disturb.

#![allow(clippy::unwrap_used, missing_docs)]

// Only the proxy's "server down" switch is used here.
use crate::{common, sdk_delivery::chaos};

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use chaos::ChaosProxy;
use common::{
    Server,
    delivery::{assert_exactly_once, config, rt, stored_ids},
};
use meterline_core::Client;
use serde_json::json;

/// Resident memory of this process, bytes.
fn rss_bytes() -> u64 {
    common::ws::rss_kib(std::process::id()) * 1024
}

#[test]
fn memory_stays_bounded_while_the_server_is_down_under_constant_load() {
    if crate::run_alone("outage_memory::memory_stays_bounded_while_the_server_is_down_under_constant_load") {
        return;
    }
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("SKIPPED: /proc/self/status is not readable here, RSS cannot be measured");
        return;
    }
    let rss_start = rss_bytes();
    const QUEUE: usize = 20_000;
    let rt = rt();
    let server = Server::start();
    let proxy = rt.block_on(ChaosProxy::start(&server.url, 7));
    proxy.set_upstream(None); // the server is "down": every connection is refused
    let mut c = config(server.sk(), &proxy.url);
    c.max_queue_size = QUEUE;
    c.fetch_schemas = false;
    // Waiting events are bounded by max_queue_size; batches in flight (being retried) come on top.
    let held_at_most = (QUEUE + c.max_in_flight * c.flush_at) as u64;
    let client = Client::new(c).unwrap();

    let pad = "x".repeat(200);
    let mut accepted = HashSet::new();
    let mut refused = 0u64;
    let mut track = |i: usize| match client.track(
        "api.call",
        "c1",
        json!({"tokens": i, "pad": pad}),
        Some(format!("out-{i}")),
        None,
    ) {
        Ok(Some(id)) => {
            accepted.insert(id);
        }
        // The default `drop_newest` drops the event without raising: no id.
        Ok(None) => refused += 1,
        Err(e) => panic!("track() raised: {e}"),
    };
    // Fill the queue, then keep the load on for three seconds.
    let mut i = 0;
    while i < QUEUE {
        track(i);
        i += 1;
    }
    let rss_full = rss_bytes();
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(3) {
        track(i);
        i += 1;
    }
    let rss_after = rss_bytes();
    let stats = client.stats();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let summary = format!(
        "outage: {i} events tracked, {} accepted, {refused} refused (queue_full); {} held (waiting + in flight; max_queue_size {QUEUE}); \
         RSS {:.1} MiB at start, {:.1} MiB with the queue full, {:.1} MiB after 3 s more load",
        accepted.len(),
        stats.queue_length,
        mib(rss_start),
        mib(rss_full),
        mib(rss_after),
    );
    eprintln!("{summary}");
    assert!(refused > 0 && i > 2 * QUEUE, "{summary}");
    assert!(stats.queue_length <= held_at_most, "{summary}");
    assert_eq!(stats.dropped, refused, "{summary}");
    assert!(
        rss_after.saturating_sub(rss_full) < 32 * 1024 * 1024,
        "memory grew under constant load with the queue full: {summary}"
    );

    // The server comes back: everything accepted arrives, once.
    proxy.set_upstream(Some(&server.url));
    client.flush(Duration::from_secs(120)).unwrap();
    assert_exactly_once(&stored_ids(&rt, &server, server.sk()), &accepted);
    client.shutdown(Duration::from_secs(5)).unwrap();
}
