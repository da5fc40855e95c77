//! The event builder behind every runtime's `track()` (DESIGN §7), without I/O.
//!
//! [`build`] takes what the caller gave, the time, an id source and the schemas, and returns
//! the serialized CloudEvent and the record the entitlement cache counts as local usage.
//! The runtime supplies what differs per platform: the clock and the ids (the native one is
//! a fork-aware UUIDv7; a browser brings its own), and queues the bytes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::{
    error::{Error, ValidationError},
    event::{DATA_CONTENT_TYPE, EventRef, SPEC_VERSION, check_string, kind_of},
    schema::SchemaRegistry,
};

/// `data` of a tracked event, as the caller gave it.
#[derive(Debug)]
pub enum TrackData<'a> {
    /// A JSON object (Rust's `track`, Python's dict).
    Map(Map<String, Value>),
    /// The text of one JSON object (Node's `JSON.stringify`), and its map once validation
    /// or usage counting needed it.
    Json {
        /// The object's text, embedded in the event as it is.
        text: &'a str,
        /// The parsed object, once something needed it.
        parsed: Option<Map<String, Value>>,
    },
}

impl<'a> TrackData<'a> {
    /// `data` from a JSON value; anything but an object is a validation error at `/data`.
    pub fn from_value(data: Value) -> Result<Self, Error> {
        match data {
            Value::Object(map) => Ok(TrackData::Map(map)),
            other => Err(not_an_object(kind_of(&other))),
        }
    }

    /// `data` from JSON text, checked to be an object by its first byte (it is parsed only
    /// when a schema or usage counting needs the map).
    pub fn from_json_text(text: &'a str) -> Result<Self, Error> {
        let text = text.trim();
        let kind = match text.as_bytes().first() {
            Some(b'{') => None,
            Some(b'[') => Some("an array"),
            Some(b'"') => Some("a string"),
            Some(b't' | b'f') => Some("a boolean"),
            Some(b'n') => Some("null"),
            _ => Some("a number"),
        };
        match kind {
            Some(kind) => Err(not_an_object(kind)),
            None => Ok(TrackData::Json { text, parsed: None }),
        }
    }

    /// Checks the data against its type's schema, parsing JSON text only if there is one.
    fn validate(&mut self, schemas: &SchemaRegistry, event_type: &str) -> Result<(), ValidationError> {
        if !schemas.checks(event_type) {
            return Ok(());
        }
        let map = match self {
            TrackData::Map(map) => map,
            TrackData::Json { text, parsed } => parsed.insert(parse_object(text)?),
        };
        let (checked_map, checked) = schemas.validate_map(event_type, std::mem::take(map));
        *map = checked_map;
        checked
    }

    /// The data as a map, parsing JSON text the first time (`None` only if the text is not
    /// one JSON object, which [`TrackData::from_json_text`] has ruled out).
    pub fn map(&mut self) -> Option<&Map<String, Value>> {
        match self {
            TrackData::Map(map) => Some(map),
            TrackData::Json { text, parsed } => {
                if parsed.is_none() {
                    *parsed = parse_object(text).ok();
                }
                parsed.as_ref()
            }
        }
    }
}

/// What a caller hands to `track()`.
#[derive(Debug)]
pub struct TrackInput<'a> {
    /// The event's `type`.
    pub event_type: &'a str,
    /// The event's `subject` (the customer).
    pub subject: &'a str,
    /// The event's `data`.
    pub data: TrackData<'a>,
    /// The caller's id; `None`: one from the id source.
    pub id: Option<String>,
    /// The caller's time (RFC 3339, checked); `None`: the time given to [`build`].
    pub time: Option<String>,
}

/// The rules that do not change per event.
#[derive(Debug, Clone, Copy)]
pub struct BuildRules<'a> {
    /// CloudEvents `source` of every event.
    pub source: &'a str,
    /// Largest batch body: an event must fit in one alone (with the array's brackets).
    pub max_batch_bytes: usize,
}

/// A built event: its id and bytes for the outbox, and what local usage counting needs.
#[derive(Debug)]
pub struct BuiltEvent<'a> {
    /// The event's id (the caller's or a new one).
    pub id: String,
    /// The serialized event.
    pub bytes: Vec<u8>,
    /// What the entitlement cache counts once the event is queued.
    pub usage: LocalUsage<'a>,
}

/// An event as the entitlement cache counts it into cached metered answers.
#[derive(Debug)]
pub struct LocalUsage<'a> {
    /// The event's `type`.
    pub event_type: &'a str,
    /// The event's `subject`.
    pub subject: &'a str,
    /// The caller's time; `None` when the event is stamped now.
    pub time: Option<String>,
    /// The event's data (parsed on demand).
    pub data: TrackData<'a>,
}

