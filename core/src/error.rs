//! The one error type of the core.
//!
//! Every variant has a stable [`Error::code`] string. Codes that the server also sends are
//! spelled the same as in the HTTP API's `{"code": …}` bodies, so a binding can map both the
//! local and the remote failure of one kind to the same exception class.

use std::{borrow::Cow, time::Duration};

pub use crate::{error_class::ErrorClass, error_report::ErrorReport};

/// Why an event failed validation: what was wrong (`code`, `message`) and where (`path`, a
/// JSON pointer into the CloudEvent, e.g. `/data/tokens` or `/id`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} at {path}: {message}")]
pub struct ValidationError {
    /// Stable code: `invalid_event`, `schema_violation`, `unknown_type`, `event_too_large`.
    pub code: &'static str,
    /// JSON pointer of the offending value inside the event (`""` for the event itself).
    pub path: String,
    /// Human-readable explanation that names the rule that failed.
    pub message: String,
}

impl ValidationError {
    /// An envelope problem (missing field, wrong type, bad `specversion`, overlong id …).
    pub fn invalid_event(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: "invalid_event",
            path: path.into(),
            message: message.into(),
        }
    }

    /// The event's `data` does not satisfy the JSON Schema registered for its type.
    pub fn schema_violation(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: "schema_violation",
            path: path.into(),
            message: message.into(),
        }
    }

    /// The event type has no registered schema and strict types are on.
    pub fn unknown_type(event_type: &str) -> Self {
        Self {
            code: "unknown_type",
            path: "/type".into(),
            message: format!("event type `{event_type}` has no registered schema and strict types are on"),
        }
    }

    /// A call argument other than an event is missing or malformed (`path` names it:
    /// `/subject`, `/feature`, `/ttl`).
    pub fn invalid_argument(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: "invalid_argument",
            path: path.into(),
            message: message.into(),
        }
    }

    /// The serialized event is larger than [`crate::event::MAX_EVENT_BYTES`].
    pub fn too_large(size: usize, max: usize) -> Self {
        Self {
            code: "event_too_large",
            path: String::new(),
            message: format!("event is {size} bytes serialized; the limit is {max}"),
        }
    }
}

/// Everything that can go wrong in meterline's core.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event was rejected before it was queued (or by the server, per event).
    #[error(transparent)]
    Validation(#[from] ValidationError),

    /// A configuration value is missing, unknown, of the wrong type or out of range.
    #[error("invalid configuration `{field}`: {message}")]
    Config {
        /// The option's name as the caller spelled it (`flush_at` from Python,
        /// `flushIntervalMs` from JavaScript …; see [`crate::options`]).
        field: Cow<'static, str>,
        /// What is wrong with it and what is allowed.
        message: String,
    },

    /// The API key was malformed, unknown or revoked (HTTP 401).
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// Server's or the parser's explanation.
        message: String,
    },

    /// The key is valid but lacks the scope for this call (HTTP 403).
    #[error("forbidden: {message}")]
    Forbidden {
        /// Server's explanation.
        message: String,
    },

    /// A call did not finish within its timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),

    /// The queue was full and the overflow policy dropped this event.
    #[error("queue full ({capacity} events): event dropped by the `{policy}` overflow policy")]
    QueueFull {
        /// `max_queue_size`.
        capacity: usize,
        /// The overflow policy that applied.
        policy: &'static str,
    },

    /// The client was shut down; no more events are accepted.
    #[error("the client has been shut down")]
    Closed,

    /// The server could not be reached or the connection broke.
    #[error("network error: {0}")]
    Network(String),

    /// The server answered with an error status that is not one of the above.
    #[error("server answered {status} {code}: {message}")]
    Http {
        /// HTTP status.
        status: u16,
        /// The `code` of the server's JSON error body (or `http_<status>`).
        code: String,
        /// The `message` of the server's JSON error body.
        message: String,
    },

    /// The server refused one event of a batch (the rest was stored); not retried.
    #[error("event {} rejected by the server: {} at {}: {}", .0.id.as_deref().unwrap_or("?"), .0.code, .0.path, .0.message)]
    Rejected(crate::wire::Rejection),

    /// The realtime stream reported a problem (an `error` message, an unexpected close).
    #[error("stream: {code}: {message}")]
    Stream {
        /// The server's code (`bad_message`, `too_many_subjects`, …) or `stream_closed`.
        code: String,
        /// What was wrong.
        message: String,
    },

    /// The disk spool (`spool_dir`) could not store an event (disk full, I/O error); the
    /// event was not accepted.
    #[error("spool_error: {0}")]
    Spool(String),

    /// Something inside the client broke that the caller can do nothing about (a thread or
    /// runtime that could not start, a task that stopped unexpectedly).
    #[error("internal error: {0}")]
    Internal(String),

    /// A body could not be encoded, decoded or decompressed.
    #[error("{code}: {message}")]
    Codec {
        /// `bad_encoding`, `payload_too_large`, `invalid_json` …
        code: &'static str,
        /// Details.
        message: String,
    },
}

