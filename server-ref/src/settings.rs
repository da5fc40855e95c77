//! Project settings: `GET`/`PUT /v1/admin/settings`, `meterline-server admin settings …` and
//! `[catalog.settings]` of `meterline.toml` — `strict_types` (DESIGN §2) and the two
//! settings of publishable keys (DESIGN §6): `client_event_types`, the event types a
//! publishable key with a customer token may send, and `allowed_origins`, the browser
//! origins served CORS.
//!
//! A change takes the fields it names; a field left out (or `null`) keeps its value. The
//! lists are checked and stored sorted and without repeats; an origin is kept in the form a
//! browser sends it (`https://app.example.com`, lowercase, no default port).

use axum::{
    Json,
    extract::{State, rejection::JsonRejection},
    http::StatusCode,
};
use meterline_core::event::MAX_ATTRIBUTE_LEN;
use serde::{Deserialize, Serialize};

use crate::{
    app::AppState,
    auth::{Caller, Scope},
    error::ApiError,
    schemas::apply_change,
    store::{Project, SchemaChange, SettingsUpdate, Storage},
};

/// Most entries of `client_event_types`.
pub const MAX_CLIENT_EVENT_TYPES: usize = 1_000;
/// Most entries of `allowed_origins`.
pub const MAX_ALLOWED_ORIGINS: usize = 100;
/// Longest origin, in bytes (scheme, a 253-byte host name and a port fit).
pub const MAX_ORIGIN_LEN: usize = 300;

/// A project's settings, as `GET`/`PUT /v1/admin/settings` answer them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// Reject events whose type has no schema (`unknown_type`).
    pub strict_types: bool,
    /// Event types a publishable key with a customer token may send (sorted).
    pub client_event_types: Vec<String>,
    /// Browser origins served CORS (sorted).
    pub allowed_origins: Vec<String>,
}

impl From<Project> for Settings {
    fn from(project: Project) -> Self {
        Settings {
            strict_types: project.strict_types,
            client_event_types: project.client_event_types,
            allowed_origins: project.allowed_origins,
        }
    }
}

/// `PUT /v1/admin/settings` body: every field optional; a missing or `null` field keeps
/// its value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// New `strict_types`.
    pub strict_types: Option<bool>,
    /// New `client_event_types` (the whole list).
    pub client_event_types: Option<Vec<String>>,
    /// New `allowed_origins` (the whole list).
    pub allowed_origins: Option<Vec<String>>,
}

impl SettingsChange {
    /// Checks and normalises the change; the error names the field and entry, as
    /// `client_event_types[2]: …` (prefixed by `path` when it is not empty).
    pub fn check(&self, path: &str) -> Result<SettingsUpdate, String> {
        let name = |field: &str| {
            if path.is_empty() {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            }
        };
        let client_event_types = self
            .client_event_types
            .as_deref()
            .map(|types| check_list(&name("client_event_types"), types, MAX_CLIENT_EVENT_TYPES, check_type))
            .transpose()?;
        let allowed_origins = self
            .allowed_origins
            .as_deref()
            .map(|origins| check_list(&name("allowed_origins"), origins, MAX_ALLOWED_ORIGINS, normalize_origin))
            .transpose()?;
        Ok(SettingsUpdate {
            strict_types: self.strict_types,
            client_event_types,
            allowed_origins,
        })
    }
}