/// Validates and serializes one event. `now` stamps it when the caller gave no time and is
/// handed to `new_id` when it gave no id. Errors: a [`ValidationError`] naming the JSON
/// pointer and the rule (envelope, schema, or `too_large` past `max_batch_bytes`).
pub fn build<'a>(
    rules: BuildRules<'_>,
    schemas: &SchemaRegistry,
    input: TrackInput<'a>,
    now: SystemTime,
    new_id: impl FnOnce(SystemTime) -> String,
) -> Result<BuiltEvent<'a>, Error> {
    let TrackInput {
        event_type,
        subject,
        mut data,
        id,
        time,
    } = input;
    // The CloudEvents String rules for what the caller gave (a generated id is printable
    // ASCII, `source` was checked with the configuration), so `track()` refuses at once what
    // the server would refuse.
    if let Some(id) = &id {
        check_string("/id", "id", id)?;
    }
    check_string("/type", "type", event_type)?;
    check_string("/subject", "subject", subject)?;
    let id = id.unwrap_or_else(|| new_id(now));
    let generated;
    let (time_text, time_given) = match &time {
        // A caller's time is parsed to check it; the one generated here is known to be valid.
        Some(time) => (time.as_str(), true),
        None => {
            generated = format_rfc3339(now);
            (generated.as_str(), false)
        }
    };
    let event = EventRef {
        specversion: SPEC_VERSION,
        id: &id,
        source: rules.source,
        event_type,
        subject,
        time: time_given.then_some(time_text),
        datacontenttype: Some(DATA_CONTENT_TYPE),
        data: None,
    };
    event.check_envelope()?;
    let event = EventRef {
        time: Some(time_text),
        ..event
    };
    data.validate(schemas, event_type)?;
    let bytes = match &data {
        TrackData::Map(map) => EventRef {
            data: Some(map),
            ..event
        }
        .to_json_bytes()?,
        TrackData::Json { text, .. } => event.to_json_bytes_with_raw_data(text)?,
    };
    if bytes.len() + 2 > rules.max_batch_bytes {
        return Err(ValidationError::too_large(bytes.len(), rules.max_batch_bytes - 2).into());
    }
    Ok(BuiltEvent {
        id,
        bytes,
        usage: LocalUsage {
            event_type,
            subject,
            time,
            data,
        },
    })
}

/// `second` as chrono's `%Y-%m-%dT%H:%M:%S` writes it (a year past 9999 with a `+`),
/// without its run-time format-string parser (6 KB of the gzipped browser bundle).
fn format_second(second: &chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let year = second.year();
    let sign = if year > 9999 { "+" } else { "" };
    format!(
        "{sign}{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        second.month(),
        second.day(),
        second.hour(),
        second.minute(),
        second.second()
    )
}

/// `now`, RFC 3339 with milliseconds, UTC (`2026-11-24T10:00:00.123Z`), on the stack.
///
/// Formatting a date is ~700 instructions with chrono; within one second only the
/// milliseconds change, so each thread keeps the formatted second and appends them.
pub fn format_rfc3339(now: SystemTime) -> TimeText {
    use std::cell::RefCell;
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (secs, millis) = (since_epoch.as_secs(), since_epoch.subsec_millis());
    SECOND.with_borrow_mut(|(cached, prefix)| {
        if *cached != secs {
            let second = chrono::DateTime::<chrono::Utc>::from(UNIX_EPOCH + Duration::from_secs(secs));
            *prefix = format_second(&second);
            *cached = secs;
        }
        let mut out = TimeText {
            buf: [0; TimeText::CAPACITY],
            len: prefix.len() + 5,
        };
        out.buf[..prefix.len()].copy_from_slice(prefix.as_bytes());
        let digits = [millis / 100, millis / 10 % 10, millis % 10].map(|d| b'0' + d as u8);
        out.buf[prefix.len()] = b'.';
        out.buf[prefix.len() + 1..prefix.len() + 4].copy_from_slice(&digits);
        out.buf[prefix.len() + 4] = b'Z';
        out
    })
}

/// A generated event time: formatted into a buffer on the stack, not a `String` per event.
#[derive(Debug, Clone, Copy)]
pub struct TimeText {
    buf: [u8; TimeText::CAPACITY],
    len: usize,
}

impl TimeText {
    /// `+YYYYYY-MM-DDTHH:MM:SS.mmmZ` is 27 bytes: every year chrono can format fits.
    const CAPACITY: usize = 32;

