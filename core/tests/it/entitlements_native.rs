//! The native client's `entitlement()`, `track()` accounting, `customer_token()` and stream
//! start-up against real sockets: a port nobody listens on (connection refused) and a
//! listener that accepts and never answers. Behaviour against a real meterline server is
//! tested end to end in `server-ref/tests/`.
#![cfg(feature = "native")]
#![allow(clippy::unwrap_used, missing_docs)]

use std::{
    net::TcpListener,
    sync::{
        Arc, Barrier, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use meterline_core::{
    Client, Config, Error, Fallback, Source, customer_token, entitlement::Entitlements, key::ApiKey,
    runtime::native::Callbacks,
};
use serde_json::json;

use crate::common::{recording, refused_endpoint};

const KEY: &str = "ml_sk_native_0123456789abcdef0123";

/// A listener that accepts connections and never answers; counts them.
fn silent_endpoint() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            open.push(stream);
        }
    });
    (endpoint, accepted)
}

/// A server that answers every request `200 OK` with `body` as JSON (a misbehaving or
/// misrouted server: wrong subject, truncated or non-JSON body).
fn answering_endpoint(body: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    endpoint
}

/// Waits (at most 5 s) until `count` reaches `want`, then checks that it stays there for
/// `window`: a late duplicate (a second connection, a second fetch) fails the check.
fn settles_at(count: &AtomicUsize, want: usize, window: Duration, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while count.load(Ordering::SeqCst) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let until = Instant::now() + window;
    loop {
        assert_eq!(count.load(Ordering::SeqCst), want, "{what}");
        if Instant::now() >= until {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Checks `still` every few milliseconds for `window`.
fn holds_for(window: Duration, what: &str, still: impl Fn() -> bool) {
    let until = Instant::now() + window;
    while Instant::now() < until {
        assert!(still(), "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(still(), "{what}");
}

fn config(endpoint: &str) -> Config {
    let mut c = Config::new(KEY, endpoint);
    c.fetch_schemas = false;
    c.stream = false;
    c
}

/// An answer whose metered period contains now.
fn answer(subject: &str, limit: u64, usage: u64) -> Entitlements {
    let now = chrono::Utc::now();
    let at = |d: chrono::TimeDelta| (now + d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    serde_json::from_value(
        json!({"subject": subject, "version": 1, "ttl_ms": 60_000, "entitlements": {
        "api_calls": {"kind": "metered", "has_access": usage < limit, "limit": limit, "usage": usage,
            "remaining": limit - usage, "period": "day", "period_start": at(chrono::TimeDelta::hours(-1)),
            "period_end": at(chrono::TimeDelta::hours(23)), "event_type": "api.call", "aggregation": "count"},
        "sso": {"kind": "boolean", "has_access": true}}}),
    )
    .unwrap()
}

#[test]
fn an_unreachable_server_gives_the_fallback_with_the_reason_then_backs_off() {
    let mut c = config(&refused_endpoint());
    c.fallbacks.features.insert("sso".into(), Fallback::Access(true));
    let (client, errors) = recording(c);
    let a = client.entitlement("c1", "sso").unwrap();
    assert_eq!((a.source, a.has_access), (Source::Fallback, true));
    let reason = a.reason.unwrap();
    assert!(reason.starts_with("server unreachable: "), "{reason}");
    // Within the backoff: answered at once, without another attempt.
    let started = Instant::now();
    let b = client.entitlement("c1", "api_calls").unwrap();
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!((b.source, b.has_access, b.kind), (Source::Fallback, false, None));
    assert_eq!(b.reason.as_deref(), Some(reason.as_str()));
    let stats = client.stats();
    assert_eq!(
        (stats.cache_misses, stats.fallback_answers, stats.cache_hits),
        (2, 2, 0)
    );
    let errors = errors.lock().unwrap();
    assert!(matches!(&errors[..], [Error::Network(_)]), "{errors:?}");
}

#[test]
fn a_silent_server_times_out_and_concurrent_callers_share_one_request() {
    let (endpoint, accepted) = silent_endpoint();
    let mut c = config(&endpoint);
    c.entitlement_timeout = Duration::from_millis(300);
    let client = Client::new(c).unwrap();
    let callers = 8;
    let barrier = Arc::new(Barrier::new(callers));
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            let (client, barrier) = (client.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let started = Instant::now();
                (client.entitlement("c1", "api_calls").unwrap(), started.elapsed())
            })
        })
        .collect();
    for t in threads {
        let (a, took) = t.join().unwrap();
        assert_eq!((a.source, a.has_access), (Source::Fallback, false));
        assert_eq!(a.reason.as_deref(), Some("timeout after 300ms"));
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
    // The request is still in flight: later callers are answered at once, and share it.
    let started = Instant::now();
    let a = client.entitlement("c1", "sso").unwrap();
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(a.reason.as_deref(), Some("timeout after 300ms"));
    // The fetch stays in flight (nobody answers): no second connection, early or late.
    settles_at(&accepted, 1, Duration::from_secs(1), "single flight: one connection");
    let started = Instant::now();
    client.shutdown(Duration::from_secs(5)).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown does not wait for the fetch"
    );
}

#[test]
fn async_callers_on_another_runtime_share_the_fetch() {
    let (endpoint, accepted) = silent_endpoint();
    let mut c = config(&endpoint);
    c.entitlement_timeout = Duration::from_millis(200);
    let client = Client::new(c).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let answers = rt.block_on(async {
        let calls: Vec<_> = (0..4)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move { client.entitlement_async("c1", &format!("f{i}")).await })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap().unwrap());
        }
        answers
    });
    for a in answers {
        assert_eq!(a.source, Source::Fallback);
        assert_eq!(a.reason.as_deref(), Some("timeout after 200ms"));
    }
    settles_at(&accepted, 1, Duration::from_secs(1), "one fetch for the four callers");
}

