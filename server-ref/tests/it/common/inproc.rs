//! An in-process server for the stream tests that publish messages themselves: the same
//! router and background tasks as the binary, listening on 127.0.0.1, plus direct access
//! to the store and hub so a test can append and publish `entitlements.updated` messages
//! the way the entitlement producers do (append in a transaction, commit, publish).

use std::sync::Arc;

use meterline_core::{entitlement::Entitlements, stream::ServerMessage};
use meterline_server::{
    app::{AppState, HUB_CAPACITY, create_project, router},
    config::Config,
    entitlements::metering::Metering,
    health,
    store::{Store, StreamFrame, Writer, append_message},
    stream::{
        Hub,
        upkeep::{self, Upkeep},
    },
};
use sqlx::{Connection, SqliteConnection};
use tokio::{sync::Mutex, task::JoinHandle};

pub struct InProcess {
    pub url: String,
    pub state: AppState,
    /// Secret and admin keys of project `default`.
    pub secret: String,
    pub admin: String,
    pub project_id: i64,
    publisher: Mutex<SqliteConnection>,
    server: JoinHandle<()>,
    _upkeep: Upkeep,
    pub dir: tempfile::TempDir,
}

impl InProcess {
    /// Starts a server with `meterline.toml` text `toml` on a fresh database. Needs a
    /// multi-thread runtime (`#[tokio::test(flavor = "multi_thread")]`).
    pub async fn start(toml: &str) -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let mut config: Config = toml.parse().unwrap();
        config.storage.database_url = super::db_url(dir.path());
        let metrics = health::install_metrics();
        let (store, write_conn) = Store::open(&config.storage).await.unwrap();
        let keys = create_project(
            &meterline_server::store::Storage::Sqlite(store.clone(), None),
            "default",
        )
        .await
        .unwrap();
        let project_id = store.project_by_name("default").await.unwrap().unwrap().id;
        let metering = Metering::new(Arc::new(Hub::new(HUB_CAPACITY)), config.entitlements.ttl_ms);
        let writer = Arc::new(Writer::spawn(
            write_conn,
            config.storage.writer_queue,
            config.storage.max_commit_events,
            metering,
        ));
        let (_, publisher) = Store::open(&config.storage).await.unwrap();
        let state = AppState::new(config, store, writer, metrics);
        let upkeep = upkeep::spawn(&state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = router(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        InProcess {
            url,
            state,
            secret: keys.secret,
            admin: keys.admin,
            project_id,
            publisher: Mutex::new(publisher),
            server,
            _upkeep: upkeep,
            dir,
        }
    }

    /// Creates another project; returns its id and secret key.
    pub async fn other_project(&self, name: &str) -> (i64, String) {
        let keys = create_project(&self.state.store, name).await.unwrap();
        let id = self.state.store.project_by_name(name).await.unwrap().unwrap().id;
        (id, keys.secret)
    }

    /// Appends `entitlements.updated` for each subject (with `version` = its index in
    /// `subjects`) in one transaction of `project_id`, commits and publishes. Returns the
    /// seqs, in order.
    pub async fn publish_to(&self, project_id: i64, subjects: &[&str]) -> Vec<u64> {
        let order = self.state.hub.sequence().await;
        let mut conn = self.publisher.lock().await;
        let mut tx = conn.begin().await.unwrap();
        let mut frames: Vec<StreamFrame> = Vec::with_capacity(subjects.len());
        for (version, subject) in subjects.iter().enumerate() {
            let message = |seq| ServerMessage::EntitlementsUpdated {
                seq,
                subject: (*subject).to_owned(),
                data: Entitlements {
                    subject: (*subject).to_owned(),
                    version: version as u64,
                    ttl_ms: 60_000,
                    entitlements: Default::default(),
                },
            };
            frames.push(
                append_message(&mut tx, project_id, Some(subject), message)
                    .await
                    .unwrap(),
            );
        }
        tx.commit().await.unwrap();
        let seqs = frames.iter().map(|f| f.seq).collect();
        order.publish(frames);
        seqs
    }

    /// [`InProcess::publish_to`] in project `default`.
    pub async fn publish(&self, subjects: &[&str]) -> Vec<u64> {
        self.publish_to(self.project_id, subjects).await
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.server.abort();
    }
}
