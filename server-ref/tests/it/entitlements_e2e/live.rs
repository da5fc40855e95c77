//! The stream keeps a subscribed client current: admin changes arrive without a fetch, a
//! `kill -9` restart is bridged by `since` (or by `resync` and a refetch when the server's
//! log no longer covers the gap), and `schema.updated` refreshes the client's schemas.

use std::sync::Arc;

use meterline_core::{Client, Source};
use serde_json::json;

use super::{Seen, client, config, entitlement_gets, rt, wait_for, wait_frames};
use crate::common::{
    Server,
    catalog::{put_ok, standard_catalog},
    write_config,
};

/// `tier`'s seats as the client answers them now.
fn seats(client: &Client, subject: &str) -> (Option<u64>, Source) {
    let answer = client.entitlement(subject, "tier").unwrap();
    let seats = answer.value.as_ref().and_then(|v| v["seats"].as_u64());
    (seats, answer.source)
}

#[test]
fn a_plan_change_reaches_a_subscribed_client_without_a_fetch() {
    let rt = rt();
    let s = Server::start();
    let ak = s.ak().to_owned();
    rt.block_on(async {
        standard_catalog(&s, &ak).await;
        put_ok(
            &s,
            &ak,
            "plans/basic",
            json!({"features":{"tier":{"value":{"seats":1}}}}),
        )
        .await;
        put_ok(&s, &ak, "customers/c1", json!({"plan":"basic"})).await;
    });
    let (client, _seen) = client(config(s.sk(), &s.url));

    let first = client.entitlement("c1", "sso").unwrap();
    assert_eq!((first.source, first.has_access), (Source::Fresh, false), "{first:?}");
    let misses = client.stats().cache_misses;
    assert_eq!(misses, 1);
    wait_frames(&rt, &s, 1.0);
    assert!(client.stats().stream_connected);

    rt.block_on(put_ok(&s, &ak, "customers/c1", json!({"plan":"pro"})));
    let answer = wait_for("the plan change to reach the client", || {
        let answer = client.entitlement("c1", "sso").unwrap();
        answer.has_access.then_some(answer)
    });
    assert_eq!(answer.source, Source::Cache, "applied from the stream: {answer:?}");
    assert!(answer.version > first.version, "{answer:?} after {first:?}");
    assert_eq!(client.stats().cache_misses, misses, "no fetch");
    assert_eq!(entitlement_gets(&rt, &s, 200), 1.0, "the server answered one GET only");
    // The other feature of the new plan comes from the same streamed answer.
    assert_eq!(seats(&client, "c1"), (Some(10), Source::Cache));
    client.shutdown(std::time::Duration::from_secs(5)).unwrap();
}

/// Subscribes a client to `c1`, kills the server, makes three changes to `c1` on a server
/// the client cannot reach (same database, another port), and brings the server back on the
/// client's port with `config` in `meterline.toml`. Returns the server, the client and what
/// it saw and the admin key, once the client has reconnected.
fn away_and_back(config_toml: &str) -> (tokio::runtime::Runtime, Server, Client, Seen, String) {
    let rt = rt();
    let first = Server::start();
    let ak = first.ak().to_owned();
    let dir = first.dir.clone();
    let bind = first.url.trim_start_matches("http://").to_owned();
    rt.block_on(async {
        standard_catalog(&first, &ak).await;
        put_ok(&first, &ak, "customers/c1", json!({"plan":"pro"})).await;
    });
    let (client, seen) = client(config(first.sk(), &first.url));
    assert_eq!(seats(&client, "c1"), (Some(10), Source::Fresh));
    wait_frames(&rt, &first, 1.0);
    wait_for("the client to report the stream up", || {
        seen.connections()
            .contains(&(true, "connected".to_owned()))
            .then_some(())
    });

    first.kill9();
    wait_for("the client to report the stream lost", || {
        seen.connections().iter().any(|(up, _)| !up).then_some(())
    });
    let elsewhere = Server::start_in(Arc::clone(&dir), &[]);
    rt.block_on(async {
        for seats in [20, 30, 40] {
            let grant = json!({"overrides":{"tier":{"value":{"seats":seats}}}});
            put_ok(&elsewhere, &ak, "customers/c1", grant).await;
        }
    });
    elsewhere.kill9();

    write_config(dir.path(), config_toml);
    let back = Server::start_bound(dir, &bind, &[]);
    wait_for("the client to reconnect", || {
        let connections = seen.connections();
        (connections.iter().filter(|(up, _)| *up).count() == 2).then_some(())
    });
    (rt, back, client, seen, ak)
}

#[test]
fn a_restarted_server_replays_what_the_client_missed_since_its_last_seq() {
    let (rt, back, client, seen, _) = away_and_back("");
    wait_for("the missed updates to be replayed", || {
        (seats(&client, "c1") == (Some(40), Source::Cache)).then_some(())
    });
    let connections = seen.connections();
    assert_eq!(connections.len(), 3, "up, down, up: {connections:?}");
    assert!(!connections[1].0 && !connections[1].1.is_empty(), "{connections:?}");
    assert_eq!(client.stats().cache_misses, 1);
    assert_eq!(
        entitlement_gets(&rt, &back, 200),
        0.0,
        "replayed over the stream, not refetched"
    );
    client.shutdown(std::time::Duration::from_secs(5)).unwrap();
}

#[test]
fn a_gap_the_log_no_longer_covers_ends_in_resync_and_a_refetch() {
    // Three missed messages, one replayable: the server answers `resync`.
    let (rt, back, client, _seen, ak) = away_and_back("[stream]\nmax_replay = 1\n");
    wait_for("the client to refetch after resync", || {
        (entitlement_gets(&rt, &back, 200) >= 1.0).then_some(())
    });
    wait_for("the refetched answer", || {
        (seats(&client, "c1") == (Some(40), Source::Cache)).then_some(())
    });
    assert_eq!(client.stats().cache_misses, 1, "refetched in the background");
    // Live updates keep flowing after the resync.
    let grant = json!({"overrides":{"tier":{"value":{"seats":50}}}});
    rt.block_on(put_ok(&back, &ak, "customers/c1", grant));
    wait_for("a live update after the resync", || {
        (seats(&client, "c1") == (Some(50), Source::Cache)).then_some(())
    });
    client.shutdown(std::time::Duration::from_secs(5)).unwrap();
}

#[test]
fn a_schema_update_over_the_stream_refreshes_the_clients_schemas() {
    let rt = rt();
    let s = Server::start();
    let ak = s.ak().to_owned();
    rt.block_on(standard_catalog(&s, &ak));
    let mut c = config(s.sk(), &s.url);
    c.fetch_schemas = true;
    c.schema_refresh_interval = std::time::Duration::from_secs(3600);
    let (client, _seen) = client(c);
    client.refresh_schemas(std::time::Duration::from_secs(10)).unwrap();
    client
        .track("api.call", "c1", json!({"tokens": "many"}), None, None)
        .unwrap();
    // A cached subject opens the stream (project-wide messages come with it).
    client.entitlement("c1", "sso").unwrap();
    wait_frames(&rt, &s, 1.0);

    let schema = json!({"type":"object","properties":{"tokens":{"type":"integer"}}});
    rt.block_on(put_ok(&s, &ak, "schemas/api.call", schema));
    let err = wait_for("track() to apply the new schema", || {
        client
            .track("api.call", "c1", json!({"tokens": "many"}), None, None)
            .err()
    });
    let message = err.to_string();
    assert!(
        message.contains("/data/tokens") || message.contains("tokens"),
        "{message}"
    );
    client.shutdown(std::time::Duration::from_secs(5)).unwrap();
}
