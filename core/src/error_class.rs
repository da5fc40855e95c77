//! The error classes every language raises: one list, named once, here.
//!
//! Each core [`crate::Error`] names its class ([`crate::Error::class`]); a binding only looks
//! the name up in its own package (Python `meterline.errors`, the npm package's error
//! classes) and adds its idiom (Python's `ConfigError` is also a `ValueError`, its
//! `TimeoutError` also the built-in one; Kotlin will spell them `…Exception`, Swift as the
//! cases of one `Error` enum). `tests/vectors/errors.json` writes the same list as data, and
//! core and both bindings check it.

/// One error class of the meterline API. The name ([`ErrorClass::name`]) is the class's
/// name in Python and JavaScript; [`ErrorClass::parent`] gives the hierarchy (every class but
/// [`ErrorClass::Meterline`] descends from `MeterlineError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// `MeterlineError`: the base of every class; raised as itself only for a code no class
    /// below covers.
    Meterline,
    /// `ValidationError`: an event refused by `track()` before it was queued
    /// (`invalid_event`, `schema_violation`, `unknown_type`, `event_too_large`), with `path`.
    Validation,
    /// `RejectedError` (a `ValidationError`): the server refused one event of a batch; the
    /// rest was stored. Reported to the error callback, never raised by a call.
    Rejected,
    /// `ArgumentError` (a `ValidationError`): a method argument other than an event is
    /// wrong (`invalid_argument`): a subject, a feature, a TTL, a timeout, a payload.
    Argument,
    /// `ConfigError`: a client option is missing, unknown, of the wrong type or out of range
    /// (`invalid_config`), naming the option as the caller spelled it.
    Config,
    /// `AuthError`: the server refused the API key (`unauthorized`, HTTP 401).
    Auth,
    /// `ForbiddenError` (an `AuthError`): the key lacks the scope for the call (`forbidden`,
    /// HTTP 403).
    Forbidden,
    /// `TimeoutError`: a call did not finish in time (`timeout`); what `flush()` or
    /// `shutdown()` did not deliver stays queued.
    Timeout,
    /// `QueueFullError`: the queue was full and the overflow policy refused the event
    /// (`queue_full`).
    QueueFull,
    /// `ClosedError`: the client was shut down (`client_closed`).
    Closed,
    /// `NetworkError`: the server could not be reached or the connection broke
    /// (`network_error`).
    Network,
    /// `ServerError`: the server answered with an error status no class above covers
    /// (`rate_limited`, `overloaded`, `http_<status>` …), with `status`.
    Server,
    /// `CodecError`: a body could not be encoded, decoded or decompressed, or a schema is not
    /// valid JSON Schema (`invalid_json`, `invalid_schema`, `bad_encoding` …).
    Codec,
    /// `StreamError`: the realtime stream reported a problem (the server's code or
    /// `stream_unavailable`). Reported to the error callback, never raised by a call.
    Stream,
    /// `SpoolError`: the disk spool (`spool_dir`) could not store an event (`spool_error`).
    Spool,
}

impl ErrorClass {
    /// Every class, base first.
    pub const ALL: [ErrorClass; 15] = [
        ErrorClass::Meterline,
        ErrorClass::Validation,
        ErrorClass::Rejected,
        ErrorClass::Argument,
        ErrorClass::Config,
        ErrorClass::Auth,
        ErrorClass::Forbidden,
        ErrorClass::Timeout,
        ErrorClass::QueueFull,
        ErrorClass::Closed,
        ErrorClass::Network,
        ErrorClass::Server,
        ErrorClass::Codec,
        ErrorClass::Stream,
        ErrorClass::Spool,
    ];

    /// The class's name in Python and JavaScript (`ValidationError` …).
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Meterline => "MeterlineError",
            ErrorClass::Validation => "ValidationError",
            ErrorClass::Rejected => "RejectedError",
            ErrorClass::Argument => "ArgumentError",
            ErrorClass::Config => "ConfigError",
            ErrorClass::Auth => "AuthError",
            ErrorClass::Forbidden => "ForbiddenError",
            ErrorClass::Timeout => "TimeoutError",
            ErrorClass::QueueFull => "QueueFullError",
            ErrorClass::Closed => "ClosedError",
            ErrorClass::Network => "NetworkError",
            ErrorClass::Server => "ServerError",
            ErrorClass::Codec => "CodecError",
            ErrorClass::Stream => "StreamError",
            ErrorClass::Spool => "SpoolError",
        }
    }

    /// The `code` an instance built by hand gets when none is given (the core always gives
    /// one).
    pub fn default_code(self) -> &'static str {
        match self {
            ErrorClass::Meterline => "meterline_error",
            ErrorClass::Validation | ErrorClass::Rejected => "invalid_event",
            ErrorClass::Argument => "invalid_argument",
            ErrorClass::Config => "invalid_config",
            ErrorClass::Auth => "unauthorized",
            ErrorClass::Forbidden => "forbidden",
            ErrorClass::Timeout => "timeout",
            ErrorClass::QueueFull => "queue_full",
            ErrorClass::Closed => "client_closed",
            ErrorClass::Network => "network_error",
            ErrorClass::Server => "server_error",
            ErrorClass::Codec => "codec_error",
            ErrorClass::Stream => "stream_error",
            ErrorClass::Spool => "spool_error",
        }
    }

    /// The class this one extends (`None` for `MeterlineError` itself).
    pub fn parent(self) -> Option<ErrorClass> {
        match self {
            ErrorClass::Meterline => None,
            ErrorClass::Rejected | ErrorClass::Argument => Some(ErrorClass::Validation),
            ErrorClass::Forbidden => Some(ErrorClass::Auth),
            _ => Some(ErrorClass::Meterline),
        }
    }

    /// Every class as JSON text, base first: `[{"name", "parent", "defaultCode"}]` (`parent`
    /// null for `MeterlineError`), for the JavaScript packages to check their classes
    /// against.
    pub fn table_json() -> String {
        let rows: Vec<serde_json::Value> = ErrorClass::ALL
            .iter()
            .map(|class| {
                serde_json::json!({
                    "name": class.name(),
                    "parent": class.parent().map(ErrorClass::name),
                    "defaultCode": class.default_code(),
                })
            })
            .collect();
        serde_json::Value::Array(rows).to_string()
    }

    /// The class called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<ErrorClass> {
        ErrorClass::ALL.into_iter().find(|class| class.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_a_unique_name_and_reaches_the_base() {
        for class in ErrorClass::ALL {
            assert_eq!(ErrorClass::from_name(class.name()), Some(class));
            let mut hops = 0;
            let mut up = class;
            while let Some(parent) = up.parent() {
                up = parent;
                hops += 1;
                assert!(hops < 4, "{class:?}: a cycle");
            }
            assert_eq!(up, ErrorClass::Meterline, "{class:?}");
        }
    }
}
