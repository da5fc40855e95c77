// The wasm-bindgen module (`--target web`) behind the package; `native` is filled by
// `loadNative()`, which `init()` calls.
import initWasm, * as wasm from './meterline_wasm.js';

export const native = {};

export async function loadNative(input) {
  await initWasm(input === undefined ? undefined : { module_or_path: input });
  Object.assign(native, wasm);
  return native;
}

export function optionTable() {
  return JSON.parse(wasm.optionTable());
}
