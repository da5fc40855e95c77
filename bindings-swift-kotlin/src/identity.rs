//! The pieces of a publishable-key client that come from the application: the
//! [`TokenProvider`] callback interface (Kotlin `dev.meterline.TokenProvider`, Swift
//! `TokenProvider`) and the [`Sdk`] naming this package on every request.

use std::sync::Arc;

use meterline_core::{runtime::native, sdk::Sdk};

/// Why a [`TokenProvider`] gave no token. Kotlin may throw any exception instead: the core
/// counts it the same way (`Stats.tokenProviderFailures`) and reports it to the listener;
/// it is never raised into `track()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum TokenProviderError {
    /// The provider could not get a token (`reason` says why). (Not `message`: Kotlin's
    /// exceptions already have one.)
    #[error("{reason}")]
    Failed {
        /// What went wrong, in words.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for TokenProviderError {
    fn from(err: uniffi::UnexpectedUniFFICallbackError) -> Self {
        TokenProviderError::Failed { reason: err.reason }
    }
}

/// Where a publishable-key client gets fresh customer tokens: your backend's
/// `customerToken()` for the signed-in user. Called on the client's worker thread before
/// the first request without a token and whenever the server answers `token_expired`;
/// blocking is fine there, but return within the request timeout.
#[uniffi::export(with_foreign)]
pub trait TokenProvider: Send + Sync {
    /// A fresh customer token (`ml_ct_…`) for the current subject.
    fn token(&self) -> Result<String, TokenProviderError>;
}

/// The foreign provider as the core calls it: a thrown exception becomes the failure the
/// core counts and reports.
pub(crate) fn core_provider(provider: Arc<dyn TokenProvider>) -> native::TokenProvider {
    Arc::new(move || {
        provider
            .token()
            .map_err(|err| format!("the token provider threw: {err}"))
    })
}

/// This package as the `User-Agent` names it: `meterline-kotlin/<version> (JVM <version>; os
/// arch)` in a JVM, `meterline-swift/<version> (os arch)` on Apple platforms outside one.
pub(crate) fn sdk() -> Sdk {
    let jvm = jvm_version();
    let name = if jvm.is_none() && cfg!(target_vendor = "apple") {
        "meterline-swift"
    } else {
        "meterline-kotlin"
    };
    Sdk {
        name: name.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        runtime: jvm.map(|v| format!("JVM {v}")).unwrap_or_default(),
    }
}

/// The version of the JVM this library was loaded into: `JAVA_VERSION` of the `release`
/// file next to the running `bin/java` (every JDK and JRE ships one). `None` outside a JVM
/// (Swift) or where there is no such file (Android's runtime).
fn jvm_version() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let home = exe.parent()?.parent()?;
    let release = std::fs::read_to_string(home.join("release")).ok()?;
    release.lines().find_map(|line| {
        let value = line.strip_prefix("JAVA_VERSION=")?;
        Some(value.trim().trim_matches('"').to_owned())
    })
}
