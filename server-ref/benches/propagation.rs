//! Propagation latency: from an admin `PUT` being sent to each subscribed client seeing the
//! change, against the optimised server binary on loopback.
//!
//! Observers of two kinds, each subscribed to its own customer:
//! - raw stream connections (tokio-tungstenite): the time the `entitlements.updated` frame
//!   arrives;
//! - real core `Client`s: the time `cached_entitlement()` first answers the new value (one
//!   thread sweeps them all, so this includes up to one sweep of polling).
//!
//! Rounds: `fan-out` rounds change the plan every observer's customer is on (one `PUT`, one
//! update per observer); `single` rounds override one customer (one `PUT`, one observer).
//!
//! Shared scenario (issue 4 as users run it: backend instances of one service caching the
//! SAME customers): every observer also subscribes to (raw) or caches (Clients) the
//! `BENCH_SHARED` customers `shared-*`, all on the small plan `team`. `shared plan` rounds
//! change `team` (one `PUT`, `BENCH_SHARED` updates to every observer); `shared override`
//! rounds override one shared customer (one `PUT`, one update to every observer). A sighting
//! is one observer seeing one customer's new value.
//!
//! `cargo bench -p meterline-server --bench propagation`. Knobs: `BENCH_RAW` (raw
//! connections, default 1000), `BENCH_CLIENTS` (real clients, default 20), `BENCH_ROUNDS`
//! (fan-out rounds, default 10), `BENCH_SINGLE` (single rounds, default 50), `BENCH_SHARED`
//! (shared customers, default 10), `BENCH_SHARED_ROUNDS` (rounds of each shared kind, default
//! 10), `BENCH_SHARED_PLAN_ROUNDS` (shared plan rounds only, default `BENCH_SHARED_ROUNDS`;
//! 0 runs just the shared overrides, e.g. under `perf`), `BENCH_FLOOR_ROUNDS` (rounds of the
//! kernel floor, default 30; 0 skips it), `BENCH_GAP_MS` (pause before each change and each
//! floor round, default 5: changes are measured one at a time on a machine that went idle,
//! as admin changes arrive; 0 sends the next as soon as the last was seen everywhere, which
//! on this VM is ≈ 2 ms faster per change because no thread has gone to sleep). Talks only to
//! 127.0.0.1 and stops by itself.
//!
//! `BENCH_DATABASE_URL=postgres://…` runs on a fresh PostgreSQL database next to the URL's,
//! and `BENCH_NODES=2` starts a second node on it: the observers (raw connections, and the
//! real Clients' reads and streams) are on node B, the changes are made through node A (the
//! path between nodes: the stream log, `NOTIFY`, B's follower). `scripts/bench-postgres.sh`
//! runs the shared override alone this way (`BENCH_CLIENTS=0 BENCH_ROUNDS=0 BENCH_SINGLE=0
//! BENCH_SHARED_PLAN_ROUNDS=0`).
//!
//! `BENCH_CHANGE=schema` measures another change, with the same switches: each round `PUT`s a
//! new event schema, and every raw connection (no real Clients) sees its `schema.updated`
//! frame.
//!
//! The kernel floor (`floor/mod.rs`) runs last, once the server is gone: the same number of
//! bare loopback TCP connections, each sent one message as long as the real frame per round,
//! nothing else in the way. The shared override is printed against it as a ratio: what is
//! above 1× is the server's and the observers' own work.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod floor;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::BenchServer;
use futures_util::{SinkExt, StreamExt};
use meterline_core::{Client, Config};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{
    Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig,
};

/// A change an observer saw: which observer, the `tier` seats it now answers, and when.
type Sighting = (usize, u64, Instant);

/// Where observers record what they saw, drained by the main thread every millisecond. The
/// time of a sighting is taken by the observer, so the drain's delay is not measured. (A
/// channel woke the main thread once per sighting: that futex wake per frame was a fifth of
/// the observers' CPU, on the same 2 cores as the server.)
#[derive(Clone, Default)]
struct Sightings(Arc<Mutex<Vec<Sighting>>>);

