//! Client options with their defaults (DESIGN §7) and their validation.

use std::{path::PathBuf, str::FromStr, time::Duration};

use serde_json::Value;

use crate::{
    codec::Encoding,
    entitlement_cache::{CacheSettings, Fallbacks},
    error::Error,
    key::{ApiKey, KeyKind},
    retry::RetryPolicy,
    sdk::Sdk,
};

/// The spelling of every value of a choice enum's `ALL`, in order, as a constant (the option
/// table takes the allowed values of a choice option from it).
macro_rules! names_of {
    ($choice:ident) => {{
        let mut names = [""; $choice::ALL.len()];
        let mut i = 0;
        while i < names.len() {
            names[i] = $choice::ALL[i].as_str();
            i += 1;
        }
        names
    }};
}

/// What happens to a new event when the queue holds `max_queue_size` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// Drop the new event: `track()` returns no id, the drop is counted in
    /// `stats().dropped` and reported (rate-limited) to the error callback. The default.
    #[default]
    DropNewest,
    /// Evict the oldest queued event to make room.
    DropOldest,
    /// Wait (up to `block_timeout`) for room; then drop the new event as `drop_newest` does.
    Block,
    /// Refuse the new event: `track()` fails with `queue_full` (the only policy that raises
    /// into the caller).
    Reject,
}

impl OverflowPolicy {
    /// Every policy, the default first. The option table takes its allowed values from here.
    pub const ALL: [OverflowPolicy; 4] = [
        OverflowPolicy::DropNewest,
        OverflowPolicy::DropOldest,
        OverflowPolicy::Block,
        OverflowPolicy::Reject,
    ];

    /// The spelling of every policy, in the order of [`OverflowPolicy::ALL`].
    pub const NAMES: [&'static str; OverflowPolicy::ALL.len()] = names_of!(OverflowPolicy);

    /// The option's spelling (`drop_newest`, `drop_oldest`, `block`, `reject`).
    pub const fn as_str(self) -> &'static str {
        match self {
            OverflowPolicy::DropNewest => "drop_newest",
            OverflowPolicy::DropOldest => "drop_oldest",
            OverflowPolicy::Block => "block",
            OverflowPolicy::Reject => "reject",
        }
    }
}

impl FromStr for OverflowPolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        OverflowPolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                Error::config(
                    "overflow",
                    format!("unknown policy {s:?}; use {}", OverflowPolicy::NAMES.join(", ")),
                )
            })
    }
}

/// When the disk spool (`spool_dir`) forces its writes to the disk with `fsync`. Every
/// policy survives a crash or `kill -9` of the process (each event is handed to the OS before
/// `track()` returns); they differ in what a power loss or OS crash can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpoolFsync {
    /// `fsync` before `track()` returns: nothing accepted is lost even to a power loss.
    /// Slow (one `fsync` per event, milliseconds on most disks).
    Always,
    /// `fsync` in the background once a second (the default): a power loss or OS crash can
    /// lose the events accepted in the last second.
    #[default]
    Interval,
    /// Never `fsync` (the OS writes when it likes, typically within 30 s): survives process
    /// crashes only.
    Never,
}

impl SpoolFsync {
    /// Every policy.
    pub const ALL: [SpoolFsync; 3] = [SpoolFsync::Always, SpoolFsync::Interval, SpoolFsync::Never];

    /// The spelling of every policy, in the order of [`SpoolFsync::ALL`].
    pub const NAMES: [&'static str; SpoolFsync::ALL.len()] = names_of!(SpoolFsync);

    /// The option's spelling (`always`, `interval`, `never`).
    pub const fn as_str(self) -> &'static str {
        match self {
            SpoolFsync::Always => "always",
            SpoolFsync::Interval => "interval",
            SpoolFsync::Never => "never",
        }
    }
}

