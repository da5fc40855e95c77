//! Catalog definitions (features, plans, customers) and their validation, shared by the
//! HTTP admin API, the CLI and the declarative `[catalog]` of `meterline.toml`.
//!
//! Bodies are parsed from a `serde_json::Value` by hand so that every error names the
//! offending field by its path (`features.api_calls.limit`), prefixed with where the body
//! came from (nothing for HTTP, `catalog.plans.pro` for the TOML file).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use meterline_core::entitlement::{Aggregation, FeatureKind, Period};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest feature, plan or property key.
pub const MAX_KEY_LEN: usize = 128;
/// Longest subject (an event's `subject` may be as long).
pub const MAX_SUBJECT_LEN: usize = meterline_core::event::MAX_ATTRIBUTE_LEN;
/// Longest event type of a metered feature (an event's `type` may be as long).
pub const MAX_EVENT_TYPE_LEN: usize = meterline_core::event::MAX_ATTRIBUTE_LEN;
/// Most features in one plan or overrides map.
pub const MAX_ENTRIES: usize = 1_000;
/// Most thresholds of one metered grant.
pub const MAX_THRESHOLDS: usize = 16;
/// Largest config value (its JSON text), bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Largest accepted limit (keeps every number exact in an f64).
pub const MAX_NUMBER: f64 = 1e15;

/// A refused definition: a stable code and a message naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// `invalid_key`, `invalid_body`.
    pub code: &'static str,
    /// What was wrong, naming the field.
    pub message: String,
}

impl Invalid {
    fn body(path: &str, message: impl std::fmt::Display) -> Self {
        Invalid {
            code: "invalid_body",
            message: format!("{}: {message}", show_path(path)),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)
    }
}

fn show_path(path: &str) -> String {
    if path.is_empty() {
        "body".to_owned()
    } else {
        format!("`{path}`")
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// A feature: `{"kind":"metered","event_type":"api.call","aggregation":"sum","property":"tokens"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDef {
    /// boolean, metered or config.
    pub kind: FeatureKind,
    /// Metered: the event type counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Metered: count or sum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<Aggregation>,
    /// Metered with sum: the summed `data` property.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
}

impl FeatureDef {
    /// The usage counter this feature reads: (event type, property or '' for count).
    pub fn meter(&self) -> Option<(&str, &str)> {
        if self.kind != FeatureKind::Metered {
            return None;
        }
        Some((
            self.event_type.as_deref().unwrap_or_default(),
            self.property.as_deref().unwrap_or_default(),
        ))
    }
}

/// What a plan (or a customer override) grants of one feature. Which fields apply depends on
/// the feature's kind: metered → limit/period/soft_limit/thresholds, config → value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    /// Metered: the limit per period (`None`: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "whole_number")]
    pub limit: Option<f64>,
    /// Metered: the period (default month).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// Metered: informational soft limit.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "whole_number")]
    pub soft_limit: Option<f64>,
    /// Metered: notification thresholds as fractions of the limit (default 0.8, 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Vec<f64>>,
    /// Config: the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Overrides only: `false` removes the feature from the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Writes a limit as a JSON integer when it is whole (`1000`, not `1000.0`), as the
/// entitlement answers do. Limits are at most [`MAX_NUMBER`], so the cast is exact.
fn whole_number<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) if v.fract() == 0.0 && v.abs() <= MAX_NUMBER => s.serialize_i64(*v as i64),
        Some(v) => s.serialize_f64(*v),
        None => s.serialize_none(),
    }
}

/// Default notification thresholds.
pub const DEFAULT_THRESHOLDS: [f64; 2] = [0.8, 1.0];

impl Grant {
    /// `other`'s fields where set, else `self`'s.
    pub fn merged(&self, other: &Grant) -> Grant {
        Grant {
            limit: other.limit.or(self.limit),
            period: other.period.or(self.period),
            soft_limit: other.soft_limit.or(self.soft_limit),
            thresholds: other.thresholds.clone().or_else(|| self.thresholds.clone()),
            value: other.value.clone().or_else(|| self.value.clone()),
            enabled: None,
        }
    }

    /// The effective thresholds.
    pub fn thresholds(&self) -> Vec<f64> {
        self.thresholds.clone().unwrap_or_else(|| DEFAULT_THRESHOLDS.to_vec())
    }

