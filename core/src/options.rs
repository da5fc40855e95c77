//! The client's options, each written once: its name in every naming scheme, its type, unit,
//! default, range and doc (DESIGN §7).
//!
//! A binding hands the options the caller gave — a map from the name as spelled in that
//! language to a [`HostValue`] — to [`config_from_host`], which reads them into a [`Config`]
//! and checks them; an error names the option as the caller spelled it. Python names options
//! in snake_case with durations in seconds; Kotlin and Swift in camelCase with durations in
//! seconds; JavaScript in camelCase with durations in milliseconds and an `Ms` suffix
//! (`flushIntervalMs`). `tests/vectors/options.json` writes the table and a set of valid and
//! invalid values as data, and every binding runs it through its public constructor.

use std::time::Duration;

use serde_json::Value;

use crate::{
    codec::Encoding,
    config::{Config, OverflowPolicy, SpoolFsync},
    entitlement_cache::Fallbacks,
    error::Error,
};

/// The environment variable `endpoint` is read from when the caller gives none.
pub const ENDPOINT_ENV: &str = "METERLINE_ENDPOINT";

/// A value as the host language gave it, before the table reads it. A binding converts its
/// own values into this and leaves out the options the caller did not give (Python's `None`,
/// JavaScript's `undefined`).
#[derive(Debug, Clone, PartialEq)]
pub enum HostValue {
    /// JavaScript's `null` (refused by every option: leave the option out instead).
    Null,
    /// A boolean.
    Bool(bool),
    /// A whole number (a JavaScript number without a fraction counts as one).
    Int(i64),
    /// Any other number, `NaN` and infinities included (refused where they make no sense).
    Float(f64),
    /// A string (Python's `os.PathLike` arrives as its path string).
    Str(String),
    /// A list or a map, as JSON (`schemas`, `fallbacks`).
    Json(Value),
    /// A value no option takes, described in the host's words (`a function`, `bytes`).
    Other(String),
}

impl HostValue {
    /// A JavaScript number: a whole one within ±2^53 (where a double is exact) is an
    /// [`HostValue::Int`], any other a [`HostValue::Float`].
    pub fn js_number(n: f64) -> HostValue {
        const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
        if n.fract() == 0.0 && n.abs() <= MAX_SAFE {
            #[allow(clippy::cast_possible_truncation)] // whole and within ±2^53: exact
            HostValue::Int(n as i64)
        } else {
            HostValue::Float(n)
        }
    }

    /// The value's kind in words, for messages.
    fn describe(&self) -> String {
        match self {
            HostValue::Null => "null".to_owned(),
            HostValue::Bool(_) => "a boolean".to_owned(),
            HostValue::Int(n) => format!("the number {n}"),
            HostValue::Float(f) => format!("the number {f}"),
            HostValue::Str(_) => "a string".to_owned(),
            HostValue::Json(Value::Array(_)) => "a list".to_owned(),
            HostValue::Json(_) => "a map".to_owned(),
            HostValue::Other(what) => what.clone(),
        }
    }
}

/// A naming scheme: how a language spells the options and measures durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    /// Python: `flush_interval`, durations in seconds (int or float).
    Snake,
    /// Kotlin and Swift: `flushInterval`, durations in seconds.
    Camel,
    /// JavaScript (Node and the browser): `flushIntervalMs`, durations in whole milliseconds.
    CamelMs,
}

/// What an option holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Text,
    /// A boolean.
    Bool,
    /// A whole number from `min` to `max`.
    Count {
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
    /// A duration from `min` to `max` (in seconds or milliseconds, per [`Spelling`]).
    Duration {
        /// Shortest allowed duration (1 ns: "more than zero").
        min: Duration,
        /// Longest allowed duration.
        max: Duration,
    },
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
    /// A map of event type → JSON Schema.
    Schemas,
    /// A map `{"features": {key: spec}, "default": spec}` (see [`Fallbacks::from_json`]).
    Fallbacks,
    /// A file-system path.
    Path,
}

