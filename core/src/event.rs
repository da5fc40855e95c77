//! The event wire format: CloudEvents 1.0 in JSON (DESIGN §2), and its envelope checks.
//!
//! The same checks run in the SDK before an event is queued and in the server before it is
//! stored, so both sides reject the same events with the same code and JSON pointer.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ValidationError;

mod context;
pub use context::{check_source, check_string};

/// The only CloudEvents version meterline speaks.
pub const SPEC_VERSION: &str = "1.0";
/// Longest accepted `id` (characters).
pub const MAX_ID_LEN: usize = 256;
/// Longest accepted `source`, `type` and `subject` (characters).
pub const MAX_ATTRIBUTE_LEN: usize = 256;
/// Largest accepted event, serialized as JSON (bytes).
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// The only `datacontenttype` accepted (it may also be left out).
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// One usage event, as sent on the wire and as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Always `"1.0"`.
    pub specversion: String,
    /// Idempotency key: the server stores `(project, source, id)` once.
    pub id: String,
    /// The sending application.
    pub source: String,
    /// The event type, which is also the meter key.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The customer being metered.
    pub subject: String,
    /// When it happened, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// `application/json` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    /// The payload: a JSON object, validated against the type's schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
}

impl Event {
    /// Builds an event with `specversion` and `datacontenttype` filled in.
    pub fn new(
        id: impl Into<String>,
        source: impl Into<String>,
        event_type: impl Into<String>,
        subject: impl Into<String>,
        time: Option<String>,
        data: Map<String, Value>,
    ) -> Self {
        Event {
            specversion: SPEC_VERSION.to_owned(),
            id: id.into(),
            source: source.into(),
            event_type: event_type.into(),
            subject: subject.into(),
            time,
            datacontenttype: Some(DATA_CONTENT_TYPE.to_owned()),
            data: Some(data),
        }
    }

    /// Parses and checks one event received as JSON (any field order). Every context
    /// attribute is checked as CloudEvents 1.0 requires (names, types, `source` and
    /// `dataschema` as URIs; `null` is unset); valid extension attributes and `dataschema`
    /// are not kept. Errors name the offending field as a JSON pointer.
    pub fn from_value(value: Value) -> Result<Event, ValidationError> {
        let Value::Object(mut obj) = value else {
            return Err(ValidationError::invalid_event(
                "",
                format!("an event must be a JSON object, got {}", kind_of(&value)),
            ));
        };
        let event = Event {
            specversion: take_string(&mut obj, "specversion")?,
            id: take_string(&mut obj, "id")?,
            source: take_string(&mut obj, "source")?,
            event_type: take_string(&mut obj, "type")?,
            subject: take_string(&mut obj, "subject")?,
            time: take_optional_string(&mut obj, "time")?,
            datacontenttype: take_optional_string(&mut obj, "datacontenttype")?,
            data: match obj.remove("data") {
                None | Some(Value::Null) => None,
                Some(Value::Object(map)) => Some(map),
                Some(other) => {
                    return Err(ValidationError::invalid_event(
                        "/data",
                        format!("`data` must be a JSON object, got {}", kind_of(&other)),
                    ));
                }
            },
        };
        event.check_envelope()?;
        check_string("/id", "id", &event.id)?;
        check_source(&event.source)?;
        check_string("/type", "type", &event.event_type)?;
        check_string("/subject", "subject", &event.subject)?;
        context::check_other_attributes(&obj)?;
        Ok(event)
    }

    /// Parses one event from JSON text; see [`Event::from_value`].
    pub fn from_json(text: &str) -> Result<Event, ValidationError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| ValidationError::invalid_event("", format!("invalid JSON: {e}")))?;
        Event::from_value(value)
    }

    /// A borrowed view of this event, for checks and serialization without copying.
    pub fn as_ref(&self) -> EventRef<'_> {
        EventRef {
            specversion: &self.specversion,
            id: &self.id,
            source: &self.source,
            event_type: &self.event_type,
            subject: &self.subject,
            time: self.time.as_deref(),
            datacontenttype: self.datacontenttype.as_deref(),
            data: self.data.as_ref(),
        }
    }

    /// Checks the envelope rules of DESIGN §2 (everything except the data schema).
    pub fn check_envelope(&self) -> Result<(), ValidationError> {
        self.as_ref().check_envelope()
    }

    /// Serializes the event as compact JSON, refusing events over [`MAX_EVENT_BYTES`].
    pub fn to_json_bytes(&self) -> Result<Vec<u8>, ValidationError> {
        self.as_ref().to_json_bytes()
    }
}

