//! `Client.track()`'s native half: the hot path of the package.
//!
//! [`NativeClient::tracker`](crate::client::NativeClient::tracker) hands JavaScript a function
//! bound to one core client: `(type, subject, data, id?, time?) => id | null` (`null`: the
//! overflow policy dropped the event), where `data` is
//! `JSON.stringify(data)` of a value the JS layer has already checked. Three things make it
//! cheaper than a `#[napi]` method, each measured with callgrind (bench/RESULTS.md, Node):
//! - it is a function created with `napi_create_function` whose data pointer is the client,
//!   so a call skips napi-rs's per-call borrow bookkeeping and the type check of a handle
//!   argument — nothing JavaScript passes can name another object;
//! - the strings are copied into one reused thread-local buffer with a single
//!   `napi_get_value_string_utf8` each, instead of measuring each string first and allocating
//!   a `String` for it;
//! - `type` and `subject` cross as strings of their own, so `JSON.stringify` only serializes
//!   `data` (wrapping them in an array cost it ≈ 2,000 instructions a call).
//!
//! `data` is parsed once here as exactly one JSON value (`RawValue`): nothing that is not
//! JSON text reaches the core, whoever calls the function.

use std::{cell::RefCell, ops::Range, ptr};

use meterline_core::{Client, ValidationError};
use napi::{
    Either, Env, JsString, JsValue, Result,
    bindgen_prelude::{Function, Latin1String, Unknown},
    check_status, sys,
};
use serde_json::value::RawValue;

use crate::{client::release, error::IntoNapiErr};

/// The function [`tracker`] returns: the id comes back as a Latin-1 string when it is ASCII
/// (a generated UUID always is), which skips V8's UTF-8 decoding; `null` when the overflow
/// policy dropped the event.
pub type Tracker<'env> = Function<'env, Unknown<'env>, Option<Either<Latin1String, String>>>;

/// The scratch buffer starts this large and is cut back to it after a larger event.
const SCRATCH_BYTES: usize = 16 * 1024;

thread_local! {
    /// Where a call's strings are copied: one per JavaScript thread (main or worker).
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(SCRATCH_BYTES));
}

/// Creates the tracking function of `client` (see the module docs).
pub fn tracker(env: &Env, client: Client) -> Result<Tracker<'_>> {
    let handle = Handle(Some(client));
    env.create_function_from_closure("track", move |ctx| {
        let client = handle
            .0
            .as_ref()
            .ok_or_else(|| meterline_core::Error::Closed.into_napi_err(ctx.env))?;
        let env = ctx.env.raw();
        let args = [
            ctx.get::<JsString>(0)?.raw(),
            ctx.get::<JsString>(1)?.raw(),
            ctx.get::<JsString>(2)?.raw(),
        ];
        let id = optional_string(&ctx, 3)?;
        let time = optional_string(&ctx, 4)?;
        let result = SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                let result = track(env, client, args, id, time, &mut scratch);
                if scratch.capacity() > 4 * SCRATCH_BYTES {
                    *scratch = Vec::with_capacity(SCRATCH_BYTES);
                }
                result
            }
            // Only if a call ever re-entered another one on this thread.
            Err(_) => track(env, client, args, id, time, &mut Vec::new()),
        });
        let id = result.map_err(|e| e.into_napi_err(ctx.env))?;
        Ok(id.map(|id| {
            if id.is_ascii() {
                Either::A(Latin1String::from(id))
            } else {
                Either::B(id)
            }
        }))
    })
}

/// The core client a tracking function holds. Released off the JavaScript thread when the
/// function is garbage-collected (the last handle's drop flushes the queue).
struct Handle(Option<Client>);

impl Drop for Handle {
    fn drop(&mut self) {
        release(self.0.take());
    }
}

/// An argument that is not what the JS layer sends, as a validation error naming it.
fn invalid(path: impl Into<String>, message: impl Into<String>) -> meterline_core::Error {
    ValidationError::invalid_event(path, message).into()
}

const NAMES: [&str; 3] = ["type", "subject", "data"];

/// Copies the three strings into `scratch`, parses `data` and tracks.
fn track(
    env: sys::napi_env,
    client: &Client,
    args: [sys::napi_value; 3],
    id: Option<String>,
    time: Option<String>,
    scratch: &mut Vec<u8>,
) -> std::result::Result<Option<String>, meterline_core::Error> {
    scratch.clear();
    let mut ranges: [Range<usize>; 3] = [0..0, 0..0, 0..0];
    for (i, value) in args.into_iter().enumerate() {
        ranges[i] = read_utf8(env, value, scratch)
            .map_err(|_| invalid(format!("/{}", NAMES[i]), format!("`{}` must be a string", NAMES[i])))?;
    }
    // One validation for all three (V8 writes valid UTF-8; this keeps `str` sound whatever
    // runtime implements N-API); a range that does not fall on character boundaries fails.
    let all = std::str::from_utf8(scratch).map_err(|e| invalid("", format!("the event is not valid UTF-8 ({e})")))?;
    let text = |i: usize| {
        all.get(ranges[i].clone())
            .ok_or_else(|| invalid(format!("/{}", NAMES[i]), format!("`{}` is not valid UTF-8", NAMES[i])))
    };
    let (event_type, subject, data) = (text(0)?, text(1)?, text(2)?);
    let data: &RawValue =
        serde_json::from_str(data).map_err(|e| invalid("/data", format!("`data` is not one JSON value: {e}")))?;
    client.track_json(event_type, subject, data, id, time)
}

/// Argument `index` as a string, `None` when absent, `null` or `undefined`.
fn optional_string(ctx: &napi::bindgen_prelude::FunctionCallContext<'_>, index: usize) -> Result<Option<String>> {
    if index >= ctx.length() {
        return Ok(None);
    }
    ctx.get::<Option<String>>(index)
}

/// Appends JavaScript string `value` to `buf` as UTF-8 and returns where it landed. One N-API
/// call when the text fits the spare capacity (the usual case), three when it does not.
/// Fails (`napi_string_expected`) when `value` is not a string.
#[allow(unsafe_code)]
fn read_utf8(env: sys::napi_env, value: sys::napi_value, buf: &mut Vec<u8>) -> Result<Range<usize>> {
    let start = buf.len();
    let spare = buf.capacity() - start;
    let mut copied = 0usize;
    if spare > 8 {
        // SAFETY: N-API writes at most `spare` bytes — the text, cut to `spare - 1` bytes,
        // and a NUL — into the vector's spare capacity, starting at `start`.
        check_status!(unsafe {
            sys::napi_get_value_string_utf8(env, value, buf.as_mut_ptr().add(start).cast(), spare, &mut copied)
        })?;
        // V8 stops before a character that does not fit whole, so only a result within
        // 4 bytes of the limit may have been cut short.
        if copied + 4 < spare {
            // SAFETY: N-API initialised `copied` bytes from `start` (`copied < spare`).
            unsafe { buf.set_len(start + copied) };
            return Ok(start..start + copied);
        }
    }
    let mut len = 0usize;
    // SAFETY: a null buffer asks N-API for the length only.
    check_status!(unsafe { sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &mut len) })?;
    buf.reserve(len + 1);
    // SAFETY: `reserve` made room for `len` bytes and the NUL after `start`.
    check_status!(unsafe {
        sys::napi_get_value_string_utf8(env, value, buf.as_mut_ptr().add(start).cast(), len + 1, &mut copied)
    })?;
    // SAFETY: N-API initialised `copied` (≤ `len`) bytes from `start`.
    unsafe { buf.set_len(start + copied) };
    Ok(start..start + copied)
}
