//! `GET /v1/events`: the caller's stored events, oldest first, exactly as they arrived.

use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
};
use meterline_core::wire::EventsPage;

use crate::{
    app::AppState,
    auth::{Caller, Scope},
    error::ApiError,
    store::EventFilter,
};

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest accepted `limit`.
pub const MAX_LIMIT: u32 = 1000;

/// `GET /v1/events?type=&subject=&from=&to=&cursor=&limit=` → `{"events":[…],"next_cursor":…}`.
///
/// `from` (inclusive) and `to` (exclusive) are RFC 3339 and compare with the event's `time`
/// (its receive time when it has none). `cursor` is the opaque `next_cursor` of the previous
/// page. Any bad or unknown parameter is `400 invalid_parameter` naming it.
pub async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<EventsPage>, ApiError> {
    caller.require(Scope::ReadEvents)?;
    let Query(params) =
        query.map_err(|e| ApiError::invalid_parameter(format!("the query string is malformed: {}", e.body_text())))?;
    let mut filter = parse_filter(&params)?;
    let limit = filter.limit;
    filter.limit = limit + 1;
    let mut stored = state
        .store
        .events(caller.project_id, &filter)
        .await
        .map_err(|e| ApiError::internal("reading events failed", e))?;
    let next_cursor = if stored.len() > limit as usize {
        stored.truncate(limit as usize);
        stored.last().map(|e| e.seq.to_string())
    } else {
        None
    };
    Ok(Json(EventsPage {
        events: stored.into_iter().map(|s| s.event).collect(),
        next_cursor,
    }))
}

fn parse_filter(params: &[(String, String)]) -> Result<EventFilter, ApiError> {
    let mut filter = EventFilter {
        limit: DEFAULT_LIMIT,
        ..EventFilter::default()
    };
    let mut seen = Vec::new();
    for (name, value) in params {
        if seen.contains(&name.as_str()) {
            return Err(ApiError::invalid_parameter(format!("`{name}` is given more than once")));
        }
        seen.push(name.as_str());
        match name.as_str() {
            "type" => filter.event_type = Some(non_empty(name, value)?),
            "subject" => filter.subject = Some(non_empty(name, value)?),
            "from" => filter.from_us = Some(timestamp(name, value)?),
            "to" => filter.to_us = Some(timestamp(name, value)?),
            "cursor" => {
                filter.after_seq =
                    value.parse::<i64>().ok().filter(|seq| *seq > 0).ok_or_else(|| {
                        ApiError::invalid_parameter("`cursor` is not a cursor returned by this server")
                    })?;
            }
            "limit" => {
                filter.limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| {
                        ApiError::invalid_parameter(format!("`limit` must be an integer from 1 to {MAX_LIMIT}"))
                    })?;
            }
            other => {
                return Err(ApiError::invalid_parameter(format!(
                    "unknown parameter `{}`; use type, subject, from, to, cursor or limit",
                    other.chars().take(64).collect::<String>()
                )));
            }
        }
    }
    Ok(filter)
}

fn non_empty(name: &str, value: &str) -> Result<String, ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid_parameter(format!("`{name}` must not be empty")));
    }
    Ok(value.to_owned())
}

fn timestamp(name: &str, value: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_micros())
        .map_err(|e| ApiError::invalid_parameter(format!("`{name}` must be an RFC 3339 timestamp: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn parses_every_parameter() {
        let f = parse_filter(&params(&[
            ("type", "api.call"),
            ("subject", "c1"),
            ("from", "2026-01-01T00:00:00Z"),
            ("to", "2026-01-02T00:00:00Z"),
            ("cursor", "7"),
            ("limit", "5"),
        ]))
        .unwrap();
        assert_eq!(f.event_type.as_deref(), Some("api.call"));
        assert_eq!(f.after_seq, 7);
        assert_eq!(f.limit, 5);
        assert_eq!(f.to_us.unwrap() - f.from_us.unwrap(), 86_400_000_000);
    }

    #[test]
    fn bad_parameters_are_named() {
        for (name, value) in [
            ("limit", "0"),
            ("limit", "1001"),
            ("cursor", "abc"),
            ("from", "yesterday"),
            ("bogus", "1"),
        ] {
            let err = parse_filter(&params(&[(name, value)])).unwrap_err();
            assert_eq!(err.code, "invalid_parameter");
            assert!(err.message.contains(name), "{}", err.message);
        }
    }
}
