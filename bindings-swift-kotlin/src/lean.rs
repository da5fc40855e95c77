//! The JVM's lean `track()` lane (docs/decisions.md, "Kotlin `track()`: one packed call"):
//! one plain C call per event instead of uniffi's generated path, which costs a JNA
//! `Structure` per argument, per call status and per returned buffer, one `rustbuffer_alloc`
//! call per string and one handle clone per method call (tens of µs on the JVM).
//!
//! The Kotlin side (`TrackLane.kt`) writes the five arguments into a per-thread native buffer,
//! each as a little-endian `i32` byte length (`-1` for null) and its UTF-8 bytes, and calls
//! [`meterline_track_packed`] with the client's uniffi handle, borrowed for the call. The
//! event goes through [`Client::track_text`], the same code as uniffi's `track` — validation,
//! errors and behaviour are the core's, unchanged. The answer comes back in the same buffer:
//!
//! * `n >= 0`: the event id, `n` UTF-8 bytes;
//! * `-1` ([`NO_ID`]): no id (the overflow policy dropped the event, or the user opted out);
//! * `n <= -2`: a `MeterlineError` of `-n - 2` bytes in uniffi's own serialization (Kotlin
//!   reads it with the generated converter); when it is larger than the buffer it is kept
//!   for [`meterline_track_error`], which the caller calls with a buffer large enough;
//! * [`MALFORMED`]: the packed arguments could not be read (a bug of the caller);
//! * [`PANICKED`]: the core panicked (uniffi reports this as `InternalException`).
//!
//! The only `unsafe` of the crate is here: reading the caller's buffer and borrowing the
//! handle, each under the contract stated at the function.
#![allow(unsafe_code)]

use std::{cell::RefCell, panic::AssertUnwindSafe};

use crate::{client::Client, error::MeterlineError};

/// No id: the event was dropped by the overflow policy, or the user opted out.
pub const NO_ID: i32 = -1;
/// The packed arguments could not be read.
pub const MALFORMED: i32 = i32::MIN;
/// The core panicked.
pub const PANICKED: i32 = i32::MIN + 1;

thread_local! {
    /// A serialized error larger than the caller's buffer, until [`meterline_track_error`].
    static PENDING_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `client.track(type, subject, data, id, time)` with the arguments packed in `buf[..len]`;
/// the answer is written to `buf[..cap]` (see the module's documentation).
///
/// # Safety
/// `client` is a live uniffi handle of a [`Client`] (the Kotlin object keeps it alive for
/// the call), and `buf` points to `cap >= len >= 0` bytes, writable, used by nothing else
/// during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn meterline_track_packed(client: u64, buf: *mut u8, len: i32, cap: i32) -> i32 {
    // SAFETY: the same contract, passed on.
    unsafe { meterline_track_packed_repeat(client, buf, len, cap, 1) }
}

/// A bench floor: [`meterline_track_packed`] `times` times over from Rust, in one crossing
/// (the core's own `track()` with the lane's unpacking, without the JVM); answers the last.
///
/// # Safety
/// As for [`meterline_track_packed`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn meterline_track_packed_repeat(
    client: u64,
    buf: *mut u8,
    len: i32,
    cap: i32,
    times: i32,
) -> i32 {
    let (Ok(len), Ok(cap)) = (usize::try_from(len), usize::try_from(cap)) else {
        return MALFORMED;
    };
    if buf.is_null() || client == 0 || len > cap || times < 1 {
        return MALFORMED;
    }
    // SAFETY: uniffi's handle of an object is `Arc::into_raw` of it (`Handle::from_arc`), and
    // the caller keeps it alive for the call; `buf[..cap]` is the caller's, as stated above.
    let client = unsafe { &*(client as usize as *const Client) };
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see above; this shared view ends before the answer is written.
        let packed = unsafe { std::slice::from_raw_parts(buf.cast_const(), len) };
        let mut last = None;
        for _ in 0..times {
            last = track(client, packed);
        }
        last
    }));
    // SAFETY: see above; nothing borrows `buf` any more.
    let out = unsafe { std::slice::from_raw_parts_mut(buf, cap) };
    match outcome {
        Err(_) => PANICKED,
        Ok(None) => MALFORMED,
        Ok(Some(Ok(None))) => NO_ID,
        Ok(Some(Ok(Some(id)))) => match (out.get_mut(..id.len()), i32::try_from(id.len())) {
            (Some(room), Ok(n)) => {
                room.copy_from_slice(id.as_bytes());
                n
            }
            _ => MALFORMED, // an id is at most as long as the arguments that carried it
        },
        Ok(Some(Err(err))) => answer_error(err, out),
    }
}

/// `track()` with the packed arguments (`None`: they could not be read).
fn track(client: &Client, packed: &[u8]) -> Option<Result<Option<String>, MeterlineError>> {
    let [Some(event_type), Some(subject), Some(data), id, time] = unpack(packed)? else {
        return None;
    };
    Some(client.track_text(
        event_type,
        subject,
        data,
        id.map(str::to_owned),
        time.map(str::to_owned),
    ))
}

/// Copies the error [`meterline_track_packed`] kept (it was larger than that call's buffer)
/// into `buf[..cap]` and returns its length, or [`MALFORMED`] when it does not fit either.
///
/// # Safety
/// `buf` points to `cap >= 0` writable bytes used by nothing else during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn meterline_track_error(buf: *mut u8, cap: i32) -> i32 {
    let Ok(cap) = usize::try_from(cap) else {
        return MALFORMED;
    };
    if buf.is_null() {
        return MALFORMED;
    }
    // SAFETY: `buf[..cap]` is the caller's, as stated above.
    let out = unsafe { std::slice::from_raw_parts_mut(buf, cap) };
    PENDING_ERROR.with_borrow_mut(
        |pending| match (out.get_mut(..pending.len()), i32::try_from(pending.len())) {
            (Some(room), Ok(n)) => {
                room.copy_from_slice(pending);
                *pending = Vec::new();
                n
            }
            _ => MALFORMED,
        },
    )
}