impl FromStr for SpoolFsync {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        SpoolFsync::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            Error::config(
                "spool_fsync",
                format!("unknown policy {s:?}; use {}", SpoolFsync::NAMES.join(", ")),
            )
        })
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
    /// Most subjects whose entitlements are cached (default 10,000; least recently used
    /// evicted first).
    pub cache_size: usize,
    /// How long `entitlement()` waits for the server on a cache miss before answering the
    /// fallback (default 1 s). The fetch goes on in the background and fills the cache.
    pub entitlement_timeout: Duration,
    /// How long past its TTL a cached answer is still served (as `stale`, while one
    /// background revalidation runs, or while the server is unreachable); default 24 h.
    pub max_stale: Duration,
    /// Caps the server's `ttl_ms` for cached answers (default: none, the server decides).
    pub max_ttl: Option<Duration>,
    /// What `entitlement()` answers when nothing usable is cached and the server cannot
    /// answer (default: deny).
    pub fallbacks: Fallbacks,
    /// Keep the cache current over the realtime stream (default true). The connection opens
    /// when the first entitlement is cached, so a client that only tracks opens none.
    pub stream: bool,
    /// The stream's URL; default: the endpoint with `ws://`/`wss://` and `/v1/stream`.
    pub stream_endpoint: Option<String>,
    /// For a publishable key (`ml_pk_…`): the customer token (from the backend's
    /// `customer_token()`), sent as `X-Meterline-Customer-Token`. Required with a
    /// publishable key, refused with any other.
    pub customer_token: Option<String>,
    /// A directory for the crash-safe disk spool (default: none, events wait in memory
    /// only). Accepted events are written there before `track()` returns, removed once the
    /// server has answered for them, and sent at the next start if the process died first.
    /// `max_queue_size` and `overflow` bound it as they bound the memory queue. One client
    /// per directory (a second one fails with `invalid_config`). Native runtime only.
    pub spool_dir: Option<PathBuf>,
    /// When the spool calls `fsync` (default [`SpoolFsync::Interval`], once a second).
    pub spool_fsync: SpoolFsync,
    /// Keep undelivered events on the device (default `true`). The browser persists its
    /// outbox in IndexedDB and takes over the events of closed tabs only while this is on;
    /// `false` keeps no event on the device, and refuses a `spool_dir` (a native client
    /// keeps events on the device only with one).
    pub persist: bool,
    /// Which SDK this is, for the `User-Agent` of every request. Set by the language
    /// binding (`meterline-python`, `meterline-node` …), not an application option.
    pub sdk: Sdk,
}

impl Config {
    /// Options with every default filled in (the defaults [`crate::options::OPTIONS`]
    /// documents; a unit test keeps the two equal).
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
            cache_size: 10_000,
            entitlement_timeout: Duration::from_secs(1),
            max_stale: Duration::from_secs(24 * 3600),
            max_ttl: None,
            fallbacks: Fallbacks::default(),
            stream: true,
            stream_endpoint: None,
            customer_token: None,
            spool_dir: None,
            spool_fsync: SpoolFsync::Interval,
            persist: true,
            sdk: Sdk::default(),
        }
    }

    /// Checks every option, naming the first one that is wrong. Returns the parsed key.
    pub fn validate(&self) -> Result<ApiKey, Error> {
        self.validate_for(false)
    }

    /// [`Config::validate`] for a client that has a token provider: a publishable key then
    /// needs no `customer_token` (the provider gives the first one).
    pub fn validate_for(&self, has_token_provider: bool) -> Result<ApiKey, Error> {
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
        check_source(&self.source)?;
        crate::options::check_ranges(self)?;
        if self.retry.initial_delay.is_zero() || self.retry.max_delay < self.retry.initial_delay {
            return Err(Error::config("retry", "initial_delay must be > 0 and ≤ max_delay"));
        }
        if let Some(dir) = &self.spool_dir
            && dir.as_os_str().is_empty()
        {
            return Err(Error::config(
                "spool_dir",
                "must not be empty (leave it unset for no spool)",
            ));
        }
        if self.spool_dir.is_some() && !self.persist {
            return Err(Error::config(
                "persist",
                "is false (no event kept on the device), but spool_dir asks for a disk spool; drop one of them",
            ));
        }
        self.validate_entitlements(&key, has_token_provider)?;
        Ok(key)
    }

    fn validate_entitlements(&self, key: &ApiKey, has_token_provider: bool) -> Result<(), Error> {
        self.fallbacks.validate()?;
        if let Some(url) = &self.stream_endpoint
            && !(url.starts_with("ws://") || url.starts_with("wss://"))
        {
            return Err(Error::config(
                "stream_endpoint",
                format!(
                    "must start with ws:// or wss://, got {:?}",
                    url.chars().take(80).collect::<String>()
                ),
            ));
        }
        match (&self.customer_token, key.kind) {
            (None, KeyKind::Publishable) if !has_token_provider => Err(Error::config(
                "customer_token",
                "a publishable key (ml_pk_…) works only together with a customer token or a token provider",
            )),
            (Some(_), KeyKind::Secret | KeyKind::Admin) => Err(Error::config(
                "customer_token",
                "only for publishable keys (ml_pk_…); a secret key acts for every subject",
            )),
            (Some(token), _) if !looks_like_jwt(token) => Err(Error::config(
                "customer_token",
                "must be a JWT (three base64url parts separated by dots), as customer_token() mints",
            )),
            _ => Ok(()),
        }
    }

    /// The stream's URL: `stream_endpoint`, or the endpoint with `ws://`/`wss://` and
    /// `/v1/stream`.
    pub fn stream_url(&self) -> String {
        if let Some(url) = &self.stream_endpoint {
            return url.trim().to_owned();
        }
        let base = self.base_url();
        let base = match base.split_once("://") {
            Some(("https", rest)) => format!("wss://{rest}"),
            Some((_, rest)) => format!("ws://{rest}"),
            None => base.to_owned(),
        };
        format!("{base}/v1/stream")
    }

    /// The entitlement cache's settings.
    pub fn cache_settings(&self) -> CacheSettings {
        CacheSettings {
            capacity: std::num::NonZeroUsize::new(self.cache_size).unwrap_or(std::num::NonZeroUsize::MIN),
            max_ttl: self.max_ttl,
            max_stale: self.max_stale,
            fallbacks: self.fallbacks.clone(),
        }
    }

    /// The endpoint without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.endpoint.trim().trim_end_matches('/')
    }
}

