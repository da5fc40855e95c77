//! Every core error as the class the core names for it ([`CoreError::class`]): one uniffi
//! error enum whose variants are the core's classes. uniffi turns it into Kotlin's sealed
//! `MeterlineException` (variants `MeterlineException.ValidationException` …) and Swift's
//! `MeterlineError` enum (`.validationError(…)` …). The core's base class itself is the
//! variant `GenericError`; its subclass hierarchy (an `ArgumentError` is a `ValidationError`)
//! is flat here, as uniffi's error enums are: [`error_classes`] gives each class's parent.

use meterline_core::{Error as CoreError, ErrorClass, ValidationError, error::ErrorReport, options::Spelling};

/// The details every meterline error carries (the fields of each variant).
macro_rules! error_enum {
    ($($(#[$doc:meta])* $variant:ident => $class:ident,)*) => {
        /// A meterline error: one variant per class of the core's list, each with the stable
        /// `code` (the HTTP API's spelling), the `detail` message, and the details that
        /// apply: `path` (JSON pointer; validation errors and server rejections), `option`
        /// (configuration errors, camelCase), `status` (HTTP), `eventId` (rejections).
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
        pub enum MeterlineError {
            $(
                $(#[$doc])*
                #[error("{detail}")]
                $variant {
                    /// Stable, machine-readable code.
                    code: String,
                    /// What was wrong, in words.
                    detail: String,
                    /// JSON pointer of the offending value (validation errors, rejections).
                    path: Option<String>,
                    /// The option at fault, as Kotlin and Swift name it (configuration errors).
                    option: Option<String>,
                    /// HTTP status, when the server answered with an error.
                    status: Option<u16>,
                    /// Id of the event a server rejection is about.
                    event_id: Option<String>,
                },
            )*
        }

        impl MeterlineError {
            /// The variant of the core report's class, with its details (Kotlin and Swift read
            /// an `ArgumentError`'s argument off its `path`).
            fn of_report(report: ErrorReport) -> Self {
                let ErrorReport { class, code, message: detail, path, option, status, event_id, .. } = report;
                match class {
                    $(ErrorClass::$class => MeterlineError::$variant { code, detail, path, option, status, event_id },)*
                }
            }

            /// The stable code, whatever the variant.
            pub fn code(&self) -> String {
                match self {
                    $(MeterlineError::$variant { code, .. } => code.clone(),)*
                }
            }
        }
    };
}

error_enum! {
    /// The core's base class `MeterlineError` raised as itself: a code no class below covers.
    /// (Named `Generic…` because Kotlin's sealed base is already `MeterlineException`.)
    GenericError => Meterline,
    /// An event refused by `track()` before it was queued, with `path`.
    ValidationError => Validation,
    /// The server refused one event of a batch (the rest was stored); listener only.
    RejectedError => Rejected,
    /// A method argument other than an event is wrong (`invalid_argument`), with `path`.
    ArgumentError => Argument,
    /// A client option is missing, unknown, of the wrong type or out of range, with `option`.
    ConfigError => Config,
    /// The server refused the API key (`unauthorized`).
    AuthError => Auth,
    /// The key lacks the scope for the call (`forbidden`).
    ForbiddenError => Forbidden,
    /// A call did not finish in time (`timeout`); what is undelivered stays queued.
    TimeoutError => Timeout,
    /// The queue was full and the overflow policy refused the event (`queue_full`).
    QueueFullError => QueueFull,
    /// The client was shut down (`client_closed`).
    ClosedError => Closed,
    /// The server could not be reached or the connection broke (`network_error`).
    NetworkError => Network,
    /// The server answered with an error status no class above covers, with `status`.
    ServerError => Server,
    /// A body could not be encoded or decoded, or a schema is not valid JSON Schema.
    CodecError => Codec,
    /// The realtime stream reported a problem; listener only.
    StreamError => Stream,
    /// The disk spool (`spoolDir`) could not store an event (`spool_error`).
    SpoolError => Spool,
}

impl MeterlineError {
    /// The error of `err`, its option named as it already is: for the errors of
    /// `options::config_from_host`, which name an option as the caller wrote it.
    pub(crate) fn as_named(err: &CoreError) -> Self {
        MeterlineError::of_report(ErrorReport::as_named(err))
    }
}

impl From<CoreError> for MeterlineError {
    /// A configuration error the client reports after reading the options names the option
    /// in snake_case: it is renamed as Kotlin and Swift spell it.
    fn from(err: CoreError) -> Self {
        MeterlineError::of_report(ErrorReport::new(&err, Spelling::Camel))
    }
}

impl From<ValidationError> for MeterlineError {
    fn from(err: ValidationError) -> Self {
        MeterlineError::of_report(ErrorReport::validation(&err))
    }
}

/// One error class of the core's list, for tests and tools to compare with
/// `tests/vectors/errors.json`.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ErrorClassInfo {
    /// The class name in Python and JavaScript (`ValidationError` …); Kotlin spells it
    /// `…Exception`, Swift as a case of `MeterlineError`.
    pub name: String,
    /// The class it extends (`None` for `MeterlineError`).
    pub parent: Option<String>,
    /// The `code` an error of this class gets when none is given.
    pub default_code: String,
}

/// The core's error classes, base first.
#[uniffi::export]
pub fn error_classes() -> Vec<ErrorClassInfo> {
    ErrorClass::ALL
        .iter()
        .map(|class| ErrorClassInfo {
            name: class.name().to_owned(),
            parent: class.parent().map(|p| p.name().to_owned()),
            default_code: class.default_code().to_owned(),
        })
        .collect()
}

/// The error a class gives for `code` (what the core raises for it), to check the variant a
/// class name maps to against `tests/vectors/errors.json`.
#[uniffi::export]
pub fn error_of_class(class_name: String, code: String) -> Option<MeterlineError> {
    let class = ErrorClass::from_name(&class_name)?;
    let detail = format!("a {class_name} built by hand");
    Some(MeterlineError::of_report(ErrorReport::bare(class, &code, detail)))
}
