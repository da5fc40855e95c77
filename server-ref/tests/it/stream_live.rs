//! Stream delivery of subject messages, with an in-process server (same router and
//! background tasks as the binary, on 127.0.0.1) so the test can append and publish
//! `entitlements.updated` the way the entitlement producers do: routing by subject and
//! project, resumes that replay exactly what was missed, replay joining live delivery
//! without gap or repeat while messages keep coming, resync after pruning, and a reader
//! that stops reading while 100,000 messages are published, and a connection whose hub
//! queue overflows.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::{sync::Arc, time::Duration};

use common::{inproc::InProcess, ws::*};
use meterline_server::{app::HUB_CAPACITY, store::StreamFrame};
use serde_json::{Value, json};

fn seqs(frames: &[Value]) -> Vec<u64> {
    frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect()
}

/// Reads frames until one has `seq` ≥ `last`; returns them all.
async fn read_through(ws: &mut Ws, last: u64) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = recv_json(ws).await;
        let seq = frame["seq"].as_u64().unwrap();
        frames.push(frame);
        if seq >= last {
            return frames;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_messages_reach_only_their_subscribers() {
    let s = InProcess::start("").await;
    let mut c1 = connect_key(&s.url, &s.secret).await;
    let mut c2 = connect_key(&s.url, &s.secret).await;
    subscribe(&mut c1, &["c1"], None).await;
    subscribe(&mut c2, &["c2"], None).await;
    let created: Value = reqwest::Client::new()
        .post(format!("{}/v1/admin/keys", s.url))
        .bearer_auth(&s.admin)
        .json(&json!({"kind": "publishable"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pk = created["key"].as_str().unwrap();
    let token = customer_token(&s.secret, "c1", 600);
    let (mut browser, _) = connect(
        &s.url,
        Connect {
            bearer: Some(pk),
            token_header: Some(&token),
            ..Connect::default()
        },
    )
    .await;
    subscribe(&mut browser, &["c1"], None).await;

    assert_eq!(s.publish(&["c1", "c2", "c1"]).await, [1, 2, 3]);
    let first = recv_json(&mut c1).await;
    assert_eq!(
        first,
        json!({"type": "entitlements.updated", "seq": 1, "subject": "c1",
               "data": {"subject": "c1", "version": 0, "ttl_ms": 60000, "entitlements": {}}})
    );
    assert_eq!(recv_json(&mut c1).await["seq"], 3);
    assert_eq!(recv_json(&mut c2).await["seq"], 2);
    assert_eq!(recv_json(&mut browser).await, first);
    assert_eq!(recv_json(&mut browser).await["seq"], 3);

    // Another project's messages for a subject of the same name never arrive.
    let (other, _) = s.other_project("other").await;
    s.publish_to(other, &["c1"]).await;
    // Unsubscribed subjects stop.
    send_json(&mut c1, json!({"op": "unsubscribe", "subjects": ["c1"]})).await;
    assert_eq!(
        recv_json(&mut c1).await,
        json!({"type": "subscribed", "seq": 3, "subjects": []})
    );
    s.publish(&["c1"]).await;
    assert_eq!(recv_json(&mut browser).await["seq"], 4, "not the other project's seq 1");
    for ws in [&mut c1, &mut c2, &mut browser] {
        assert_eq!(recv_json_within(ws, Duration::from_millis(300)).await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_replays_exactly_the_missed_messages() {
    let s = InProcess::start("").await;
    let mut ws = connect_key(&s.url, &s.secret).await;
    subscribe(&mut ws, &["c1"], None).await;
    s.publish(&["c1"]).await;
    assert_eq!(recv_json(&mut ws).await["seq"], 1);
    drop(ws);

    // Missed while away: five for c1, three for c2, interleaved.
    let published = s.publish(&["c1", "c2", "c1", "c2", "c1", "c1", "c2", "c1"]).await;
    assert_eq!(published, [2, 3, 4, 5, 6, 7, 8, 9]);
    let mut ws = connect_key(&s.url, &s.secret).await;
    let (replayed, subscribed) = subscribe(&mut ws, &["c1"], Some(1)).await;
    assert_eq!(seqs(&replayed), [2, 4, 6, 7, 9]);
    assert!(replayed.iter().all(|f| f["subject"] == "c1"));
    assert_eq!(subscribed["seq"], 9);

    // Adding c2 on the same connection replays c2's missed messages only.
    let (replayed, subscribed) = subscribe(&mut ws, &["c1", "c2"], Some(1)).await;
    assert_eq!(seqs(&replayed), [3, 5, 8]);
    assert_eq!(subscribed["subjects"], json!(["c1", "c2"]));

    s.publish(&["c2", "c1"]).await;
    assert_eq!(seqs(&[recv_json(&mut ws).await, recv_json(&mut ws).await]), [10, 11]);
    assert_eq!(recv_json_within(&mut ws, Duration::from_millis(300)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_joins_live_delivery_without_gap_or_repeat() {
    let s = Arc::new(InProcess::start("").await);
    const TOTAL: u64 = 600;
    let publisher = {
        let s = s.clone();
        tokio::spawn(async move {
            for _ in 0..TOTAL {
                s.publish(&["c1"]).await;
                tokio::task::yield_now().await;
            }
        })
    };
    // Clients join from the beginning (since 0) at different moments while messages keep
    // being committed and published.
    let mut clients = Vec::new();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let mut ws = connect_key(&s.url, &s.secret).await;
        let (replayed, subscribed) = subscribe(&mut ws, &["c1"], Some(0)).await;
        clients.push((ws, replayed, subscribed["seq"].as_u64().unwrap()));
    }
    publisher.await.unwrap();
    let mut joined_mid_stream = 0;
    for (mut ws, replayed, at) in clients {
        assert_eq!(seqs(&replayed), (1..=at).collect::<Vec<_>>());
        let live = if at < TOTAL {
            read_through(&mut ws, TOTAL).await
        } else {
            Vec::new()
        };
        let all: Vec<u64> = seqs(&replayed).into_iter().chain(seqs(&live)).collect();
        assert_eq!(all, (1..=TOTAL).collect::<Vec<_>>(), "joined at {at}");
        joined_mid_stream += u32::from(at > 0 && at < TOTAL);
    }
    assert!(
        joined_mid_stream >= 2,
        "the publisher finished too early to test joining"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_when_the_log_was_pruned() {
    let s = InProcess::start("[stream]\nretention_secs = 1\n").await;
    s.publish(&["c1", "c1", "c1"]).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let mut ws = connect_key(&s.url, &s.secret).await;
    let (before, subscribed) = subscribe(&mut ws, &["c1"], Some(1)).await;
    assert_eq!(before, [json!({"type": "resync", "seq": 3})]);
    assert_eq!(subscribed["seq"], 3);
    // Resuming from the current seq needs nothing pruned.
    let mut current = connect_key(&s.url, &s.secret).await;
    assert!(subscribe(&mut current, &["c1"], Some(3)).await.0.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_is_closed_and_others_are_served() {
    let s = InProcess::start("[stream]\nsend_timeout_ms = 500\n").await;
    let rss_before = rss_kib(std::process::id());
    let mut slow = connect_key(&s.url, &s.secret).await;
    subscribe(&mut slow, &["c1"], None).await;
    let mut healthy = connect_key(&s.url, &s.secret).await;
    subscribe(&mut healthy, &["c2"], None).await;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 100 {
            got.push(recv_json(&mut healthy).await["seq"].as_u64().unwrap());
        }
        (got, healthy)
    });

    // 100,000 messages for c1 that `slow` never reads, and 100 for c2 among them.
    let mut c2_seqs = Vec::new();
    let batch: Vec<&str> = std::iter::repeat_n("c1", 1000).chain(["c2"]).collect();
    for _ in 0..100 {
        c2_seqs.push(*s.publish(&batch).await.last().unwrap());
    }
    let (got, _healthy) = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
    assert_eq!(got, c2_seqs);

    // The slow reader was cut off: what it finally reads ends in 1008 (or a reset), far
    // short of 100,000 messages.
    let mut delivered = 0u64;
    let end = loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut slow))
            .await
            .unwrap()
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_))) => delivered += 1,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => {
                break format!("close {:?}", frame.map(|f| u16::from(f.code)));
            }
            Some(Ok(_)) => {}
            other => break format!("dropped {other:?}"),
        }
    };
    eprintln!("the slow reader got {delivered} of 100,000 messages, then: {end}");
    assert!(delivered < 100_000, "{delivered} delivered, {end}");
    assert!(end == "close Some(1008)" || end.starts_with("dropped"), "{end}");
    assert_eq!(s.state.streams.open_connections(), 1, "only the healthy one is left");

    let rss = rss_kib(std::process::id());
    assert!(
        rss < rss_before + 256 * 1024,
        "RSS grew from {rss_before} KiB to {rss} KiB"
    );
    let mut fresh = connect_key(&s.url, &s.secret).await;
    subscribe(&mut fresh, &["c1"], None).await;
    let seq = s.publish(&["c1"]).await[0];
    assert_eq!(recv_json(&mut fresh).await["seq"], seq);
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_connection_queue_closes_the_reader_with_1008() {
    // Sends never time out here: only the hub's per-connection queue can cut the reader off.
    // One thread: the publish below routes every frame before the connection's task runs,
    // so the queue overflows whatever the connection's send speed (a connection that
    // coalesces its queued frames into one write could otherwise keep up with the hub).
    let s = InProcess::start("[stream]\nsend_timeout_ms = 600000\n").await;
    let mut flooded = connect_key(&s.url, &s.secret).await;
    subscribe(&mut flooded, &["c1"], None).await;
    let mut other = connect_key(&s.url, &s.secret).await;
    subscribe(&mut other, &["c2"], None).await;
    // One publish of more frames for c1 than a connection's queue holds (HUB_CAPACITY):
    // the hub routes them all at once, faster than any connection sends. (Routed straight
    // to the hub: what is tested is the routing, not the log.)
    let text: axum::extract::ws::Utf8Bytes = json!({"type": "entitlements.updated", "seq": 0}).to_string().into();
    let frame = |seq: u64, subject: &str| StreamFrame {
        project_id: s.project_id,
        seq,
        subject: Some(subject.to_owned()),
        frame: text.clone(),
    };
    let mut frames: Vec<StreamFrame> = (1..=2 * HUB_CAPACITY as u64).map(|seq| frame(seq, "c1")).collect();
    frames.push(frame(2 * HUB_CAPACITY as u64 + 1, "c2"));
    s.state.hub.sequence().await.publish(frames);
    match ended(&mut flooded, WAIT).await {
        Ended::Closed(code, reason) => {
            assert_eq!(code, 1008, "{reason}");
            assert!(reason.starts_with("slow consumer: fell "), "{reason}");
            assert!(reason.ends_with(" messages behind; reconnect with since"), "{reason}");
        }
        other => panic!("expected close 1008, got {other:?}"),
    }
    assert_eq!(
        recv_json(&mut other).await,
        json!({"type": "entitlements.updated", "seq": 0})
    );
    // The closed connection's task ends after its close handshake: wait for it.
    let deadline = tokio::time::Instant::now() + WAIT;
    while s.state.streams.open_connections() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flooded connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.state.hub.receivers(), 1, "its route is gone with it");
}