    /// Checks that the grant's fields suit a feature of `kind`; the message names the field.
    pub fn fits(&self, kind: FeatureKind, path: &str) -> Result<(), String> {
        let metered = [
            ("limit", self.limit.is_some()),
            ("period", self.period.is_some()),
            ("soft_limit", self.soft_limit.is_some()),
            ("thresholds", self.thresholds.is_some()),
        ];
        let misplaced = |field: &str, kind: &str| format!("`{}` does not apply to a {kind} feature", join(path, field));
        match kind {
            FeatureKind::Metered => {
                if self.value.is_some() {
                    return Err(misplaced("value", "metered"));
                }
            }
            FeatureKind::Boolean | FeatureKind::Config => {
                let name = if kind == FeatureKind::Boolean {
                    "boolean"
                } else {
                    "config"
                };
                if let Some((field, _)) = metered.iter().find(|(_, set)| *set) {
                    return Err(misplaced(field, name));
                }
                if kind == FeatureKind::Boolean && self.value.is_some() {
                    return Err(misplaced("value", name));
                }
            }
        }
        Ok(())
    }
}

/// A plan: `{"features":{"api_calls":{"limit":1000}}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanDef {
    /// Grants by feature key.
    pub features: BTreeMap<String, Grant>,
}

/// A customer: `{"plan":"pro","overrides":{…},"billing_anchor":"…"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerDef {
    /// The plan key, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// Per-feature overrides (may grant features outside the plan).
    #[serde(default)]
    pub overrides: BTreeMap<String, Grant>,
    /// Start of the billing periods (RFC 3339, UTC); defaults to the creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_anchor: Option<String>,
}

/// Checks a feature or plan key (`[A-Za-z0-9_.:-]{1,128}`); `what` names it in the message.
pub fn check_key(key: &str, what: &str) -> Result<(), Invalid> {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if ok {
        return Ok(());
    }
    Err(Invalid {
        code: "invalid_key",
        message: format!(
            "{what} {:?} must be 1–{MAX_KEY_LEN} characters of A-Z a-z 0-9 _ . : -",
            key.chars().take(64).collect::<String>()
        ),
    })
}

/// Checks a customer subject by the rules of an event's `subject` (1–256 characters), so
/// every subject that can send events can be a customer.
pub fn check_subject(subject: &str, what: &str) -> Result<(), Invalid> {
    if subject.is_empty() || (subject.len() > MAX_SUBJECT_LEN && subject.chars().count() > MAX_SUBJECT_LEN) {
        return Err(Invalid {
            code: "invalid_key",
            message: format!("{what} must be 1–{MAX_SUBJECT_LEN} characters"),
        });
    }
    Ok(())
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, Invalid> {
    v.as_object()
        .ok_or_else(|| Invalid::body(path, format!("must be an object, not {}", type_name(v))))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn only_fields(map: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), Invalid> {
    for field in map.keys() {
        if !allowed.contains(&field.as_str()) {
            return Err(Invalid::body(
                path,
                format!(
                    "unknown field {:?} (expected {})",
                    field.chars().take(64).collect::<String>(),
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn string<'a>(map: &'a Map<String, Value>, field: &str, path: &str, max: usize) -> Result<Option<&'a str>, Invalid> {
    let p = join(path, field);
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() || s.chars().count() > max => {
            Err(Invalid::body(&p, format!("must be 1–{max} characters")))
        }
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(Invalid::body(&p, format!("must be a string, not {}", type_name(other)))),
    }
}

fn number(map: &Map<String, Value>, field: &str, path: &str) -> Result<Option<f64>, Invalid> {
    let p = join(path, field);
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() && (0.0..=MAX_NUMBER).contains(&x) => Ok(Some(x)),
            _ => Err(Invalid::body(&p, format!("must be a number from 0 to {MAX_NUMBER:e}"))),
        },
        Some(other) => Err(Invalid::body(&p, format!("must be a number, not {}", type_name(other)))),
    }
}

fn enum_field<T: for<'de> Deserialize<'de>>(
    map: &Map<String, Value>,
    field: &str,
    path: &str,
    choices: &str,
) -> Result<Option<T>, Invalid> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|_| Invalid::body(&join(path, field), format!("must be one of {choices}"))),
    }
}

