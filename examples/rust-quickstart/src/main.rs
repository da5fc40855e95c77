//! meterline quick start.
//!
//! ```text
//! METERLINE_API_KEY=ml_sk_… METERLINE_ENDPOINT=http://127.0.0.1:8080 cargo run -p rust-quickstart
//! ```
//! Reads a customer's entitlements, tracks a few billable events for two customers (watching
//! the cached usage count them before any round trip), flushes them, and prints what the
//! server stored (read back through `GET /v1/events`). With the catalog of
//! `examples/quickstart.toml` (what `make demo` starts the server with) customer-42 is on the
//! free plan (10 API calls a day) and customer-7 on pro; without it every answer is
//! "feature not in plan".

use std::time::Duration;

use meterline_core::{Client, Config, EntitlementAnswer, Error};
use serde_json::{Value, json};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api_key = std::env::var("METERLINE_API_KEY").map_err(|_| "set METERLINE_API_KEY to a secret key (ml_sk_…)")?;
    let endpoint = std::env::var("METERLINE_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8080".into());

    let mut config = Config::new(api_key.clone(), endpoint.clone());
    config.source = "rust-quickstart".into();
    let client = Client::new(config)?;

    // The first answer for a customer is fetched (`fresh`) and cached; later ones are local.
    show(
        "customer-42 api_calls",
        &client.entitlement("customer-42", "api_calls")?,
    );

    // Every billable action is one `track()`; it validates and queues, never waits on the network.
    for i in 0..5 {
        let id = client.track(
            "api.call",
            "customer-42",
            json!({"tokens": 100 * (i + 1), "model": "m-large"}),
            None,
            None,
        )?;
        match id {
            Some(id) => println!("tracked api.call for customer-42 ({id})"),
            None => println!("the queue was full: event dropped (see stats().dropped)"),
        }
    }
    client.track(
        "api.call",
        "customer-7",
        json!({"tokens": 42, "model": "m-small"}),
        None,
        None,
    )?;

    // Tracked events count into the cached usage at once: no request, no waiting.
    show(
        "customer-42 api_calls",
        &client.entitlement("customer-42", "api_calls")?,
    );
    show("customer-42 sso", &client.entitlement("customer-42", "sso")?);
    show("customer-7 sso", &client.entitlement("customer-7", "sso")?);
    show("customer-7 tier", &client.entitlement("customer-7", "tier")?);

    // An invalid event fails at once with the JSON pointer of the problem, and is not queued.
    match client.track("api.call", "customer-42", json!(["not", "an", "object"]), None, None) {
        Err(Error::Validation(e)) => println!("refused as expected: {} at {}: {}", e.code, e.path, e.message),
        other => println!("unexpected: {other:?}"),
    }

    client.flush(Duration::from_secs(10))?;
    let stats = client.stats();
    println!(
        "stats: enqueued={} sent={} duplicates={} rejected={} cache_hits={} cache_misses={} stream_connected={}",
        stats.enqueued,
        stats.sent,
        stats.duplicates,
        stats.rejected,
        stats.cache_hits,
        stats.cache_misses,
        stats.stream_connected
    );
    client.shutdown(Duration::from_secs(5))?;

    // Read back what the server stored.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let page: Value = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{}/v1/events?limit=1000", endpoint.trim_end_matches('/')))
            .bearer_auth(&api_key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    })?;
    let events = page["events"].as_array().cloned().unwrap_or_default();
    println!("the server stored {} events:", events.len());
    for e in &events {
        println!(
            "  {} {} {} {}",
            e["time"].as_str().unwrap_or("-"),
            e["type"],
            e["subject"],
            e["data"]
        );
    }
    Ok(())
}

/// Prints one entitlement answer on a line.
fn show(what: &str, a: &EntitlementAnswer) {
    let mut line = format!(
        "entitlement {what}: has_access={} source={}",
        a.has_access,
        a.source.as_str()
    );
    if let (Some(usage), Some(limit)) = (a.usage, a.limit) {
        line.push_str(&format!(" usage={usage} of {limit}"));
    }
    if let Some(value) = &a.value {
        line.push_str(&format!(" value={value}"));
    }
    if let Some(reason) = &a.reason {
        line.push_str(&format!(" ({reason})"));
    }
    println!("{line}");
}