/// An option's default, as the table documents it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultValue {
    /// The caller must give it.
    Required,
    /// Read from an environment variable, else required.
    Env(&'static str),
    /// Worked out at run time (`source`: the host name).
    Computed(&'static str),
    /// Not set.
    Unset,
    /// A boolean.
    Bool(bool),
    /// A number.
    Count(u64),
    /// A duration.
    Duration(Duration),
    /// A string.
    Text(&'static str),
}

/// One client option.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// snake_case (Python).
    pub snake: &'static str,
    /// camelCase (Kotlin, Swift).
    pub camel: &'static str,
    /// JavaScript (camelCase; durations with an `Ms` suffix).
    pub js: &'static str,
    /// What it holds, with its range.
    pub kind: Kind,
    /// Its default.
    pub default: DefaultValue,
    /// One sentence for the docs.
    pub doc: &'static str,
    /// Stores a value of the right kind (already type-checked) in the config.
    set: fn(&mut Config, Read) -> Result<(), Error>,
    /// The value to range-check, for numbers and durations (`None` when unset).
    get: fn(&Config) -> Option<Measure>,
}

/// A value read by [`Kind`], ready to store.
#[derive(Debug)]
enum Read {
    Text(String),
    Bool(bool),
    Count(usize),
    Duration(Duration),
    Json(Value),
}

/// A number or duration held by a [`Config`], for the range check.
#[derive(Debug, Clone, Copy)]
enum Measure {
    Count(u64),
    Duration(Duration),
}

impl OptionSpec {
    /// The option's name in `spelling`.
    pub fn name(&self, spelling: Spelling) -> &'static str {
        match spelling {
            Spelling::Snake => self.snake,
            Spelling::Camel => self.camel,
            Spelling::CamelMs => self.js,
        }
    }

    /// The option called `name` in `spelling`.
    pub fn find(name: &str, spelling: Spelling) -> Option<&'static OptionSpec> {
        OPTIONS.iter().find(|o| o.name(spelling) == name)
    }

    /// Reads `value` as this option's kind.
    fn read(&self, value: HostValue, spelling: Spelling) -> Result<Read, String> {
        let got = value.describe();
        match (self.kind, value) {
            (Kind::Text | Kind::Path, HostValue::Str(s)) => Ok(Read::Text(s)),
            (Kind::Text | Kind::Path, _) => Err(format!("must be a string, got {got}")),
            (Kind::Bool, HostValue::Bool(b)) => Ok(Read::Bool(b)),
            (Kind::Bool, _) => Err(format!("must be a boolean, got {got}")),
            (Kind::Count { .. }, HostValue::Int(n)) => usize::try_from(n)
                .map(Read::Count)
                .map_err(|_| format!("must be a whole number ≥ 0, got {n}")),
            (Kind::Count { .. }, _) => Err(format!("must be a whole number, got {got}")),
            (Kind::Duration { .. }, value) => {
                duration(value, spelling)
                    .map(Read::Duration)
                    .ok_or_else(|| match spelling {
                        Spelling::CamelMs => format!("must be a whole number of milliseconds ≥ 0, got {got}"),
                        _ => format!("must be a finite number of seconds ≥ 0, got {got}"),
                    })
            }
            (Kind::Choice(allowed), HostValue::Str(s)) if allowed.contains(&s.as_str()) => Ok(Read::Text(s)),
            (Kind::Choice(allowed), HostValue::Str(s)) => Err(format!(
                "unknown value {:?}; use {}",
                s.chars().take(64).collect::<String>(),
                allowed.join(", ")
            )),
            (Kind::Choice(allowed), _) => Err(format!("must be one of {}, got {got}", allowed.join(", "))),
            (Kind::Schemas, HostValue::Json(v @ Value::Object(_))) => Ok(Read::Json(v)),
            (Kind::Schemas, _) => Err(format!("must be a map of event type to JSON Schema, got {got}")),
            (Kind::Fallbacks, HostValue::Json(v)) => Ok(Read::Json(v)),
            (Kind::Fallbacks, _) => Err(format!(
                "must be a map like {{\"features\": {{\"sso\": true}}, \"default\": false}}, got {got}"
            )),
        }
    }

    /// Checks the configured value against the range, naming the option in `spelling`.
    fn check(&self, config: &Config, spelling: Spelling) -> Result<(), Error> {
        let out_of_range = match (self.kind, (self.get)(config)) {
            (Kind::Count { min, max }, Some(Measure::Count(n))) => !(min..=max).contains(&n),
            (Kind::Duration { min, max }, Some(Measure::Duration(d))) => !(min..=max).contains(&d),
            _ => false,
        };
        if !out_of_range {
            return Ok(());
        }
        Err(Error::config(
            self.name(spelling),
            format!("must be {}", self.range(spelling)),
        ))
    }

    /// The allowed range in words, in `spelling`'s unit ("between 1 and 10000").
    pub fn range(&self, spelling: Spelling) -> String {
        match self.kind {
            Kind::Count { min, max } if max == u64::MAX => format!("at least {min}"),
            Kind::Count { min, max } => format!("between {min} and {max}"),
            Kind::Duration { min, max } => {
                let low = if min.is_zero() {
                    "≥ 0".to_owned()
                } else if min == Duration::from_nanos(1) {
                    "more than 0".to_owned()
                } else {
                    format!("at least {}", amount(min, spelling))
                };
                if max == Duration::MAX {
                    low
                } else {
                    format!("{low} and at most {}", amount(max, spelling))
                }
            }
            _ => String::new(),
        }
    }
}