impl Sightings {
    fn record(&self, sighting: Sighting) {
        self.0.lock().unwrap().push(sighting);
    }

    /// The sightings `keep` accepts (others are dropped), once `wanted` of them arrived or
    /// `within` passed.
    fn wait(&self, wanted: usize, within: Duration, keep: impl Fn(&Sighting) -> bool) -> Vec<Sighting> {
        let deadline = Instant::now() + within;
        let mut got = Vec::with_capacity(wanted);
        let mut batch = Vec::new();
        loop {
            std::mem::swap(&mut batch, &mut *self.0.lock().unwrap());
            got.extend(batch.drain(..).filter(|s| keep(s)));
            if got.len() >= wanted || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// How long a change is waited for; a sighting that did not come within it counts as this.
const SIGHTING_TIMEOUT: Duration = Duration::from_secs(30);

/// Prints the sightings' p50 / p99 / max and returns the p50 and p99. Each of the `expected`
/// sightings that did not arrive counts as [`SIGHTING_TIMEOUT`], so a lost update shows in
/// the percentiles instead of leaving them.
fn report(label: &str, mut ms: Vec<f64>, expected: usize) -> (f64, f64) {
    let arrived = ms.len();
    let missing = expected.saturating_sub(arrived);
    ms.extend(std::iter::repeat_n(SIGHTING_TIMEOUT.as_secs_f64() * 1e3, missing));
    ms.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&ms, 50.0), percentile(&ms, 99.0));
    let missing_note = if missing > 0 {
        format!(" ({missing} MISSING, counted as {} s)", SIGHTING_TIMEOUT.as_secs())
    } else {
        String::new()
    };
    println!(
        "{label}: {arrived} of {expected} sightings{missing_note}, p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms",
        ms.last().copied().unwrap_or(f64::NAN)
    );
    (p50, p99)
}

/// Length of the last `entitlements.updated` frame a raw observer read (the floor sends
/// messages of this size).
static FRAME_BYTES: AtomicUsize = AtomicUsize::new(0);

async fn put(http: &reqwest::Client, base: &str, admin: &str, path: &str, body: Value) {
    let resp = http
        .put(format!("{base}/v1/admin/{path}"))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "PUT {path}: {}", resp.status());
}

/// What a raw observer reads of a frame: its `type`, and the `tier` seats of an
/// `entitlements.updated` answer. serde still checks the whole frame is well-formed JSON; the
/// other fields are skipped rather than built into a `Value`.
#[derive(serde::Deserialize)]
struct Observed<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    seq: Option<u64>,
    data: Option<ObservedAnswer>,
}

#[derive(serde::Deserialize)]
struct ObservedAnswer {
    entitlements: Option<ObservedFeatures>,
}

#[derive(serde::Deserialize)]
struct ObservedFeatures {
    tier: Option<ObservedTier>,
}

#[derive(serde::Deserialize)]
struct ObservedTier {
    value: Option<ObservedSeats>,
}

#[derive(serde::Deserialize)]
struct ObservedSeats {
    seats: u64,
}

/// One raw stream connection subscribed to `subjects`; reports every `tier` value it is sent.
/// Its read buffer is the core client's (8 KiB): tungstenite zero-fills the whole read
/// buffer before every read, and its 128 KiB default was a third of the observers' CPU.
async fn raw_observer(url: String, key: String, subjects: Vec<String>, index: usize, seen: Sightings) {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
    );
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .expect("connect");
    let op = json!({"op": "subscribe", "subjects": subjects});
    ws.send(Message::text(op.to_string())).await.unwrap();
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else { continue };
        let at = Instant::now();
        let Ok(observed) = serde_json::from_str::<Observed<'_>>(text.as_str()) else {
            continue;
        };
        if observed.kind == "subscribed" {
            seen.record((index, 0, at));
        } else if observed.kind == "schema.updated" {
            // `BENCH_CHANGE=schema`: the frame's seq marks the round.
            FRAME_BYTES.store(text.len(), Ordering::Relaxed);
            seen.record((index, observed.seq.unwrap_or(0), at));
        } else if observed.kind == "entitlements.updated" {
            FRAME_BYTES.store(text.len(), Ordering::Relaxed);
            if let Some(seats) = observed.data.and_then(|d| d.entitlements?.tier?.value).map(|v| v.seats) {
                seen.record((index, seats, at));
            }
        }
    }
}

