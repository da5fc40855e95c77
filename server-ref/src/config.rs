//! Server configuration: `meterline.toml` (every key optional, unknown keys refused) with
//! command-line flags on top.
//!
//! ```toml
//! [server]
//! bind = "127.0.0.1:8080"
//!
//! [storage]
//! database_url = "sqlite://meterline.db"
//! synchronous = "full"
//!
//! [ingest]
//! max_events_per_batch = 10000
//! ```

use std::{fmt, net::SocketAddr, path::Path, str::FromStr, time::Duration};

use serde::Deserialize;

/// Everything the server can be configured with. Every field has a default, so an empty
/// (or missing) `meterline.toml` is a working configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: the HTTP listener.
    pub server: ServerConfig,
    /// `[storage]`: the database.
    pub storage: StorageConfig,
    /// `[ingest]`: limits of `POST /v1/events`.
    pub ingest: IngestConfig,
    /// `[auth]`: API key handling.
    pub auth: AuthConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
    /// `[limits]`: per-key rate limits.
    pub limits: crate::ratelimit::LimitsConfig,
    /// `[stream]`: the realtime stream.
    pub stream: crate::stream::StreamConfig,
    /// `[entitlements]`: entitlement answers.
    pub entitlements: crate::entitlements::EntitlementsConfig,
    /// `[catalog]`: features, plans and customers applied at start.
    pub catalog: Option<crate::entitlements::declarative::CatalogFile>,
}

/// `[server]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// A request that takes longer is answered `408 request_timeout`.
    pub request_timeout_secs: u64,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_timeout_secs: u64,
    /// A connection must send a request's complete headers within this time — from when it
    /// opens, and again after each answer on a kept-alive connection — or it is closed
    /// (slow-loris and idle connections).
    pub header_read_timeout_secs: u64,
    /// Open HTTP connections at most (WebSocket streams included); further ones wait in the
    /// listen backlog until one closes.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_secs: 30,
            shutdown_timeout_secs: 30,
            header_read_timeout_secs: 30,
            max_connections: 10_000,
        }
    }
}

/// `[storage]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `sqlite://PATH` (the file is created when missing) or
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (several nodes may share it).
    pub database_url: String,
    /// SQLite `synchronous` in WAL mode: `full` (default) or `normal`.
    pub synchronous: Synchronous,
    /// How long a statement waits for a lock held by another connection or process.
    pub busy_timeout_ms: u64,
    /// Connections serving reads (events, schemas, keys).
    pub read_connections: u32,
    /// Ingest requests that may wait for the writer; more are answered `503 overloaded`.
    pub writer_queue: usize,
    /// Most events committed in one transaction (group commit).
    pub max_commit_events: usize,
    /// Size the `-wal` file is cut back to once it has been checkpointed and starts over
    /// (SQLite's `journal_size_limit`). SQLite otherwise keeps the file at the largest size a
    /// burst grew it to; `0` cuts it to nothing each time.
    pub wal_size_limit_bytes: u64,
    /// PostgreSQL: most connections of the node's pool.
    pub max_connections: u32,
    /// PostgreSQL: how long a request waits for a pooled connection (and for a new
    /// connection to be made), ms.
    pub acquire_timeout_ms: u64,
    /// PostgreSQL: `statement_timeout` of every connection, ms; 0 = none.
    pub statement_timeout_ms: u64,
}

impl StorageConfig {
    /// Whether `database_url` names a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres://") || self.database_url.starts_with("postgresql://")
    }

    /// The PostgreSQL pool settings.
    pub fn pg_settings(&self) -> crate::store::PgSettings {
        crate::store::PgSettings {
            max_connections: self.max_connections,
            acquire_timeout: Duration::from_millis(self.acquire_timeout_ms),
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
            ..Default::default()
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            database_url: "sqlite://meterline.db".into(),
            synchronous: Synchronous::Full,
            busy_timeout_ms: 5_000,
            read_connections: 4,
            writer_queue: 256,
            max_commit_events: 16_384,
            wal_size_limit_bytes: 64 * 1024 * 1024,
            max_connections: 16,
            acquire_timeout_ms: 5_000,
            statement_timeout_ms: 30_000,
        }
    }
}

