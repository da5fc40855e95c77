//! Every core error as the JavaScript class the core names for it ([`CoreError::class`]).
//!
//! A core error crosses into JavaScript as an [`ErrorReport`]: the class name (`kind`), the
//! stable `code` and the details of its variant. The JavaScript layer (`lib/errors.js`) turns
//! it into an instance of that `MeterlineError` subclass. Synchronous calls throw the report,
//! promises reject with it, and background errors reach `client.on('error')` as one.

use meterline_core::{
    Error as CoreError, ErrorClass, ValidationError, error::ErrorReport as CoreReport, options::Spelling,
};
use napi::{Env, JsValue};
use napi_derive::napi;

/// A core error as it crosses into JavaScript (internal; the JS layer wraps it).
#[napi(object)]
#[derive(Debug, Clone)]
pub struct ErrorReport {
    /// The JS class to build: one of the core's `ErrorClass` names (`ValidationError`,
    /// `ConfigError`, `ArgumentError` …).
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
    /// A validation error with a JSON pointer; an `invalid_argument` one (a bad `subject`,
    /// `feature`, `ttlMs`, `timeoutMs` of a call) is an `ArgumentError` naming the parameter.
    pub fn validation(err: &ValidationError) -> Self {
        CoreReport::validation(err).into()
    }

    /// The report of `err` with its option named as it already is: for the errors of
    /// `options::config_from_host`, which name an option as the caller wrote it (an unknown
    /// `flush_at` must stay `flush_at`).
    pub fn as_named(err: &CoreError) -> Self {
        CoreReport::as_named(err).into()
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
    /// Configuration errors the client reports after reading the options name the option as
    /// JavaScript spells it.
    fn from(err: &CoreError) -> Self {
        CoreReport::new(err, Spelling::CamelMs).into()
    }
}

impl From<CoreReport> for ErrorReport {
    fn from(report: CoreReport) -> Self {
        ErrorReport {
            kind: report.class.name().to_owned(),
            code: report.code,
            message: report.message,
            path: report.path,
            option: report.option,
            argument: report.argument,
            status: report.status.map(u32::from),
            event_id: report.event_id,
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

/// The core's error classes, base first, as JSON `[{name, parent, defaultCode}]` (internal:
/// `lib/errors.js` checks its classes against it).
#[napi]
pub fn error_classes() -> String {
    ErrorClass::table_json()
}