/// An event whose attributes are borrowed: what the SDK's `track()` checks and serializes
/// without building an owned [`Event`] first. Serializes exactly like [`Event`].
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    /// Always `"1.0"`.
    pub specversion: &'a str,
    /// Idempotency key.
    pub id: &'a str,
    /// The sending application.
    pub source: &'a str,
    /// The event type.
    pub event_type: &'a str,
    /// The customer being metered.
    pub subject: &'a str,
    /// RFC 3339 time.
    pub time: Option<&'a str>,
    /// `application/json` when present.
    pub datacontenttype: Option<&'a str>,
    /// The payload object.
    pub data: Option<&'a Map<String, Value>>,
}

impl EventRef<'_> {
    /// Checks the envelope rules of DESIGN §2 (everything except the data schema).
    pub fn check_envelope(&self) -> Result<(), ValidationError> {
        if self.specversion != SPEC_VERSION {
            return Err(ValidationError::invalid_event(
                "/specversion",
                format!(
                    "`specversion` must be \"{SPEC_VERSION}\", got {:?}",
                    truncate(self.specversion)
                ),
            ));
        }
        check_attribute("/id", "id", self.id, MAX_ID_LEN)?;
        check_attribute("/source", "source", self.source, MAX_ATTRIBUTE_LEN)?;
        check_attribute("/type", "type", self.event_type, MAX_ATTRIBUTE_LEN)?;
        check_attribute("/subject", "subject", self.subject, MAX_ATTRIBUTE_LEN)?;
        if let Some(time) = self.time {
            chrono::DateTime::parse_from_rfc3339(time).map_err(|e| {
                ValidationError::invalid_event(
                    "/time",
                    format!("`time` must be an RFC 3339 timestamp ({e}), got {:?}", truncate(time)),
                )
            })?;
        }
        if let Some(ct) = self.datacontenttype
            && !ct.eq_ignore_ascii_case(DATA_CONTENT_TYPE)
        {
            return Err(ValidationError::invalid_event(
                "/datacontenttype",
                format!(
                    "`datacontenttype` must be \"{DATA_CONTENT_TYPE}\", got {:?}",
                    truncate(ct)
                ),
            ));
        }
        Ok(())
    }

    /// Serializes the event as compact JSON, refusing events over [`MAX_EVENT_BYTES`].
    ///
    /// This is `track()`'s hot path, so the envelope is written directly (keys are constants;
    /// values that need no escaping are copied as they are) and only `data` goes through
    /// serde. The output is byte-for-byte what `serde_json` writes for [`Event`].
    pub fn to_json_bytes(&self) -> Result<Vec<u8>, ValidationError> {
        let mut out = self.envelope_json(self.data.map_or(0, estimated_json_len));
        if let Some(data) = self.data {
            out.extend_from_slice(b",\"data\":");
            write_json_object(&mut out, data);
        }
        finish_json(out)
    }

    /// [`EventRef::to_json_bytes`] with `data` given as JSON text, embedded as it is (so
    /// compact text gives the same bytes as a map would). The caller has checked that it
    /// is one JSON object (e.g. parsed it as a [`serde_json::value::RawValue`]); `self.data`
    /// is ignored.
    pub fn to_json_bytes_with_raw_data(&self, data: &str) -> Result<Vec<u8>, ValidationError> {
        let mut out = self.envelope_json(data.len() + 8);
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(data.as_bytes());
        finish_json(out)
    }

    /// Every attribute but `data`, without the closing brace, in a buffer with room for
    /// `extra` more bytes.
    fn envelope_json(&self, extra: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + extra + self.id.len() + self.subject.len() + self.event_type.len());
        if self.specversion == SPEC_VERSION {
            out.extend_from_slice(b"{\"specversion\":\"1.0\"");
        } else {
            out.extend_from_slice(b"{\"specversion\":");
            write_json_str(&mut out, self.specversion);
        }
        out.extend_from_slice(b",\"id\":");
        write_json_str(&mut out, self.id);
        out.extend_from_slice(b",\"source\":");
        write_json_str(&mut out, self.source);
        out.extend_from_slice(b",\"type\":");
        write_json_str(&mut out, self.event_type);
        out.extend_from_slice(b",\"subject\":");
        write_json_str(&mut out, self.subject);
        if let Some(time) = self.time {
            out.extend_from_slice(b",\"time\":");
            write_json_str(&mut out, time);
        }
        match self.datacontenttype {
            Some(DATA_CONTENT_TYPE) => out.extend_from_slice(b",\"datacontenttype\":\"application/json\""),
            Some(ct) => {
                out.extend_from_slice(b",\"datacontenttype\":");
                write_json_str(&mut out, ct);
            }
            None => {}
        }
        out
    }
}

