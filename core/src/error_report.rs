//! A core error as every binding shows it: the class to raise, the stable code, the message
//! and the details of its variant, decided here once. A binding only converts the report
//! into its language's value (a JavaScript object the JS layer turns into the class, a
//! uniffi error variant); it never looks inside [`Error`] itself.

use crate::{
    error::{Error, ErrorClass, ValidationError},
    options::{self, Spelling},
};

/// What a binding raises for a core error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReport {
    /// The class to raise (its name is [`ErrorClass::name`]).
    pub class: ErrorClass,
    /// Stable, machine-readable code (the HTTP API's spelling).
    pub code: String,
    /// What was wrong, in words: the error's `Display` text; a validation error without a
    /// path reads `code: message`.
    pub message: String,
    /// JSON pointer of the offending value (validation and argument errors, server
    /// rejections).
    pub path: Option<String>,
    /// The call argument at fault (`subject`, `feature`, `ttlMs` …): the first segment of an
    /// argument error's path.
    pub argument: Option<String>,
    /// The option at fault, as the report's spelling names it (configuration errors).
    pub option: Option<String>,
    /// HTTP status, when the server answered with an error.
    pub status: Option<u16>,
    /// Id of the event a server rejection is about.
    pub event_id: Option<String>,
}

impl ErrorReport {
    /// The report of an error a client raised: a configuration error, which the core names
    /// in snake_case once the options are read (a spool directory in use, a schema that does
    /// not compile), names the option as `spelling` does.
    pub fn new(err: &Error, spelling: Spelling) -> Self {
        match err {
            Error::Config { .. } => ErrorReport::as_named(&options::respell(err.clone(), spelling)),
            _ => ErrorReport::as_named(err),
        }
    }

    /// The report of `err` with its option named as it already is: for the errors of
    /// [`options::config_from_host`], which name an option as the caller wrote it (an
    /// unknown `flush_at` stays `flush_at`).
    pub fn as_named(err: &Error) -> Self {
        if let Error::Validation(v) = err {
            return ErrorReport::validation(v);
        }
        let report = ErrorReport {
            status: err.status(),
            ..ErrorReport::bare(err.class(), err.code(), err.to_string())
        };
        match err {
            Error::Config { field, .. } => ErrorReport {
                option: Some(field.to_string()),
                ..report
            },
            Error::Rejected(r) => ErrorReport {
                path: Some(r.path.clone()),
                event_id: r.id.clone(),
                ..report
            },
            _ => report,
        }
    }

    /// A validation error with its JSON pointer; an `invalid_argument` one (an
    /// [`ErrorClass::Argument`]) also names the argument, the pointer's first segment.
    pub fn validation(err: &ValidationError) -> Self {
        let message = if err.path.is_empty() {
            format!("{}: {}", err.code, err.message)
        } else {
            err.to_string()
        };
        let class = Error::Validation(err.clone()).class();
        let argument = (class == ErrorClass::Argument).then(|| {
            err.path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned()
        });
        ErrorReport {
            path: Some(err.path.clone()),
            argument,
            ..ErrorReport::bare(class, err.code, message)
        }
    }

    /// A report of `class` with no details.
    pub fn bare(class: ErrorClass, code: &str, message: String) -> Self {
        ErrorReport {
            class,
            code: code.to_owned(),
            message,
            path: None,
            argument: None,
            option: None,
            status: None,
            event_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_argument_error_names_the_argument_and_keeps_its_path() {
        let report = ErrorReport::validation(&ValidationError::invalid_argument("/ttlMs", "must be at least 1 s"));
        assert_eq!(report.class, ErrorClass::Argument);
        assert_eq!(report.argument.as_deref(), Some("ttlMs"));
        assert_eq!(report.path.as_deref(), Some("/ttlMs"));
        assert_eq!(report.message, "invalid_argument at /ttlMs: must be at least 1 s");
    }

    #[test]
    fn a_validation_error_without_a_path_reads_code_then_message() {
        let report = ErrorReport::validation(&ValidationError::too_large(10, 5));
        assert_eq!(report.class, ErrorClass::Validation);
        assert_eq!(report.argument, None);
        assert_eq!(
            report.message,
            "event_too_large: event is 10 bytes serialized; the limit is 5"
        );
    }

    #[test]
    fn a_config_error_is_respelled_unless_taken_as_named() {
        let err = Error::config("flush_at", "must be at least 1");
        assert_eq!(
            ErrorReport::new(&err, Spelling::CamelMs).option.as_deref(),
            Some("flushAt")
        );
        assert_eq!(ErrorReport::as_named(&err).option.as_deref(), Some("flush_at"));
        assert_eq!(ErrorReport::new(&err, Spelling::CamelMs).class, ErrorClass::Config);
    }

    #[test]
    fn a_rejection_carries_its_path_and_event_id_a_server_error_its_status() {
        let rejection = crate::wire::Rejection {
            index: 0,
            id: Some("e-1".into()),
            code: "schema_violation".into(),
            message: "not a number".into(),
            path: "/data/tokens".into(),
        };
        let report = ErrorReport::new(&Error::Rejected(rejection), Spelling::Camel);
        assert_eq!(report.class, ErrorClass::Rejected);
        assert_eq!(report.path.as_deref(), Some("/data/tokens"));
        assert_eq!(report.event_id.as_deref(), Some("e-1"));
        let err = Error::Http {
            status: 429,
            code: "rate_limited".into(),
            message: "slow down".into(),
        };
        let report = ErrorReport::new(&err, Spelling::Camel);
        assert_eq!((report.class, report.status), (ErrorClass::Server, Some(429)));
        assert_eq!(report.code, "rate_limited");
    }
}
