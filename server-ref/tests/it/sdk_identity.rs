//! The SDK's live credentials and consent (issue 20) against the real server: a token
//! provider refreshing an expired customer token over HTTP and over the stream with every
//! event stored once, opted-out clients sending nothing (and the choice kept in the spool
//! directory), and the `User-Agent` naming the SDK.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::TcpListener,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::Duration,
};

use common::{ws::*, *};
use meterline_core::{
    Client, Config, Error,
    runtime::native::{Callbacks, TokenProvider},
};
use serde_json::{Value, json};

/// Lists `page.view` as a type publishable keys may send.
async fn allow_page_views(s: &Server) {
    let (status, body) = s
        .call(
            "PUT",
            "/v1/admin/settings",
            s.ak(),
            Some(json!({"client_event_types": ["page.view"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A provider answering an expired token for `c1` first and fresh ones after; counts calls.
fn expired_then_fresh(sk: &str) -> (TokenProvider, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (sk, counter) = (sk.to_owned(), calls.clone());
    let provider: TokenProvider = Arc::new(move || {
        let ttl = if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            -3600
        } else {
            600
        };
        Ok(customer_token(&sk, "c1", ttl))
    });
    (provider, calls)
}

fn publishable_config(s: &Server, pk: &str) -> Config {
    let mut config = Config::new(pk, &s.url);
    config.fetch_schemas = false;
    config.stream = false;
    config.flush_interval = Duration::from_millis(50);
    config
}

fn ids(events: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = events.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_refreshes_an_expired_token_and_every_event_is_stored_once() {
    let s = Server::start();
    allow_page_views(&s).await;
    let pk = s.new_key("publishable").await;
    let (provider, calls) = expired_then_fresh(s.sk());
    let mut config = publishable_config(&s, &pk);
    config.max_in_flight = 4;
    config.flush_at = 5;
    let callbacks = Callbacks {
        token_provider: Some(provider),
        ..Callbacks::default()
    };
    let client = Client::with_callbacks(config, callbacks).unwrap();
    let mut sent: Vec<String> = (0..40).map(|i| format!("pv-{i:02}")).collect();
    for id in &sent {
        let tracked = client
            .track("page.view", "c1", json!({"path": "/"}), Some(id.clone()), None)
            .unwrap();
        assert_eq!(tracked.as_deref(), Some(id.as_str()));
    }
    let flushed = client.clone();
    tokio::task::spawn_blocking(move || flushed.flush(Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    let stats = client.stats();
    assert_eq!((stats.sent, stats.duplicates, stats.dropped), (40, 0, 0), "{stats:?}");
    // One call for the first token, one for all the batches refused with it.
    assert_eq!(calls.load(Ordering::SeqCst), 2, "{stats:?}");
    let stored = s.all_events(s.sk(), "").await;
    sent.sort();
    assert_eq!(ids(&stored), sent, "each event stored exactly once");
    client.shutdown(Duration::from_secs(5)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_reconnects_with_a_fresh_token_after_an_expired_one() {
    let s = Server::start();
    allow_page_views(&s).await;
    let pk = s.new_key("publishable").await;
    let (provider, calls) = expired_then_fresh(s.sk());
    let mut config = publishable_config(&s, &pk);
    config.stream = true;
    let (connected_tx, connected) = mpsc::channel::<(bool, String)>();
    let connected_tx = Mutex::new(connected_tx);
    let callbacks = Callbacks {
        token_provider: Some(provider),
        on_connection_change: Some(Arc::new(move |up: bool, why: &str| {
            let _ = connected_tx.lock().unwrap().send((up, why.to_owned()));
        })),
        ..Callbacks::default()
    };
    let client = Client::with_callbacks(config, callbacks).unwrap();
    // Cached without a request, so the stream's upgrade is the first to carry the token.
    let answer = serde_json::from_value(json!({"subject": "c1", "version": 1, "ttl_ms": 60_000,
        "entitlements": BTreeMap::<String, Value>::new()}))
    .unwrap();
    client.prime_entitlements(answer).unwrap();
    let changes = tokio::task::spawn_blocking(move || {
        let mut changes = Vec::new();
        // Without the provider the session would pause for minutes after the refusal.
        // The server opens the socket, then closes it 4401 once it has read the token.
        while let Ok(change) = connected.recv_timeout(Duration::from_secs(15)) {
            let up = change.0;
            changes.push(change);
            if up && changes.iter().any(|c: &(bool, String)| !c.0) {
                break;
            }
        }
        changes
    })
    .await
    .unwrap();
    assert!(changes.last().is_some_and(|c| c.0), "never connected: {changes:?}");
    assert!(
        changes.iter().any(|c| !c.0),
        "the expired token was not refused first: {changes:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(client.stats().stream_connected);
    client.shutdown(Duration::from_secs(5)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_opted_out_client_sends_nothing_until_it_opts_in_again() {
    let s = Server::start();
    let spool = tempdir();
    let mut config = Config::new(s.sk(), &s.url);
    config.fetch_schemas = false;
    config.flush_interval = Duration::from_secs(3600);
    config.spool_dir = Some(spool.path().join("spool"));
    let client = Client::new(config.clone()).unwrap();
    for i in 0..5 {
        client
            .track("api.call", "c1", json!({}), Some(format!("before-{i}")), None)
            .unwrap();
    }
    client.opt_out().unwrap();
    for i in 0..5 {
        let tracked = client.track("api.call", "c1", json!({}), Some(format!("during-{i}")), None);
        assert_eq!(tracked.unwrap(), None, "nothing kept while opted out");
    }
    let flushed = client.clone();
    tokio::task::spawn_blocking(move || flushed.flush(Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap();
    let stats = client.stats();
    assert_eq!(
        (stats.opted_out, stats.sent, stats.queue_length, stats.spool_length),
        (10, 0, 0, 0),
        "{stats:?}"
    );
    client.shutdown(Duration::from_secs(5)).unwrap();
    assert!(
        s.all_events(s.sk(), "").await.is_empty(),
        "an opted-out client sent events"
    );

    // The choice is kept in the spool directory for the next start.
    let client = Client::new(config).unwrap();
    assert!(client.is_opted_out());
    assert_eq!(client.track("api.call", "c1", json!({}), None, None).unwrap(), None);
    client.opt_in().unwrap();
    client
        .track("api.call", "c1", json!({}), Some("after".into()), None)
        .unwrap();
    let flushed = client.clone();
    tokio::task::spawn_blocking(move || flushed.flush(Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap();
    client.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(ids(&s.all_events(s.sk(), "").await), ["after"]);
}

/// Accepts connections on `listener` and records each request's head; answers 503.
fn recording_front(listener: TcpListener) -> Arc<Mutex<Vec<String>>> {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let sink = heads.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = vec![0u8; 16 * 1024];
            let n = conn.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            sink.lock().unwrap().push(head);
            let _ =
                conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    heads
}

#[test]
fn every_request_names_the_sdk_in_its_user_agent() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = recording_front(listener);
    let mut config = Config::new("ml_sk_abc123_s3cr3ts3cr3ts3cr3t", &url);
    config.sdk.name = "meterline-test".into();
    config.sdk.version = "9.8.7".into();
    config.sdk.runtime = "Harness 1".into();
    config.flush_interval = Duration::from_millis(20);
    let errors = Arc::new(Mutex::new(Vec::<Error>::new()));
    let sink = errors.clone();
    let callbacks = Callbacks {
        on_error: Some(Arc::new(move |e: &Error| sink.lock().unwrap().push(e.clone()))),
        ..Callbacks::default()
    };
    let client = Client::with_callbacks(config, callbacks).unwrap();
    client.track("api.call", "c1", json!({}), None, None).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let want = format!(
        "user-agent: meterline-test/9.8.7 (Harness 1; {} {})",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    // The schema fetch at start and the batch both carry it.
    loop {
        let seen = heads.lock().unwrap().clone();
        let paths: Vec<&str> = seen.iter().filter_map(|h| h.lines().next()).collect();
        if paths.iter().any(|p| p.starts_with("GET /v1/schema"))
            && paths.iter().any(|p| p.starts_with("POST /v1/events"))
        {
            for head in &seen {
                assert!(
                    head.lines().any(|l| l.eq_ignore_ascii_case(&want)),
                    "no {want:?} in:\n{head}"
                );
            }
            break;
        }
        assert!(std::time::Instant::now() < deadline, "requests seen: {paths:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = client.shutdown(Duration::from_millis(100));
}

#[tokio::test(flavor = "multi_thread")]
async fn identify_switches_users_without_leaking_one_to_the_next() {
    let s = Server::start();
    allow_page_views(&s).await;
    let pk = s.new_key("publishable").await;
    let mut config = publishable_config(&s, &pk);
    config.customer_token = Some(customer_token(s.sk(), "u1", 600));
    config.flush_interval = Duration::from_secs(3600);
    let (client, errors) = common_recording(config);
    let granted = |subject: &str| {
        serde_json::from_value(json!({"subject": subject, "version": 1, "ttl_ms": 600_000,
            "entitlements": {"export": {"kind": "boolean", "has_access": true}}}))
        .unwrap()
    };
    client.prime_entitlements(granted("u1")).unwrap();
    let cached = client.cached_entitlement("u1", "export").unwrap();
    assert!(cached.has_access, "{cached:?}");
    for i in 0..5 {
        client
            .track("page.view", "u1", json!({}), Some(format!("u1-{i}")), None)
            .unwrap();
    }
    // Not this user's token, and not a token at all.
    let wrong = client.identify("u2", &customer_token(s.sk(), "u3", 600)).unwrap_err();
    assert_eq!(wrong.code(), "invalid_argument", "{wrong}");
    assert!(client.identify("u2", "not-a-token").is_err());

    client.identify("u2", &customer_token(s.sk(), "u2", 600)).unwrap();
    // Nothing of u1 is answered from the cache once u2 is the user.
    let after = client.cached_entitlement("u1", "export").unwrap();
    assert_eq!(after.source, meterline_core::Source::Fallback, "{after:?}");
    for i in 0..5 {
        client
            .track("page.view", "u2", json!({}), Some(format!("u2-{i}")), None)
            .unwrap();
    }
    let flushed = client.clone();
    tokio::task::spawn_blocking(move || flushed.flush(Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    let stats = client.stats();
    assert_eq!(
        (stats.sent, stats.rejected, stats.dropped),
        (10, 0, 0),
        "{stats:?} {:?}",
        errors.lock().unwrap()
    );
    // Each user's events were sent with its own token (the server refuses another's).
    let mut want: Vec<String> = (0..5).flat_map(|i| [format!("u1-{i}"), format!("u2-{i}")]).collect();
    want.sort();
    assert_eq!(ids(&s.all_events(s.sk(), "").await), want);

    client.reset().unwrap();
    let err = client.track("page.view", "u2", json!({}), None, None).unwrap_err();
    assert_eq!(err.code(), "forbidden", "{err}");
    client.identify("u1", &customer_token(s.sk(), "u1", 600)).unwrap();
    assert!(
        client
            .track("page.view", "u1", json!({}), None, None)
            .unwrap()
            .is_some()
    );
    client.shutdown(Duration::from_secs(5)).unwrap();

    let secret = Client::new(Config::new(s.sk(), &s.url)).unwrap();
    let err = secret.identify("u1", &customer_token(s.sk(), "u1", 600)).unwrap_err();
    assert_eq!(err.code(), "invalid_config", "{err}");
    let _ = secret.shutdown(Duration::from_millis(100));
}

/// A client whose `on_error` reports are collected.
fn common_recording(config: Config) -> (Client, Arc<Mutex<Vec<Error>>>) {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    let callbacks = Callbacks {
        on_error: Some(Arc::new(move |e: &Error| sink.lock().unwrap().push(e.clone()))),
        ..Callbacks::default()
    };
    (Client::with_callbacks(config, callbacks).unwrap(), errors)
}
