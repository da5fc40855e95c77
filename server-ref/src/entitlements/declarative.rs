//! The `[catalog]` section of `meterline.toml`: features, plans and customers the server
//! creates or replaces at every start, through the same validation and change path as the
//! admin API. Applying the same file again changes nothing (identical definitions are
//! left alone: no version bump, no stream message). Items not in the file are kept, never
//! deleted. Errors name the TOML key.
//!
//! ```toml
//! [catalog]
//! project = "default"
//!
//! [catalog.features.api_calls]
//! kind = "metered"
//! event_type = "api.call"
//!
//! [catalog.plans.pro.features.api_calls]
//! limit = 1000
//!
//! [catalog.customers."customer-42"]
//! plan = "pro"
//!
//! [catalog.settings]
//! client_event_types = ["page.view"]
//! allowed_origins = ["https://app.example.com"]
//! ```
//!
//! `[catalog.settings]` takes the fields of `PUT /v1/admin/settings` (`strict_types`,
//! `client_event_types`, `allowed_origins`); a field left out keeps its value.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::change::{self, Change, Collection, Outcome, Publish};
use crate::{settings::SettingsChange, store::Storage};

/// `[catalog]`: the items to create or replace, by collection and key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    /// The project the items belong to (default `default`).
    #[serde(default = "default_project")]
    pub project: String,
    /// `[catalog.features.<key>]`: the body of `PUT /v1/admin/features/<key>`.
    #[serde(default)]
    pub features: BTreeMap<String, toml::Value>,
    /// `[catalog.plans.<key>]`: the body of `PUT /v1/admin/plans/<key>`.
    #[serde(default)]
    pub plans: BTreeMap<String, toml::Value>,
    /// `[catalog.customers."<subject>"]`: the body of `PUT /v1/admin/customers/<subject>`.
    #[serde(default)]
    pub customers: BTreeMap<String, toml::Value>,
    /// `[catalog.settings]`: the body of `PUT /v1/admin/settings`.
    #[serde(default)]
    pub settings: Option<SettingsChange>,
}

fn default_project() -> String {
    "default".to_owned()
}

/// How many items a start created, replaced or left as they were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// New items.
    pub created: usize,
    /// Items whose definition changed.
    pub replaced: usize,
    /// Items already as the file says.
    pub unchanged: usize,
}

/// A TOML key as written in the file: bare when it can be, else quoted.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

/// The JSON a TOML value stands for; datetimes become RFC 3339 strings.
fn to_json(value: &toml::Value, path: &str) -> Result<Value, String> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("`{path}`: {f} is not a finite number"))?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_json(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v, &format!("{path}.{}", toml_key(k)))?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

impl CatalogFile {
    /// The changes the file makes, features first, then plans, then customers, each with
    /// its TOML key; the first invalid item is an error naming its key and field.
    pub fn changes(&self) -> Result<Vec<(String, Change)>, String> {
        let mut out = Vec::new();
        for (collection, items) in [
            (Collection::Features, &self.features),
            (Collection::Plans, &self.plans),
            (Collection::Customers, &self.customers),
        ] {
            for (id, body) in items {
                let path = format!("catalog.{}.{}", collection.name(), toml_key(id));
                let change = collection.put(id, &to_json(body, &path)?, &path).map_err(|e| {
                    if e.message.contains(&path) {
                        e.message
                    } else {
                        format!("`{path}`: {}", e.message)
                    }
                })?;
                out.push((path, change));
            }
        }
        Ok(out)
    }

    /// Checks every item without touching the database (at config load).
    pub fn check(&self) -> Result<(), String> {
        if self.project.is_empty() {
            return Err("`catalog.project` must not be empty".to_owned());
        }
        if let Some(settings) = &self.settings {
            settings.check("catalog.settings")?;
        }
        self.changes().map(|_| ())
    }

    /// Applies the file to its project, publishing the messages of what changed on the
    /// hub; an unknown reference (a plan naming a feature that neither the file nor the
    /// database has) is an error naming the TOML key.
    pub async fn apply(&self, store: &Storage, publish: Publish<'_>, ttl_ms: u64) -> Result<Summary, String> {
        let project = store
            .project_by_name(&self.project)
            .await
            .map_err(|e| format!("`catalog.project`: reading project {:?} failed: {e}", self.project))?
            .ok_or_else(|| format!("`catalog.project`: there is no project named {:?}", self.project))?;
        let mut summary = Summary::default();
        if let Some(settings) = &self.settings {
            let update = settings.check("catalog.settings")?;
            let before = crate::settings::Settings::from(project.clone());
            let after = crate::settings::apply_from_cli(store, project.id, &update)
                .await
                .map_err(|e| format!("`catalog.settings`: {e}"))?;
            if after == before {
                summary.unchanged += 1;
            } else {
                summary.replaced += 1;
            }
        }
        for (path, change) in self.changes()? {
            match change::apply(store, publish, project.id, change, ttl_ms).await {
                Ok(Outcome::Created(_)) => summary.created += 1,
                Ok(Outcome::Replaced(_)) => summary.replaced += 1,
                Ok(_) => summary.unchanged += 1,
                Err(e) => return Err(format!("`{path}`: {e}")),
            }
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct CatalogWrapper {
        catalog: CatalogFile,
    }

    fn file(text: &str) -> CatalogFile {
        #[derive(Deserialize)]
        struct Wrapper {
            catalog: CatalogFile,
        }
        toml::from_str::<Wrapper>(text).map(|w| w.catalog).unwrap()
    }

    #[test]
    fn items_become_changes_in_order() {
        let f = file(
            r#"
            [catalog.customers."c 1"]
            plan = "pro"
            billing_anchor = 2026-01-15T00:00:00Z
            [catalog.plans.pro.features.calls]
            limit = 10
            [catalog.features.calls]
            kind = "metered"
            event_type = "api.call"
            "#,
        );
        let changes = f.changes().unwrap();
        let paths: Vec<_> = changes.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "catalog.features.calls",
                "catalog.plans.pro",
                "catalog.customers.\"c 1\""
            ]
        );
        let Change::PutCustomer(_, customer) = &changes[2].1 else {
            panic!()
        };
        assert_eq!(customer.billing_anchor.as_deref(), Some("2026-01-15T00:00:00Z"));
    }

    #[test]
    fn errors_name_the_toml_key() {
        let f = file("[catalog.plans.pro.features.calls]\nlimit = \"lots\"\n");
        let e = f.check().unwrap_err();
        assert!(e.contains("`catalog.plans.pro.features.calls.limit`"), "{e}");
        let f = file("[catalog.features.calls]\nkind = \"metered\"\n");
        let e = f.check().unwrap_err();
        assert!(e.contains("catalog.features.calls.event_type"), "{e}");
        let f = file("[catalog.features.\"bad key\"]\nkind = \"boolean\"\n");
        let e = f.check().unwrap_err();
        assert!(
            e.contains("catalog.features.\"bad key\"") && e.contains("feature key"),
            "{e}"
        );
        let f = file("[catalog.plans.pro.features.calls]\nlimit = nan\n");
        assert!(f.check().unwrap_err().contains("not a finite number"));
        let f = file("[catalog.settings]\nallowed_origins = [\"https://a.com\", \"*\"]\n");
        let e = f.check().unwrap_err();
        assert!(e.contains("`catalog.settings.allowed_origins[1]`"), "{e}");
        let e = toml::from_str::<toml::Table>("[catalog.settings]\nclient_event_types = \"a\"\n")
            .map(|t| toml::Value::Table(t).try_into::<CatalogWrapper>())
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(e.contains("client_event_types"), "{e}");
    }
}
