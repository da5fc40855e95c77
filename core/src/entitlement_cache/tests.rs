use serde_json::json;

use super::*;
use crate::{entitlement::FeatureKind, stream::ServerMessage};

/// 2026-11-18T…, inside the November period of [`answer`].
const T0: u64 = 1_795_000_000_000;

fn answer(version: u64, usage: u64) -> Entitlements {
    serde_json::from_value(json!({"subject":"c1","version":version,"ttl_ms":60_000,"entitlements":{
        "api_calls":{"kind":"metered","has_access":usage < 10,"limit":10,"usage":usage,"remaining":10u64.saturating_sub(usage),
            "period":"month","period_start":"2026-11-01T00:00:00Z","period_end":"2026-12-01T00:00:00Z",
            "event_type":"api.call","aggregation":"count"},
        "sso":{"kind":"boolean","has_access":true},
        "tier":{"kind":"config","has_access":true,"value":{"seats":10}}}}))
    .unwrap()
}

fn cache() -> EntitlementCache {
    EntitlementCache::new(CacheSettings {
        capacity: NonZeroUsize::new(2).unwrap(),
        max_stale: Duration::from_secs(3600),
        ..CacheSettings::default()
    })
}

fn fetch(
    c: &mut EntitlementCache,
    subject: &str,
    result: FetchResult,
    now: u64,
    counted_through: u64,
) -> FetchCompletion {
    let ticket = c.begin_fetch(subject, counted_through);
    c.complete_fetch(ticket, result, now, 0.5)
}

fn fetched(a: Entitlements) -> FetchResult {
    FetchResult::Fetched {
        answer: a,
        etag: Some("\"e1\"".into()),
    }
}

fn failed(reason: &str) -> FetchResult {
    FetchResult::Failed {
        reason: reason.into(),
        retry_after: None,
    }
}

fn hit(l: Lookup) -> EntitlementAnswer {
    match l {
        Lookup::Hit(a) => a,
        other => panic!("expected a hit, got {other:?}"),
    }
}

#[test]
fn miss_fetch_then_hit_then_stale_then_miss() {
    let mut c = cache();
    assert_eq!(c.lookup("c1", "sso", T0), Lookup::Miss);
    let done = fetch(&mut c, "c1", fetched(answer(1, 2)), T0, 0);
    assert!(done.added);
    let fresh = c.answer("c1", "sso", Source::Fresh).unwrap();
    assert_eq!(
        (fresh.source, fresh.has_access, fresh.kind),
        (Source::Fresh, true, Some(FeatureKind::Boolean))
    );
    let a = hit(c.lookup("c1", "api_calls", T0 + 59_999));
    assert_eq!(
        (a.source, a.usage, a.remaining, a.version),
        (Source::Cache, Some(2.0), Some(8.0), Some(1))
    );
    match c.lookup("c1", "tier", T0 + 60_000) {
        Lookup::Stale { answer, revalidate } => {
            assert!(revalidate);
            assert_eq!(answer.value.as_deref(), Some(&json!({"seats": 10})));
            assert_eq!(answer.reason.as_deref(), Some("past ttl: revalidating"));
        }
        other => panic!("{other:?}"),
    }
    // Only the first stale lookup starts a revalidation.
    assert!(matches!(
        c.lookup("c1", "tier", T0 + 60_001),
        Lookup::Stale { revalidate: false, .. }
    ));
    assert_eq!(c.lookup("c1", "tier", T0 + 60_000 + 3_600_000), Lookup::Miss);
}

#[test]
fn missing_feature_is_denied_with_a_reason() {
    let mut c = cache();
    fetch(&mut c, "c1", fetched(answer(1, 0)), T0, 0);
    let a = hit(c.lookup("c1", "nope", T0));
    assert_eq!((a.has_access, a.kind, a.source), (false, None, Source::Cache));
    assert_eq!(a.reason.as_deref(), Some(NOT_IN_PLAN));
}

