//! What the stream benches share: the real `meterline-server` binary (release) on a fresh
//! SQLite file in a temporary directory (or a fresh PostgreSQL database, and then possibly a
//! second node on it), configured to hold many stream connections — no pings or idle
//! closes while they are held, no rate limit in the way — with the keys it printed at its
//! first start. Killed on drop.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use tempfile::TempDir;

/// A running bench server.
pub struct BenchServer {
    /// The server process (its `id()` for RSS readings).
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The project's secret key.
    pub secret: String,
    /// The project's admin key.
    pub admin: String,
    _dir: TempDir,
}

impl BenchServer {
    /// Starts the server for up to `connections` stream connections.
    #[allow(dead_code)]
    pub fn start(connections: usize) -> Self {
        Self::start_on(connections, None)
    }

    /// Starts the server for up to `connections` stream connections on `database_url`, or
    /// on a fresh SQLite file when `None`. The first node on a database prints the keys.
    pub fn start_on(connections: usize, database_url: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("meterline.toml"),
            format!(
                "[stream]\nping_interval_ms = 600000\nidle_timeout_ms = 1200000\nmax_connections = {}\n\
                 [limits]\nrequests_per_second = 100000\nburst = 100000\n",
                connections + 10
            ),
        )
        .unwrap();
        let url = database_url.map_or_else(
            || format!("sqlite://{}", dir.path().join("bench.db").display()),
            str::to_owned,
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_meterline-server"))
            .args(["--bind", "127.0.0.1:0", "--database-url", &url])
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start meterline-server");
        let (mut secret, mut admin, mut base) = (String::new(), String::new(), String::new());
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(k) = line.strip_prefix("secret key: ") {
                secret = k.to_owned();
            } else if let Some(k) = line.strip_prefix("admin key: ") {
                admin = k.to_owned();
            } else if let Some(u) = line.strip_prefix("meterline-server listening on ") {
                base = u.to_owned();
                break;
            }
        }
        assert!(
            !base.is_empty(),
            "meterline-server on {url} did not start (its error is above)"
        );
        BenchServer {
            child,
            base,
            secret,
            admin,
            _dir: dir,
        }
    }

    /// `ws://127.0.0.1:PORT/v1/stream`.
    pub fn stream_url(&self) -> String {
        self.base.replacen("http://", "ws://", 1) + "/v1/stream"
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh PostgreSQL database next to the one `admin_url` names (its user must be allowed
/// to create databases); returns its URL.
#[allow(dead_code)]
pub fn fresh_pg_database(admin_url: &str) -> String {
    use sqlx::Connection;
    assert!(
        admin_url.starts_with("postgres://") || admin_url.starts_with("postgresql://"),
        "BENCH_DATABASE_URL must be a postgres:// URL, not {admin_url:?}"
    );
    let name = format!("meterline_bench_{}", std::process::id());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("BENCH_DATABASE_URL {admin_url:?}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    });
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}
