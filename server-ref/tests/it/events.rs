//! `GET /v1/events`: pagination, every filter, parameter errors, scopes.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use common::*;
use serde_json::Value;

fn ids(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn pages_follow_the_cursor_oldest_first() {
    let s = Server::start();
    let batch: Vec<Value> = (0..25).map(|i| ev(&format!("p{i:02}"))).collect();
    s.send(&batch).await;

    let (status, first) = s.get("/v1/events?limit=10", s.sk()).await;
    assert_eq!(status, 200);
    assert_eq!(first["events"].as_array().unwrap().len(), 10);
    assert_eq!(first["events"][0], batch[0]);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = s.get(&format!("/v1/events?limit=10&cursor={cursor}"), s.sk()).await;
    assert_eq!(second["events"][0]["id"], "p10");
    let cursor = second["next_cursor"].as_str().unwrap().to_owned();
    let (_, third) = s.get(&format!("/v1/events?limit=10&cursor={cursor}"), s.sk()).await;
    assert_eq!(third["events"].as_array().unwrap().len(), 5);
    assert_eq!(third["next_cursor"], Value::Null);

    // An exact multiple of the page size ends with a null cursor on the last full page.
    let (_, all) = s.get("/v1/events?limit=25", s.sk()).await;
    assert_eq!(all["events"].as_array().unwrap().len(), 25);
    assert_eq!(all["next_cursor"], Value::Null);

    // The default page is 100.
    let more: Vec<Value> = (0..150).map(|i| ev(&format!("q{i:03}"))).collect();
    s.send(&more).await;
    let (_, default_page) = s.get("/v1/events", s.sk()).await;
    assert_eq!(default_page["events"].as_array().unwrap().len(), 100);
    assert!(default_page["next_cursor"].is_string());

    // The admin key reads too.
    let (status, _) = s.get("/v1/events?limit=1", s.ak()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn every_filter_applies() {
    let s = Server::start();
    let batch = vec![
        ev_at("a1", "api.call", "c1", "2026-01-01T00:00:00Z"),
        ev_at("a2", "api.call", "c2", "2026-01-02T00:00:00Z"),
        ev_at("a3", "storage.gb", "c1", "2026-01-03T00:00:00Z"),
        // 2026-01-03T23:30Z expressed with an offset: ordered by instant, not by text.
        ev_at("a4", "api.call", "c1", "2026-01-04T01:30:00+02:00"),
        ev_at("a5", "api.call", "c1", "2026-01-05T00:00:00.250Z"),
    ];
    let (_, resp) = s.send(&batch).await;
    assert_eq!(resp["accepted"], 5);

    let cases = [
        ("type=api.call", vec!["a1", "a2", "a4", "a5"]),
        ("subject=c1", vec!["a1", "a3", "a4", "a5"]),
        ("type=api.call&subject=c1", vec!["a1", "a4", "a5"]),
        ("from=2026-01-03T00:00:00Z", vec!["a3", "a4", "a5"]),
        ("to=2026-01-03T00:00:00Z", vec!["a1", "a2"]),
        ("from=2026-01-03T12:00:00Z&to=2026-01-05T00:00:00.250Z", vec!["a4"]),
        ("from=2026-01-02T01:00:00%2B01:00", vec!["a2", "a3", "a4", "a5"]),
        (
            "type=api.call&subject=c1&from=2026-01-02T00:00:00Z&to=2026-01-06T00:00:00Z",
            vec!["a4", "a5"],
        ),
        ("type=nothing", vec![]),
    ];
    for (query, want) in cases {
        let got = s.all_events(s.sk(), query).await;
        assert_eq!(ids(&got), want, "{query}");
    }
    // Filters combine with pagination.
    let (_, page) = s.get("/v1/events?type=api.call&limit=2", s.sk()).await;
    assert_eq!(ids(page["events"].as_array().unwrap()), ["a1", "a2"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = s
        .get(&format!("/v1/events?type=api.call&limit=2&cursor={cursor}"), s.sk())
        .await;
    assert_eq!(ids(page["events"].as_array().unwrap()), ["a4", "a5"]);
    assert_eq!(page["next_cursor"], Value::Null);
}

#[tokio::test]
async fn bad_parameters_are_400_naming_the_parameter() {
    let s = Server::start();
    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("cursor=abc", "cursor"),
        ("cursor=-5", "cursor"),
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("type=", "type"),
        ("subjects=c1", "subjects"),
        ("limit=5&limit=6", "limit"),
    ] {
        let (status, body) = s.get(&format!("/v1/events?{query}"), s.sk()).await;
        assert_error(status, &body, 400, "invalid_parameter");
        assert!(body["message"].as_str().unwrap().contains(name), "{query}: {body}");
    }
    let (status, _) = s.get("/v1/events?limit=1000", s.sk()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn reading_needs_a_valid_key() {
    let s = Server::start();
    let resp = s.http.get(format!("{}/v1/events", s.url)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");
}

/// The index names on `events`, from the database file.
async fn event_indexes(conn: &mut sqlx::SqliteConnection) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name")
        .fetch_all(conn)
        .await
        .unwrap()
}

/// Migration 5 on a file written before it (schema version 4, with the old
/// `(project, type, subject, seq)` index and events in it): the next start swaps the index,
/// records the version, and every filter and the dedup key work on the old events.
#[tokio::test]
async fn migration_5_swaps_the_subject_index_on_an_existing_file() {
    use sqlx::{Connection, Executor};

    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let s = Server::start_in(dir.clone(), &[]);
    let sk = s.sk().to_owned();
    let batch = vec![
        ev_at("m1", "api.call", "c1", "2026-01-01T00:00:00Z"),
        ev_at("m2", "api.call", "c2", "2026-01-02T00:00:00Z"),
        ev_at("m3", "storage.gb", "c1", "2026-01-03T00:00:00Z"),
    ];
    assert_eq!(s.send(&batch).await.1["accepted"], 3);
    s.signal(SIGTERM);
    assert!(s.wait_exit(std::time::Duration::from_secs(30)).success());

    // Put the file back to version 4 exactly as 0001_init.sql left the events table.
    let mut conn = sqlx::SqliteConnection::connect(&db_url(dir.path())).await.unwrap();
    conn.execute(
        "DROP INDEX events_type;
         CREATE INDEX events_type_subject ON events (project_id, type, subject, seq);
         DELETE FROM meterline_migrations WHERE version = 5;",
    )
    .await
    .unwrap();
    assert!(
        event_indexes(&mut conn)
            .await
            .contains(&"events_type_subject".to_owned())
    );
    conn.close().await.unwrap();

    let mut s = Server::start_in(dir.clone(), &[]);
    // Keys are printed at the first start only.
    s.secret = Some(sk.clone());
    let mut conn = sqlx::SqliteConnection::connect(&db_url(dir.path())).await.unwrap();
    let indexes = event_indexes(&mut conn).await;
    assert!(indexes.contains(&"events_type".to_owned()), "{indexes:?}");
    assert!(!indexes.contains(&"events_type_subject".to_owned()), "{indexes:?}");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM meterline_migrations WHERE version = 5")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(applied, 1);
    conn.close().await.unwrap();

    for (query, want) in [
        ("type=api.call", vec!["m1", "m2"]),
        ("subject=c1", vec!["m1", "m3"]),
        ("type=api.call&subject=c1", vec!["m1"]),
        ("type=storage.gb&subject=c2", vec![]),
    ] {
        assert_eq!(ids(&s.all_events(&sk, query).await), want, "{query}");
    }
    // The dedup key (the UNIQUE constraint, untouched) still holds for the old events.
    let (_, resp) = s
        .send(&[batch[0].clone(), ev_at("m4", "api.call", "c1", "2026-01-04T00:00:00Z")])
        .await;
    assert_eq!(
        (resp["accepted"].as_u64(), resp["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(ids(&s.all_events(&sk, "subject=c1").await), ["m1", "m3", "m4"]);
}