/// SQLite's `PRAGMA synchronous` in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync the WAL at every commit: a committed batch survives power loss. (The event
    /// writer's commits are synced by the server on a thread of its own, before their 202.)
    Full,
    /// fsync only at checkpoints: survives a crash of the process (`kill -9`), but an OS
    /// crash or power loss may undo the last commits.
    Normal,
}

/// `[ingest]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest request body as sent (compressed), bytes.
    pub max_body_bytes: usize,
    /// Largest request body after decompression, bytes (checked while inflating).
    pub max_decompressed_bytes: usize,
    /// Most events in one request.
    pub max_events_per_batch: usize,
    /// Largest single event (its JSON text), bytes.
    pub max_event_bytes: usize,
    /// Largest `POST /v1/beacon` body, bytes (browsers keep at most 64 KiB of beacons in
    /// flight).
    pub max_beacon_bytes: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: 5 * 1024 * 1024,
            max_decompressed_bytes: 32 * 1024 * 1024,
            max_events_per_batch: 10_000,
            max_event_bytes: meterline_core::event::MAX_EVENT_BYTES,
            max_beacon_bytes: 64 * 1024,
        }
    }
}

/// `[auth]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// How long a verified key stays in the in-memory cache. Revoking through the HTTP API
    /// takes effect at once; revoking with the CLI while the server runs within
    /// `revocation_poll_ms`.
    pub key_cache_secs: u64,
    /// Clock skew allowed on a customer token's `exp` and `iat`.
    pub token_leeway_secs: u64,
    /// How often the server looks for keys revoked by another process (the CLI), evicts
    /// them from the cache and closes their streams.
    pub revocation_poll_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            key_cache_secs: 5,
            token_leeway_secs: 30,
            revocation_poll_ms: 2_000,
        }
    }
}

/// `[log]` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A configuration problem; the message names the offending key.
#[derive(Debug)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl FromStr for Config {
    type Err = ConfigError;

    /// Parses `meterline.toml` text and checks the values.
    fn from_str(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError(e.to_string().trim_end().to_owned()))?;
        config.check()?;
        Ok(config)
    }
}

