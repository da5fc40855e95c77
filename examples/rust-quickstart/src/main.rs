//! meterline quick start.
//!
//! ```text
//! METERLINE_API_KEY=ml_sk_… METERLINE_ENDPOINT=http://127.0.0.1:8080 cargo run -p rust-quickstart
//! ```
//! Tracks a few billable events for two customers, flushes them, and prints what the server
//! stored (read back through `GET /v1/events`).

use std::time::Duration;

use meterline_core::{Client, Config, Error};
use serde_json::{Value, json};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api_key = std::env::var("METERLINE_API_KEY").map_err(|_| "set METERLINE_API_KEY to a secret key (ml_sk_…)")?;
    let endpoint = std::env::var("METERLINE_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8080".into());

    let mut config = Config::new(api_key.clone(), endpoint.clone());
    config.source = "rust-quickstart".into();
    let client = Client::new(config)?;

    // Every billable action is one `track()`; it validates and queues, never waits on the network.
    for i in 0..5 {
        let id = client.track(
            "api.call",
            "customer-42",
            json!({"tokens": 100 * (i + 1), "model": "m-large"}),
            None,
            None,
        )?;
        println!("tracked api.call for customer-42 ({id})");
    }
    client.track(
        "api.call",
        "customer-7",
        json!({"tokens": 42, "model": "m-small"}),
        None,
        None,
    )?;

    // An invalid event fails at once with the JSON pointer of the problem, and is not queued.
    match client.track("api.call", "customer-42", json!(["not", "an", "object"]), None, None) {
        Err(Error::Validation(e)) => println!("refused as expected: {} at {}: {}", e.code, e.path, e.message),
        other => println!("unexpected: {other:?}"),
    }

    client.flush(Duration::from_secs(10))?;
    let stats = client.stats();
    println!(
        "stats: enqueued={} sent={} duplicates={} rejected={}",
        stats.enqueued, stats.sent, stats.duplicates, stats.rejected
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
