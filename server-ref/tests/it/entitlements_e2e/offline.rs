//! The server goes away: a cached answer is served `stale` with the reason, an uncached one
//! gets the configured fallback, and past `max_stale` the cached one gives way to the
//! fallback too.

use std::time::Duration;

use meterline_core::{Fallbacks, Source};
use serde_json::json;

use super::{client, config, pro_customers, rt, wait_for};
use crate::common::Server;

#[test]
fn an_unreachable_server_gives_stale_then_fallback_answers_with_the_reason() {
    let rt = rt();
    let s = Server::start();
    pro_customers(&rt, &s, &["c1"]);
    let mut c = config(s.sk(), &s.url);
    c.max_ttl = Some(Duration::from_millis(300));
    c.max_stale = Duration::from_secs(5);
    c.fallbacks = Fallbacks::from_json(&json!({"features": {"sso": false, "tier": {"value": {"seats": 1}}}})).unwrap();
    let (client, seen) = client(c);
    let fresh = client.entitlement("c1", "sso").unwrap();
    assert_eq!((fresh.source, fresh.has_access), (Source::Fresh, true), "{fresh:?}");

    s.kill9();
    let stale = wait_for("a stale answer saying the server is unreachable", || {
        let answer = client.entitlement("c1", "sso").unwrap();
        let unreachable = answer
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("server unreachable"));
        (answer.source == Source::Stale && unreachable).then_some(answer)
    });
    assert!(stale.has_access, "the last known answer: {stale:?}");
    assert_eq!(stale.version, fresh.version);
    assert!(client.stats().stale_answers >= 1);

    // Never cached: the configured fallback at once, with the reason.
    let fallback = client.entitlement("c2", "tier").unwrap();
    assert_eq!(fallback.source, Source::Fallback, "{fallback:?}");
    assert_eq!(fallback.value.as_deref(), Some(&json!({"seats": 1})));
    let reason = fallback.reason.clone().unwrap_or_default();
    assert!(reason.starts_with("server unreachable"), "{reason}");
    // No fallback configured for `api_calls`: deny.
    let denied = client.entitlement("c2", "api_calls").unwrap();
    assert_eq!(
        (denied.source, denied.has_access, denied.kind),
        (Source::Fallback, false, None)
    );

    // Past max_stale the cached answer is no longer served: `sso`'s fallback (false) is.
    let expired = wait_for("the cached answer to pass max_stale", || {
        let answer = client.entitlement("c1", "sso").unwrap();
        (answer.source == Source::Fallback).then_some(answer)
    });
    assert!(!expired.has_access, "{expired:?}");
    assert!(expired.reason.as_deref().is_some_and(|r| !r.is_empty()), "{expired:?}");
    assert!(client.stats().fallback_answers >= 3);
    assert!(
        seen.errors().iter().any(|e| e.code() == "network_error"),
        "{:?}",
        seen.errors()
    );
    client.shutdown(Duration::from_secs(1)).ok();
}
