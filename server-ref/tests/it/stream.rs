//! `GET /v1/stream` against the real binary with a real WebSocket client: the three ways
//! to authenticate, every 4401/4403, publishable subjects, `schema.updated` live and
//! resumed with `since` (also across `kill -9`), idle/ping, revocation, token expiry,
//! tenant isolation, limits and shutdown. Hostile input is in `stream_hostile.rs`, tests
//! that publish subject messages themselves in `stream_live.rs`.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::time::Duration;

use common::{ws::*, *};
use meterline_core::key::ApiKey;
use serde_json::{Value, json};

/// Short timers so the tests run in seconds, plus extra `[stream]` and `[auth]` lines.
fn config(stream: &str, auth: &str) -> String {
    format!(
        "[stream]\nping_interval_ms = 200\nidle_timeout_ms = 1000\nauth_timeout_ms = 500\nsend_timeout_ms = 1000\n\
         {stream}\n[auth]\nrevocation_poll_ms = 200\n{auth}\n"
    )
}

fn token_protocols(key: &str, token: Option<&str>) -> Vec<String> {
    let mut protocols = vec!["meterline.v1".to_owned(), format!("meterline.key.{key}")];
    if let Some(token) = token {
        protocols.push(format!("meterline.token.{token}"));
    }
    protocols
}

/// PUTs a schema for `event_type` (a new one each call when `version` differs).
async fn put_schema(s: &Server, admin: &str, event_type: &str, version: u64) {
    let schema = json!({"type": "object", "properties": {"v": {"const": version}}});
    let (status, body) = s
        .call("PUT", &format!("/v1/admin/schemas/{event_type}"), admin, Some(schema))
        .await;
    assert!(status == 200 || status == 201, "{body}");
}

#[tokio::test]
async fn authenticates_by_header_protocol_and_first_frame() {
    let s = start_with_config(&config("", ""));
    let pk = s.new_key("publishable").await;
    let token = customer_token(s.sk(), "c1", 600);

    let mut by_secret = connect_key(&s.url, s.sk()).await;
    let (_, subscribed) = subscribe(&mut by_secret, &["c1", "c2"], None).await;
    assert_eq!(
        subscribed,
        json!({"type": "subscribed", "seq": 0, "subjects": ["c1", "c2"]})
    );

    let (mut by_headers, protocol) = connect(
        &s.url,
        Connect {
            bearer: Some(&pk),
            token_header: Some(&token),
            ..Connect::default()
        },
    )
    .await;
    assert_eq!(protocol, None, "nothing offered, nothing answered");
    assert_eq!(
        subscribe(&mut by_headers, &["c1"], None).await.1["subjects"],
        json!(["c1"])
    );

    // Browsers: key and token as offered subprotocols; the answer names only meterline.v1.
    for protocols in [token_protocols(&pk, Some(&token)), token_protocols(s.sk(), None)] {
        let (mut ws, protocol) = connect(
            &s.url,
            Connect {
                protocols,
                ..Connect::default()
            },
        )
        .await;
        assert_eq!(protocol.as_deref(), Some("meterline.v1"));
        assert_eq!(subscribe(&mut ws, &["c1"], None).await.1["type"], "subscribed");
    }

    // Or an auth frame first.
    for auth in [
        json!({"op": "auth", "key": pk, "token": token}),
        json!({"op": "auth", "key": s.sk()}),
    ] {
        let (mut ws, _) = connect(&s.url, Connect::default()).await;
        send_json(&mut ws, auth).await;
        assert_eq!(subscribe(&mut ws, &["c1"], None).await.1["type"], "subscribed");
    }
}

