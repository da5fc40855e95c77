//! Test harness: runs the real `meterline-server` binary on a real SQLite file in a temp
//! directory, reads the listening line and keys from its stdout, and kills it on drop.

#![allow(dead_code, clippy::unwrap_used, missing_docs)]

pub mod catalog;
pub mod delivery;
pub mod inproc;
pub mod ws;

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_meterline-server");

/// A running server.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    /// Keys printed at first start (None on later starts).
    pub secret: Option<String>,
    pub admin: Option<String>,
    pub dir: Arc<tempfile::TempDir>,
    pub http: Client,
}

impl Server {
    /// A fresh server on a new database.
    pub fn start() -> Server {
        Server::start_in(Arc::new(tempfile::tempdir().unwrap()), &[])
    }

    /// A server on the database in `dir` (created on first use), with extra arguments.
    pub fn start_in(dir: Arc<tempfile::TempDir>, extra: &[&str]) -> Server {
        Server::start_bound(dir, "127.0.0.1:0", extra)
    }

    /// [`Server::start_in`] listening on `bind` (a restart on the port a client knows).
    pub fn start_bound(dir: Arc<tempfile::TempDir>, bind: &str, extra: &[&str]) -> Server {
        Server::start_logging(dir, bind, extra, "info")
    }

    /// [`Server::start_bound`] with `RUST_LOG` = `rust_log` (the log is `server.log`).
    pub fn start_logging(dir: Arc<tempfile::TempDir>, bind: &str, extra: &[&str], rust_log: &str) -> Server {
        let url = db_url(dir.path());
        Server::start_on(dir, &url, bind, extra, rust_log)
    }

