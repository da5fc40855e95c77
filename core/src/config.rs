//! Client options with their defaults (DESIGN §7) and their validation.

use std::{str::FromStr, time::Duration};

use serde_json::Value;

use crate::{codec::Encoding, error::Error, key::ApiKey, retry::RetryPolicy};

/// What happens to a new event when the queue holds `max_queue_size` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// Refuse the new event (`track()` fails with `queue_full`). The default.
    #[default]
    DropNewest,
    /// Evict the oldest queued event to make room.
    DropOldest,
    /// Wait (up to `block_timeout`) for room; then fail with `queue_full`.
    Block,
}

impl OverflowPolicy {
    /// The option's spelling (`drop_newest`, `drop_oldest`, `block`).
    pub fn as_str(self) -> &'static str {
        match self {
            OverflowPolicy::DropNewest => "drop_newest",
            OverflowPolicy::DropOldest => "drop_oldest",
            OverflowPolicy::Block => "block",
        }
    }
}

impl FromStr for OverflowPolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "drop_newest" => Ok(OverflowPolicy::DropNewest),
            "drop_oldest" => Ok(OverflowPolicy::DropOldest),
            "block" => Ok(OverflowPolicy::Block),
            other => Err(Error::config(
                "overflow",
                format!("unknown policy {other:?}; use drop_newest, drop_oldest or block"),
            )),
        }
    }
}

/// Everything a `Client` can be configured with. Build with [`Config::new`] and set fields.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ml_sk_…` secret key (or `ml_pk_…` for browser/mobile use).
    pub api_key: String,
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    pub endpoint: String,
    /// CloudEvents `source` of every event; default: the host name.
    pub source: String,
    /// Send a batch once this many events are queued (default 500).
    pub flush_at: usize,
    /// Largest uncompressed batch body (default 1 MiB).
    pub max_batch_bytes: usize,
    /// Send whatever is queued at least this often (default 1 s).
    pub flush_interval: Duration,
    /// Bound of the in-memory queue (default 100,000 events).
    pub max_queue_size: usize,
    /// What a full queue does with a new event.
    pub overflow: OverflowPolicy,
    /// How long `track()` may wait under [`OverflowPolicy::Block`] (default 1 s).
    pub block_timeout: Duration,
    /// Body compression (default gzip).
    pub compression: Encoding,
    /// Per-request timeout (default 10 s).
    pub request_timeout: Duration,
    /// Backoff parameters for failed sends.
    pub retry: RetryPolicy,
    /// Reject event types that have no schema (`unknown_type`).
    pub strict_types: bool,
    /// Fetch the schemas from `GET /v1/schema` at start and refresh them by ETag.
    pub fetch_schemas: bool,
    /// How often the schemas are refreshed (default 5 min).
    pub schema_refresh_interval: Duration,
    /// Schemas given locally (event type → JSON Schema); used in addition to fetched ones.
    pub schemas: Vec<(String, Value)>,
    /// Number of concurrent batch requests in flight (default 2).
    pub max_in_flight: usize,
}

impl Config {
    /// Options with every default filled in.
    pub fn new(api_key: impl Into<String>, endpoint: impl Into<String>) -> Self {
        Config {
            api_key: api_key.into(),
            endpoint: endpoint.into(),
            source: default_source(),
            flush_at: 500,
            max_batch_bytes: 1024 * 1024,
            flush_interval: Duration::from_secs(1),
            max_queue_size: 100_000,
            overflow: OverflowPolicy::DropNewest,
            block_timeout: Duration::from_secs(1),
            compression: Encoding::Gzip,
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            strict_types: false,
            fetch_schemas: true,
            schema_refresh_interval: Duration::from_secs(300),
            schemas: Vec::new(),
            max_in_flight: 2,
        }
    }

    /// Checks every option, naming the first one that is wrong. Returns the parsed key.
    pub fn validate(&self) -> Result<ApiKey, Error> {
        let key = ApiKey::parse(&self.api_key).map_err(|e| Error::config("api_key", e.to_string()))?;
        let endpoint = self.endpoint.trim();
        if endpoint.is_empty() {
            return Err(Error::config("endpoint", "must not be empty"));
        }
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(Error::config(
                "endpoint",
                format!(
                    "must start with http:// or https://, got {:?}",
                    endpoint.chars().take(80).collect::<String>()
                ),
            ));
        }
        if self.source.trim().is_empty() {
            return Err(Error::config("source", "must not be empty"));
        }
        if self.source.chars().count() > crate::event::MAX_ATTRIBUTE_LEN {
            return Err(Error::config("source", "must be at most 256 characters"));
        }
        if self.flush_at == 0 {
            return Err(Error::config("flush_at", "must be at least 1"));
        }
        if self.flush_at > 10_000 {
            return Err(Error::config(
                "flush_at",
                "must be at most 10000 (the server's batch limit)",
            ));
        }
        if self.max_batch_bytes < 1024 || self.max_batch_bytes > 5 * 1024 * 1024 {
            return Err(Error::config("max_batch_bytes", "must be between 1 KiB and 5 MiB"));
        }
        if self.flush_interval.is_zero() {
            return Err(Error::config("flush_interval", "must be greater than zero"));
        }
        if self.max_queue_size == 0 {
            return Err(Error::config("max_queue_size", "must be at least 1"));
        }
        if self.request_timeout.is_zero() {
            return Err(Error::config("request_timeout", "must be greater than zero"));
        }
        if self.max_in_flight == 0 || self.max_in_flight > 64 {
            return Err(Error::config("max_in_flight", "must be between 1 and 64"));
        }
        if self.retry.initial_delay.is_zero() || self.retry.max_delay < self.retry.initial_delay {
            return Err(Error::config("retry", "initial_delay must be > 0 and ≤ max_delay"));
        }
        Ok(key)
    }

    /// The endpoint without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.endpoint.trim().trim_end_matches('/')
    }
}

fn default_source() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "meterline".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ml_sk_abc123_s3cr3ts3cr3ts3cr3t";

    #[test]
    fn defaults_are_valid() {
        let c = Config::new(KEY, "http://127.0.0.1:8080/");
        c.validate().unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:8080");
        assert_eq!(c.flush_at, 500);
    }

    #[test]
    fn names_the_bad_option() {
        type Mutation = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|c| c.api_key = String::new()), "api_key"),
            (Box::new(|c| c.endpoint = "ftp://x".into()), "endpoint"),
            (Box::new(|c| c.endpoint = " ".into()), "endpoint"),
            (Box::new(|c| c.flush_at = 0), "flush_at"),
            (Box::new(|c| c.max_batch_bytes = 10), "max_batch_bytes"),
            (Box::new(|c| c.flush_interval = Duration::ZERO), "flush_interval"),
            (Box::new(|c| c.max_queue_size = 0), "max_queue_size"),
            (Box::new(|c| c.source = String::new()), "source"),
        ];
        for (mutate, field) in cases {
            let mut c = Config::new(KEY, "http://localhost:1");
            mutate(&mut c);
            match c.validate() {
                Err(Error::Config { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn parses_overflow_policies() {
        assert_eq!("block".parse::<OverflowPolicy>().unwrap(), OverflowPolicy::Block);
        assert!("explode".parse::<OverflowPolicy>().is_err());
    }
}