#[tokio::test]
async fn unauthenticated_streams_close_with_4401() {
    let s = start_with_config(&config("", ""));
    let pk = s.new_key("publishable").await;
    let expired = customer_token(s.sk(), "c1", -3600);

    let (mut silent, _) = connect(&s.url, Connect::default()).await;
    let reason = closed_with(&mut silent, 4401).await;
    assert!(reason.contains("not authenticated within 500 ms"), "{reason}");

    let cases: Vec<(&str, Connect<'_>, Option<Value>, &str)> = vec![
        (
            "unknown key",
            Connect {
                bearer: Some("ml_sk_nosuchkey_0123456789abcdefXYZ"),
                ..Connect::default()
            },
            None,
            "unauthorized",
        ),
        (
            "publishable key without token",
            Connect {
                bearer: Some(&pk),
                ..Connect::default()
            },
            None,
            "token_required",
        ),
        (
            "expired token",
            Connect {
                bearer: Some(&pk),
                token_header: Some(&expired),
                ..Connect::default()
            },
            None,
            "token_expired",
        ),
        (
            "garbage token in the protocol",
            Connect {
                protocols: token_protocols(&pk, Some("garbage")),
                ..Connect::default()
            },
            None,
            "invalid_token",
        ),
        (
            "malformed key in the auth frame",
            Connect::default(),
            Some(json!({"op": "auth", "key": "hello"})),
            "unauthorized",
        ),
        (
            "subscribe before auth",
            Connect::default(),
            Some(json!({"op": "subscribe", "subjects": ["c1"]})),
            "the first frame must be",
        ),
        (
            "garbage first frame",
            Connect::default(),
            Some(json!("garbage")),
            "the first frame must be",
        ),
    ];
    for (name, how, first, reason_has) in cases {
        let (mut ws, _) = connect(&s.url, how).await;
        if let Some(first) = first {
            send_json(&mut ws, first).await;
        }
        let reason = closed_with(&mut ws, 4401).await;
        assert!(reason.contains(reason_has), "{name}: {reason}");
    }

    // An admin key authenticates but may not stream.
    let mut admin = connect_key(&s.url, s.ak()).await;
    let reason = closed_with(&mut admin, 4403).await;
    assert!(reason.starts_with("forbidden"), "{reason}");
}

#[tokio::test]
async fn publishable_streams_only_their_subject() {
    let s = start_with_config(&config("", ""));
    let pk = s.new_key("publishable").await;
    let token = customer_token(s.sk(), "c1", 600);
    let (mut ws, _) = connect(
        &s.url,
        Connect {
            bearer: Some(&pk),
            token_header: Some(&token),
            ..Connect::default()
        },
    )
    .await;
    for subjects in [json!(["c2"]), json!(["c1", "c2"])] {
        send_json(&mut ws, json!({"op": "subscribe", "subjects": subjects})).await;
        let error = recv_json(&mut ws).await;
        assert_eq!(error["type"], "error");
        assert_eq!(error["code"], "forbidden", "{error}");
    }
    assert_eq!(subscribe(&mut ws, &["c1"], None).await.1["subjects"], json!(["c1"]));
}