/// Closes a serialized event and refuses it over [`MAX_EVENT_BYTES`].
fn finish_json(mut out: Vec<u8>) -> Result<Vec<u8>, ValidationError> {
    out.push(b'}');
    if out.len() > MAX_EVENT_BYTES {
        return Err(ValidationError::too_large(out.len(), MAX_EVENT_BYTES));
    }
    Ok(out)
}

/// About how many bytes `map` takes as JSON, to size the event's buffer once (growing it
/// copies the envelope again). Exact for flat maps of strings that need no escapes.
fn estimated_json_len(map: &Map<String, Value>) -> usize {
    map.iter()
        .map(|(key, value)| {
            key.len()
                + 4
                + match value {
                    Value::String(s) => s.len() + 2,
                    Value::Array(_) | Value::Object(_) => 64,
                    _ => 24,
                }
        })
        .sum::<usize>()
        + 2
}

/// Writes `map` as compact JSON: the same bytes as `serde_json::to_writer`, with strings that
/// need no escaping (nearly all keys and values) copied after a scan 8 bytes at a time instead of
/// serde_json's byte-by-byte escaper — ≈ a tenth of a typical `track()`.
fn write_json_object(out: &mut Vec<u8>, map: &Map<String, Value>) {
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, key);
        out.push(b':');
        write_json_value(out, value);
    }
    out.push(b'}');
}

fn write_json_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => serde_json::to_writer(&mut *out, n).expect("writing a number to a Vec cannot fail"),
        Value::String(s) => write_json_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_json_object(out, map),
    }
}

/// Whether JSON needs an escape for any byte of `bytes`: a control character, `"` or `\`.
/// Eight bytes at a time (SWAR): the strings written per event are mostly 5–40 bytes, too
/// short for the vectorized loop of a byte-wise fold to pay off.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero ⇔ the matching high bit of `zero_bytes(x)` is set.
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let special = |word: u64| {
        // Bytes < 0x20: subtracting 0x20 borrows into the high bit (bytes ≥ 0x80 excluded).
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
        control | zero_bytes(word ^ (ONES * u64::from(b'"'))) | zero_bytes(word ^ (ONES * u64::from(b'\\')))
    };
    let mut chunks = bytes.chunks_exact(8);
    let mut found = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        found |= special(u64::from_le_bytes(word));
    }
    if chunks.remainder().is_empty() {
        return found != 0;
    }
    // The tail: the last eight bytes again (overlapping), or byte by byte when there are
    // fewer — no variable-length copy (a `memcpy` call was a third of the scan).
    match bytes.last_chunk::<8>() {
        Some(last) => found |= special(u64::from_le_bytes(*last)),
        None => return bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\'),
    }
    found != 0
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("writing a str to a Vec cannot fail");
    }
}

fn check_attribute(path: &str, name: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::invalid_event(
            path,
            format!("`{name}` must not be empty"),
        ));
    }
    // Byte length bounds the character count from above: only long values need counting.
    if value.len() <= max {
        return Ok(());
    }
    let len = value.chars().count();
    if len > max {
        return Err(ValidationError::invalid_event(
            path,
            format!("`{name}` is {len} characters long; at most {max} are allowed"),
        ));
    }
    Ok(())
}

fn take_string(obj: &mut Map<String, Value>, name: &'static str) -> Result<String, ValidationError> {
    match obj.remove(name) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(ValidationError::invalid_event(
            format!("/{name}"),
            format!("required attribute `{name}` is missing"),
        )),
        Some(other) => Err(ValidationError::invalid_event(
            format!("/{name}"),
            format!("`{name}` must be a string, got {}", kind_of(&other)),
        )),
    }
}

fn take_optional_string(obj: &mut Map<String, Value>, name: &'static str) -> Result<Option<String>, ValidationError> {
    match obj.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ValidationError::invalid_event(
            format!("/{name}"),
            format!("`{name}` must be a string, got {}", kind_of(&other)),
        )),
    }
}

