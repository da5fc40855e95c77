//! What the wasm32 runtime takes from its JavaScript host: the clocks, randomness and
//! `fetch`. Only globals every host of the package has (browsers, workers, Node ≥ 20), so
//! the same build runs in a page and under `wasm-bindgen --target nodejs`.

use std::{
    cell::RefCell,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buf: &mut [u8]);
    /// The global `fetch` (window, worker or Node).
    #[wasm_bindgen(js_name = fetch)]
    pub(crate) fn fetch_request(request: &web_sys::Request) -> js_sys::Promise;
    #[wasm_bindgen(js_name = queueMicrotask)]
    pub(crate) fn queue_microtask(f: &js_sys::Function);
}

/// Monotonic milliseconds since the page (or process) started: the outbox's clock.
pub(crate) fn monotonic_ms() -> u64 {
    performance_now().max(0.0) as u64
}

/// The wall clock (`std`'s `SystemTime::now` has no clock on wasm32-unknown-unknown).
pub(crate) fn wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(wall_ms())
}

/// Unix milliseconds.
pub(crate) fn wall_ms() -> u64 {
    js_sys::Date::now().max(0.0) as u64
}

/// A uniform draw in `[0, 1)` for backoff jitter.
pub(crate) fn jitter() -> f64 {
    js_sys::Math::random()
}

thread_local! {
    /// SplitMix64 seeded once from `crypto.getRandomValues`: event ids need uniqueness, not
    /// secrecy, and one host call per id would cost more than the rest of `track()`.
    static RNG: RefCell<Option<u64>> = const { RefCell::new(None) };
}

fn next_random() -> u64 {
    RNG.with_borrow_mut(|state| {
        let s = state.get_or_insert_with(|| {
            let mut seed = [0u8; 8];
            get_random_values(&mut seed);
            u64::from_le_bytes(seed)
        });
        *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// A UUIDv7 (RFC 9562) for `now`: 48 bits of Unix milliseconds, then random bits. Written
/// digit by digit: `format!` costs microseconds per id in a size-optimised wasm build.
pub(crate) fn new_event_id(now: SystemTime) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let ms = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let (a, b) = (next_random(), next_random());
    let hi = (ms << 16) | 0x7000 | (a & 0x0FFF);
    let lo = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    let value = (u128::from(hi) << 64) | u128::from(lo);
    let mut out = [0u8; 36];
    let mut digit = 0;
    for (i, slot) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            *slot = b'-';
            continue;
        }
        *slot = HEX[((value >> (124 - 4 * digit)) & 0xF) as usize];
        digit += 1;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// A thrown or rejected JavaScript value, in words.
pub(crate) fn describe(value: &JsValue) -> String {
    if let Some(err) = value.dyn_ref::<js_sys::Error>() {
        let message = String::from(err.message());
        let cause = js_sys::Reflect::get(err, &"cause".into())
            .ok()
            .filter(|c| !c.is_undefined() && !c.is_null())
            .map(|c| format!(": {}", describe(&c)))
            .unwrap_or_default();
        return format!("{message}{cause}");
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}