/// A duration in `spelling`'s unit, for messages ("60 s", "60000 ms").
fn amount(d: Duration, spelling: Spelling) -> String {
    match spelling {
        Spelling::CamelMs => format!("{} ms", d.as_millis()),
        _ => format!("{} s", d.as_secs_f64()),
    }
}

/// A duration from seconds (`Snake`, `Camel`) or whole milliseconds (`CamelMs`).
fn duration(value: HostValue, spelling: Spelling) -> Option<Duration> {
    match (spelling, value) {
        (Spelling::CamelMs, HostValue::Int(ms)) => u64::try_from(ms).ok().map(Duration::from_millis),
        (Spelling::CamelMs, _) => None,
        (_, HostValue::Int(secs)) => u64::try_from(secs).ok().map(Duration::from_secs),
        (_, HostValue::Float(secs)) => Duration::try_from_secs_f64(secs).ok(),
        _ => None,
    }
}

/// Every value of the overflow policy, from the core's enum.
const OVERFLOW: &[&str] = &OverflowPolicy::NAMES;
/// Every spool fsync policy.
const SPOOL_FSYNC: &[&str] = &SpoolFsync::NAMES;
/// The compressions a client sends.
const COMPRESSION: &[&str] = &["gzip", "zstd", "identity"];

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
const MORE_THAN_ZERO: Duration = Duration::from_nanos(1);

fn text(read: Read) -> String {
    match read {
        Read::Text(s) => s,
        _ => String::new(),
    }
}
fn count(read: &Read) -> usize {
    match read {
        Read::Count(n) => *n,
        _ => 0,
    }
}
fn span(read: &Read) -> Duration {
    match read {
        Read::Duration(d) => *d,
        _ => Duration::ZERO,
    }
}
fn flag(read: &Read) -> bool {
    matches!(read, Read::Bool(true))
}
fn json(read: Read) -> Value {
    match read {
        Read::Json(v) => v,
        _ => Value::Null,
    }
}
fn none(_: &Config) -> Option<Measure> {
    None
}
fn as_u64(n: usize) -> Option<Measure> {
    Some(Measure::Count(u64::try_from(n).unwrap_or(u64::MAX)))
}