#[tokio::test]
async fn schema_changes_stream_live_and_resume_with_since() {
    let s = start_with_config(&config("", ""));
    let pk = s.new_key("publishable").await;
    let mut secret = connect_key(&s.url, s.sk()).await;
    subscribe(&mut secret, &[], None).await;
    let (mut browser, _) = connect(
        &s.url,
        Connect {
            protocols: token_protocols(&pk, Some(&customer_token(s.sk(), "c1", 600))),
            ..Connect::default()
        },
    )
    .await;
    subscribe(&mut browser, &["c1"], None).await;

    put_schema(&s, s.ak(), "api.call", 1).await;
    let update = recv_json(&mut secret).await;
    let (_, doc) = s.get("/v1/schema", s.sk()).await;
    assert_eq!(
        update,
        json!({"type": "schema.updated", "seq": 1, "data": {"etag": doc["etag"]}})
    );
    assert_eq!(
        recv_json(&mut browser).await,
        update,
        "project-wide messages reach every subscriber"
    );

    // The same schema again leaves the ETag alone: no message.
    put_schema(&s, s.ak(), "api.call", 1).await;
    assert_eq!(recv_json_within(&mut secret, Duration::from_millis(300)).await, None);
    // Settings and deletes change the ETag too.
    let (status, _) = s
        .call("PUT", "/v1/admin/settings", s.ak(), Some(json!({"strict_types": true})))
        .await;
    assert_eq!(status, 200);
    let (status, _) = s.call("DELETE", "/v1/admin/schemas/api.call", s.ak(), None).await;
    assert_eq!(status, 204);
    assert_eq!(recv_json(&mut secret).await["seq"], 2);
    assert_eq!(recv_json(&mut secret).await["seq"], 3);

    // A client that saw seq 1 resumes: exactly 2 and 3 are replayed before `subscribed`.
    let mut resumed = connect_key(&s.url, s.sk()).await;
    let (replayed, subscribed) = subscribe(&mut resumed, &["c1"], Some(1)).await;
    let seqs: Vec<&Value> = replayed.iter().map(|m| &m["seq"]).collect();
    assert_eq!(seqs, [&json!(2), &json!(3)]);
    assert_eq!(subscribed["seq"], 3);
    put_schema(&s, s.ak(), "api.call", 2).await;
    assert_eq!(
        recv_json(&mut resumed).await["seq"],
        4,
        "live after the replay, no repeat"
    );
    assert_eq!(recv_json_within(&mut resumed, Duration::from_millis(300)).await, None);

    // Caught up: nothing to replay. Ahead of the server: resync.
    let mut current = connect_key(&s.url, s.sk()).await;
    assert!(subscribe(&mut current, &[], Some(4)).await.0.is_empty());
    let mut ahead = connect_key(&s.url, s.sk()).await;
    let (before, subscribed) = subscribe(&mut ahead, &[], Some(99)).await;
    assert_eq!(before, [json!({"type": "resync", "seq": 4})]);
    assert_eq!(subscribed["seq"], 4);

    let metrics = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("meterline_stream_connections 5"), "{metrics}");
    assert!(metrics.contains("meterline_stream_frames_sent_total"), "{metrics}");
    assert!(
        metrics.contains("meterline_stream_slow_consumer_closes_total 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn seq_survives_kill_9_and_resume_gets_everything() {
    let dir = tempdir();
    write_config(dir.path(), &config("", ""));
    let s = Server::start_in(dir.clone(), &[]);
    let (sk, ak) = (s.sk().to_owned(), s.ak().to_owned());
    let mut ws = connect_key(&s.url, &sk).await;
    subscribe(&mut ws, &[], None).await;
    put_schema(&s, &ak, "a", 1).await;
    assert_eq!(recv_json(&mut ws).await["seq"], 1);
    s.kill9();
    assert!(matches!(
        ended(&mut ws, WAIT).await,
        Ended::Dropped(_) | Ended::Closed(..)
    ));

    let s = Server::start_in(dir, &[]);
    put_schema(&s, &ak, "b", 1).await;
    put_schema(&s, &ak, "c", 1).await;
    let mut ws = connect_key(&s.url, &sk).await;
    let (replayed, subscribed) = subscribe(&mut ws, &[], Some(1)).await;
    let seqs: Vec<&Value> = replayed.iter().map(|m| &m["seq"]).collect();
    assert_eq!(
        seqs,
        [&json!(2), &json!(3)],
        "seq continued after the crash; both replayed"
    );
    assert_eq!(subscribed["seq"], 3);
}

#[tokio::test]
async fn revocation_closes_streams_with_4403() {
    let s = start_with_config(&config("", ""));
    let pk = s.new_key("publishable").await;
    let sk2 = s.new_key("secret").await;
    let with_token = |token: String| {
        let pk = pk.clone();
        let url = s.url.clone();
        async move {
            let (ws, _) = connect(
                &url,
                Connect {
                    bearer: Some(&pk),
                    token_header: Some(&token),
                    ..Connect::default()
                },
            )
            .await;
            ws
        }
    };
    let mut by_sk2 = connect_key(&s.url, &sk2).await;
    let mut signed_by_sk2 = with_token(customer_token(&sk2, "c1", 600)).await;
    let mut signed_by_sk = with_token(customer_token(s.sk(), "c1", 600)).await;
    let mut by_sk = connect_key(&s.url, s.sk()).await;
    for ws in [&mut by_sk2, &mut signed_by_sk2, &mut signed_by_sk, &mut by_sk] {
        subscribe(ws, &["c1"], None).await;
    }

    let sk2_id = ApiKey::parse(&sk2).unwrap().id;
    let (status, _) = s
        .call("DELETE", &format!("/v1/admin/keys/{sk2_id}"), s.ak(), None)
        .await;
    assert_eq!(status, 204);
    for ws in [&mut by_sk2, &mut signed_by_sk2] {
        let reason = closed_with(ws, 4403).await;
        assert!(reason.contains(&sk2_id) && reason.contains("revoked"), "{reason}");
    }
    // The others stay open.
    for ws in [&mut signed_by_sk, &mut by_sk] {
        assert_eq!(subscribe(ws, &["c1"], None).await.1["type"], "subscribed");
    }

    // Revoking the publishable key with the CLI, while the server runs.
    let pk_id = ApiKey::parse(&pk).unwrap().id;
    let out = cli(s.dir.path(), &["admin", "keys", "revoke", &pk_id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let started = std::time::Instant::now();
    closed_with(&mut signed_by_sk, 4403).await;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(subscribe(&mut by_sk, &["c2"], None).await.1["type"], "subscribed");
}

#[tokio::test]
async fn token_expiry_closes_the_stream_with_4401() {
    let s = start_with_config(&config("", "token_leeway_secs = 0"));
    let pk = s.new_key("publishable").await;
    let (mut ws, _) = connect(
        &s.url,
        Connect {
            bearer: Some(&pk),
            token_header: Some(&customer_token(s.sk(), "c1", 2)),
            ..Connect::default()
        },
    )
    .await;
    subscribe(&mut ws, &["c1"], None).await;
    let reason = closed_with(&mut ws, 4401).await;
    assert!(reason.contains("expired"), "{reason}");
}

#[tokio::test]
async fn idle_clients_are_closed_and_answering_ones_kept() {
    let s = start_with_config(&config("", ""));
    let mut answering = connect_key(&s.url, s.sk()).await;
    let mut silent = connect_key(&s.url, s.sk()).await;
    subscribe(&mut answering, &[], None).await;
    subscribe(&mut silent, &[], None).await;
    // Reading answers the server's pings (every 200 ms) with pongs; 2.5 s > idle timeout.
    assert_eq!(
        recv_json_within(&mut answering, Duration::from_millis(2500)).await,
        None
    );
    assert_eq!(subscribe(&mut answering, &["c1"], None).await.1["type"], "subscribed");
    // The silent one read nothing (so sent no pong) and was closed after 1 s idle. (Its
    // client may fail writing the pongs it owes before it reads the close frame.)
    match ended(&mut silent, WAIT).await {
        Ended::Closed(code, reason) => assert!(code == 1001 && reason.contains("idle"), "{code} {reason}"),
        Ended::Dropped(why) => assert!(why.contains("Broken pipe") || why.contains("reset"), "{why}"),
    }
    let metrics = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("meterline_stream_connections 1\n"), "{metrics}");
}

#[tokio::test]
async fn projects_never_see_each_others_messages() {
    let s = start_with_config(&config("", ""));
    let out = cli(s.dir.path(), &["admin", "project", "create", "other"]);
    let other_sk = key_line(&out.stdout, "secret");
    let other_ak = key_line(&out.stdout, "admin");
    let mut mine = connect_key(&s.url, s.sk()).await;
    let mut theirs = connect_key(&s.url, &other_sk).await;
    subscribe(&mut mine, &["c1"], None).await;
    subscribe(&mut theirs, &["c1"], None).await;

    put_schema(&s, s.ak(), "a", 1).await;
    assert_eq!(recv_json(&mut mine).await["seq"], 1);
    assert_eq!(recv_json_within(&mut theirs, Duration::from_millis(500)).await, None);
    // Nor in a replay; each project counts its own seq.
    let mut replay = connect_key(&s.url, &other_sk).await;
    let (replayed, subscribed) = subscribe(&mut replay, &["c1"], Some(0)).await;
    assert!(replayed.is_empty(), "{replayed:?}");
    assert_eq!(subscribed["seq"], 0);
    put_schema(&s, &other_ak, "a", 1).await;
    assert_eq!(recv_json(&mut theirs).await["seq"], 1);
    assert_eq!(recv_json_within(&mut mine, Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn connection_limit_shutdown_and_plain_http() {
    let s = start_with_config(&config("max_connections = 2", ""));
    let response = s
        .http
        .get(format!("{}/v1/stream", s.url))
        .bearer_auth(s.sk())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 426);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "upgrade_required");

    let mut first = connect_key(&s.url, s.sk()).await;
    let mut second = connect_key(&s.url, s.sk()).await;
    // A connection is counted once its upgraded task runs, which the client's handshake does
    // not wait for: the answered subscribes show the first two hold the slots before the
    // third arrives (otherwise the third could take one of them first).
    for ws in [&mut first, &mut second] {
        subscribe(ws, &[], None).await;
    }
    let mut third = connect_key(&s.url, s.sk()).await;
    closed_with(&mut third, 1013).await;
    s.signal(SIGTERM);
    for ws in [&mut first, &mut second] {
        let reason = closed_with(ws, 1001).await;
        assert!(reason.contains("shutting down"), "{reason}");
    }
    assert!(s.wait_exit(Duration::from_secs(10)).success());
}