/// Parses a feature body.
pub fn parse_feature(v: &Value, path: &str) -> Result<FeatureDef, Invalid> {
    let map = object(v, path)?;
    only_fields(map, &["kind", "event_type", "aggregation", "property"], path)?;
    let kind: FeatureKind = enum_field(map, "kind", path, "\"boolean\", \"metered\", \"config\"")?
        .ok_or_else(|| Invalid::body(&join(path, "kind"), "is required"))?;
    let event_type = string(map, "event_type", path, MAX_EVENT_TYPE_LEN)?.map(str::to_owned);
    let aggregation: Option<Aggregation> = enum_field(map, "aggregation", path, "\"count\", \"sum\"")?;
    let property = string(map, "property", path, MAX_KEY_LEN)?.map(str::to_owned);
    if kind != FeatureKind::Metered {
        for (field, set) in [
            ("event_type", event_type.is_some()),
            ("aggregation", aggregation.is_some()),
            ("property", property.is_some()),
        ] {
            if set {
                return Err(Invalid::body(&join(path, field), "applies only to metered features"));
            }
        }
        return Ok(FeatureDef {
            kind,
            event_type: None,
            aggregation: None,
            property: None,
        });
    }
    if event_type.is_none() {
        return Err(Invalid::body(
            &join(path, "event_type"),
            "is required for a metered feature",
        ));
    }
    let aggregation = aggregation.unwrap_or(Aggregation::Count);
    match (aggregation, &property) {
        (Aggregation::Sum, None) => {
            return Err(Invalid::body(
                &join(path, "property"),
                "is required with \"aggregation\": \"sum\"",
            ));
        }
        (Aggregation::Count, Some(_)) => {
            return Err(Invalid::body(
                &join(path, "property"),
                "applies only to \"aggregation\": \"sum\"",
            ));
        }
        (Aggregation::Sum, Some(p)) => {
            check_key(p, "the property").map_err(|e| Invalid::body(&join(path, "property"), e.message))?;
        }
        _ => {}
    }
    Ok(FeatureDef {
        kind,
        event_type,
        aggregation: Some(aggregation),
        property,
    })
}

fn parse_grant(v: &Value, path: &str, is_override: bool) -> Result<Grant, Invalid> {
    let map = object(v, path)?;
    let fields: &[&str] = if is_override {
        &["limit", "period", "soft_limit", "thresholds", "value", "enabled"]
    } else {
        &["limit", "period", "soft_limit", "thresholds", "value"]
    };
    only_fields(map, fields, path)?;
    let thresholds = match map.get("thresholds") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let p = join(path, "thresholds");
            if items.len() > MAX_THRESHOLDS {
                return Err(Invalid::body(
                    &p,
                    format!("may hold at most {MAX_THRESHOLDS} thresholds"),
                ));
            }
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item.as_f64() {
                    Some(t) if t > 0.0 && t <= 10.0 => out.push(t),
                    _ => {
                        return Err(Invalid::body(
                            &p,
                            "must hold numbers above 0 and at most 10 (fractions of the limit)",
                        ));
                    }
                }
            }
            out.sort_by(f64::total_cmp);
            out.dedup();
            Some(out)
        }
        Some(other) => {
            return Err(Invalid::body(
                &join(path, "thresholds"),
                format!("must be an array of numbers, not {}", type_name(other)),
            ));
        }
    };
    let value = match map.get("value") {
        None | Some(Value::Null) => None,
        Some(v) => {
            if serde_json::to_string(v).map_or(usize::MAX, |s| s.len()) > MAX_VALUE_BYTES {
                return Err(Invalid::body(
                    &join(path, "value"),
                    format!("must be at most {MAX_VALUE_BYTES} bytes of JSON"),
                ));
            }
            Some(v.clone())
        }
    };
    let enabled = match map.get("enabled") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(Invalid::body(
                &join(path, "enabled"),
                format!("must be a boolean, not {}", type_name(other)),
            ));
        }
    };
    Ok(Grant {
        limit: number(map, "limit", path)?,
        period: enum_field(map, "period", path, "\"day\", \"week\", \"month\", \"billing\"")?,
        soft_limit: number(map, "soft_limit", path)?,
        thresholds,
        value,
        enabled,
    })
}

fn parse_grants(v: Option<&Value>, path: &str, is_override: bool) -> Result<BTreeMap<String, Grant>, Invalid> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let map = object(v, path)?;
    if map.len() > MAX_ENTRIES {
        return Err(Invalid::body(path, format!("may hold at most {MAX_ENTRIES} features")));
    }
    let mut out = BTreeMap::new();
    for (key, grant) in map {
        check_key(key, &format!("feature key in {}", show_path(path))).map_err(|e| Invalid::body(path, e.message))?;
        out.insert(key.clone(), parse_grant(grant, &join(path, key), is_override)?);
    }
    Ok(out)
}

