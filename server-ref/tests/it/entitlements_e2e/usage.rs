//! Local usage accounting against the server's count: tracked events cut access at once,
//! before any flush; after the flush the server's numbers agree (not counted twice) and
//! `on_usage_threshold` fires for the plan's thresholds.

use std::{collections::BTreeMap, time::Duration};

use meterline_core::Source;
use serde_json::json;

use super::{client, config, rt, wait_for, wait_frames};
use crate::common::{
    Server,
    catalog::{entitlements, put_ok, standard_catalog},
};

#[test]
fn tracked_usage_cuts_access_at_once_and_the_server_confirms_it() {
    let rt = rt();
    let s = Server::start();
    let ak = s.ak().to_owned();
    rt.block_on(async {
        standard_catalog(&s, &ak).await;
        let grant = json!({"limit": 10, "period": "month", "thresholds": [0.5, 1.0]});
        put_ok(&s, &ak, "plans/metered", json!({"features": {"api_calls": grant}})).await;
        put_ok(&s, &ak, "customers/c1", json!({"plan": "metered"})).await;
    });
    let (client, seen) = client(config(s.sk(), &s.url));
    let first = client.entitlement("c1", "api_calls").unwrap();
    assert_eq!(
        (first.source, first.has_access, first.usage, first.limit),
        (Source::Fresh, true, Some(0.0), Some(10.0))
    );
    wait_frames(&rt, &s, 1.0);

    for i in 0..9 {
        client
            .track("api.call", "c1", json!({"tokens": i}), None, None)
            .unwrap();
        assert!(
            client.entitlement("c1", "api_calls").unwrap().has_access,
            "after {} events",
            i + 1
        );
    }
    client
        .track("api.call", "c1", json!({"tokens": 9}), None, None)
        .unwrap();
    let local = client.entitlement("c1", "api_calls").unwrap();
    assert_eq!(
        (local.source, local.has_access, local.usage, local.remaining),
        (Source::Cache, false, Some(10.0), Some(0.0)),
        "{local:?}"
    );
    assert_eq!(client.stats().sent, 0, "decided before any flush");
    assert!(
        seen.thresholds.lock().unwrap().is_empty(),
        "the server has not counted yet"
    );

    client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(client.stats().sent, 10);
    let server = rt.block_on(entitlements(&s, s.sk(), "c1"));
    let api_calls = &server["entitlements"]["api_calls"];
    assert_eq!(
        (&api_calls["has_access"], &api_calls["usage"]),
        (&json!(false), &json!(10)),
        "{server}"
    );

    // The stream's thresholds, deduplicated by seq.
    let crossed = wait_for("both thresholds over the stream", || {
        let by_seq: BTreeMap<u64, f64> = seen
            .thresholds
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.subject == "c1" && t.feature == "api_calls")
            .map(|t| (t.seq, t.threshold))
            .collect();
        (by_seq.len() >= 2).then_some(by_seq)
    });
    let mut levels: Vec<f64> = crossed.values().copied().collect();
    levels.sort_by(f64::total_cmp);
    assert_eq!(levels, [0.5, 1.0], "{crossed:?}");
    for t in seen.thresholds.lock().unwrap().iter() {
        assert_eq!(t.limit, 10.0, "{t:?}");
        assert!(t.usage >= t.threshold * 10.0, "{t:?}");
    }
    // The server's count replaces the local estimate without adding to it: the streamed
    // answer came while the batch was in flight, so the client refetches once it settled.
    let settled = wait_for("the server's usage, counted once, in the client's cache", || {
        let answer = client.entitlement("c1", "api_calls").unwrap();
        (answer.version > first.version && answer.usage == Some(10.0)).then_some(answer)
    });
    assert_eq!(
        (settled.source, settled.has_access),
        (Source::Cache, false),
        "{settled:?}"
    );
    client.shutdown(Duration::from_secs(5)).unwrap();
}