#[test]
fn primed_answers_are_served_from_the_cache_and_tracked_usage_cuts_access() {
    let client = Client::new(config(&refused_endpoint())).unwrap();
    client.prime_entitlements(answer("c1", 2, 1)).unwrap();
    let a = client.entitlement("c1", "api_calls").unwrap();
    assert_eq!(
        (a.source, a.has_access, a.usage, a.remaining),
        (Source::Cache, true, Some(1.0), Some(1.0))
    );
    client.track("api.call", "c1", json!({}), None, None).unwrap();
    client.track("api.call", "c2", json!({}), None, None).unwrap();
    client.track("other", "c1", json!({}), None, None).unwrap();
    let a = client.entitlement("c1", "api_calls").unwrap();
    assert_eq!((a.has_access, a.usage, a.remaining), (false, Some(2.0), Some(0.0)));
    // Events given as JSON text (the Node binding's path) count the same way.
    let text = serde_json::value::RawValue::from_string("{\"n\":1}".into()).unwrap();
    client.track_json("api.call", "c1", &text, None, None).unwrap();
    client.track_json("other", "c1", &text, None, None).unwrap();
    assert_eq!(client.entitlement("c1", "api_calls").unwrap().usage, Some(3.0));
    // An event dated in another period is not counted.
    client
        .track("api.call", "c1", json!({}), None, Some("2020-01-01T00:00:00Z".into()))
        .unwrap();
    assert_eq!(client.entitlement("c1", "api_calls").unwrap().usage, Some(3.0));
    let missing = client.entitlement("c1", "audit").unwrap();
    assert_eq!(
        (missing.has_access, missing.reason.as_deref()),
        (false, Some("feature not in plan"))
    );
    let stats = client.stats();
    assert_eq!((stats.cache_hits, stats.cache_misses), (5, 0));
    let _ = client.shutdown(Duration::from_millis(10));
}

#[test]
fn arguments_are_checked_and_a_closed_client_refuses() {
    let client = Client::new(config(&refused_endpoint())).unwrap();
    let path = |r: Result<_, Error>| match r {
        Err(Error::Validation(v)) => (v.code, v.path),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        path(client.entitlement("", "sso")),
        ("invalid_argument", "/subject".to_owned())
    );
    assert_eq!(
        path(client.entitlement(&"s".repeat(257), "sso")),
        ("invalid_argument", "/subject".to_owned())
    );
    assert_eq!(
        path(client.entitlement("c1", "")),
        ("invalid_argument", "/feature".to_owned())
    );
    assert_eq!(
        path(client.entitlement("c1", &"é".repeat(257))),
        ("invalid_argument", "/feature".to_owned())
    );
    // 256 multi-byte characters are fine.
    assert!(client.entitlement(&"ü".repeat(256), "sso").is_ok());
    client.shutdown(Duration::from_secs(1)).unwrap();
    assert!(matches!(client.entitlement("c1", "sso"), Err(Error::Closed)));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert!(matches!(
        rt.block_on(client.entitlement_async("c1", "sso")),
        Err(Error::Closed)
    ));
}