/// Every client option, in the order the docs list them.
pub static OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        snake: "api_key",
        camel: "apiKey",
        js: "apiKey",
        kind: Kind::Text,
        default: DefaultValue::Required,
        doc: "The `ml_sk_…` secret key (or `ml_pk_…` publishable key, with `customer_token`).",
        set: |c, v| {
            c.api_key = text(v);
            Ok(())
        },
        get: none,
    },
    OptionSpec {
        snake: "endpoint",
        camel: "endpoint",
        js: "endpoint",
        kind: Kind::Text,
        default: DefaultValue::Env(ENDPOINT_ENV),
        doc: "Base URL of the server (`http://…` or `https://…`); default: the `METERLINE_ENDPOINT` environment variable, else required.",
        set: |c, v| {
            c.endpoint = text(v);
            Ok(())
        },
        get: none,
    },
    OptionSpec {
        snake: "source",
        camel: "source",
        js: "source",
        kind: Kind::Text,
        default: DefaultValue::Computed("the host name"),
        doc: "CloudEvents `source` of every event (1 to 256 characters).",
        set: |c, v| {
            c.source = text(v);
            Ok(())
        },
        get: none,
    },
    OptionSpec {
        snake: "flush_at",
        camel: "flushAt",
        js: "flushAt",
        kind: Kind::Count { min: 1, max: 10_000 },
        default: DefaultValue::Count(500),
        doc: "Send a batch once this many events are queued (at most the server's batch limit).",
        set: |c, v| {
            c.flush_at = count(&v);
            Ok(())
        },
        get: |c| as_u64(c.flush_at),
    },
    OptionSpec {
        snake: "max_batch_bytes",
        camel: "maxBatchBytes",
        js: "maxBatchBytes",
        kind: Kind::Count {
            min: 1024,
            max: 5 * 1024 * 1024,
        },
        default: DefaultValue::Count(1024 * 1024),
        doc: "Largest uncompressed batch body, in bytes (1 KiB to 5 MiB).",
        set: |c, v| {
            c.max_batch_bytes = count(&v);
            Ok(())
        },
        get: |c| as_u64(c.max_batch_bytes),
    },
    OptionSpec {
        snake: "flush_interval",
        camel: "flushInterval",
        js: "flushIntervalMs",
        kind: Kind::Duration {
            min: MORE_THAN_ZERO,
            max: Duration::MAX,
        },
        default: DefaultValue::Duration(secs(1)),
        doc: "Send whatever is queued at least this often.",
        set: |c, v| {
            c.flush_interval = span(&v);
            Ok(())
        },
        get: |c| Some(Measure::Duration(c.flush_interval)),
    },
    OptionSpec {
        snake: "max_queue_size",
        camel: "maxQueueSize",
        js: "maxQueueSize",
        kind: Kind::Count { min: 1, max: u64::MAX },
        default: DefaultValue::Count(100_000),
        doc: "Most events waiting to be sent (in memory, or in the spool with `spool_dir`).",
        set: |c, v| {
            c.max_queue_size = count(&v);
            Ok(())
        },
        get: |c| as_u64(c.max_queue_size),
    },
    OptionSpec {
        snake: "overflow",
        camel: "overflow",
        js: "overflow",
        kind: Kind::Choice(OVERFLOW),
        default: DefaultValue::Text("drop_newest"),
        doc: "What a full queue does with a new event: drop it (`drop_newest`, the default: \
              `track()` returns no id and the drop is counted and reported), evict the oldest \
              (`drop_oldest`), wait up to `block_timeout` (`block`) or raise `QueueFullError` (`reject`).",
        set: |c, v| {
            c.overflow = text(v).parse()?;
            Ok(())
        },
        get: none,
    },
    OptionSpec {
        snake: "block_timeout",
        camel: "blockTimeout",
        js: "blockTimeoutMs",
        kind: Kind::Duration {
            min: Duration::ZERO,
            max: Duration::MAX,
        },
        default: DefaultValue::Duration(secs(1)),
        doc: "Longest wait of `track()` for room under the `block` overflow policy.",
        set: |c, v| {
            c.block_timeout = span(&v);
            Ok(())
        },
        get: |c| Some(Measure::Duration(c.block_timeout)),
    },
    OptionSpec {
        snake: "compression",
        camel: "compression",
        js: "compression",
        kind: Kind::Choice(COMPRESSION),
        default: DefaultValue::Text("gzip"),
        doc: "Body compression of each batch.",
        set: |c, v| {
            c.compression = text(v).parse::<Encoding>()?;
            Ok(())
        },
        get: none,
    },
    OptionSpec {
        snake: "request_timeout",
        camel: "requestTimeout",
        js: "requestTimeoutMs",
        kind: Kind::Duration {
            min: MORE_THAN_ZERO,
            max: Duration::MAX,
        },
        default: DefaultValue::Duration(secs(10)),
        doc: "Timeout of each request to the server.",
        set: |c, v| {
            c.request_timeout = span(&v);
            Ok(())
        },
        get: |c| Some(Measure::Duration(c.request_timeout)),
    },
    OptionSpec {
        snake: "strict_types",
        camel: "strictTypes",
        js: "strictTypes",
        kind: Kind::Bool,
        default: DefaultValue::Bool(false),
        doc: "Refuse event types that have no schema (`unknown_type`).",
        set: |c, v| {
            c.strict_types = flag(&v);
            Ok(())
        },
        get: none,
    },
    OptionSpec {
        snake: "fetch_schemas",
        camel: "fetchSchemas",
        js: "fetchSchemas",
        kind: Kind::Bool,
        default: DefaultValue::Bool(true),
        doc: "Fetch the server's schemas at start and refresh them by ETag.",
        set: |c, v| {
            c.fetch_schemas = flag(&v);
            Ok(())
        },
        get: none,
    },
    OptionSpec {
        snake: "schema_refresh_interval",
        camel: "schemaRefreshInterval",
        js: "schemaRefreshIntervalMs",
        kind: Kind::Duration {
            min: MORE_THAN_ZERO,
            max: Duration::MAX,
        },
        default: DefaultValue::Duration(secs(300)),
        doc: "How often the fetched schemas are refreshed.",
        set: |c, v| {
            c.schema_refresh_interval = span(&v);
            Ok(())
        },
        get: |c| Some(Measure::Duration(c.schema_refresh_interval)),
    },
    OptionSpec {
        snake: "schemas",
        camel: "schemas",
        js: "schemas",
        kind: Kind::Schemas,
        default: DefaultValue::Unset,
        doc: "Local schemas, event type → JSON Schema (used with the fetched ones).",
        set: |c, v| {
            if let Value::Object(map) = json(v) {
                c.schemas = map.into_iter().collect();
            }
            Ok(())
        },
        get: none,
    },
    OptionSpec {
        snake: "max_in_flight",
        camel: "maxInFlight",
        js: "maxInFlight",
        kind: Kind::Count { min: 1, max: 64 },
        default: DefaultValue::Count(2),
        doc: "Batch requests in flight at once.",
        set: |c, v| {
            c.max_in_flight = count(&v);
            Ok(())
        },
        get: |c| as_u64(c.max_in_flight),
    },
    OptionSpec {
        snake: "cache_size",
        camel: "cacheSize",
        js: "cacheSize",
        kind: Kind::Count { min: 1, max: 1_000_000 },
        default: DefaultValue::Count(10_000),
        doc: "Most subjects whose entitlements are cached (least recently used evicted first).",
        set: |c, v| {
            c.cache_size = count(&v);
            Ok(())
        },
        get: |c| as_u64(c.cache_size),
    },
    OptionSpec {
        snake: "entitlement_timeout",
        camel: "entitlementTimeout",
        js: "entitlementTimeoutMs",
        kind: Kind::Duration {
            min: MORE_THAN_ZERO,
            max: secs(60),
        },
        default: DefaultValue::Duration(secs(1)),
        doc: "Longest wait of `entitlement()` on a cache miss before it answers the fallback.",
        set: |c, v| {
            c.entitlement_timeout = span(&v);
            Ok(())
        },
        get: |c| Some(Measure::Duration(c.entitlement_timeout)),
    },
    OptionSpec {
        snake: "max_stale",
        camel: "maxStale",
        js: "maxStaleMs",
        kind: Kind::Duration {
            min: Duration::ZERO,
            max: secs(365 * 24 * 3600),
        },
        default: DefaultValue::Duration(secs(24 * 3600)),
        doc: "How long past its TTL a cached answer is still served as `stale`.",
        set: |c, v| {
            c.max_stale = span(&v);
            Ok(())
        },
        get: |c| Some(Measure::Duration(c.max_stale)),
    },
    OptionSpec {
        snake: "max_ttl",
        camel: "maxTtl",
        js: "maxTtlMs",
        kind: Kind::Duration {
            min: MORE_THAN_ZERO,
            max: Duration::MAX,
        },
        default: DefaultValue::Unset,
        doc: "Caps the server's TTL for cached answers (unset: the server's TTL).",
        set: |c, v| {
            c.max_ttl = Some(span(&v));
            Ok(())
        },
        get: |c| c.max_ttl.map(Measure::Duration),
    },
    OptionSpec {
        snake: "fallbacks",
        camel: "fallbacks",
        js: "fallbacks",
        kind: Kind::Fallbacks,
        default: DefaultValue::Unset,
        doc: "What `entitlement()` answers when nothing usable is cached and the server cannot answer (unset: deny).",
        set: |c, v| {
            c.fallbacks = Fallbacks::from_json(&json(v))?;
            Ok(())
        },
        get: none,
    },
    OptionSpec {
        snake: "stream",
        camel: "stream",
        js: "stream",
        kind: Kind::Bool,
        default: DefaultValue::Bool(true),
        doc: "Keep the entitlement cache current over the realtime stream.",
        set: |c, v| {
            c.stream = flag(&v);
            Ok(())
        },
        get: none,
    },
    OptionSpec {
        snake: "stream_endpoint",
        camel: "streamEndpoint",
        js: "streamEndpoint",
        kind: Kind::Text,
        default: DefaultValue::Computed("the endpoint's ws(s)://…/v1/stream"),
        doc: "The realtime stream's URL (`ws://…` or `wss://…`).",
        set: |c, v| {
            c.stream_endpoint = Some(text(v));
            Ok(())
        },
        get: none,
    },
    OptionSpec {
        snake: "customer_token",
        camel: "customerToken",
        js: "customerToken",
        kind: Kind::Text,
        default: DefaultValue::Unset,
        doc: "With a publishable key (`ml_pk_…`): the token the backend's `customer_token()` minted.",
        set: |c, v| {
            c.customer_token = Some(text(v));
            Ok(())
        },
        get: none,
    },
    OptionSpec {
        snake: "spool_dir",
        camel: "spoolDir",
        js: "spoolDir",
        kind: Kind::Path,
        default: DefaultValue::Unset,
        doc: "A directory for the crash-safe disk spool (one client per directory).",
        set: |c, v| {
            c.spool_dir = Some(text(v).into());
            Ok(())
        },
        get: none,
    },
    OptionSpec {
        snake: "spool_fsync",
        camel: "spoolFsync",
        js: "spoolFsync",
        kind: Kind::Choice(SPOOL_FSYNC),
        default: DefaultValue::Text("interval"),
        doc: "When the spool calls fsync.",
        set: |c, v| {
            c.spool_fsync = text(v).parse()?;
            Ok(())
        },
        get: none,
    },
    OptionSpec {
        snake: "persist",
        camel: "persist",
        js: "persist",
        kind: Kind::Bool,
        default: DefaultValue::Bool(true),
        doc: "Keep undelivered events on the device: in the browser, the IndexedDB outbox a later \
              page load sends and other tabs take over (where IndexedDB and Web Locks exist). \
              `false` keeps no event on the device (the browser still sends what is queued on \
              `pagehide`); native clients write only with `spool_dir`, which `false` refuses.",
        set: |c, v| {
            c.persist = flag(&v);
            Ok(())
        },
        get: none,
    },
];

