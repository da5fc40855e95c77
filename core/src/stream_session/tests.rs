use serde_json::{Value, json};

use super::*;
use crate::entitlement_cache::CacheSettings;

const T0: u64 = 1_795_514_400_000;

fn session() -> StreamSession {
    StreamSession::new(SessionSettings::default())
}

fn actions(s: &mut StreamSession) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

fn sent(actions: &[Action]) -> Vec<Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(frame) => Some(serde_json::from_str(frame).unwrap()),
            _ => None,
        })
        .collect()
}

/// A session with `c1` subscribed and its connection open.
fn open(cache: &mut EntitlementCache) -> StreamSession {
    let mut s = session();
    s.subscribe("c1", None, None, T0);
    s.opened(T0, cache);
    actions(&mut s);
    s
}

#[test]
fn subscribe_frames_stay_under_the_frame_limit() {
    let subjects: BTreeSet<String> = (0..MAX_SUBJECTS).map(|i| format!("{i:0>250}")).collect();
    let frames = subscribe_frames(&subjects, Some(7), MAX_FRAME_BYTES);
    assert!(frames.len() > 1);
    let mut seen = 0;
    for frame in &frames {
        assert!(frame.len() <= MAX_FRAME_BYTES, "{}", frame.len());
        let op: ClientOp = serde_json::from_str(frame).unwrap();
        let ClientOp::Subscribe { subjects, since } = op else {
            panic!()
        };
        assert_eq!(since, Some(7));
        seen += subjects.len();
    }
    assert_eq!(seen, MAX_SUBJECTS);
    assert!(subscribe_frames(&BTreeSet::new(), None, MAX_FRAME_BYTES).is_empty());
}

#[test]
fn the_subscribed_set_stays_bounded_and_unique() {
    let mut cache = EntitlementCache::new(CacheSettings::default());
    let mut s = open(&mut cache);
    s.subscribe("a", None, Some(3), T0);
    assert_eq!(
        sent(&actions(&mut s)),
        [json!({"op":"subscribe","subjects":["a"],"since":3})]
    );
    s.subscribe("a", None, None, T0);
    assert!(actions(&mut s).is_empty(), "already subscribed");
    // A new subject replays from the earlier of the stream's position and its answer's.
    s.subscribe("x", Some(2), Some(3), T0);
    assert_eq!(sent(&actions(&mut s))[0]["since"], 2);
    s.subscribe("y", Some(9), None, T0);
    assert_eq!(sent(&actions(&mut s))[0]["since"], 9);
    s.unsubscribe("b");
    assert!(actions(&mut s).is_empty(), "never subscribed");
    s.unsubscribe("a");
    assert_eq!(sent(&actions(&mut s)), [json!({"op":"unsubscribe","subjects":["a"]})]);
    for i in 0..MAX_SUBJECTS {
        s.subscribe(&i.to_string(), None, None, T0);
    }
    actions(&mut s);
    assert_eq!(s.subjects().count(), MAX_SUBJECTS);
    s.subscribe("over", None, None, T0);
    assert!(actions(&mut s).is_empty(), "over the server's limit");
    assert_eq!(earliest(Some(4), Some(5)), Some(4));
    assert_eq!(earliest(None, Some(5)), Some(5));
    assert_eq!(earliest(None, None), None);
}

