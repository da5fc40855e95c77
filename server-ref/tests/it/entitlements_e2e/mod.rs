//! The real server binary on a real SQLite file and the real core `Client`, together: stream
//! propagation, reconnects with `since` and `resync`, stale and fallback answers, local usage
//! against the server's count, project and customer-token isolation, `ETag`/`304`
//! revalidation, and 401/429/4401 as the client reports them.
//!
//! Every wait polls with a generous deadline; nothing asserts on elapsed time.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

mod auth;
mod live;
mod offline;
mod usage;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{
    Server,
    catalog::{put_ok, standard_catalog},
};
use meterline_core::{Client, Config, Error, entitlement_cache::UsageThresholdEvent, runtime::native::Callbacks};
use serde_json::json;

/// How long any wait in these tests may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A tokio runtime for the harness's async helpers (the SDK calls are blocking).
pub use common::delivery::rt;

/// Puts the standard catalog (`common::catalog::standard_catalog`) on `s`, then each of
/// `customers` on its plan `pro`.
pub fn pro_customers(rt: &tokio::runtime::Runtime, s: &Server, customers: &[&str]) {
    rt.block_on(async {
        standard_catalog(s, s.ak()).await;
        for subject in customers {
            put_ok(s, s.ak(), &format!("customers/{subject}"), json!({"plan": "pro"})).await;
        }
    });
}

/// A client configuration for `key` against `url`: no schema fetch, no timed flush (tests
/// flush explicitly), generous timeouts.
pub fn config(key: &str, url: &str) -> Config {
    let mut c = Config::new(key, url);
    c.source = "entitlements-e2e".into();
    c.fetch_schemas = false;
    c.flush_interval = Duration::from_secs(3600);
    c.entitlement_timeout = Duration::from_secs(10);
    c.request_timeout = Duration::from_secs(10);
    c
}

/// What the client reported through its callbacks.
#[derive(Clone, Default)]
pub struct Seen {
    pub connections: Arc<Mutex<Vec<(bool, String)>>>,
    pub thresholds: Arc<Mutex<Vec<UsageThresholdEvent>>>,
    pub errors: Arc<Mutex<Vec<Error>>>,
}

impl Seen {
    fn callbacks(&self) -> Callbacks {
        let (connections, thresholds, errors) =
            (self.connections.clone(), self.thresholds.clone(), self.errors.clone());
        Callbacks {
            on_error: Some(Arc::new(move |e: &Error| errors.lock().unwrap().push(e.clone()))),
            on_usage_threshold: Some(Arc::new(move |t: &UsageThresholdEvent| {
                thresholds.lock().unwrap().push(t.clone());
            })),
            on_connection_change: Some(Arc::new(move |up: bool, why: &str| {
                connections.lock().unwrap().push((up, why.to_owned()));
            })),
            ..Callbacks::default()
        }
    }

    pub fn connections(&self) -> Vec<(bool, String)> {
        self.connections.lock().unwrap().clone()
    }

    pub fn errors(&self) -> Vec<Error> {
        self.errors.lock().unwrap().clone()
    }
}

/// A client recording its callbacks.
pub fn client(config: Config) -> (Client, Seen) {
    let seen = Seen::default();
    (Client::with_callbacks(config, seen.callbacks()).unwrap(), seen)
}

/// Polls `probe` every 10 ms until it returns `Some`, failing after [`DEADLINE`] with `what`
/// and the last value `describe` gives.
#[track_caller]
pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {DEADLINE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The sum of every `/metrics` sample whose line starts with `name` and contains all of
/// `labels` (e.g. `status="304"`).
pub fn metric(rt: &tokio::runtime::Runtime, s: &Server, name: &str, labels: &[&str]) -> f64 {
    let text = rt.block_on(async {
        s.http
            .get(format!("{}/metrics", s.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `GET /v1/customers/{subject}/entitlements` requests the server answered with `status`.
pub fn entitlement_gets(rt: &tokio::runtime::Runtime, s: &Server, status: u16) -> f64 {
    let status = format!("status=\"{status}\"");
    metric(
        rt,
        s,
        "meterline_http_request_duration_seconds_count",
        &["route=\"/v1/customers/{subject}/entitlements\"", &status],
    )
}

/// Waits until the server has sent at least `frames` stream frames (the `subscribed` answer
/// is the first on a connection): the client's subscription is then live on the server.
pub fn wait_frames(rt: &tokio::runtime::Runtime, s: &Server, frames: f64) {
    wait_for(&format!("{frames} stream frames sent by the server"), || {
        (metric(rt, s, "meterline_stream_frames_sent_total", &[]) >= frames).then_some(())
    });
}
