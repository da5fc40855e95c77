//! Every core error mapped, once, to the JavaScript class that represents it.
//!
//! A core error crosses into JavaScript as an [`ErrorReport`]: the class name (`kind`), the
//! stable `code` and the details of its variant. The JavaScript layer (`index.js`) turns it
//! into an instance of that `MeterlineError` subclass. Synchronous calls throw the report,
//! promises reject with it, and background errors reach `client.on('error')` as one.

use meterline_core::{Error as CoreError, ValidationError};
use napi::{Env, JsValue};
use napi_derive::napi;

use crate::config::js_option_name;

/// A core error as it crosses into JavaScript (internal; the JS layer wraps it).
#[napi(object)]
#[derive(Debug, Clone)]
pub struct ErrorReport {
    /// The JS class to build: `ValidationError`, `ConfigError`, `AuthError`, `TimeoutError`,
    /// `QueueFullError`, `ClosedError`, `NetworkError`, `StreamError`, `ArgumentError` or
    /// `MeterlineError`.
    pub kind: String,
    /// Stable, machine-readable code (the HTTP API's spelling).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// JSON pointer inside the event (validation errors and server rejections).
    pub path: Option<String>,
    /// The option at fault, as named in JavaScript (`flushAt` …) — configuration errors.
    pub option: Option<String>,
    /// The call argument at fault, as named in JavaScript (`subject`, `feature`, `ttlMs` …)
    /// — argument errors.
    pub argument: Option<String>,
    /// HTTP status, when the server answered with an error.
    pub status: Option<u32>,
    /// Id of the event a server rejection is about.
    pub event_id: Option<String>,
}

impl ErrorReport {
    fn new(kind: &str, code: &str, message: String) -> Self {
        ErrorReport {
            kind: kind.to_owned(),
            code: code.to_owned(),
            message,
            path: None,
            option: None,
            argument: None,
            status: None,
            event_id: None,
        }
    }

    /// A configuration error about the JS option `option` (used for type conversion errors,
    /// which happen before the core sees the options).
    pub fn config(option: &str, message: impl std::fmt::Display) -> Self {
        ErrorReport {
            option: Some(option.to_owned()),
            ..ErrorReport::new(
                "ConfigError",
                "invalid_config",
                format!("invalid option `{option}`: {message}"),
            )
        }
    }

    /// A validation error with a JSON pointer. The core's `invalid_argument` (a bad
    /// `subject`, `feature` or `ttl` of an entitlement call) is an `ArgumentError` naming the
    /// JavaScript parameter, like every other wrong argument of the package.
    pub fn validation(err: &ValidationError) -> Self {
        let message = if err.path.is_empty() {
            format!("{}: {}", err.code, err.message)
        } else {
            err.to_string()
        };
        if err.code == "invalid_argument" {
            let argument = match err.path.trim_start_matches('/') {
                "ttl" => "ttlMs",
                other => other,
            };
            return ErrorReport {
                path: Some(err.path.clone()),
                argument: Some(argument.to_owned()),
                ..ErrorReport::new("ArgumentError", err.code, message)
            };
        }
        ErrorReport {
            path: Some(err.path.clone()),
            ..ErrorReport::new("ValidationError", err.code, message)
        }
    }

    /// Builds a JS `Error` carrying `kind`, `code` and the details as properties, wrapped as
    /// a napi error so that returning it throws (or rejects with) exactly that object.
    pub fn into_napi_err(self, env: &Env) -> napi::Error {
        match self.to_js(env) {
            Ok(value) => value,
            // Only reachable when the environment is tearing down; keep the code at least.
            Err(err) => napi::Error::new(err.status, format!("{}: {}", self.code, self.message)),
        }
    }

    fn to_js(&self, env: &Env) -> napi::Result<napi::Error> {
        let mut obj = env.create_error(napi::Error::new(napi::Status::GenericFailure, self.message.as_str()))?;
        obj.set("kind", self.kind.as_str())?;
        obj.set("code", self.code.as_str())?;
        if let Some(path) = &self.path {
            obj.set("path", path.as_str())?;
        }
        if let Some(option) = &self.option {
            obj.set("option", option.as_str())?;
        }
        if let Some(argument) = &self.argument {
            obj.set("argument", argument.as_str())?;
        }
        if let Some(status) = self.status {
            obj.set("status", status)?;
        }
        if let Some(id) = &self.event_id {
            obj.set("eventId", id.as_str())?;
        }
        Ok(napi::Error::from(obj.to_unknown()))
    }
}

impl From<&CoreError> for ErrorReport {
    fn from(err: &CoreError) -> Self {
        let code = err.code();
        match err {
            CoreError::Validation(v) => ErrorReport::validation(v),
            CoreError::Config { field, message } => ErrorReport::config(js_option_name(field), message),
            CoreError::Unauthorized { .. } | CoreError::Forbidden { .. } => {
                ErrorReport::new("AuthError", code, err.to_string())
            }
            CoreError::Timeout(_) => ErrorReport::new("TimeoutError", code, err.to_string()),
            CoreError::QueueFull { .. } => ErrorReport::new("QueueFullError", code, err.to_string()),
            CoreError::Closed => ErrorReport::new("ClosedError", code, err.to_string()),
            CoreError::Network(_) => ErrorReport::new("NetworkError", code, err.to_string()),
            CoreError::Http { status, .. } => ErrorReport {
                status: Some(u32::from(*status)),
                ..ErrorReport::new("MeterlineError", code, err.to_string())
            },
            // The server refused one event of a batch: the same class as a local refusal.
            CoreError::Rejected(r) => ErrorReport {
                path: Some(r.path.clone()),
                event_id: r.id.clone(),
                ..ErrorReport::new("ValidationError", code, err.to_string())
            },
            CoreError::Codec { .. } => ErrorReport::new("MeterlineError", code, err.to_string()),
            CoreError::Stream { .. } => ErrorReport::new("StreamError", code, err.to_string()),
            // `Error` is non-exhaustive: a variant added to the core later is still a
            // `MeterlineError` with its stable code until it gets a class of its own.
            _ => ErrorReport::new("MeterlineError", code, err.to_string()),
        }
    }
}

/// Maps a core error to the thrown JS value (see [`ErrorReport::into_napi_err`]).
pub trait IntoNapiErr {
    /// Converts into a napi error carrying the [`ErrorReport`] object.
    fn into_napi_err(self, env: &Env) -> napi::Error;
}

impl IntoNapiErr for CoreError {
    fn into_napi_err(self, env: &Env) -> napi::Error {
        ErrorReport::from(&self).into_napi_err(env)
    }
}

impl IntoNapiErr for ValidationError {
    fn into_napi_err(self, env: &Env) -> napi::Error {
        ErrorReport::validation(&self).into_napi_err(env)
    }
}
