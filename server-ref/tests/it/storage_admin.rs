//! The server's store ([`Storage`]) beyond the event path — projects, keys and their
//! revocation, schemas and settings with their stream messages, the log's pruning — as one
//! set of cases run on SQLite (`*_sqlite`) and on PostgreSQL (`*_postgres`, `#[ignore]`d in
//! a plain `cargo test`; run by `make test-postgres`). The PostgreSQL-only case proves that
//! another node hears about revocations and schema changes at commit.

use std::{sync::Arc, time::Duration};

use meterline_core::key::KeyKind;
use meterline_server::{
    auth::mint,
    entitlements::metering::Metering,
    schemas::etag_of,
    store::{
        ConfigNotice, LogRead, SchemaChange, SchemaOutcome, SettingsUpdate, Storage, Store, StoreError, Writer,
        now_rfc3339,
    },
    stream::Hub,
};
use serde_json::json;

use crate::storage::{pg_database, pg_node};

/// The SQLite store as the server runs it (with its writer).
pub(crate) async fn sqlite() -> (Storage, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = meterline_server::config::StorageConfig {
        database_url: crate::common::db_url(dir.path()),
        ..Default::default()
    };
    let (store, conn) = Store::open(&config).await.unwrap();
    let writer = Arc::new(Writer::spawn(
        conn,
        64,
        1000,
        Metering::new(Arc::new(Hub::new(64)), 60_000),
    ));
    (Storage::Sqlite(store, Some(writer)), dir)
}

pub(crate) async fn postgres() -> Storage {
    Storage::Postgres(pg_node(&pg_database().await).await)
}

/// Projects are found by name and id; keys are stored once, listed in creation order,
/// give their customer-token signer, and are revoked once (the first time is kept), only
/// within their project; `keys_revoked_since` names them.
async fn projects_and_keys(store: &Storage) {
    assert_eq!(store.project_count().await.unwrap(), 0);
    let secret = mint(KeyKind::Secret);
    let admin = mint(KeyKind::Admin);
    let p = store
        .create_project("p", &[secret.to_new_key(), admin.to_new_key()])
        .await
        .unwrap();
    let q = store.create_project("q", &[]).await.unwrap();
    assert_eq!(store.project_count().await.unwrap(), 2);
    assert_eq!(store.project_by_name("p").await.unwrap(), Some(p.clone()));
    assert_eq!(store.project_by_name("nope").await.unwrap(), None);
    assert_eq!(store.project(q.id).await.unwrap(), q);
    assert!(matches!(store.project(q.id + 100).await, Err(StoreError::NotFound(_))));
    assert_eq!(
        (p.strict_types, p.client_event_types.len(), p.allowed_origins.len()),
        (false, 0, 0)
    );

    tokio::time::sleep(Duration::from_millis(5)).await;
    let publishable = mint(KeyKind::Publishable);
    let record = store.insert_key(p.id, &publishable.to_new_key()).await.unwrap();
    assert_eq!((record.kind, record.project_id), (KeyKind::Publishable, p.id));
    assert!(matches!(
        store.insert_key(q.id, &publishable.to_new_key()).await,
        Err(StoreError::Conflict(_))
    ));
    let ids: Vec<String> = store.keys(p.id).await.unwrap().into_iter().map(|k| k.id).collect();
    let mut want = vec![secret.key.id.clone(), admin.key.id.clone()];
    want.sort();
    want.push(publishable.key.id.clone());
    assert_eq!(ids, want, "oldest first (same instant: by id)");
    assert!(store.keys(q.id).await.unwrap().is_empty());
    let found = store.key(&secret.key.id).await.unwrap().unwrap();
    assert_eq!(
        (found.secret_hash, found.revoked_at),
        (secret.secret_hash.clone(), None)
    );
    assert_eq!(store.key("unknown").await.unwrap(), None);

    let signer = store.token_signer(&secret.key.id).await.unwrap().unwrap();
    assert_eq!(
        (signer.project_id, signer.kind, signer.revoked),
        (p.id, KeyKind::Secret, false)
    );
    assert_eq!(signer.signing_key, Some(secret.key.customer_token_signing_key()));
    assert_eq!(
        store.token_signer(&admin.key.id).await.unwrap().unwrap().signing_key,
        None
    );
    assert_eq!(store.token_signer("unknown").await.unwrap(), None);

    let since = now_rfc3339();
    assert_eq!(store.revoke_key(Some(q.id), &secret.key.id).await.unwrap(), None);
    assert_eq!(store.key(&secret.key.id).await.unwrap().unwrap().revoked_at, None);
    let revoked = store.revoke_key(Some(p.id), &secret.key.id).await.unwrap().unwrap();
    let at = revoked.revoked_at.clone().unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = store.revoke_key(None, &secret.key.id).await.unwrap().unwrap();
    assert_eq!(
        again.revoked_at.as_deref(),
        Some(at.as_str()),
        "the first revocation time stays"
    );
    assert_eq!(store.revoke_key(None, "unknown").await.unwrap(), None);
    assert_eq!(
        store.keys_revoked_since(&since).await.unwrap(),
        vec![(secret.key.id.clone(), at.clone())]
    );
    assert!(store.keys_revoked_since("9999").await.unwrap().is_empty());
    assert!(store.token_signer(&secret.key.id).await.unwrap().unwrap().revoked);
}