/// A JSON value's kind, for error messages (`"a number"`, `"an array"` …).
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Shortens user input quoted in error messages so an error never echoes megabytes.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn valid() -> Value {
        json!({"specversion":"1.0","id":"e1","source":"api","type":"api.call","subject":"c1",
               "time":"2026-11-24T10:00:00.123Z","data":{"tokens":3}})
    }

    #[test]
    fn parses_a_valid_event_and_round_trips() {
        let e = Event::from_value(valid()).unwrap();
        assert_eq!(e.event_type, "api.call");
        let back: Value = serde_json::from_slice(&e.to_json_bytes().unwrap()).unwrap();
        assert_eq!(back, valid());
    }

    #[test]
    fn needs_escape_finds_every_byte_json_escapes_at_every_position() {
        for len in 0..=20 {
            let clean = vec![b'a'; len];
            assert!(!needs_escape(&clean), "{len} plain bytes");
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut bytes = clean.clone();
                    bytes[at] = byte;
                    let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
                    assert_eq!(needs_escape(&bytes), expected, "byte {byte:#04x} at {at} of {len}");
                }
            }
        }
        // Neighbours of the special bytes must not hide or fake one (borrows across bytes).
        assert!(!needs_escape("\u{7f}\u{80}ÿ !#[]~".as_bytes()));
        assert!(needs_escape(b"\xff\x1f\xff"));
        assert!(needs_escape(b"\x00\x00\x00\x00\x00\x00\x00\x00"));
    }

    #[test]
    fn data_is_written_byte_for_byte_as_serde_json_writes_it() {
        // The hand-written writer must not change a byte of what is sent: escapes, control
        // characters, non-ASCII, every number form, nesting, empty containers.
        let data = json!({
            "plain": "m-large", "quote\"key": "a \"quoted\" \\ value", "ctl": "tab\tnl\n\u{1}\u{1f}",
            "unicode": "naïve ✓ 𝄞 \u{7f}", "": "", "int": 42, "neg": -7, "big": u64::MAX, "min": i64::MIN,
            "float": 1.5, "tiny": 1e-300, "huge": 1.7976931348623157e308, "neg_zero": -0.0, "exp": 2.5e-7,
            "t": true, "f": false, "null": null, "empty_list": [], "empty_obj": {},
            "nested": {"list": [1, "two", [3.0, {"four": [null]}], {"k\u{0}": "v"}]}
        });
        let Value::Object(map) = &data else { unreachable!() };
        let mut ours = Vec::new();
        write_json_object(&mut ours, map);
        assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&data).unwrap());
    }

    #[test]
    fn names_the_offending_field() {
        let cases = [
            (json!({"specversion":"0.3"}), "/specversion"),
            (json!({"id":""}), "/id"),
            (json!({"id":"x".repeat(257)}), "/id"),
            (json!({"id":7}), "/id"),
            (json!({"subject":null}), "/subject"),
            (json!({"time":"yesterday"}), "/time"),
            (json!({"data":[1,2]}), "/data"),
            (json!({"datacontenttype":"text/plain"}), "/datacontenttype"),
        ];
        for (patch, path) in cases {
            let mut v = valid();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            let err = Event::from_value(v).unwrap_err();
            assert_eq!(err.path, path, "{err}");
            assert_eq!(err.code, "invalid_event");
        }
    }

    #[test]
    fn rejects_non_objects_and_bad_json() {
        assert_eq!(Event::from_value(json!([1])).unwrap_err().path, "");
        assert!(Event::from_json("{").unwrap_err().message.contains("invalid JSON"));
    }

    #[test]
    fn direct_writer_matches_serde() {
        let tricky = [
            "plain",
            "quote\"d",
            "back\\slash",
            "new\nline",
            "tab\t",
            "\u{7f}del",
            "ünïcødé 東京",
            "\u{1}",
        ];
        for s in tricky {
            let mut data = Map::new();
            data.insert(s.into(), Value::String(s.into()));
            let e = Event::new(s, s, s, s, Some(s.into()), data);
            let direct = e.to_json_bytes().unwrap();
            assert_eq!(direct, serde_json::to_vec(&e).unwrap(), "{s:?}");
            // Compact JSON text for `data` gives the very same bytes.
            let text = serde_json::to_string(e.data.as_ref().unwrap()).unwrap();
            assert_eq!(e.as_ref().to_json_bytes_with_raw_data(&text).unwrap(), direct, "{s:?}");
        }
    }

    #[test]
    fn refuses_oversized_events() {
        let mut data = Map::new();
        data.insert("blob".into(), Value::String("x".repeat(MAX_EVENT_BYTES)));
        let e = Event::new("1", "s", "t", "c", None, data);
        assert_eq!(e.to_json_bytes().unwrap_err().code, "event_too_large");
        let text = serde_json::to_string(e.data.as_ref().unwrap()).unwrap();
        assert_eq!(
            e.as_ref().to_json_bytes_with_raw_data(&text).unwrap_err().code,
            "event_too_large"
        );
    }

    #[test]
    fn error_messages_do_not_echo_huge_input() {
        let mut v = valid();
        v["time"] = Value::String("z".repeat(10_000));
        let err = Event::from_value(v).unwrap_err();
        assert!(err.message.len() < 300, "{}", err.message.len());
    }
}