fn main() {
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with("--") && a != "propagation")
    {
        return;
    }
    let raw = knob("BENCH_RAW", 1000);
    let clients = knob("BENCH_CLIENTS", 20);
    let rounds = knob("BENCH_ROUNDS", 10);
    let singles = knob("BENCH_SINGLE", 50);
    let shared = knob("BENCH_SHARED", 10);
    let shared_rounds = knob("BENCH_SHARED_ROUNDS", 10);
    let shared_plan_rounds = knob("BENCH_SHARED_PLAN_ROUNDS", shared_rounds);
    let floor_rounds = knob("BENCH_FLOOR_ROUNDS", 30);
    let gap = Duration::from_millis(knob("BENCH_GAP_MS", 5) as u64);
    if std::env::var("BENCH_CHANGE").as_deref() == Ok("schema") {
        return schema_changes(raw, rounds, floor_rounds, gap);
    }
    let observers = raw + clients;

    // Changes through the first node; observers (streams and Clients' reads) on the last.
    let (servers, store) = start_nodes(observers);
    let nodes = servers.len();
    let (base, secret, admin) = (
        servers[0].base.clone(),
        servers[0].secret.clone(),
        servers[0].admin.clone(),
    );
    let (watched_base, ws_url) = (servers[nodes - 1].base.clone(), servers[nodes - 1].stream_url());
    let subject = |i: usize| format!("customer-{i}");
    let shared_subjects: Vec<String> = (0..shared).map(|i| format!("shared-{i}")).collect();
    // Each observer's subjects: its own customer, then the shared ones.
    let watched = |i: usize| {
        let mut all = vec![subject(i)];
        all.extend(shared_subjects.iter().cloned());
        all
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    runtime.block_on(async {
        put(&http, &base, &admin, "features/tier", json!({"kind": "config"})).await;
        let plan = json!({"features": {"tier": {"value": {"seats": 1}}}});
        put(&http, &base, &admin, "plans/pro", plan.clone()).await;
        for i in 0..observers {
            put(
                &http,
                &base,
                &admin,
                &format!("customers/{}", subject(i)),
                json!({"plan": "pro"}),
            )
            .await;
        }
        put(&http, &base, &admin, "plans/team", plan.clone()).await;
        for s in &shared_subjects {
            put(&http, &base, &admin, &format!("customers/{s}"), json!({"plan": "team"})).await;
        }
    });

    let seen = Sightings::default();
    let started = Instant::now();
    for i in 0..raw {
        runtime.spawn(raw_observer(
            ws_url.clone(),
            secret.clone(),
            watched(i),
            i,
            seen.clone(),
        ));
    }
    let subscribed = seen.wait(raw, Duration::from_secs(60), |&(_, seats, _)| seats == 0);
    assert_eq!(subscribed.len(), raw, "raw connections subscribe");
    // Real clients: cache the customer's answer (which opens and subscribes the stream).
    let real: Vec<Client> = (raw..observers)
        .map(|i| {
            let mut c = Config::new(secret.as_str(), watched_base.as_str());
            c.fetch_schemas = false;
            let client = Client::new(c).unwrap();
            for s in watched(i) {
                let answer = client.entitlement(&s, "tier").unwrap();
                assert!(answer.value.is_some(), "{s}: {answer:?}");
            }
            client
        })
        .collect();
    let all_connected = Instant::now() + Duration::from_secs(60);
    while !real.iter().all(|c| c.stats().stream_connected) {
        assert!(Instant::now() < all_connected, "real clients' streams did not connect");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Subscribed is not visible from outside the client; give the subscribe frames a moment.
    std::thread::sleep(Duration::from_millis(500));
    println!(
        "{raw} raw stream connections + {clients} real core Clients subscribed on node {nodes} of {nodes} \
         ({store}) in {:.1} s; changes through node 1",
        started.elapsed().as_secs_f64()
    );

    let stop = Arc::new(AtomicBool::new(false));
    // Which of each Client's subjects (index into `watched`) the next round changes: the
    // poller reads only those, so its own CPU (it shares the 2 cores with the server and
    // the raw observers) does not grow with the subjects a round leaves alone.
    let sweep = Arc::new(Mutex::new(vec![0usize]));
    let poller = {
        let (stop, seen, sweep) = (stop.clone(), seen.clone(), sweep.clone());
        let subjects: Vec<Vec<String>> = (raw..observers).map(watched).collect();
        std::thread::spawn(move || {
            let mut last: Vec<Vec<u64>> = subjects.iter().map(|s| vec![1u64; s.len()]).collect();
            while !stop.load(Ordering::Relaxed) {
                let changing = sweep.lock().unwrap().clone();
                for (j, client) in real.iter().enumerate() {
                    for &k in &changing {
                        let s = &subjects[j][k];
                        let answer = client.cached_entitlement(s, "tier").unwrap();
                        let seats = answer.value.and_then(|v| v["seats"].as_u64()).unwrap_or(0);
                        if seats != last[j][k] {
                            last[j][k] = seats;
                            seen.record((raw + j, seats, Instant::now()));
                        }
                    }
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            for client in real {
                let _ = client.shutdown(Duration::from_secs(2));
            }
        })
    };

    let is_raw = |i: usize| i < raw;
    let (mut fan_raw, mut fan_real, mut single_raw, mut single_real) = (vec![], vec![], vec![], vec![]);
    let mut missing = 0;
    // One admin change, then the sightings of it (`seats` marks the new value) until
    // `expected` observers saw it or 30 s passed: (how many did not, the PUT's own time).
    let sightings = |path: String, body: Value, seats: u64, expected: usize, into: (&mut Vec<f64>, &mut Vec<f64>)| {
        std::thread::sleep(gap);
        let sent = Instant::now();
        runtime.block_on(put(&http, &base, &admin, &path, body));
        let put_ms = sent.elapsed().as_secs_f64() * 1e3;
        let got = seen.wait(expected, SIGHTING_TIMEOUT, |&(_, s, _)| s == seats);
        for &(i, _, at) in &got {
            let ms = at.saturating_duration_since(sent).as_secs_f64() * 1e3;
            if is_raw(i) { &mut *into.0 } else { &mut *into.1 }.push(ms);
        }
        (expected.saturating_sub(got.len()), put_ms)
    };
    for round in 0..rounds {
        *sweep.lock().unwrap() = vec![0];
        let seats = 100 + round as u64;
        let plan = json!({"features": {"tier": {"value": {"seats": seats}}}});
        let (lost, put_ms) = sightings(
            "plans/pro".into(),
            plan,
            seats,
            observers,
            (&mut fan_raw, &mut fan_real),
        );
        missing += lost;
        let got = observers - lost;
        println!("fan-out round {round}: PUT answered in {put_ms:.1} ms, {got}/{observers} observers saw it");
    }
    for round in 0..singles {
        let i = (round * 7919) % observers;
        let seats = 10_000 + round as u64;
        let grant = json!({"overrides": {"tier": {"value": {"seats": seats}}}});
        let path = format!("customers/{}", subject(i));
        missing += sightings(path, grant, seats, 1, (&mut single_raw, &mut single_real)).0;
    }
    // Shared customers: every observer holds all of them.
    let (mut plan_raw, mut plan_real, mut over_raw, mut over_real) = (vec![], vec![], vec![], vec![]);
    // How long each shared override's `PUT` took to answer (its commit, fsync included): a slow
    // round's sightings are slow by at least this much.
    let mut over_put = vec![];
    // Each shared override's first sighting (the commit and routing, before the fan-out).
    let mut over_first = vec![];
    if shared > 0 {
        for round in 0..shared_plan_rounds {
            *sweep.lock().unwrap() = (1..=shared).collect();
            let seats = 20_000 + round as u64;
            let plan = json!({"features": {"tier": {"value": {"seats": seats}}}});
            let expected = observers * shared;
            missing += sightings(
                "plans/team".into(),
                plan,
                seats,
                expected,
                (&mut plan_raw, &mut plan_real),
            )
            .0;
        }
        // Overrides after every plan round: an override wins over the plan from then on.
        for round in 0..shared_rounds {
            let seats = 30_000 + round as u64;
            let grant = json!({"overrides": {"tier": {"value": {"seats": seats}}}});
            let path = format!("customers/{}", shared_subjects[round % shared]);
            *sweep.lock().unwrap() = vec![1 + round % shared];
            let before = over_raw.len();
            let (lost, put_ms) = sightings(path, grant, seats, observers, (&mut over_raw, &mut over_real));
            missing += lost;
            over_put.push(put_ms);
            over_first.push(over_raw[before..].iter().copied().fold(f64::INFINITY, f64::min));
        }
    }
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();

    println!("PUT sent -> observer saw the new value ({rounds} fan-out rounds, {singles} single rounds):");
    report(
        "  fan-out, raw stream connections (frame arrival)",
        fan_raw,
        rounds * raw,
    );
    report(
        "  fan-out, real core Clients (cached_entitlement answers it)",
        fan_real,
        rounds * clients,
    );
    let single_expected = (0..singles).filter(|r| is_raw((r * 7919) % observers)).count();
    report("  single customer, raw stream connections", single_raw, single_expected);
    report(
        "  single customer, real core Clients",
        single_real,
        singles - single_expected,
    );
    let mut shared_override = None;
    if shared > 0 {
        println!("Shared customers ({shared} on plan team, held by every observer; {shared_rounds} rounds each):");
        let n = shared_plan_rounds * shared;
        report("  shared plan change, raw stream connections", plan_raw, n * raw);
        report("  shared plan change, real core Clients", plan_real, n * clients);
        shared_override = Some(report(
            "  shared override, raw stream connections",
            over_raw,
            shared_rounds * raw,
        ));
        over_put.sort_by(f64::total_cmp);
        over_first.sort_by(f64::total_cmp);
        println!(
            "  (per shared override: first sighting p50 {:.2} ms, max {:.2} ms; PUT answered p50 {:.2} ms, \
             max {:.2} ms)",
            percentile(&over_first, 50.0),
            over_first.last().copied().unwrap_or(f64::NAN),
            percentile(&over_put, 50.0),
            over_put.last().copied().unwrap_or(f64::NAN)
        );
        report(
            "  shared override, real core Clients",
            over_real,
            shared_rounds * clients,
        );
    }
    if missing > 0 {
        println!(
            "  {missing} expected sightings did not arrive within {} s",
            SIGHTING_TIMEOUT.as_secs()
        );
    }
    drop(runtime);
    drop(servers);
    let bytes = FRAME_BYTES.load(Ordering::Relaxed);
    if floor_rounds > 0 && bytes > 0 {
        let ms = floor::measure(observers, bytes, floor_rounds, gap);
        let label = format!(
            "Kernel floor (bare loopback TCP, {observers} connections, one {bytes}-byte message each, \
             2 writing + 2 epoll threads, {floor_rounds} rounds)"
        );
        let floor_expected = floor_rounds * observers;
        missing += floor_expected.saturating_sub(ms.len());
        let (p50, p99) = report(&label, ms, floor_expected);
        if let Some((over_p50, over_p99)) = shared_override {
            println!(
                "  shared override (raw) over the floor: p50 {:.1}x, p99 {:.1}x",
                over_p50 / p50,
                over_p99 / p99
            );
        }
    }
    // A lost update is a failure of what this measures, not a slow sample.
    assert_eq!(
        missing, 0,
        "{missing} expected sightings never arrived (counted as timeouts above)"
    );
}

/// `BENCH_CHANGE=schema`: `rounds` schema `PUT`s through the first node, each seen by `raw`
/// stream connections on the last node (`BENCH_NODES`, on `BENCH_DATABASE_URL` or SQLite),
/// then the kernel floor.
fn schema_changes(raw: usize, rounds: usize, floor_rounds: usize, gap: Duration) {
    let (servers, store) = start_nodes(raw);
    let nodes = servers.len();
    let (changed, watched) = (&servers[0], &servers[nodes - 1]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seen = Sightings::default();
    for i in 0..raw {
        let url = watched.stream_url();
        runtime.spawn(raw_observer(
            url,
            changed.secret.clone(),
            vec![format!("customer-{i}")],
            i,
            seen.clone(),
        ));
    }
    let subscribed = seen.wait(raw, Duration::from_secs(60), |&(_, seq, _)| seq == 0);
    assert_eq!(subscribed.len(), raw, "raw connections subscribe");
    println!("{raw} raw stream connections subscribed on node {nodes} of {nodes} ({store}); changes through node 1");
    let http = reqwest::Client::new();
    let mut ms = Vec::with_capacity(rounds * raw);
    for round in 0..rounds {
        std::thread::sleep(gap);
        let schema = json!({"type": "object", "properties": {"n": {"const": round}}});
        let sent = Instant::now();
        let path = format!("schemas/bench.e{round}");
        runtime.block_on(put(&http, &changed.base, &changed.admin, &path, schema));
        // The project's only messages are these: round r's is seq r + 1.
        let seq = round as u64 + 1;
        for (_, _, at) in seen.wait(raw, SIGHTING_TIMEOUT, |&(_, s, _)| s == seq) {
            ms.push(at.saturating_duration_since(sent).as_secs_f64() * 1e3);
        }
    }
    let expected = rounds * raw;
    let mut missing = expected.saturating_sub(ms.len());
    report(
        &format!("schema change, raw stream connections ({store}, {nodes} node(s), {rounds} rounds)"),
        ms,
        expected,
    );
    drop(runtime);
    drop(servers);
    let bytes = FRAME_BYTES.load(Ordering::Relaxed);
    if floor_rounds > 0 && bytes > 0 {
        let ms = floor::measure(raw, bytes, floor_rounds, gap);
        let label = format!(
            "Kernel floor (bare loopback TCP, {raw} connections, one {bytes}-byte message each, {floor_rounds} rounds)"
        );
        missing += (floor_rounds * raw).saturating_sub(ms.len());
        report(&label, ms, floor_rounds * raw);
    }
    assert_eq!(
        missing, 0,
        "{missing} expected sightings never arrived (counted as timeouts above)"
    );
}

/// `BENCH_NODES` server nodes (default 1) for up to `connections` stream connections each, on
/// a fresh database next to `BENCH_DATABASE_URL` (PostgreSQL) or, for one node, on a fresh
/// SQLite file; and the store's name.
fn start_nodes(connections: usize) -> (Vec<BenchServer>, &'static str) {
    let database = std::env::var("BENCH_DATABASE_URL")
        .ok()
        .map(|url| common::fresh_pg_database(&url));
    let nodes = knob("BENCH_NODES", 1).max(1);
    assert!(
        nodes == 1 || database.is_some(),
        "BENCH_NODES={nodes} needs BENCH_DATABASE_URL (several nodes share a PostgreSQL database)"
    );
    let servers = (0..nodes)
        .map(|_| BenchServer::start_on(connections, database.as_deref()))
        .collect();
    (servers, if database.is_some() { "PostgreSQL" } else { "SQLite" })
}
