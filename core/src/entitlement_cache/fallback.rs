//! What `entitlement()` answers when the server cannot be asked and nothing usable is cached.
//!
//! A fallback is configured per feature, with one default for every other feature. Without
//! a default the answer is *deny*: no access, no kind — a gated feature stays closed while
//! the server is unreachable unless the application chose otherwise.
//!
//! The language-neutral spelling (used by the bindings' options and the vectors):
//! `true`/`false` (access), `{"value": <any JSON>}` (a config feature's value),
//! `{"limit": <number ≥ 0>}` (a metered feature's limit), and for the whole set
//! `{"features": {"sso": true, "tier": {"value": {"seats": 3}}}, "default": false}`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{entitlement::FeatureKind, error::Error};

/// One feature's fallback.
#[derive(Debug, Clone, PartialEq)]
pub enum Fallback {
    /// A boolean feature: access or not.
    Access(bool),
    /// A config feature's value (access granted).
    Value(Value),
    /// A metered feature's limit: access while the limit is above 0; usage unknown.
    Limit(f64),
}

impl Fallback {
    /// Parses the neutral spelling (`true`, `{"value": …}`, `{"limit": n}`). The error names
    /// what is wrong; [`Fallbacks::from_json`] turns it into `invalid_config`.
    pub fn from_json(spec: &Value) -> Result<Fallback, String> {
        match spec {
            Value::Bool(access) => Ok(Fallback::Access(*access)),
            Value::Object(map) if map.len() == 1 && map.contains_key("value") => {
                Ok(Fallback::Value(map["value"].clone()))
            }
            Value::Object(map) if map.len() == 1 && map.contains_key("limit") => {
                let fallback = map["limit"]
                    .as_f64()
                    .map(Fallback::Limit)
                    .ok_or("`limit` must be a number")?;
                fallback.check()?;
                Ok(fallback)
            }
            other => Err(format!(
                "expected true, false, {{\"value\": …}} or {{\"limit\": n}}, got {}",
                crate::event::kind_of(other)
            )),
        }
    }

    /// The kind of feature this fallback stands for.
    pub fn kind(&self) -> FeatureKind {
        match self {
            Fallback::Access(_) => FeatureKind::Boolean,
            Fallback::Value(_) => FeatureKind::Config,
            Fallback::Limit(_) => FeatureKind::Metered,
        }
    }

    fn check(&self) -> Result<(), String> {
        match self {
            Fallback::Limit(limit) if !limit.is_finite() || *limit < 0.0 => {
                Err(format!("`limit` must be a finite number ≥ 0, got {limit}"))
            }
            _ => Ok(()),
        }
    }
}

/// The configured fallbacks: per feature, and a default for the rest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fallbacks {
    /// By feature key.
    pub features: BTreeMap<String, Fallback>,
    /// For every feature not listed; `None` denies (no access, no kind).
    pub default: Option<Fallback>,
}

impl Fallbacks {
    /// The fallback that applies to `feature` (`None`: deny).
    pub fn get(&self, feature: &str) -> Option<&Fallback> {
        self.features.get(feature).or(self.default.as_ref())
    }

    /// Parses `{"features": {key: spec, …}, "default": spec}` (both optional). Errors are
    /// `invalid_config` for the option `fallbacks`, naming the feature.
    pub fn from_json(doc: &Value) -> Result<Fallbacks, Error> {
        let bad = |message: String| Error::config("fallbacks", message);
        let Value::Object(map) = doc else {
            return Err(bad(format!(
                "expected an object with `features` and `default`, got {}",
                crate::event::kind_of(doc)
            )));
        };
        if let Some(unknown) = map.keys().find(|k| *k != "features" && *k != "default") {
            return Err(bad(format!("unknown key {unknown:?}; use `features` and `default`")));
        }
        let mut fallbacks = Fallbacks::default();
        match map.get("features") {
            None | Some(Value::Null) => {}
            Some(Value::Object(features)) => {
                for (feature, spec) in features {
                    let fallback = Fallback::from_json(spec).map_err(|e| bad(format!("feature {feature:?}: {e}")))?;
                    fallbacks.features.insert(feature.clone(), fallback);
                }
            }
            Some(other) => {
                return Err(bad(format!(
                    "`features` must be an object, got {}",
                    crate::event::kind_of(other)
                )));
            }
        }
        fallbacks.default = match map.get("default") {
            None | Some(Value::Null) => None,
            Some(spec) => Some(Fallback::from_json(spec).map_err(|e| bad(format!("default: {e}")))?),
        };
        fallbacks.validate()?;
        Ok(fallbacks)
    }

    /// Checks keys and limits (`invalid_config` naming `fallbacks`).
    pub fn validate(&self) -> Result<(), Error> {
        for (feature, fallback) in &self.features {
            if feature.is_empty() || feature.chars().count() > super::MAX_FEATURE_LEN {
                return Err(Error::config(
                    "fallbacks",
                    format!("feature keys must be 1–{} characters", super::MAX_FEATURE_LEN),
                ));
            }
            fallback
                .check()
                .map_err(|e| Error::config("fallbacks", format!("feature {feature:?}: {e}")))?;
        }
        if let Some(default) = &self.default {
            default
                .check()
                .map_err(|e| Error::config("fallbacks", format!("default: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_the_neutral_spelling() {
        let f = Fallbacks::from_json(&json!({
            "features": {"sso": true, "tier": {"value": {"seats": 3}}, "api_calls": {"limit": 100}},
            "default": false
        }))
        .unwrap();
        assert_eq!(f.get("sso"), Some(&Fallback::Access(true)));
        assert_eq!(f.get("tier"), Some(&Fallback::Value(json!({"seats": 3}))));
        assert_eq!(f.get("api_calls"), Some(&Fallback::Limit(100.0)));
        assert_eq!(f.get("other"), Some(&Fallback::Access(false)));
        assert_eq!(Fallbacks::from_json(&json!({})).unwrap().get("x"), None);
    }

    #[test]
    fn refuses_bad_specs_naming_the_feature() {
        for (doc, needle) in [
            (json!({"features": {"a": "yes"}}), "\"a\""),
            (json!({"features": {"a": {"limit": -1}}}), "≥ 0"),
            (json!({"features": {"a": {"limit": 1, "value": 2}}}), "expected"),
            (json!({"default": 3}), "default"),
            (json!({"feature": {}}), "unknown key"),
            (json!([]), "expected an object"),
            (json!({"features": {"": true}}), "feature keys"),
        ] {
            let err = Fallbacks::from_json(&doc).unwrap_err();
            assert!(
                matches!(&err, Error::Config { field, .. } if field == "fallbacks"),
                "{err}"
            );
            assert!(err.to_string().contains(needle), "{doc}: {err}");
        }
    }
}
