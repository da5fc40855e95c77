//! The header naming the SDK on every request (issue 20): which SDK, in which language and
//! version, on which runtime — `meterline-python/0.1.0 (CPython 3.12; linux x86_64)`. A
//! runtime that may set `User-Agent` sends it there; a browser, which may not, sends the
//! same value as `X-Meterline-SDK` ([`SdkHeader`]).

/// Which SDK a client is: set by the binding, not by the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdk {
    /// `meterline-<language>`: `meterline-rust`, `meterline-python`, `meterline-node` …
    pub name: String,
    /// The package's version.
    pub version: String,
    /// The host runtime, e.g. `CPython 3.12.4` or `Node.js v22.3.0` (empty: none to name).
    pub runtime: String,
}

impl Default for Sdk {
    /// The Rust crate itself.
    fn default() -> Self {
        Sdk {
            name: "meterline-rust".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            runtime: String::new(),
        }
    }
}

/// Where the SDK's name goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdkHeader {
    /// `User-Agent` (native runtimes).
    UserAgent,
    /// `X-Meterline-SDK` (browsers, where `User-Agent` is the browser's to set).
    MeterlineSdk,
}

impl SdkHeader {
    /// The header's name, lower case.
    pub const fn name(self) -> &'static str {
        match self {
            SdkHeader::UserAgent => "user-agent",
            SdkHeader::MeterlineSdk => "x-meterline-sdk",
        }
    }
}

impl Sdk {
    /// The header value: `name/version (runtime; os arch)`, with only printable ASCII (a
    /// character a header cannot carry becomes `_`).
    pub fn header_value(&self, os: &str, arch: &str) -> String {
        let platform = [self.runtime.trim(), &format!("{os} {arch}")]
            .into_iter()
            .filter(|part| !part.trim().is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        format!("{}/{} ({platform})", self.name.trim(), self.version.trim())
            .chars()
            .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_language_version_and_runtime() {
        let sdk = Sdk {
            name: "meterline-python".into(),
            version: "0.1.0".into(),
            runtime: "CPython 3.12.4".into(),
        };
        assert_eq!(
            sdk.header_value("linux", "x86_64"),
            "meterline-python/0.1.0 (CPython 3.12.4; linux x86_64)"
        );
        let rust = Sdk::default().header_value("linux", "aarch64");
        assert_eq!(
            rust,
            format!("meterline-rust/{} (linux aarch64)", env!("CARGO_PKG_VERSION"))
        );
        let odd = Sdk {
            runtime: "Zeta\n1é".into(),
            ..Sdk::default()
        };
        assert!(odd.header_value("l", "a").contains("Zeta_1_"));
        assert_eq!(SdkHeader::MeterlineSdk.name(), "x-meterline-sdk");
    }
}