impl Error {
    /// The stable, machine-readable code of this error (same spelling as the HTTP API).
    pub fn code(&self) -> &str {
        match self {
            Error::Validation(v) => v.code,
            Error::Config { .. } => "invalid_config",
            Error::Unauthorized { .. } => "unauthorized",
            Error::Forbidden { .. } => "forbidden",
            Error::Timeout(_) => "timeout",
            Error::QueueFull { .. } => "queue_full",
            Error::Closed => "client_closed",
            Error::Network(_) => "network_error",
            Error::Spool(_) => "spool_error",
            Error::Internal(_) => "internal_error",
            Error::Http { code, .. } => code,
            Error::Codec { code, .. } => code,
            Error::Stream { code, .. } => code,
            Error::Rejected(r) => &r.code,
        }
    }

    /// Shorthand for [`Error::Config`].
    pub fn config(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The error an HTTP error answer stands for: 401 → [`Error::Unauthorized`], 403 →
    /// [`Error::Forbidden`], any other status → [`Error::Http`] with the body's `code`.
    pub fn from_response(status: u16, code: String, message: String) -> Self {
        match status {
            401 => Error::Unauthorized { message },
            403 => Error::Forbidden { message },
            _ => Error::Http { status, code, message },
        }
    }

    /// The class every language raises for this error (`ValidationError`, `ConfigError` …;
    /// the one list is [`ErrorClass::ALL`], `tests/vectors/errors.json` spells it out).
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Validation(v) if v.code == "invalid_argument" => ErrorClass::Argument,
            Error::Validation(_) => ErrorClass::Validation,
            Error::Config { .. } => ErrorClass::Config,
            Error::Unauthorized { .. } => ErrorClass::Auth,
            Error::Forbidden { .. } => ErrorClass::Forbidden,
            Error::Timeout(_) => ErrorClass::Timeout,
            Error::QueueFull { .. } => ErrorClass::QueueFull,
            Error::Closed => ErrorClass::Closed,
            Error::Network(_) => ErrorClass::Network,
            Error::Http { .. } => ErrorClass::Server,
            Error::Rejected(_) => ErrorClass::Rejected,
            Error::Stream { .. } => ErrorClass::Stream,
            Error::Spool(_) => ErrorClass::Spool,
            Error::Codec { .. } => ErrorClass::Codec,
            Error::Internal(_) => ErrorClass::Meterline,
        }
    }

    /// Whether a request that failed this way is worth retrying: network failures and
    /// timeouts, and the HTTP statuses of [`crate::retry::is_retryable_status`] (408, 429,
    /// 5xx). Never any other 4xx, a refused key or a local error.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Network(_) | Error::Timeout(_) => true,
            Error::Http { status, .. } => crate::retry::is_retryable_status(*status),
            _ => false,
        }
    }

    /// The HTTP status the server answered with, when this error is the server's answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { .. } => Some(401),
            Error::Forbidden { .. } => Some(403),
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Result alias used across the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(Error::Closed.code(), "client_closed");
        assert_eq!(Error::config("flush_at", "must be > 0").code(), "invalid_config");
        let v = ValidationError::schema_violation("/data/tokens", "not an integer");
        assert_eq!(Error::from(v.clone()).code(), "schema_violation");
        assert_eq!(v.to_string(), "schema_violation at /data/tokens: not an integer");
        let http = Error::Http {
            status: 409,
            code: "conflict".into(),
            message: "x".into(),
        };
        assert_eq!(http.code(), "conflict");
    }
}
