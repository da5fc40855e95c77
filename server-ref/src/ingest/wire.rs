//! One event of a request body, parsed once: the envelope members as JSON values (what
//! [`Event::from_value`](meterline_core::event::Event::from_value) checks) and `data` kept as
//! the slice of the body it came in, so a valid event's `data` is stored without being
//! built as a map and written back out.
//!
//! `data` is then walked once more without building anything ([`DataCheck`]): it refuses
//! exactly what parsing it into a `serde_json::Value` refuses (numbers out of range, invalid
//! escapes) and finds member names repeated within one object. JSON leaves the meaning of a
//! repeated name open: serde keeps the last, SQLite's `json_extract` (the usage counters)
//! the first. Such `data` is therefore stored as before, parsed (the last value wins, the one
//! a schema validated) and written compactly, so every reader sees one member.

use std::{borrow::Cow, fmt};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, value::RawValue};

/// An event object with `data` unparsed.
#[derive(Debug)]
pub(super) struct WireEvent<'a> {
    /// Every member but `data` (a repeated name keeps its last value, as `Value` does).
    pub envelope: Map<String, Value>,
    /// The last `data` member, as sent.
    pub data: Option<&'a RawValue>,
}

impl<'de> de::Deserialize<'de> for WireEvent<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(WireEventVisitor)
    }
}

struct WireEventVisitor;

impl<'de> Visitor<'de> for WireEventVisitor {
    type Value = WireEvent<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Map::new();
        let mut data = None;
        while let Some(Name(name)) = map.next_key()? {
            if name == "data" {
                data = Some(map.next_value::<&'de RawValue>()?);
            } else {
                envelope.insert(name.into_owned(), map.next_value()?);
            }
        }
        Ok(WireEvent { envelope, data })
    }
}

/// A member name, borrowed from the body unless it holds escapes.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Name<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// Walks a JSON value without building it; `repeated_names` is set when some object
/// repeats a member name.
#[derive(Debug, Default)]
pub(super) struct DataCheck {
    /// Whether an object (at any depth) repeats a member name.
    pub repeated_names: bool,
}

impl DataCheck {
    /// Checks `text` (one JSON value); errors are serde_json's for the same text.
    pub fn run(text: &str) -> Result<DataCheck, serde_json::Error> {
        let mut check = DataCheck::default();
        let mut deserializer = serde_json::Deserializer::from_str(text);
        (&mut check).deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(check)
    }
}

impl<'de> DeserializeSeed<'de> for &mut DataCheck {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut DataCheck {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(&mut *self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut names: Vec<Name<'de>> = Vec::new();
        while let Some(name) = map.next_key::<Name<'de>>()? {
            names.push(name);
            map.next_value_seed(&mut *self)?;
        }
        if !self.repeated_names {
            names.sort_unstable();
            self.repeated_names = names.windows(2).any(|w| w[0] == w[1]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn data_stays_the_slice_it_came_in() {
        let text = r#"{"id":"a","data": {"n" : 1.50, "s":"\u00e9"} ,"type":"t","data2":3}"#;
        let wire: WireEvent = serde_json::from_str(text).unwrap();
        assert_eq!(wire.data.unwrap().get(), r#"{"n" : 1.50, "s":"\u00e9"}"#);
        assert_eq!(wire.envelope.len(), 3);
        assert_eq!(wire.envelope["id"], "a");
    }

    #[test]
    fn the_last_data_member_wins_as_in_value() {
        let text = r#"{"data":{"a":1},"data":{"b":2}}"#;
        let wire: WireEvent = serde_json::from_str(text).unwrap();
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(wire.data.unwrap().get()).unwrap(),
            value["data"]
        );
    }

    #[test]
    fn repeated_names_are_found_at_any_depth() {
        assert!(
            !DataCheck::run(r#"{"a":1,"b":{"a":2},"c":[{"a":1,"b":2}]}"#)
                .unwrap()
                .repeated_names
        );
        assert!(DataCheck::run(r#"{"a":1,"a":2}"#).unwrap().repeated_names);
        assert!(DataCheck::run(r#"{"x":[{"k":1,"k":1}]}"#).unwrap().repeated_names);
        // An escaped name equals its plain spelling.
        assert!(DataCheck::run(r#"{"k":1,"\u006b":2}"#).unwrap().repeated_names);
    }

    #[test]
    fn refuses_what_value_parsing_refuses() {
        for text in [r#"{"n":1e400}"#, r#"{"s":"\ud800"}"#, r#"{"a":1} x"#] {
            assert!(DataCheck::run(text).is_err(), "{text}");
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text}");
        }
        // Both accept integers beyond i64/u64 (as floats).
        assert!(DataCheck::run(r#"{"n":123456789012345678901234567890}"#).is_ok());
    }
}