/// Schema and settings changes: created / replaced / deleted / not found, each change of
/// the `/v1/schema` ETag announced by one `schema.updated` message in seq order (none when
/// the ETag stays); the log reads them back and, once pruned, asks older resumes to resync.
async fn schemas_settings_and_the_log(store: &Storage) {
    let p = store.create_project("p", &[]).await.unwrap().id;
    let schema = |n: u64| json!({"type": "object", "properties": {"n": {"const": n}}});
    let put = |n: u64| async move {
        let schema = schema(n);
        store
            .change_schema(
                p,
                SchemaChange::Put {
                    event_type: "a",
                    schema: &schema,
                },
                etag_of,
                false,
            )
            .await
            .unwrap()
    };
    let first = put(1).await;
    assert!(matches!(first.outcome, SchemaOutcome::Created(_)), "{first:?}");
    assert_eq!(first.frame.as_ref().map(|f| f.seq), Some(1));
    let second = put(2).await;
    assert!(matches!(second.outcome, SchemaOutcome::Replaced(_)), "{second:?}");
    assert_eq!(second.frame.as_ref().map(|f| f.seq), Some(2));
    let missing = store
        .change_schema(p, SchemaChange::Delete { event_type: "zz" }, etag_of, false)
        .await
        .unwrap();
    assert_eq!((missing.outcome, missing.frame), (SchemaOutcome::NotFound, None));
    let strict = SettingsUpdate {
        strict_types: Some(true),
        ..Default::default()
    };
    let changed = store
        .change_schema(p, SchemaChange::Settings(&strict), etag_of, false)
        .await
        .unwrap();
    assert_eq!(changed.outcome, SchemaOutcome::Settings);
    assert_eq!(changed.frame.as_ref().map(|f| f.seq), Some(3));
    let origins = SettingsUpdate {
        allowed_origins: Some(vec!["https://app.example.com".into()]),
        ..Default::default()
    };
    let unchanged_etag = store
        .change_schema(p, SchemaChange::Settings(&origins), etag_of, false)
        .await
        .unwrap();
    assert_eq!(unchanged_etag.frame, None, "origins are not part of /v1/schema");
    let project = store.project(p).await.unwrap();
    assert!(project.strict_types);
    assert_eq!(project.allowed_origins, ["https://app.example.com"]);
    assert_eq!(store.schema(p, "a").await.unwrap().unwrap().schema, schema(2));
    assert_eq!(store.schemas(p).await.unwrap().len(), 1);
    let deleted = store
        .change_schema(p, SchemaChange::Delete { event_type: "a" }, etag_of, false)
        .await
        .unwrap();
    assert_eq!(deleted.outcome, SchemaOutcome::Deleted);
    assert_eq!(deleted.frame.as_ref().map(|f| f.seq), Some(4));
    assert_eq!(store.schema(p, "a").await.unwrap(), None);

    assert_eq!(store.stream_seq(p).await.unwrap(), 4);
    let LogRead::Covered { frames, current } = store.stream_since(p, 1, &[], 100).await.unwrap() else {
        panic!("the log covers seq 1");
    };
    assert_eq!(
        (frames.iter().map(|f| f.seq).collect::<Vec<_>>(), current),
        (vec![2, 3, 4], 4)
    );
    let text: serde_json::Value = serde_json::from_str(&frames[0].frame).unwrap();
    assert_eq!(
        (text["type"].as_str(), text["seq"].as_u64()),
        (Some("schema.updated"), Some(2))
    );

    let deleted = store
        .prune_stream_log(chrono::Utc::now().timestamp_millis() + 1000)
        .await
        .unwrap();
    assert_eq!(deleted, 4);
    assert_eq!(
        store.stream_since(p, 0, &[], 100).await.unwrap(),
        LogRead::Resync { current: 4 }
    );
    assert_eq!(
        store.stream_since(p, 4, &[], 100).await.unwrap(),
        LogRead::Covered {
            frames: vec![],
            current: 4
        }
    );
    // A change from another process: on SQLite marked for the running server to relay; on
    // PostgreSQL every node's follower delivers it, so there is nothing to relay.
    let relayed = store
        .change_schema(
            p,
            SchemaChange::Put {
                event_type: "b",
                schema: &schema(3),
            },
            etag_of,
            true,
        )
        .await
        .unwrap();
    let taken = store.take_relayed().await.unwrap();
    if store.publishes_locally() {
        assert_eq!(taken, relayed.frame.into_iter().collect::<Vec<_>>());
    } else {
        assert!(taken.is_empty());
    }
    assert!(store.take_relayed().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn projects_and_keys_sqlite() {
    let (store, _dir) = sqlite().await;
    projects_and_keys(&store).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn projects_and_keys_postgres() {
    projects_and_keys(&postgres().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn schemas_settings_and_the_log_sqlite() {
    let (store, _dir) = sqlite().await;
    schemas_settings_and_the_log(&store).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn schemas_settings_and_the_log_postgres() {
    schemas_settings_and_the_log(&postgres().await).await;
}

/// Node B hears, at commit, what node A changed: a revoked key and a project whose schemas
/// or settings changed (so B drops its cached key, streams and schemas).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn another_node_hears_revocations_and_schema_changes() {
    let url = pg_database().await;
    let (a, b) = (pg_node(&url).await, pg_node(&url).await);
    let mut heard = b.follow_config().await.unwrap();
    let key = mint(KeyKind::Secret);
    let p = a.create_project("p", &[key.to_new_key()]).await.unwrap().id;
    a.revoke_key(None, &key.key.id).await.unwrap();
    assert_eq!(next(&mut heard).await, ConfigNotice::KeyRevoked(key.key.id.clone()));
    // Revoking again changes nothing and says nothing; a settings change names the project.
    a.revoke_key(None, &key.key.id).await.unwrap();
    let origins = SettingsUpdate {
        allowed_origins: Some(vec!["https://x.example".into()]),
        ..Default::default()
    };
    a.change_schema(p, SchemaChange::Settings(&origins), etag_of)
        .await
        .unwrap();
    assert_eq!(next(&mut heard).await, ConfigNotice::Project(p));
}

/// The next configuration notice, within 5 s.
async fn next(heard: &mut meterline_server::store::ConfigFollower) -> ConfigNotice {
    tokio::time::timeout(Duration::from_secs(5), heard.next())
        .await
        .expect("no notice within 5 s")
        .unwrap()
}

/// The pool's connections run with the configured `statement_timeout` (30 s by default).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (make test-postgres)"]
async fn statements_run_with_the_configured_timeout() {
    let url = pg_database().await;
    let settings = meterline_server::store::PgSettings {
        statement_timeout: Duration::from_millis(250),
        ..Default::default()
    };
    let node = meterline_server::store::PgStore::open(&url, &settings).await.unwrap();
    assert_eq!(node.statement_timeout().await.unwrap(), "250ms");
    assert_eq!(
        pg_node(&url).await.statement_timeout().await.unwrap(),
        "30s",
        "the default"
    );
}