/// Checks each entry with `check` (which may rewrite it), then sorts and drops repeats.
fn check_list(
    name: &str,
    items: &[String],
    max: usize,
    check: impl Fn(&str) -> Result<String, String>,
) -> Result<Vec<String>, String> {
    if items.len() > max {
        return Err(format!(
            "`{name}` holds {} entries; at most {max} are allowed",
            items.len()
        ));
    }
    let mut out = items
        .iter()
        .enumerate()
        .map(|(i, item)| check(item).map_err(|e| format!("`{name}[{i}]`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn check_type(event_type: &str) -> Result<String, String> {
    let len = event_type.chars().count();
    if len == 0 || len > MAX_ATTRIBUTE_LEN {
        return Err(format!("an event type must be 1–{MAX_ATTRIBUTE_LEN} characters"));
    }
    Ok(event_type.to_owned())
}

/// An origin as a browser sends it in `Origin`: `http` or `https`, `://`, a host name, an
/// IPv4 address or a bracketed IPv6 address, and an optional port — no path (not even `/`),
/// query, fragment or user info, and no `*`. Returned lowercase without the scheme's
/// default port, so `HTTPS://App.Example.com:443` reads `https://app.example.com`.
///
/// # Errors
/// A message saying what is wrong with `text`.
pub fn normalize_origin(text: &str) -> Result<String, String> {
    let shown: String = text.chars().take(80).collect();
    if text.len() > MAX_ORIGIN_LEN {
        return Err(format!("an origin is at most {MAX_ORIGIN_LEN} bytes"));
    }
    if text.contains('*') {
        return Err(format!(
            "{shown:?}: wildcards are not allowed; list each origin as scheme://host[:port]"
        ));
    }
    let form = || format!("{shown:?} is not an origin: write scheme://host[:port], e.g. https://app.example.com");
    let (scheme, rest) = text.split_once("://").ok_or_else(form)?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return Err(format!("{shown:?}: the scheme must be http or https")),
    };
    if let Some(bad) = rest.chars().find(|c| matches!(c, '/' | '?' | '#' | '@' | '\\')) {
        return Err(format!(
            "{shown:?}: an origin has no path, query, fragment or user info (found {bad:?}); \
             write scheme://host[:port]"
        ));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (inside, after) = v6.split_once(']').ok_or_else(form)?;
        let valid = !inside.is_empty() && inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        if !valid {
            return Err(format!("{shown:?}: {inside:?} is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(form)?),
        };
        (format!("[{}]", inside.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        };
        let labels_ok = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !labels_ok {
            return Err(format!(
                "{shown:?}: {:?} is not a host name (letters, digits, `-` and `.`; IDNs in punycode)",
                host.chars().take(80).collect::<String>()
            ));
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => String::new(),
        Some(port) => {
            let valid = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
            match port.parse::<u16>() {
                Ok(n) if valid && n > 0 => {
                    let n = n.to_string();
                    if n == default_port {
                        String::new()
                    } else {
                        format!(":{n}")
                    }
                }
                _ => return Err(format!("{shown:?}: the port must be a number from 1 to 65535")),
            }
        }
    };
    Ok(format!("{scheme}://{host}{port}"))
}

/// Applies a checked change to `project_id` and answers the settings after it. Used by the
/// admin API (which publishes on the hub); see [`apply_from_cli`] for other processes.
async fn apply_here(state: &AppState, project_id: i64, update: &SettingsUpdate) -> Result<Settings, ApiError> {
    apply_change(state, project_id, SchemaChange::Settings(update)).await?;
    let project = state
        .store
        .project(project_id)
        .await
        .map_err(|e| ApiError::internal("reading the project failed", e))?;
    Ok(project.into())
}

/// Applies a checked change from another process (the CLI, or the server's start before it
/// serves): the `schema.updated` message, if the ETag changed, is marked for the running
/// server to relay. Returns the settings after the change.
pub async fn apply_from_cli(store: &Storage, project_id: i64, update: &SettingsUpdate) -> Result<Settings, String> {
    store
        .change_schema(
            project_id,
            SchemaChange::Settings(update),
            crate::schemas::etag_of,
            true,
        )
        .await
        .map_err(|e| format!("storing the settings failed: {e}"))?;
    let project = store
        .project(project_id)
        .await
        .map_err(|e| format!("reading the project failed: {e}"))?;
    Ok(project.into())
}

/// `GET /v1/admin/settings`.
pub async fn get_settings(State(state): State<AppState>, caller: Caller) -> Result<Json<Settings>, ApiError> {
    caller.require(Scope::Admin)?;
    let project = state
        .store
        .project(caller.project_id)
        .await
        .map_err(|e| ApiError::internal("reading the project failed", e))?;
    Ok(Json(project.into()))
}

/// `PUT /v1/admin/settings` `{"strict_types"?, "client_event_types"?, "allowed_origins"?}`:
/// the settings after the change; `422 invalid_body` naming the field and entry that is
/// wrong.
pub async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<SettingsChange>, JsonRejection>,
) -> Result<Json<Settings>, ApiError> {
    caller.require(Scope::Admin)?;
    let Json(change) = body?;
    let update = change
        .check("")
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", e))?;
    Ok(Json(apply_here(&state, caller.project_id, &update).await?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn origins_are_normalised() {
        for (given, want) in [
            ("https://app.example.com", "https://app.example.com"),
            ("HTTPS://App.Example.COM:443", "https://app.example.com"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("http://127.0.0.1:80", "http://127.0.0.1"),
            ("http://[::1]:8080", "http://[::1]:8080"),
            ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
        ] {
            assert_eq!(normalize_origin(given).unwrap(), want, "{given}");
        }
    }

    #[test]
    fn malformed_origins_say_why() {
        for (given, says) in [
            ("*", "wildcards"),
            ("https://*.example.com", "wildcards"),
            ("app.example.com", "scheme://host"),
            ("ftp://example.com", "http or https"),
            ("https://example.com/", "no path"),
            ("https://example.com/app", "no path"),
            ("https://example.com?x=1", "no path"),
            ("https://user@example.com", "user info"),
            ("https://", "host name"),
            ("https://exa mple.com", "host name"),
            ("https://-a.com", "host name"),
            ("https://a..com", "host name"),
            ("https://example.com:0", "port"),
            ("https://example.com:99999", "port"),
            ("https://example.com:+80", "port"),
            ("https://example.com:", "port"),
            ("https://[zz]", "IPv6"),
            ("null", "scheme://host"),
        ] {
            let err = normalize_origin(given).unwrap_err();
            assert!(err.contains(says), "{given}: {err}");
        }
        assert!(normalize_origin(&format!("https://{}.com", "a".repeat(400))).is_err());
    }

    #[test]
    fn changes_are_checked_sorted_and_named() {
        let change = SettingsChange {
            strict_types: None,
            client_event_types: Some(vec!["b".into(), "a".into(), "b".into()]),
            allowed_origins: Some(vec!["https://B.com".into(), "https://a.com".into()]),
        };
        let update = change.check("").unwrap();
        assert_eq!(update.client_event_types.unwrap(), ["a", "b"]);
        assert_eq!(update.allowed_origins.unwrap(), ["https://a.com", "https://b.com"]);
        let bad = SettingsChange {
            allowed_origins: Some(vec!["https://ok.com".into(), "https://x.com/path".into()]),
            ..SettingsChange::default()
        };
        let err = bad.check("catalog.settings").unwrap_err();
        assert!(err.starts_with("`catalog.settings.allowed_origins[1]`"), "{err}");
        let many = SettingsChange {
            client_event_types: Some(vec!["t".into(); MAX_CLIENT_EVENT_TYPES + 1]),
            ..SettingsChange::default()
        };
        assert!(many.check("").unwrap_err().contains("at most 1000"));
        let empty = SettingsChange {
            client_event_types: Some(vec![String::new()]),
            ..SettingsChange::default()
        };
        assert!(empty.check("").unwrap_err().contains("client_event_types[0]"));
    }
}