/// Checks the `source` option once, at configuration, as CloudEvents 1.0 requires of every
/// event's `source` (a non-empty URI-reference of at most 256 characters), so `track()` need
/// not check it per call. The error names `source`.
pub fn check_source(source: &str) -> Result<(), Error> {
    crate::event::check_source(source).map_err(|e| Error::config("source", e.message))
}

fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    token.len() <= 8 * 1024
        && parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
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
            (Box::new(|c| c.source = "billing api".into()), "source"),
            (Box::new(|c| c.source = "1:2".into()), "source"),
            (Box::new(|c| c.source = "x".repeat(257)), "source"),
            (Box::new(|c| c.cache_size = 0), "cache_size"),
            (
                Box::new(|c| c.entitlement_timeout = Duration::ZERO),
                "entitlement_timeout",
            ),
            (Box::new(|c| c.max_ttl = Some(Duration::ZERO)), "max_ttl"),
            (
                Box::new(|c| c.max_stale = Duration::from_secs(400 * 24 * 3600)),
                "max_stale",
            ),
            (
                Box::new(|c| {
                    c.fallbacks
                        .features
                        .insert(String::new(), crate::Fallback::Access(true));
                }),
                "fallbacks",
            ),
            (
                Box::new(|c| c.stream_endpoint = Some("http://x/v1/stream".into())),
                "stream_endpoint",
            ),
            (Box::new(|c| c.customer_token = Some("a.b.c".into())), "customer_token"),
            (Box::new(|c| c.spool_dir = Some(PathBuf::new())), "spool_dir"),
            (
                Box::new(|c| {
                    c.spool_dir = Some(PathBuf::from("/tmp/spool"));
                    c.persist = false;
                }),
                "persist",
            ),
            (
                Box::new(|c| c.api_key = "ml_pk_abc123_s3cr3ts3cr3ts3cr3t".into()),
                "customer_token",
            ),
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
    fn publishable_keys_need_a_customer_token() {
        let mut c = Config::new("ml_pk_abc123_s3cr3ts3cr3ts3cr3t", "http://x");
        c.customer_token = Some("eyJh.eyJz.c2ln".into());
        c.validate().unwrap();
        c.customer_token = Some("eyJh.eyJz.c2l\nn".into());
        assert!(c.validate().is_err());
    }

    #[test]
    fn derives_the_stream_url() {
        assert_eq!(Config::new(KEY, "http://h:8080/").stream_url(), "ws://h:8080/v1/stream");
        assert_eq!(
            Config::new(KEY, "https://h/base").stream_url(),
            "wss://h/base/v1/stream"
        );
        let mut c = Config::new(KEY, "https://h");
        c.stream_endpoint = Some("wss://rt.h/v1/stream".into());
        assert_eq!(c.stream_url(), "wss://rt.h/v1/stream");
    }

    #[test]
    fn parses_overflow_policies() {
        assert_eq!("block".parse::<OverflowPolicy>().unwrap(), OverflowPolicy::Block);
        assert!("explode".parse::<OverflowPolicy>().is_err());
        assert_eq!("never".parse::<SpoolFsync>().unwrap(), SpoolFsync::Never);
        assert_eq!(SpoolFsync::default().as_str(), "interval");
        match "sometimes".parse::<SpoolFsync>() {
            Err(Error::Config { field, .. }) => assert_eq!(field, "spool_fsync"),
            other => panic!("{other:?}"),
        }
    }
}