    /// The formatted time.
    pub fn as_str(&self) -> &str {
        // ASCII digits and separators, written above.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

fn parse_object(text: &str) -> Result<Map<String, Value>, ValidationError> {
    // The browser build decodes every JSON text from its bytes: one copy of serde_json's
    // parser in the bundle. Natively `from_str` skips the UTF-8 check a `&str` already passed
    // (about 12 % of `track_json()`'s instructions).
    #[cfg(target_arch = "wasm32")]
    let parsed = serde_json::from_slice(text.as_bytes());
    #[cfg(not(target_arch = "wasm32"))]
    let parsed = serde_json::from_str(text);
    parsed.map_err(|e| ValidationError::invalid_event("/data", format!("`data` is not a JSON object: {e}")))
}

fn not_an_object(kind: &str) -> Error {
    ValidationError::invalid_event("/data", format!("`data` must be a JSON object, got {kind}")).into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const RULES: BuildRules<'static> = BuildRules {
        source: "tests",
        max_batch_bytes: 1024,
    };

    fn at(millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    #[test]
    fn generated_times_match_chrono_for_fixed_instants() {
        for (after_epoch, text) in [
            (Duration::from_millis(1_500), "1970-01-01T00:00:01.500Z"),
            (Duration::from_millis(1_795_521_600_007), "2026-11-24T12:00:00.007Z"),
            (Duration::from_millis(1_795_521_600_999), "2026-11-24T12:00:00.999Z"),
            (Duration::from_secs(253_402_300_800), "+10000-01-01T00:00:00.000Z"),
        ] {
            assert_eq!(format_rfc3339(UNIX_EPOCH + after_epoch).as_str(), text);
        }
    }

    #[test]
    fn an_event_is_stamped_with_the_given_time_and_a_new_id() {
        let schemas = SchemaRegistry::new(false);
        let input = TrackInput {
            event_type: "api.call",
            subject: "c1",
            data: TrackData::from_value(json!({"tokens": 3})).unwrap(),
            id: None,
            time: None,
        };
        let built = build(RULES, &schemas, input, at(1_795_521_600_007), |now| {
            format!("id-{}", now.duration_since(UNIX_EPOCH).unwrap().as_millis())
        })
        .unwrap();
        assert_eq!(built.id, "id-1795521600007");
        let event: Value = serde_json::from_slice(&built.bytes).unwrap();
        assert_eq!(event["time"], "2026-11-24T12:00:00.007Z");
        assert_eq!(event["source"], "tests");
        assert_eq!(event["data"], json!({"tokens": 3}));
        assert_eq!(built.usage.time, None, "a generated time is not the caller's");
    }

    #[test]
    fn the_callers_id_and_time_are_kept_and_checked() {
        let schemas = SchemaRegistry::new(false);
        let input = |time: &str| TrackInput {
            event_type: "api.call",
            subject: "c1",
            data: TrackData::from_json_text(r#" {"n": 1} "#).unwrap(),
            id: Some("evt-1".into()),
            time: Some(time.into()),
        };
        let built = build(
            RULES,
            &schemas,
            input("2026-01-01T00:00:00Z"),
            at(0),
            |_| unreachable!(),
        )
        .unwrap();
        assert_eq!(built.id, "evt-1");
        assert_eq!(built.usage.time.as_deref(), Some("2026-01-01T00:00:00Z"));
        let err = build(RULES, &schemas, input("yesterday"), at(0), |_| unreachable!()).unwrap_err();
        assert!(matches!(err, Error::Validation(v) if v.path == "/time"));
    }

    #[test]
    fn data_that_is_not_an_object_names_what_it_is() {
        for (text, kind) in [
            ("[1]", "an array"),
            ("\"x\"", "a string"),
            ("null", "null"),
            ("-1", "a number"),
        ] {
            let err = TrackData::from_json_text(text).unwrap_err();
            assert!(err.to_string().ends_with(&format!("got {kind}")), "{text}: {err}");
        }
        let err = TrackData::from_value(json!(true)).unwrap_err();
        assert!(err.to_string().ends_with("got a boolean"), "{err}");
    }

    #[test]
    fn an_event_larger_than_a_batch_is_refused() {
        let schemas = SchemaRegistry::new(false);
        let input = TrackInput {
            event_type: "api.call",
            subject: "c1",
            data: TrackData::from_value(json!({"blob": "x".repeat(2000)})).unwrap(),
            id: Some("e".into()),
            time: None,
        };
        let err = build(RULES, &schemas, input, at(0), |_| unreachable!()).unwrap_err();
        assert_eq!(err.code(), "event_too_large");
    }
}