/// Parses a plan body.
pub fn parse_plan(v: &Value, path: &str) -> Result<PlanDef, Invalid> {
    let map = object(v, path)?;
    only_fields(map, &["features"], path)?;
    Ok(PlanDef {
        features: parse_grants(map.get("features"), &join(path, "features"), false)?,
    })
}

/// Parses a customer body; `billing_anchor` is normalised to RFC 3339 UTC.
pub fn parse_customer(v: &Value, path: &str) -> Result<CustomerDef, Invalid> {
    let map = object(v, path)?;
    only_fields(map, &["plan", "overrides", "billing_anchor"], path)?;
    let plan = string(map, "plan", path, MAX_KEY_LEN)?.map(str::to_owned);
    if let Some(plan) = &plan {
        check_key(plan, "plan").map_err(|e| Invalid::body(&join(path, "plan"), e.message))?;
    }
    let billing_anchor = match string(map, "billing_anchor", path, 64)? {
        None => None,
        Some(text) => Some(
            parse_time(text).ok_or_else(|| Invalid::body(&join(path, "billing_anchor"), "must be an RFC 3339 time"))?,
        ),
    };
    Ok(CustomerDef {
        plan,
        overrides: parse_grants(map.get("overrides"), &join(path, "overrides"), true)?,
        billing_anchor,
    })
}

/// Parses an RFC 3339 time into its canonical UTC text.
pub fn parse_time(text: &str) -> Option<String> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// Parses the JSON text of a request body or `--file`: `400 invalid_json` when malformed.
pub fn parse_json(bytes: &[u8]) -> Result<Value, Invalid> {
    serde_json::from_slice(bytes).map_err(|e| Invalid {
        code: "invalid_json",
        message: format!("the body is not valid JSON: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn features_validate_by_kind() {
        let f = parse_feature(&json!({"kind":"metered","event_type":"api.call"}), "").unwrap();
        assert_eq!(f.aggregation, Some(Aggregation::Count));
        assert_eq!(f.meter(), Some(("api.call", "")));
        let e = parse_feature(&json!({"kind":"metered","event_type":"t","aggregation":"sum"}), "").unwrap_err();
        assert!(e.message.contains("`property`"), "{e}");
        let e = parse_feature(&json!({"kind":"boolean","property":"x"}), "").unwrap_err();
        assert!(e.message.contains("`property`"), "{e}");
        let e = parse_feature(&json!({"kind":"metered","event_type":5}), "").unwrap_err();
        assert!(
            e.message.contains("`event_type`") && e.message.contains("string"),
            "{e}"
        );
        let e = parse_feature(&json!({"kind":"boolean","x":1}), "catalog.features.a").unwrap_err();
        assert!(
            e.message.contains("catalog.features.a") && e.message.contains("\"x\""),
            "{e}"
        );
    }

    #[test]
    fn grants_name_their_path() {
        let e = parse_plan(&json!({"features":{"a":{"limit":"many"}}}), "").unwrap_err();
        assert!(e.message.contains("`features.a.limit`"), "{e}");
        let e = parse_plan(&json!({"features":{"a":{"enabled":false}}}), "").unwrap_err();
        assert!(e.message.contains("unknown field"), "{e}");
        let p = parse_plan(&json!({"features":{"a":{"thresholds":[1.0,0.5,0.5]}}}), "").unwrap();
        assert_eq!(p.features["a"].thresholds, Some(vec![0.5, 1.0]));
        let c = parse_customer(&json!({"billing_anchor":"2026-01-15T01:00:00+01:00"}), "").unwrap();
        assert_eq!(c.billing_anchor.as_deref(), Some("2026-01-15T00:00:00Z"));
    }

    #[test]
    fn keys_are_checked() {
        assert!(check_key("api_calls.v2:x-y", "feature key").is_ok());
        assert!(check_key("", "feature key").is_err());
        assert!(check_key("a b", "feature key").is_err());
        assert!(check_key("'; DROP TABLE features; --", "feature key").is_err());
        assert!(check_key(&"a".repeat(129), "feature key").is_err());
        assert!(check_subject(&"a".repeat(256), "subject").is_ok());
        assert!(check_subject(&"a".repeat(257), "subject").is_err());
    }
}