impl Config {
    /// Reads a config file. A missing file is an error only when `required` (it was named
    /// explicitly); otherwise the defaults apply.
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => text
                .parse()
                .map_err(|e: ConfigError| ConfigError(format!("invalid config file {}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(Config::default()),
            Err(e) => Err(ConfigError(format!("cannot read config file {}: {e}", path.display()))),
        }
    }

    /// Checks value ranges; errors name the key as `section.key`.
    pub fn check(&self) -> Result<(), ConfigError> {
        let positive = [
            ("server.request_timeout_secs", self.server.request_timeout_secs as usize),
            (
                "server.header_read_timeout_secs",
                self.server.header_read_timeout_secs as usize,
            ),
            ("server.max_connections", self.server.max_connections),
            ("storage.read_connections", self.storage.read_connections as usize),
            ("storage.writer_queue", self.storage.writer_queue),
            ("storage.max_commit_events", self.storage.max_commit_events),
            ("storage.max_connections", self.storage.max_connections as usize),
            ("storage.acquire_timeout_ms", self.storage.acquire_timeout_ms as usize),
            ("ingest.max_body_bytes", self.ingest.max_body_bytes),
            ("ingest.max_decompressed_bytes", self.ingest.max_decompressed_bytes),
            ("ingest.max_events_per_batch", self.ingest.max_events_per_batch),
            ("ingest.max_event_bytes", self.ingest.max_event_bytes),
            ("ingest.max_beacon_bytes", self.ingest.max_beacon_bytes),
            ("auth.revocation_poll_ms", self.auth.revocation_poll_ms as usize),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!("`{key}` must be greater than 0")));
            }
        }
        self.limits.check().map_err(ConfigError)?;
        self.stream.check().map_err(ConfigError)?;
        self.entitlements.check().map_err(ConfigError)?;
        if let Some(catalog) = &self.catalog {
            catalog.check().map_err(ConfigError)?;
        }
        if !self.storage.database_url.starts_with("sqlite:") && !self.storage.is_postgres() {
            return Err(ConfigError(format!(
                "`storage.database_url` must be a sqlite:// or postgres:// URL, got {:?}",
                crate::store::redact_url(&self.storage.database_url)
            )));
        }
        Ok(())
    }

    /// `server.request_timeout_secs` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.server.request_timeout_secs)
    }

    /// `auth.token_leeway_secs` as a duration.
    pub fn token_leeway(&self) -> Duration {
        Duration::from_secs(self.auth.token_leeway_secs)
    }

    /// `server.shutdown_timeout_secs` as a duration.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.server.shutdown_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!("".parse::<Config>().unwrap(), Config::default());
    }

    #[test]
    fn reads_every_section() {
        let c: Config = r#"
            [server]
            bind = "0.0.0.0:9000"
            [storage]
            synchronous = "normal"
            [ingest]
            max_events_per_batch = 50
            [auth]
            key_cache_secs = 1
            [log]
            format = "json"
            [limits]
            requests_per_second = 5
            burst = 7
            [stream]
            ping_interval_ms = 100
            idle_timeout_ms = 300
        "#
        .parse()
        .unwrap();
        assert_eq!(c.server.bind.port(), 9000);
        assert_eq!(c.storage.synchronous, Synchronous::Normal);
        assert_eq!(c.ingest.max_events_per_batch, 50);
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!((c.limits.requests_per_second, c.limits.burst), (5, 7));
        assert_eq!(c.stream.idle_timeout_ms, 300);
        assert_eq!(c.stream.max_subjects, 1000, "unset keys keep their defaults");
    }

    #[test]
    fn postgres_urls_and_pool_settings() {
        let c: Config = "[storage]\ndatabase_url = \"postgres://u:pw@db:5432/m\"\nmax_connections = 4\n\
                         acquire_timeout_ms = 250\nstatement_timeout_ms = 0\n"
            .parse()
            .unwrap();
        assert!(c.storage.is_postgres());
        let pg = c.storage.pg_settings();
        assert_eq!(
            (pg.max_connections, pg.acquire_timeout, pg.statement_timeout),
            (4, Duration::from_millis(250), Duration::ZERO)
        );
        let defaults = StorageConfig::default().pg_settings();
        assert_eq!(defaults, crate::store::PgSettings::default());
        let err = "[storage]\ndatabase_url = \"mysql://u:pw@db/m\"\n"
            .parse::<Config>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.database_url") && !err.contains("pw"), "{err}");
        let err = "[storage]\nmax_connections = 0\n"
            .parse::<Config>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.max_connections"), "{err}");
    }

    #[test]
    fn errors_name_the_key() {
        let err = "[ingest]\nmax_batch = 3\n".parse::<Config>().unwrap_err().to_string();
        assert!(err.contains("max_batch"), "{err}");
        let err = "[storage]\nsynchronous = \"off\"\n"
            .parse::<Config>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("synchronous"), "{err}");
        let err = "[ingest]\nmax_events_per_batch = 0\n"
            .parse::<Config>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("ingest.max_events_per_batch"), "{err}");
        let err = "[stream]\nping_interval_ms = 5000\nidle_timeout_ms = 5000\n"
            .parse::<Config>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("stream.idle_timeout_ms"), "{err}");
        let err = "[limits]\nburst = 0\n".parse::<Config>().unwrap_err().to_string();
        assert!(err.contains("limits.burst"), "{err}");
    }
}
