//! Entitlement wire types (DESIGN §4): the answer of
//! `GET /v1/customers/{subject}/entitlements`, shared by the server and every SDK.
//!
//! Numbers (`limit`, `usage`, `remaining`, `soft_limit`) are `f64` because a `sum`
//! aggregation may add fractional values; they are written as JSON integers whenever they
//! are whole, so `{"limit":1000}` round-trips as `1000`, not `1000.0`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kind of a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// Access or not.
    Boolean,
    /// A limit per period over the customer's usage.
    Metered,
    /// A JSON value (tier, quota numbers).
    Config,
}

/// How a metered feature turns events into usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Each event counts 1.
    Count,
    /// Each event adds its `data.<property>` (a number; events without it add 0).
    Sum,
}

/// The period a metered limit applies to; calendar periods are in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// A UTC calendar day.
    Day,
    /// A week starting Monday 00:00 UTC.
    Week,
    /// A UTC calendar month.
    Month,
    /// A month anchored on the customer's start date.
    Billing,
}

/// One feature's entitlement for one subject.
///
/// Metered entitlements carry `event_type`, `aggregation` and `property` so an SDK can count
/// the events it tracks into the cached usage before the server answers again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entitlement {
    /// The feature's kind.
    pub kind: FeatureKind,
    /// Whether the subject may use the feature now.
    pub has_access: bool,
    /// Metered: the limit for the current period (`None`: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "whole")]
    pub limit: Option<f64>,
    /// Metered: the usage in the current period.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "whole")]
    pub usage: Option<f64>,
    /// Metered: `limit - usage`, never below 0 (`None` when unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "whole")]
    pub remaining: Option<f64>,
    /// Metered: the soft limit, when set.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "whole")]
    pub soft_limit: Option<f64>,
    /// Metered: the period of the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// Metered: start of the current period (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_start: Option<String>,
    /// Metered: end of the current period, exclusive (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_end: Option<String>,
    /// Metered: the event type that feeds the usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Metered: how events become usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<Aggregation>,
    /// Metered with `sum`: the `data` property that is added up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// Config: the feature's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl Entitlement {
    /// A boolean entitlement.
    pub fn boolean(has_access: bool) -> Self {
        Entitlement {
            kind: FeatureKind::Boolean,
            has_access,
            limit: None,
            usage: None,
            remaining: None,
            soft_limit: None,
            period: None,
            period_start: None,
            period_end: None,
            event_type: None,
            aggregation: None,
            property: None,
            value: None,
        }
    }

    /// A config entitlement carrying `value`.
    pub fn config(value: Value) -> Self {
        Entitlement {
            kind: FeatureKind::Config,
            value: Some(value),
            ..Entitlement::boolean(true)
        }
    }
}

/// The answer of `GET /v1/customers/{subject}/entitlements` and the `data` of an
/// `entitlements.updated` stream message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entitlements {
    /// The customer.
    pub subject: String,
    /// Increases whenever anything in the answer changes except metered usage between
    /// thresholds; a cache keeps the answer with the highest version.
    pub version: u64,
    /// How long the answer may be served from a cache without revalidation.
    pub ttl_ms: u64,
    /// By feature key.
    pub entitlements: BTreeMap<String, Entitlement>,
}

/// `GET /v1/customers/{subject}/usage`: one metered feature's usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureUsage {
    /// The period of the limit.
    pub period: Period,
    /// The current period.
    pub current: PeriodUsage,
    /// The period before it.
    pub previous: PeriodUsage,
}

/// Usage in one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodUsage {
    /// Start (RFC 3339, UTC), inclusive.
    pub start: String,
    /// End (RFC 3339, UTC), exclusive.
    pub end: String,
    /// Usage in `[start, end)`.
    #[serde(with = "whole_required")]
    pub usage: f64,
}

/// `GET /v1/customers/{subject}/usage` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    /// The customer.
    pub subject: String,
    /// By metered feature key.
    pub features: BTreeMap<String, FeatureUsage>,
}

/// Writes whole `f64`s as JSON integers.
fn write_number<S: serde::Serializer>(v: f64, s: S) -> Result<S::Ok, S::Error> {
    // 2^53: above it, f64 no longer holds every integer and `as i64` would mislead.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if v.fract() == 0.0 && v.abs() <= EXACT {
        #[allow(clippy::cast_possible_truncation)]
        s.serialize_i64(v as i64)
    } else {
        s.serialize_f64(v)
    }
}

pub(crate) mod whole {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::write_number(*v, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Option::<f64>::deserialize(d)
    }
}

mod whole_required {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        super::write_number(*v, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        f64::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn design_example_round_trips_with_integers() {
        let body = json!({"subject":"c1","version":43,"ttl_ms":60000,"entitlements":{
            "api_calls":{"kind":"metered","has_access":true,"limit":1000,"usage":120,"remaining":880,
                "period":"month","period_end":"2026-12-01T00:00:00Z","event_type":"api.call","aggregation":"count"},
            "sso":{"kind":"boolean","has_access":true},
            "tier":{"kind":"config","has_access":true,"value":{"seats":10}}}});
        let parsed: Entitlements = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(parsed.entitlements["api_calls"].usage, Some(120.0));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), body);
    }

    #[test]
    fn fractional_usage_stays_fractional() {
        let mut e = Entitlement::boolean(true);
        e.kind = FeatureKind::Metered;
        e.usage = Some(1.5);
        assert_eq!(serde_json::to_value(&e).unwrap()["usage"], json!(1.5));
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let err = serde_json::from_value::<Entitlement>(json!({"kind":"gauge","has_access":true})).unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }
}
