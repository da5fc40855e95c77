//! meterline's core: the wire types, validation, batching, retry policy and — with the
//! `native` feature — the [`Client`] that sends usage events to a meterline server.
//!
//! The modules outside `runtime` do no I/O: they take inputs (and the time) and return
//! decisions, so they build for `wasm32-unknown-unknown` and the shared conformance vectors
//! in `tests/vectors/` can test them directly.
//!
//! ```no_run
//! # #[cfg(feature = "native")] {
//! use meterline_core::{Client, Config};
//! use serde_json::json;
//!
//! let client = Client::new(Config::new("ml_sk_abc_0123456789abcdef0123", "http://127.0.0.1:8080"))?;
//! client.track("api.call", "customer-42", json!({"tokens": 1234}), None, None)?;
//! client.shutdown(std::time::Duration::from_secs(5))?;
//! # }
//! # Ok::<(), meterline_core::Error>(())
//! ```

pub mod arguments;
pub mod codec;
pub mod config;
#[doc(hidden)]
pub mod conformance;
pub mod credentials;
pub mod customer_token;
pub mod entitlement;
pub mod entitlement_cache;
pub mod error;
mod error_class;
mod error_report;
pub mod event;
pub mod key;
pub mod options;
pub mod outbox;
pub mod queue;
pub mod retry;
pub mod schema;
pub mod schema_refresh;
pub mod sdk;
pub mod spool_record;
pub mod stats;
pub mod stream;
pub mod stream_session;
pub mod throttle;
pub mod track;
pub mod wire;

#[cfg(any(feature = "native", all(feature = "web", target_arch = "wasm32")))]
pub mod runtime;

pub use config::{Config, OverflowPolicy, SpoolFsync};
pub use entitlement_cache::{EntitlementAnswer, Fallback, Fallbacks, Source};
pub use error::{Error, ErrorClass, Result, ValidationError};
pub use event::Event;
#[cfg(feature = "native")]
pub use runtime::native::Client;
pub use stats::Stats;
