//! The fault run (issue 8): the SDK sends `FAULT_EVENTS` events (default 50,000; `make
//! faults` runs 1,000,000 in release) through [`ChaosProxy`] while it cycles through latency
//! and jitter, resets mid-request and mid-response, answers closed short of their body,
//! stalls past the client's timeout, a bandwidth cap, 503 and 429 storms, cuts of every
//! connection (streams included) and `kill -9` + restart of the server. The faults last the
//! whole run: they stop only once the producer is done and the client holds nothing more, so
//! every event crosses while they are active. Meanwhile the catalog changes for five
//! customers whose entitlements five other clients hold and follow over the stream. At the
//! end: stored == accepted, nothing twice, every event stored while the faults were active,
//! resends only after a failed or unanswered attempt, no event counted delivered without a
//! whole 2xx reaching the client, and every subscriber holds the server's answer. Prints a
//! summary table.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use meterline_core::{Client, Config, OverflowPolicy};
use serde_json::json;

use super::{
    chaos::{ChaosProxy, Fault, Plan},
    common::delivery::assert_resent_only_after_failures,
    common::{
        self, Server,
        catalog::{entitlements, put_ok, standard_catalog},
    },
    config, rt, stored_ids,
};

const SUBSCRIBERS: usize = 5;

fn events_to_send() -> usize {
    std::env::var("FAULT_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}

/// The faults, one phase each, in order; every third phase also restarts the server.
fn phases() -> Vec<Fault> {
    vec![
        Fault::Latency {
            base: Duration::from_millis(5),
            jitter: Duration::from_millis(40),
        },
        Fault::ResetRequest { within: 64 * 1024 },
        Fault::ResetResponse { within: 200 },
        Fault::CutBody { keep: 12, reset: false },
        Fault::Stall {
            hold: Duration::from_secs(3),
        },
        Fault::Bandwidth {
            bytes_per_sec: 256 * 1024,
        },
        Fault::Status(503),
        Fault::Status(429),
    ]
}

fn client_config(key: &str, endpoint: &str, events: usize) -> Config {
    let mut c = config(key, endpoint);
    c.source = "fault-run".into();
    c.request_timeout = Duration::from_secs(2);
    c.retry.max_delay = Duration::from_millis(500);
    c.retry.max_retry_after = Duration::from_secs(1);
    c.max_queue_size = events.max(1_000);
    c.overflow = OverflowPolicy::Block;
    c.fetch_schemas = false;
    c
}

#[test]
fn events_through_every_fault_are_stored_exactly_once_and_subscribers_converge() {
    let total = events_to_send();
    let rt = rt();
    let dir = common::tempdir();
    // Short answer TTLs: a subscriber whose stream is down revalidates soon after.
    common::write_config(dir.path(), "[entitlements]\nttl_ms = 5000\n");
    let mut server = Server::start_in(dir.clone(), &[]);
    let (sk, ak) = (server.sk().to_owned(), server.ak().to_owned());
    let customers: Vec<String> = (0..SUBSCRIBERS).map(|i| format!("sub-{i}")).collect();
    rt.block_on(async {
        standard_catalog(&server, &ak).await;
        for c in &customers {
            put_ok(&server, &ak, &format!("customers/{c}"), json!({"plan":"pro"})).await;
        }
    });
    let proxy = rt.block_on(ChaosProxy::start(&server.url, 0x5eed));

    // The subscribers: each caches its customer's answer, which opens its stream.
    let subscribers: Vec<Client> = customers
        .iter()
        .map(|c| {
            let mut config = client_config(&sk, &proxy.url, 1_000);
            config.source = "fault-run-subscriber".into();
            let client = Client::new(config).unwrap();
            let answer = client.entitlement(c, "tier").unwrap();
            assert_eq!(answer.value.as_deref(), Some(&json!({"seats": 10})), "{answer:?}");
            client
        })
        .collect();

    // The producer.
    let client = Client::new(client_config(&sk, &proxy.url, total)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let producer = {
        let (client, done) = (client.clone(), done.clone());
        std::thread::spawn(move || {
            let mut accepted = HashSet::with_capacity(total);
            // Spread over about five seconds, so the faults meet the traffic.
            let pace = Duration::from_secs(5).as_secs_f64() / total as f64;
            for i in 0..total {
                if i % 1_000 == 0 {
                    let due = Duration::from_secs_f64(pace * i as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                let id = format!("ev-{i}");
                client
                    .track(
                        "api.call",
                        &format!("c{}", i % 100),
                        json!({"tokens": 1}),
                        Some(id.clone()),
                        None,
                    )
                    .unwrap();
                accepted.insert(id);
            }
            done.store(true, Ordering::Release);
            accepted
        })
    };

    // The faults, phase after phase, for the whole run: until the producer is done and the
    // client holds nothing more (every event acknowledged), and each fault at least once.
    let faults = phases();
    let (mut phase, mut restarts, mut changes) = (0usize, 0u64, 0u64);
    let give_up = started + Duration::from_secs(1_200) + Duration::from_millis(total as u64);
    while !done.load(Ordering::Acquire) || phase < faults.len() || client.stats().queue_length > 0 {
        assert!(
            Instant::now() < give_up,
            "not delivered through the faults in {:?}: {:?}",
            started.elapsed(),
            client.stats()
        );
        let fault = faults[phase % faults.len()];
        // A storm: every connection opened in this phase gets the fault.
        proxy.set_plan(Plan {
            rate: 1.0,
            faults: vec![fault],
        });
        proxy.cut_all();
        if phase % 3 == 2 {
            server.kill9();
            proxy.set_upstream(None);
            std::thread::sleep(Duration::from_millis(300));
            server = Server::start_in(dir.clone(), &[]);
            proxy.set_upstream(Some(&server.url));
            restarts += 1;
        }
        // A catalog change for one subscriber's customer, straight to the server.
        let customer = &customers[phase % SUBSCRIBERS];
        let seats = 100 + phase;
        rt.block_on(put_ok(
            &server,
            &ak,
            &format!("customers/{customer}"),
            json!({"plan":"pro","overrides":{"tier":{"value":{"seats": seats}}}}),
        ));
        changes += 1;
        std::thread::sleep(Duration::from_millis(700));
        phase += 1;
    }
    let accepted = producer.join().unwrap();
    // What crossed while the faults were active: the events in the server's store before the
    // proxy turns clean (read straight from the server, not through the proxy).
    let stored_under_faults = stored_ids(&rt, &server, &sk).into_iter().collect::<HashSet<_>>().len();
    let faulty_for = started.elapsed();
    proxy.set_plan(Plan::clean());
    client.flush(Duration::from_secs(300)).unwrap();
    let sent_in = started.elapsed();

    // Stored == accepted, nothing twice.
    let stored = stored_ids(&rt, &server, &sk);
    let unique: HashSet<&String> = stored.iter().collect();
    let duplicated = stored.len() - unique.len();
    let lost = accepted.iter().filter(|id| !unique.contains(id)).count();
    let stats = client.stats();
    // What the SDK sent, at the proxy: a resend only after a failed or unanswered attempt.
    // The client settled every event, so a whole 2xx must have reached it for each (the
    // proxy records a status only once the whole answer was written to the client's socket).
    let (attempts, settled_unanswered) = proxy.attempts_once_answered(&accepted, Duration::from_secs(5));
    let producer_attempts: Vec<(Vec<String>, u16)> = attempts
        .into_iter()
        .filter(|(ids, _)| ids.first().is_some_and(|id| id.starts_with("ev-")))
        .collect();
    let resends = assert_resent_only_after_failures(&producer_attempts, |_| false);

    // Every subscriber ends with the server's answer for its customer.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut converged = 0;
    for (client, customer) in subscribers.iter().zip(&customers) {
        let want = rt.block_on(entitlements(&server, &sk, customer));
        let want_version = want["version"].as_u64().unwrap();
        loop {
            let got = client.cached_entitlement(customer, "tier").unwrap();
            if got.version == Some(want_version) && got.value.as_deref() == Some(&want["entitlements"]["tier"]["value"])
            {
                converged += 1;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{customer}: holds {got:?}, the server says {want}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let mut table = String::from("\nfault run summary\n");
    table.push_str(&format!(
        "  {:<28} {:>10}\n",
        "events tracked (accepted)",
        accepted.len()
    ));
    table.push_str(&format!("  {:<28} {:>10}\n", "events stored", unique.len()));
    table.push_str(&format!("  {:<28} {:>10}\n", "lost", lost));
    table.push_str(&format!("  {:<28} {:>10}\n", "stored twice", duplicated));
    table.push_str(&format!(
        "  {:<28} {:>10}\n",
        "events sent (at the proxy)", resends.sends
    ));
    table.push_str(&format!(
        "  {:<28} {:>10}\n",
        "ids sent more than once", resends.resent_ids
    ));
    table.push_str(&format!("  {:<28} {:>10}\n", "resent, deduplicated", stats.duplicates));
    table.push_str(&format!(
        "  {:<28} {:>10}\n",
        "settled, no whole 2xx seen", settled_unanswered
    ));
    table.push_str(&format!("  {:<28} {:>10}\n", "SDK retries", stats.retried));
    table.push_str(&format!("  {:<28} {:>10}\n", "server kill -9 + restart", restarts));
    table.push_str(&format!("  {:<28} {:>10}\n", "catalog changes", changes));
    table.push_str(&format!(
        "  {:<28} {:>7} of {SUBSCRIBERS}\n",
        "subscribers converged", converged
    ));
    table.push_str(&format!("  {:<28} {:>10}\n", "proxy connections", proxy.connections()));
    for (fault, count) in proxy.injected() {
        table.push_str(&format!("  fault: {fault:<21} {count:>10}\n"));
    }
    table.push_str(&format!(
        "  {:<28} {:>10}\n",
        "stored while faults active", stored_under_faults
    ));
    table.push_str(&format!(
        "  {:<28} {:>10}\n",
        "stored after faults stopped",
        unique.len() - stored_under_faults
    ));
    table.push_str(&format!(
        "  {:<28} {:>9.1}s\n",
        "time with faults active",
        faulty_for.as_secs_f64()
    ));
    table.push_str(&format!(
        "  {:<28} {:>9.1}s\n",
        "time to deliver",
        sent_in.as_secs_f64()
    ));
    eprintln!("{table}");
    // `make faults` turns this into bench/results/server-fault-run.json.
    if let Ok(path) = std::env::var("FAULT_SUMMARY") {
        let summary = json!({
            "accepted": accepted.len(),
            "stored": unique.len(),
            "lost": lost,
            "stored_twice": duplicated,
            "sent": resends.sends,
            "resent_ids": resends.resent_ids,
            "deduplicated": stats.duplicates,
            "settled_without_whole_answer": settled_unanswered,
            "retries": stats.retried,
            "restarts": restarts,
            "catalog_changes": changes,
            "subscribers_converged": converged,
            "subscribers": SUBSCRIBERS,
            "connections": proxy.connections(),
            "faults": proxy.injected(),
            "stored_under_faults": stored_under_faults,
            "seconds_with_faults": faulty_for.as_secs_f64(),
            "seconds_to_deliver": sent_in.as_secs_f64(),
        });
        std::fs::write(&path, format!("{summary:#}\n")).unwrap();
    }

    assert_eq!(lost, 0, "{table}");
    assert_eq!(duplicated, 0, "{table}");
    assert_eq!(unique.len(), accepted.len(), "{table}");
    assert_eq!(stats.dropped, 0, "{table}");
    assert_eq!(
        settled_unanswered, 0,
        "events counted delivered without a whole 2xx reaching the client: {table}"
    );
    assert_eq!(
        stored_under_faults,
        accepted.len(),
        "every event crossed while the faults were active: {table}"
    );
    assert!(stats.retried > 0, "the faults reached the client: {table}");
    assert!(
        resends.sends >= accepted.len(),
        "every event went through the proxy: {table}"
    );
    assert!(resends.resent_ids > 0, "the faults made the SDK resend: {table}");
    for fault in faults {
        assert!(
            proxy.injected().contains_key(fault.name()),
            "{} never injected: {table}",
            fault.name()
        );
    }
    for subscriber in subscribers {
        subscriber.shutdown(Duration::from_secs(5)).unwrap();
    }
    client.shutdown(Duration::from_secs(5)).unwrap();
}

/// A catalog change made after a subject's answer was fetched but before its subscription
/// is live (here: the stream's connection is slowed by the proxy) still reaches the cache:
/// the subscription replays from the stream seq the answer was current to.
#[test]
fn a_change_between_the_fetch_and_the_subscription_is_not_missed() {
    let rt = rt();
    let server = Server::start();
    let (sk, ak) = (server.sk().to_owned(), server.ak().to_owned());
    rt.block_on(async {
        standard_catalog(&server, &ak).await;
        put_ok(&server, &ak, "customers/gap", json!({"plan":"pro"})).await;
    });
    let proxy = rt.block_on(ChaosProxy::start(&server.url, 11));
    proxy.set_plan(Plan {
        rate: 1.0,
        faults: vec![Fault::Latency {
            base: Duration::from_millis(700),
            jitter: Duration::ZERO,
        }],
    });
    let mut c = config(&sk, &server.url);
    c.fetch_schemas = false;
    c.stream_endpoint = Some(format!("{}/v1/stream", proxy.url.replace("http://", "ws://")));
    let client = Client::new(c).unwrap();
    let first = client.entitlement("gap", "tier").unwrap();
    assert_eq!(first.value.as_deref(), Some(&json!({"seats": 10})));
    // The stream is still connecting (each way of the handshake waits 700 ms).
    assert!(!client.stats().stream_connected);
    rt.block_on(put_ok(
        &server,
        &ak,
        "customers/gap",
        json!({"plan":"pro","overrides":{"tier":{"value":{"seats": 99}}}}),
    ));
    // The answer's TTL is a minute: only the stream can bring the change this soon.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = client.cached_entitlement("gap", "tier").unwrap();
        if now.value.as_deref() == Some(&json!({"seats": 99})) {
            assert_eq!(now.source.as_str(), "cache", "{now:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the change never arrived: {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(client.stats().cache_misses, 1, "no second fetch");
    client.shutdown(Duration::from_secs(5)).unwrap();
}