    /// A server on the database at `database_url` (e.g. PostgreSQL), logging to `dir`.
    pub fn start_on(
        dir: Arc<tempfile::TempDir>,
        database_url: &str,
        bind: &str,
        extra: &[&str],
        rust_log: &str,
    ) -> Server {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("server.log"))
            .unwrap();
        let mut child = Command::new(BIN)
            .args(["--bind", bind, "--database-url", database_url])
            .args(extra)
            .current_dir(dir.path())
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap();
        let Some(banner) = read_banner(&mut child, Duration::from_secs(60)) else {
            let _ = child.kill();
            let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
            panic!("server did not print its listening line; log:\n{log}");
        };
        let Banner { url, secret, admin } = banner;
        Server {
            child: Some(child),
            url,
            secret,
            admin,
            dir,
            http: Client::new(),
        }
    }

    pub fn sk(&self) -> &str {
        self.secret.as_deref().expect("first start prints a secret key")
    }

    pub fn ak(&self) -> &str {
        self.admin.as_deref().expect("first start prints an admin key")
    }

    pub fn db_url(&self) -> String {
        db_url(self.dir.path())
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends a signal (libc number) to the server.
    pub fn signal(&self, sig: i32) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{sig} failed");
    }

    /// `kill -9` and reap.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits for the process to exit (after a signal), up to `timeout`.
    pub fn wait_exit(mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// POST with explicit headers; returns status, headers and the body parsed as JSON
    /// (`Value::Null` for an empty body).
    pub async fn post_raw(
        &self,
        path: &str,
        key: Option<&str>,
        content_type: Option<&str>,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.post(format!("{}{path}", self.url)).body(body);
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(enc) = encoding {
            req = req.header("content-encoding", enc);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("non-JSON body ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        (status, headers, value)
    }

    /// POST a batch (JSON array) to `/v1/events` with the secret key.
    pub async fn send(&self, events: &[Value]) -> (StatusCode, Value) {
        let body = serde_json::to_vec(events).unwrap();
        let (s, _, v) = self
            .post_raw("/v1/events", Some(self.sk()), Some(BATCH), None, body)
            .await;
        (s, v)
    }

    /// A request with a JSON body (or none) and a key.
    pub async fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("authorization", format!("Bearer {key}"));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("non-JSON body ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        (status, value)
    }

    /// Creates a key of `kind` (`secret`, `publishable`, `admin`) with the admin key.
    pub async fn new_key(&self, kind: &str) -> String {
        let (status, body) = self
            .call("POST", "/v1/admin/keys", self.ak(), Some(json!({"kind": kind})))
            .await;
        assert_eq!(status, 201, "{body}");
        body["key"].as_str().unwrap().to_owned()
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call("GET", path, key, None).await
    }

    /// Every stored event matching `query` (e.g. `type=a&subject=b`), following cursors.
    pub async fn all_events(&self, key: &str, query: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/events?limit=1000&{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = self.get(&path, key).await;
            assert_eq!(status, 200, "{page}");
            out.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
/// What a starting server prints on stdout before it serves: its URL and, on a first start,
/// the project's keys.
pub struct Banner {
    /// `http://…` from the `meterline-server listening on …` line.
    pub url: String,
    /// The `secret key: …` line, printed at a first start only.
    pub secret: Option<String>,
    /// The `admin key: …` line, printed at a first start only.
    pub admin: Option<String>,
}

/// Reads `child`'s stdout (piped) up to the listening line, at most `within`; `None` if it
/// did not come. The rest of stdout is drained in the background, so the child never blocks
/// on a full pipe.
pub fn read_banner(child: &mut Child, within: Duration) -> Option<Banner> {
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut secret, mut admin) = (None, None);
    let deadline = Instant::now() + within;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()?;
        if let Some(k) = line.strip_prefix("secret key: ") {
            secret = Some(k.to_owned());
        } else if let Some(k) = line.strip_prefix("admin key: ") {
            admin = Some(k.to_owned());
        } else if let Some(u) = line.strip_prefix("meterline-server listening on ") {
            return Some(Banner {
                url: u.to_owned(),
                secret,
                admin,
            });
        }
    }
}

pub fn db_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("m.db").display())
}

pub const BATCH: &str = "application/cloudevents-batch+json";
pub const SINGLE: &str = "application/cloudevents+json";
pub const SIGTERM: i32 = 15;

/// Runs the binary with `args` (an admin command) against `dir`'s database.
pub fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--database-url", &db_url(dir)])
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Parses `secret key: …` / `admin key: …` lines.
pub fn key_line(stdout: &[u8], label: &str) -> String {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{label} key: ")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no `{label} key:` line in {text:?}"))
}

/// A realistic event with five data fields.
pub fn ev(id: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "billing-api",
        "type": "api.call",
        "subject": "customer-42",
        "time": "2026-11-24T10:00:00.123Z",
        "datacontenttype": "application/json",
        "data": {"tokens": 1234, "model": "m-large", "region": "eu-west-1", "latency_ms": 87.5, "cached": false}
    })
}

/// An event with chosen type, subject and time.
pub fn ev_at(id: &str, event_type: &str, subject: &str, time: &str) -> Value {
    let mut e = ev(id);
    e["type"] = json!(event_type);
    e["subject"] = json!(subject);
    e["time"] = json!(time);
    e
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(bytes, 3).unwrap()
}

/// Asserts an error response: status and `code`, and that `message` is present.
#[track_caller]
pub fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "body: {body}");
    assert_eq!(body["code"], want_code, "body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "body: {body}");
}

/// Writes `meterline.toml` into `dir` (the server reads it from its working directory).
pub fn write_config(dir: &Path, toml: &str) {
    std::fs::write(dir.join("meterline.toml"), toml).unwrap();
}

/// A server on a fresh database with `meterline.toml` = `toml`.
pub fn start_with_config(toml: &str) -> Server {
    let dir = tempdir();
    write_config(dir.path(), toml);
    Server::start_in(dir, &[])
}

pub fn tempdir() -> Arc<tempfile::TempDir> {
    Arc::new(tempfile::tempdir().unwrap())
}