#[test]
fn the_backoff_grows_until_a_connection_is_answered_then_starts_over() {
    let mut cache = EntitlementCache::new(CacheSettings::default());
    let mut s = open(&mut cache);
    let mut now = T0;
    let mut delays = Vec::new();
    for _ in 0..4 {
        s.lost(Disconnect::Network, "reset", now, 0.5);
        delays.push(s.next_wake().unwrap() - now);
        now = s.next_wake().unwrap();
        s.on_timer(now, 0.5);
        assert!(matches!(actions(&mut s).last(), Some(Action::Connect)));
        s.opened(now, &mut cache);
    }
    assert_eq!(
        delays,
        [500, 1000, 2000, 4000],
        "opened but never answered: still backing off"
    );
    s.received(
        Frame::Text(r#"{"type":"subscribed","seq":1,"subjects":["c1"]}"#),
        now,
        &mut cache,
        0,
    );
    s.lost(Disconnect::Network, "reset", now, 0.5);
    assert_eq!(s.next_wake().unwrap() - now, 500);
}

#[test]
fn an_outage_is_reported_once_however_many_attempts_fail() {
    let mut cache = EntitlementCache::new(CacheSettings::default());
    let mut s = open(&mut cache);
    s.lost(Disconnect::Closed(1001), "going away", T0, 0.0);
    let first = actions(&mut s);
    assert!(
        first
            .iter()
            .any(|a| matches!(a, Action::ConnectionChange { connected: false, reason } if reason == "going away"))
    );
    assert!(!first.iter().any(|a| matches!(a, Action::Report(_))), "1001 is clean");
    for _ in 0..3 {
        s.on_timer(s.next_wake().unwrap(), 0.0);
        actions(&mut s);
        s.lost(Disconnect::Network, "refused", T0, 0.0);
        let again = actions(&mut s);
        assert!(
            !again.iter().any(|a| matches!(a, Action::ConnectionChange { .. })),
            "{again:?}"
        );
        assert!(
            again.iter().any(|a| matches!(a, Action::Report(Error::Network(_)))),
            "{again:?}"
        );
    }
}

#[test]
fn shutdown_closes_an_open_connection_with_1000_and_stops() {
    let mut cache = EntitlementCache::new(CacheSettings::default());
    let mut s = open(&mut cache);
    s.close();
    assert!(matches!(
        &actions(&mut s)[..],
        [
            Action::Close {
                code: 1000,
                reason: "client shutdown"
            },
            Action::ConnectionChange { connected: false, reason },
        ] if reason == "client shutdown"
    ));
    assert_eq!((s.state(), s.next_wake()), (SessionState::Stopped, None));
    s.subscribe("c2", None, None, T0);
    assert!(actions(&mut s).is_empty(), "a stopped session opens nothing");
}

#[test]
fn shutdown_after_the_connection_was_lost_reports_no_second_disconnect() {
    let mut cache = EntitlementCache::new(CacheSettings::default());
    let mut s = open(&mut cache);
    s.lost(Disconnect::Network, "reset by peer", T0 + 1, 0.5);
    let lost = actions(&mut s);
    assert!(
        lost.iter()
            .any(|a| matches!(a, Action::ConnectionChange { connected: false, .. })),
        "{lost:?}"
    );
    s.close();
    let closed = actions(&mut s);
    assert!(
        !closed.iter().any(|a| matches!(a, Action::ConnectionChange { .. })),
        "the application was told already: {closed:?}"
    );
    assert_eq!(s.state(), SessionState::Stopped);
}

#[test]
fn switching_users_drops_the_subjects_and_the_connection_and_refreshed_credentials_reconnect() {
    let mut cache = EntitlementCache::new(CacheSettings::default());
    let mut s = open(&mut cache);
    s.forget_subjects();
    let done = actions(&mut s);
    assert!(
        matches!(done.first(), Some(Action::Close { code: 1000, .. })),
        "{done:?}"
    );
    assert_eq!(s.state(), SessionState::Idle);
    assert_eq!(s.subjects().count(), 0);
    // The next user's subject connects anew.
    s.subscribe("c2", None, None, T0 + 1);
    assert!(matches!(actions(&mut s).as_slice(), [Action::Connect]));
    // Refused 4401: paused, asks for credentials; fresh ones reconnect at once.
    s.lost(Disconnect::Closed(4401), "token_expired", T0 + 2, 0.5);
    assert_eq!(s.state(), SessionState::Paused);
    assert!(actions(&mut s).iter().any(|a| matches!(a, Action::RefreshCredentials)));
    s.credentials_refreshed(T0 + 3);
    assert_eq!(s.state(), SessionState::Connecting);
    assert!(actions(&mut s).iter().any(|a| matches!(a, Action::Connect)));
}