/// Builds and checks a [`Config`] from the options the caller gave, named in `spelling`.
/// `host_options` are names the binding handles itself (Python's callbacks): they are
/// neither read nor called unknown, and are listed in the unknown-option message.
///
/// # Errors
/// [`Error::Config`] naming the option as the caller spelled it: an unknown name, a value of
/// the wrong type, a missing `api_key` or `endpoint` (with no `METERLINE_ENDPOINT` either),
/// or a value out of range.
pub fn config_from_host(
    given: impl IntoIterator<Item = (String, HostValue)>,
    spelling: Spelling,
    host_options: &[&str],
) -> Result<Config, Error> {
    build(given, spelling, host_options, false, &|name| std::env::var(name).ok())
}

/// [`config_from_host`] for a client given a token provider (Python's `token_provider`,
/// JavaScript's `tokenProvider`): a publishable key then needs no `customer_token`.
///
/// # Errors
/// As [`config_from_host`].
pub fn config_from_host_with_provider(
    given: impl IntoIterator<Item = (String, HostValue)>,
    spelling: Spelling,
    host_options: &[&str],
    has_token_provider: bool,
) -> Result<Config, Error> {
    build(given, spelling, host_options, has_token_provider, &|name| {
        std::env::var(name).ok()
    })
}

/// [`config_from_host`] with the environment given (`env` looks a variable up).
fn build(
    given: impl IntoIterator<Item = (String, HostValue)>,
    spelling: Spelling,
    host_options: &[&str],
    has_token_provider: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Error> {
    let mut config = Config::new("", "");
    let (mut api_key, mut endpoint) = (false, false);
    for (name, value) in given {
        if host_options.contains(&name.as_str()) {
            continue;
        }
        let Some(spec) = OptionSpec::find(&name, spelling) else {
            let mut known: Vec<&str> = OPTIONS.iter().map(|o| o.name(spelling)).collect();
            known.extend_from_slice(host_options);
            return Err(Error::config(
                name,
                format!("unknown option; the options are {}", known.join(", ")),
            ));
        };
        let read = spec
            .read(value, spelling)
            .map_err(|message| Error::config(spec.name(spelling), message))?;
        (spec.set)(&mut config, read).map_err(|e| respell(e, spelling))?;
        api_key |= spec.snake == "api_key";
        endpoint |= spec.snake == "endpoint";
    }
    let name = |snake: &str| {
        OPTIONS
            .iter()
            .find(|o| o.snake == snake)
            .map_or("", |o| o.name(spelling))
    };
    if !api_key {
        return Err(Error::config(name("api_key"), "is required (an ml_sk_… secret key)"));
    }
    if !endpoint {
        config.endpoint = env(ENDPOINT_ENV).filter(|e| !e.trim().is_empty()).ok_or_else(|| {
            Error::config(
                name("endpoint"),
                format!("is required: pass the server's base URL or set {ENDPOINT_ENV}"),
            )
        })?;
    }
    config
        .validate_for(has_token_provider)
        .map_err(|e| respell(e, spelling))?;
    Ok(config)
}

/// The table as data, as `tests/vectors/options.json` writes it (`table`): names, type,
/// choices, default and range (durations in milliseconds), doc.
pub fn table_json() -> Value {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let rows = OPTIONS.iter().map(|o| {
        let (kind, min, max, choices) = match o.kind {
            Kind::Text => ("string", None, None, None),
            Kind::Bool => ("boolean", None, None, None),
            Kind::Path => ("path", None, None, None),
            Kind::Schemas => ("schemas", None, None, None),
            Kind::Fallbacks => ("fallbacks", None, None, None),
            Kind::Choice(values) => ("choice", None, None, Some(values)),
            Kind::Count { min, max } => ("count", Some(min), (max != u64::MAX).then_some(max), None),
            Kind::Duration { min, max } => (
                "duration",
                Some(ms(min)),
                (max != Duration::MAX).then_some(ms(max)),
                None,
            ),
        };
        let (default, default_text) = match o.default {
            DefaultValue::Required => (Value::Null, "required".to_owned()),
            DefaultValue::Env(var) => (Value::Null, format!("${var}, else required")),
            DefaultValue::Computed(what) => (Value::Null, what.to_owned()),
            DefaultValue::Unset => (Value::Null, "unset".to_owned()),
            DefaultValue::Bool(b) => (Value::Bool(b), b.to_string()),
            DefaultValue::Count(n) => (n.into(), n.to_string()),
            DefaultValue::Duration(d) => (ms(d).into(), format!("{} ms", ms(d))),
            DefaultValue::Text(t) => (t.into(), t.to_owned()),
        };
        serde_json::json!({
            "snake": o.snake,
            "camel": o.camel,
            "js": o.js,
            "type": kind,
            "choices": choices,
            "default": default,
            "default_text": default_text,
            "min": min,
            "min_exclusive": matches!(o.kind, Kind::Duration { min, .. } if min == MORE_THAN_ZERO),
            "max": max,
            "doc": o.doc,
        })
    });
    Value::Array(rows.collect())
}

/// Checks every number and duration of `config` against its range (errors name the option
/// in snake_case; [`config_from_host`] respells them).
pub(crate) fn check_ranges(config: &Config) -> Result<(), Error> {
    OPTIONS.iter().try_for_each(|o| o.check(config, Spelling::Snake))
}

/// A configuration error of the core (named in snake_case) renamed into `spelling`, its
/// range and units too; any other error unchanged. For the errors a client reports after
/// [`config_from_host`] (a spool directory in use, a schema that does not compile).
pub fn respell(err: Error, spelling: Spelling) -> Error {
    match err {
        Error::Config { field, message } => match OptionSpec::find(&field, Spelling::Snake) {
            Some(spec) if message.starts_with("must be ") && !spec.range(Spelling::Snake).is_empty() => {
                let snake = format!("must be {}", spec.range(Spelling::Snake));
                let message = message.replace(&snake, &format!("must be {}", spec.range(spelling)));
                Error::config(spec.name(spelling), message)
            }
            Some(spec) => Error::config(spec.name(spelling), message),
            None => Error::Config { field, message },
        },
        other => other,
    }
}

#[cfg(test)]
#[path = "options_tests.rs"]
mod tests;