#[test]
fn local_usage_reaches_the_limit_and_a_newer_answer_replaces_the_estimate() {
    let mut c = cache();
    fetch(&mut c, "c1", fetched(answer(1, 8)), T0, 0);
    let data = Map::new();
    assert!(c.record_event("api.call", "c1", &data, T0, 5));
    assert!(hit(c.lookup("c1", "api_calls", T0)).has_access);
    assert!(c.record_event("api.call", "c1", &data, T0, 6));
    let a = hit(c.lookup("c1", "api_calls", T0));
    assert_eq!((a.has_access, a.usage, a.remaining), (false, Some(10.0), Some(0.0)));
    assert!(!c.record_event("other.type", "c1", &data, T0, 7));
    assert!(!c.record_event("api.call", "c2", &data, T0, 7));
    // The server counted the event with mark 5 but not 6 when this answer was requested.
    fetch(&mut c, "c1", fetched(answer(1, 9)), T0 + 1, 6);
    let a = hit(c.lookup("c1", "api_calls", T0 + 1));
    assert_eq!((a.usage, a.has_access), (Some(10.0), false));
    // Now both are counted.
    fetch(&mut c, "c1", FetchResult::NotModified, T0 + 2, 7);
    let a = hit(c.lookup("c1", "api_calls", T0 + 2));
    assert_eq!((a.usage, a.has_access), (Some(9.0), true));
}

#[test]
fn older_versions_never_replace_newer_ones() {
    let mut c = cache();
    fetch(&mut c, "c1", fetched(answer(5, 1)), T0, 0);
    fetch(&mut c, "c1", fetched(answer(4, 7)), T0 + 70_000, 0);
    let a = hit(c.lookup("c1", "api_calls", T0 + 70_000));
    assert_eq!((a.version, a.usage), (Some(5), Some(1.0)));
    // …and an equal version does (usage changes between thresholds keep the version).
    fetch(&mut c, "c1", fetched(answer(5, 3)), T0 + 70_001, 0);
    assert_eq!(hit(c.lookup("c1", "api_calls", T0 + 70_001)).usage, Some(3.0));
}

