//! The disk spool's record format (`spool_dir`, see `runtime::native`): one entry per
//! accepted event, key = a sequence number as a big-endian `u64` (so the store iterates in
//! arrival order), value = the event's wire JSON.
//!
//! Decoding is pure (no store, no I/O) so the spool reader can be fuzzed and tested without
//! the native runtime; entries that do not decode are skipped and counted when the spool
//! opens, never a panic.

/// Why a stored entry is not an event the sender can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpoolRecordError {
    /// The key is not 8 bytes.
    #[error("spool key is {0} bytes, not 8")]
    Key(usize),
    /// The value is not a JSON object with a non-empty string `id`.
    #[error("spool value is not an event (a JSON object with a non-empty string id)")]
    Value,
}

/// The key stored for sequence number `seq`.
pub fn encode_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Decodes one stored entry: its sequence number, and the value as the event's wire JSON
/// (checked to be a JSON object with a non-empty string `id`; not re-validated against
/// schemas, which may have changed since it was accepted).
///
/// # Errors
/// [`SpoolRecordError`] naming the part that is wrong.
///
/// # Example
/// ```
/// use meterline_core::spool_record::{decode, encode_key};
/// let (seq, event) = decode(&encode_key(7), br#"{"id":"ev-1","type":"api.call"}"#).unwrap();
/// assert_eq!((seq, event.len()), (7, 31));
/// assert!(decode(b"short", br#"{"id":"ev-1"}"#).is_err());
/// ```
pub fn decode<'v>(key: &[u8], value: &'v [u8]) -> Result<(u64, &'v [u8]), SpoolRecordError> {
    let seq = <[u8; 8]>::try_from(key).map_err(|_| SpoolRecordError::Key(key.len()))?;
    if !is_event(value) {
        return Err(SpoolRecordError::Value);
    }
    Ok((u64::from_be_bytes(seq), value))
}

/// Whether a stored value is an event the sender can send: a JSON object with a non-empty
/// string id. Parsed in full (not with a probe that skips the other fields: serde skips them
/// without checking UTF-8 or number ranges), so an entry the server could not parse never
/// gets its whole batch refused.
fn is_event(value: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(value).is_ok_and(|v| {
        v.get("id")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|id| !id.is_empty())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn keys_round_trip_and_sort_in_sequence_order() {
        assert_eq!(decode(&encode_key(u64::MAX), br#"{"id":"x"}"#).unwrap().0, u64::MAX);
        assert!(encode_key(255) < encode_key(256));
    }

    #[test]
    fn entries_that_are_not_events_name_what_is_wrong() {
        let ok = br#"{"id":"x"}"#;
        assert_eq!(decode(b"", ok), Err(SpoolRecordError::Key(0)));
        assert_eq!(decode(&[0; 9], ok), Err(SpoolRecordError::Key(9)));
        for value in [
            &b""[..],
            b"not json",
            b"[]",
            br#"{"no":"id"}"#,
            br#"{"id":""}"#,
            br#"{"id":7}"#,
            br#"{"id":"x""#,
            br#"["x"]"#,
            br#" ["x", 1]"#,
            b"{\"id\":\"x\",\"source\":\"\xff\xfe\"}",
            b"\xff\xfe",
            b"{\"id\":\"x\",\"n\":1e999}",
        ] {
            assert_eq!(decode(&encode_key(1), value), Err(SpoolRecordError::Value), "{value:?}");
        }
    }
}