/// A bench floor: reads packed arguments as [`meterline_track_packed`] does and returns
/// their total length in bytes, tracking nothing (the cost of the lane without the core).
///
/// # Safety
/// `buf` points to `len >= 0` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn meterline_packed_floor(buf: *const u8, len: i32) -> i32 {
    let Ok(len) = usize::try_from(len) else {
        return MALFORMED;
    };
    if buf.is_null() {
        return MALFORMED;
    }
    // SAFETY: `buf[..len]` is the caller's, as stated above.
    let packed = unsafe { std::slice::from_raw_parts(buf, len) };
    match unpack(packed) {
        Some(fields) => fields.iter().flatten().map(|s| s.len() as i32).sum(),
        None => MALFORMED,
    }
}

/// Writes `err` into `out` (uniffi's serialization) and returns `-len - 2`; keeps it for
/// [`meterline_track_error`] when it does not fit.
fn answer_error(err: MeterlineError, out: &mut [u8]) -> i32 {
    let mut bytes = Vec::new();
    <MeterlineError as uniffi::Lower<crate::UniFfiTag>>::write(err, &mut bytes);
    let Some(code) = i32::try_from(bytes.len()).ok().and_then(|n| n.checked_add(2)) else {
        return MALFORMED;
    };
    match out.get_mut(..bytes.len()) {
        Some(room) => room.copy_from_slice(&bytes),
        None => PENDING_ERROR.set(bytes),
    }
    -code
}

/// The five packed strings (`None` for a null), or `None` when `packed` is not five
/// length-prefixed UTF-8 strings exactly.
fn unpack(mut packed: &[u8]) -> Option<[Option<&str>; 5]> {
    let mut fields = [None; 5];
    for field in &mut fields {
        let (head, rest) = packed.split_first_chunk::<4>()?;
        let len = i32::from_le_bytes(*head);
        packed = rest;
        if len >= 0 {
            let (text, rest) = packed.split_at_checked(usize::try_from(len).ok()?)?;
            *field = Some(std::str::from_utf8(text).ok()?);
            packed = rest;
        } else if len != -1 {
            return None;
        }
    }
    packed.is_empty().then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(fields: [Option<&str>; 5]) -> Vec<u8> {
        let mut out = Vec::new();
        for field in fields {
            match field {
                Some(s) => {
                    out.extend_from_slice(&(s.len() as i32).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
                None => out.extend_from_slice(&(-1i32).to_le_bytes()),
            }
        }
        out
    }

    #[test]
    fn unpacks_five_strings_and_nulls() {
        let packed = pack([Some("api.call"), Some("c-42"), Some("{}"), None, Some("é")]);
        assert_eq!(
            unpack(&packed),
            Some([Some("api.call"), Some("c-42"), Some("{}"), None, Some("é")])
        );
    }

    #[test]
    fn refuses_short_long_and_invalid_packings() {
        let packed = pack([Some("a"), Some("b"), Some("{}"), None, None]);
        assert_eq!(unpack(&packed[..packed.len() - 1]), None, "truncated");
        let mut longer = packed.clone();
        longer.push(0);
        assert_eq!(unpack(&longer), None, "trailing bytes");
        let mut bad_len = packed.clone();
        bad_len[..4].copy_from_slice(&(-2i32).to_le_bytes());
        assert_eq!(unpack(&bad_len), None, "negative length other than -1");
        let invalid = pack([Some("a"), Some("b"), Some("{}"), None, None]);
        let mut invalid = invalid;
        invalid[4] = 0xff;
        assert_eq!(unpack(&invalid), None, "not UTF-8");
    }

    #[test]
    fn an_error_larger_than_the_buffer_is_kept_until_taken() {
        let err = MeterlineError::ValidationError {
            code: "invalid_event".into(),
            detail: "é".repeat(3000),
            path: Some("/data/x".into()),
            option: None,
            status: None,
            event_id: None,
        };
        let mut expected = Vec::new();
        <MeterlineError as uniffi::Lower<crate::UniFfiTag>>::write(err.clone(), &mut expected);
        let mut small = [0u8; 64];
        assert_eq!(answer_error(err.clone(), &mut small), -(expected.len() as i32) - 2);
        assert_eq!(small, [0u8; 64], "nothing written where it does not fit");
        let mut large = vec![0u8; expected.len()];
        let cap = large.len() as i32;
        let mut take = |cap: i32| unsafe { meterline_track_error(large.as_mut_ptr(), cap) };
        assert_eq!(take(10), MALFORMED, "still too small");
        assert_eq!(take(cap), expected.len() as i32);
        assert_eq!(take(cap), 0, "taken once");
        // The second take wrote nothing (0 bytes): `large` holds the first one's copy.
        assert_eq!(large, expected);
        let mut room = vec![0u8; expected.len() + 1];
        assert_eq!(answer_error(err, &mut room), -(expected.len() as i32) - 2);
        assert_eq!(room[..expected.len()], expected[..], "written in place where it fits");
    }

    #[test]
    fn the_floor_reads_what_track_reads() {
        let packed = pack([Some("api.call"), Some("c-42"), Some("{}"), None, None]);
        let floor = |len: usize| unsafe { meterline_packed_floor(packed.as_ptr(), len as i32) };
        assert_eq!(floor(packed.len()), 14);
        assert_eq!(floor(3), MALFORMED);
    }
}