#[test]
fn failures_fall_back_then_back_off() {
    let mut c = EntitlementCache::new(CacheSettings {
        fallbacks: Fallbacks::from_json(&json!({"features":{"sso":true}})).unwrap(),
        ..CacheSettings::default()
    });
    let ticket = c.begin_fetch("c1", 0);
    assert_eq!(ticket.etag, None);
    c.complete_fetch(ticket, failed("server unreachable: connection refused"), T0, 0.0);
    let a = c.answer_or_fallback("c1", "sso", "server unreachable: connection refused", T0);
    assert_eq!((a.source, a.has_access), (Source::Fallback, true));
    // Within the backoff (≥ 500 ms after the first failure) no new fetch.
    match c.lookup("c1", "api_calls", T0 + 499) {
        Lookup::Backoff(a) => {
            assert_eq!((a.has_access, a.kind), (false, None));
            assert_eq!(a.reason.as_deref(), Some("server unreachable: connection refused"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.lookup("c1", "sso", T0 + 500), Lookup::Miss);
    assert!(c.subjects().is_empty(), "a negative entry is not a cached subject");
}

#[test]
fn stale_entries_keep_serving_after_a_failed_revalidation() {
    let mut c = cache();
    fetch(&mut c, "c1", fetched(answer(1, 0)), T0, 0);
    let later = T0 + 61_000;
    assert!(matches!(
        c.lookup("c1", "sso", later),
        Lookup::Stale { revalidate: true, .. }
    ));
    let ticket = c.begin_fetch("c1", 0);
    assert_eq!(ticket.etag.as_deref(), Some("\"e1\""));
    c.complete_fetch(ticket, failed("timeout after 1s"), later, 0.0);
    match c.lookup("c1", "sso", later + 1) {
        Lookup::Stale { answer, revalidate } => {
            assert!(!revalidate, "backing off");
            assert_eq!(answer.reason.as_deref(), Some("timeout after 1s"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.lookup("c1", "sso", later + 501),
        Lookup::Stale { revalidate: true, .. }
    ));
}

#[test]
fn retry_after_replaces_the_backoff() {
    let mut c = cache();
    let ticket = c.begin_fetch("c1", 0);
    let result = FetchResult::Failed {
        reason: "rate limited".into(),
        retry_after: Some(Duration::from_secs(30)),
    };
    c.complete_fetch(ticket, result, T0, 0.0);
    assert!(matches!(c.lookup("c1", "sso", T0 + 29_999), Lookup::Backoff(_)));
    assert_eq!(c.lookup("c1", "sso", T0 + 30_000), Lookup::Miss);
}

#[test]
fn ttl_is_capped_by_config_and_by_the_period_end() {
    let mut c = EntitlementCache::new(CacheSettings {
        max_ttl: Some(Duration::from_secs(10)),
        ..CacheSettings::default()
    });
    fetch(&mut c, "c1", fetched(answer(1, 0)), T0, 0);
    assert!(matches!(c.lookup("c1", "sso", T0 + 10_000), Lookup::Stale { .. }));
    let period_end = 1_796_083_200_000; // 2026-12-01T00:00:00Z
    let mut c = cache();
    fetch(&mut c, "c1", fetched(answer(1, 0)), period_end - 1_000, 0);
    assert!(matches!(c.lookup("c1", "sso", period_end), Lookup::Stale { .. }));
}

#[test]
fn lru_evicts_the_least_recently_used_subject() {
    let mut c = cache();
    for s in ["a", "b"] {
        let mut a = answer(1, 0);
        a.subject = s.into();
        fetch(&mut c, s, fetched(a), T0, 0);
    }
    hit(c.lookup("a", "sso", T0));
    let mut a = answer(1, 0);
    a.subject = "c".into();
    let done = fetch(&mut c, "c", fetched(a), T0, 0);
    assert_eq!(done.evicted.as_deref(), Some("b"));
    assert_eq!(c.subjects(), vec!["c".to_owned(), "a".to_owned()]);
}

#[test]
fn not_modified_after_eviction_asks_for_a_refetch() {
    let mut c = cache();
    let ticket = c.begin_fetch("c1", 0);
    assert!(c.complete_fetch(ticket, FetchResult::NotModified, T0, 0.0).refetch);
}

#[test]
fn stream_updates_only_cached_or_pending_subjects_and_tracks_seq() {
    let mut c = cache();
    let update = |seq, version, subject: &str| {
        let mut data = answer(version, 4);
        data.subject = subject.into();
        ServerMessage::EntitlementsUpdated {
            seq,
            subject: subject.into(),
            data,
        }
    };
    assert_eq!(
        c.apply(
            ServerMessage::Subscribed {
                seq: 10,
                subjects: vec![]
            },
            T0,
            0
        ),
        StreamEffect::None
    );
    assert_eq!(c.last_seq(), Some(10));
    assert_eq!(c.apply(update(11, 1, "c1"), T0, 0), StreamEffect::None);
    assert!(!c.contains("c1"), "the stream never grows the cache");
    let ticket = c.begin_fetch("c1", 0);
    assert!(matches!(
        c.apply(update(12, 3, "c1"), T0, 0),
        StreamEffect::Updated { .. }
    ));
    c.complete_fetch(ticket, fetched(answer(2, 0)), T0, 0.0);
    assert_eq!(c.version("c1"), Some(3), "the older fetched answer lost");
    assert_eq!(c.apply(update(13, 2, "c1"), T0, 0), StreamEffect::None);
    assert_eq!(c.last_seq(), Some(13));
    assert_eq!(c.apply(ServerMessage::Resync { seq: 5 }, T0, 0), StreamEffect::Resync);
    assert_eq!(c.last_seq(), Some(5));
    assert!(matches!(
        c.lookup("c1", "sso", T0),
        Lookup::Stale { revalidate: true, .. }
    ));
    assert!(c.take_refetch_due().is_empty(), "the lookup claimed it");
}

#[test]
fn answers_too_old_to_serve_still_back_off_after_a_failure() {
    let mut c = cache();
    fetch(&mut c, "c1", fetched(answer(1, 0)), T0, 0);
    let too_old = T0 + 60_000 + 3_600_000;
    assert_eq!(c.lookup("c1", "sso", too_old), Lookup::Miss);
    fetch(
        &mut c,
        "c1",
        failed("server unreachable: connection refused"),
        too_old,
        0,
    );
    assert!(matches!(c.lookup("c1", "sso", too_old + 1), Lookup::Backoff(a) if a.source == Source::Fallback));
    assert_eq!(c.lookup("c1", "sso", too_old + 1_000), Lookup::Miss);
}

#[test]
fn a_streamed_answer_over_local_usage_is_refetched_once_that_usage_settles() {
    let mut c = cache();
    fetch(&mut c, "c1", fetched(answer(1, 0)), T0, 0);
    let data = Map::new();
    for mark in 0..5 {
        assert!(c.record_event("api.call", "c1", &data, T0, mark));
    }
    // The server committed the batch and streamed its answer before the batch's 202 came.
    let update = |seq: u64, usage: u64| ServerMessage::EntitlementsUpdated {
        seq,
        subject: "c1".into(),
        data: answer(seq, usage),
    };
    c.apply(update(2, 5), T0, 0);
    assert_eq!(
        hit(c.lookup("c1", "api_calls", T0)).usage,
        Some(10.0),
        "counted twice for now"
    );
    assert!(c.settled(4).is_empty(), "mark 4 is still in flight");
    assert_eq!(c.settled(5), ["c1"]);
    assert!(c.settled(5).is_empty(), "refetched once");
    fetch(&mut c, "c1", fetched(answer(2, 5)), T0, 5);
    assert_eq!(hit(c.lookup("c1", "api_calls", T0)).usage, Some(5.0));

    // A fetch asked after the records settled resolves it without a second refetch.
    assert!(c.record_event("api.call", "c1", &data, T0, 5));
    c.apply(update(3, 6), T0, 5);
    fetch(&mut c, "c1", fetched(answer(3, 6)), T0, 6);
    assert!(c.settled(6).is_empty());
    assert_eq!(hit(c.lookup("c1", "api_calls", T0)).usage, Some(6.0));
    // No local records under a streamed answer: nothing to settle.
    c.apply(update(4, 6), T0, 6);
    assert!(c.settled(u64::MAX).is_empty());
}

#[test]
fn one_flight_per_subject_until_it_is_finished() {
    let mut flights: Flights<u32> = Flights::default();
    let mut made = 0;
    let mut make = || {
        made += 1;
        made
    };
    assert_eq!(flights.join("c1", &mut make), Join::Start(1));
    assert_eq!(flights.join("c1", &mut make), Join::Wait(1));
    assert_eq!(flights.join("c2", &mut make), Join::Start(2));
    assert!(flights.in_flight("c1"));
    // Only the flight recognised is removed: a later one for the subject stays.
    flights.finish("c1", |w| *w == 7);
    assert!(flights.in_flight("c1"));
    flights.finish("c1", |w| *w == 1);
    assert!(!flights.in_flight("c1"));
    assert_eq!(flights.join("c1", &mut make).handle(), &3);
}

#[test]
fn waiters_answer_fresh_or_the_cached_answer_or_the_fallback_with_the_reason() {
    let mut c = cache();
    let timeout = Duration::from_secs(1);
    // Nothing cached and the flight failed: the fallback (deny) with the failure.
    let landing = Landing::of(&failed("server unreachable: refused"));
    let a = c.answer_after_flight("c1", "sso", Some(&landing), timeout, T0);
    assert_eq!((a.source, a.has_access), (Source::Fallback, false));
    assert_eq!(a.reason.as_deref(), Some("server unreachable: refused"));
    // The wait itself gave up.
    let a = c.answer_after_flight("c1", "sso", None, timeout, T0);
    assert_eq!(a.reason.as_deref(), Some("timeout after 1s"));
    assert_eq!(Landing::timed_out(timeout), Landing::Failed("timeout after 1s".into()));
    // Answered and stored: fresh from the cache.
    fetch(&mut c, "c1", fetched(answer(1, 0)), T0, 0);
    let landing = Landing::of(&fetched(answer(1, 0)));
    let a = c.answer_after_flight("c1", "sso", Some(&landing), timeout, T0);
    assert_eq!((a.source, a.has_access), (Source::Fresh, true));
    // Answered but evicted meanwhile: fresh from the landed body.
    let mut other = answer(1, 0);
    other.subject = "c9".into();
    let landing = Landing::Answered(Some(std::sync::Arc::new(other)));
    let a = c.answer_after_flight("c9", "sso", Some(&landing), timeout, T0);
    assert_eq!((a.source, a.has_access), (Source::Fresh, true));
    // A 304 for an answer no longer cached: the fallback, saying why.
    let a = c.answer_after_flight("c8", "sso", Some(&Landing::Answered(None)), timeout, T0);
    assert_eq!(a.source, Source::Fallback);
    assert!(a.reason.as_deref().unwrap_or_default().contains("evicted"), "{a:?}");
    // A failure with an answer past its TTL: that answer, stale, with the failure.
    let later = T0 + 61_000;
    let a = c.answer_after_flight(
        "c1",
        "sso",
        Some(&Landing::Failed("rate limited: x".into())),
        timeout,
        later,
    );
    assert_eq!((a.source, a.has_access), (Source::Stale, true));
    assert_eq!(a.reason.as_deref(), Some("rate limited: x"));
}