#[test]
fn customer_tokens_need_a_secret_key() {
    let client = Client::new(config(&refused_endpoint())).unwrap();
    let token = client.customer_token("customer-42", Duration::from_secs(600)).unwrap();
    let key = ApiKey::parse(KEY).unwrap();
    assert_eq!(customer_token::header(&token).unwrap().kid, "native");
    let now = chrono::Utc::now().timestamp() as u64;
    let claims = customer_token::verify(&key.customer_token_signing_key(), &token, now).unwrap();
    assert_eq!(claims.sub, "customer-42");
    assert!(claims.exp >= now + 599 && claims.exp <= now + 601);
    assert!(matches!(
        client.customer_token("c1", Duration::ZERO),
        Err(Error::Validation(v)) if v.path == "/ttl"
    ));

    let mut c = Config::new("ml_pk_native_0123456789abcdef0123", refused_endpoint());
    c.fetch_schemas = false;
    c.customer_token = Some(token);
    let public = Client::new(c).unwrap();
    assert!(matches!(
        public.customer_token("c1", Duration::from_secs(60)),
        Err(Error::Config { field, .. }) if field == "api_key"
    ));
}

#[test]
fn the_stream_starts_with_the_first_cached_subject_and_reports_its_state() {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let sink = changes.clone();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let error_sink = errors.clone();
    let mut c = config(&refused_endpoint());
    c.stream = true;
    let callbacks = Callbacks {
        on_connection_change: Some(Arc::new(move |up: bool, why: &str| {
            sink.lock().unwrap().push((up, why.to_owned()))
        })),
        on_error: Some(Arc::new(move |e: &Error| error_sink.lock().unwrap().push(e.clone()))),
        ..Callbacks::default()
    };
    let client = Client::with_callbacks(c, callbacks).unwrap();
    holds_for(Duration::from_millis(500), "no subject cached: no connection", || {
        changes.lock().unwrap().is_empty()
    });
    client.prime_entitlements(answer("c1", 10, 0)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while changes.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // One change to "down", and no second one while it keeps failing.
    holds_for(Duration::from_millis(500), "one connection change", || {
        matches!(&changes.lock().unwrap()[..], [(false, _)])
    });
    let changes = changes.lock().unwrap().clone();
    assert!(matches!(&changes[..], [(false, _)]), "{changes:?}");
    assert!(!client.stats().stream_connected);
    let errors = errors.lock().unwrap().clone();
    assert!(
        matches!(&errors[..], [Error::Network(m)] if m.starts_with("stream: ")),
        "{errors:?}"
    );
    let started = Instant::now();
    client.shutdown(Duration::from_secs(5)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn cached_entitlement_never_waits_and_starts_one_background_fetch() {
    let (endpoint, accepted) = silent_endpoint();
    let mut c = config(&endpoint);
    c.fallbacks.features.insert("sso".into(), Fallback::Access(true));
    let client = Client::new(c).unwrap();
    for feature in ["sso", "api_calls", "sso"] {
        let started = Instant::now();
        let a = client.cached_entitlement("c1", feature).unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
        assert_eq!((a.source, a.has_access), (Source::Fallback, feature == "sso"));
        assert_eq!(a.reason.as_deref(), Some("not cached yet: fetching in the background"));
    }
    settles_at(&accepted, 1, Duration::from_secs(1), "one fetch for all three calls");

    // A cached answer is served as by entitlement().
    client.prime_entitlements(answer("c2", 10, 3)).unwrap();
    let a = client.cached_entitlement("c2", "api_calls").unwrap();
    assert_eq!((a.source, a.has_access, a.remaining), (Source::Cache, true, Some(7.0)));
    assert!(matches!(
        client.cached_entitlement("", "sso"),
        Err(Error::Validation(v)) if v.path == "/subject"
    ));
    client.shutdown(Duration::from_secs(5)).unwrap();
    assert!(matches!(client.cached_entitlement("c2", "sso"), Err(Error::Closed)));
}

#[test]
fn a_bad_answer_from_the_server_gives_the_fallback_with_the_reason() {
    for (body, reason) in [
        (
            r#"{"subject": "someone-else", "version": 1, "ttl_ms": 1000, "entitlements": {}}"#,
            "bad response: asked for subject \"c1\", got \"someone-else\"",
        ),
        (
            r#"{"subject": "c1", "version": "#,
            "bad response: unreadable entitlements body",
        ),
        ("<html>hello</html>", "bad response: unreadable entitlements body"),
    ] {
        let (client, errors) = recording(config(&answering_endpoint(body)));
        let a = client.entitlement("c1", "sso").unwrap();
        assert_eq!((a.source, a.has_access), (Source::Fallback, false), "{body}");
        let got = a.reason.unwrap_or_default();
        assert!(got.starts_with(reason), "{body}: {got}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while errors.lock().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let errors = errors.lock().unwrap();
        assert!(
            matches!(
                errors.first(),
                Some(Error::Codec {
                    code: "invalid_json",
                    ..
                })
            ),
            "{body}: {errors:?}"
        );
        let _ = client.shutdown(Duration::from_millis(10));
    }
}
