// The wasm-bindgen module built with `--target nodejs` (CommonJS, loaded synchronously),
// for the pure tests under Node: the same package files around it.
import { createRequire } from 'node:module';

const wasm = createRequire(import.meta.url)('./wasm/meterline_wasm.js');

export const native = {};

export async function loadNative() {
  Object.assign(native, wasm);
  return native;
}

export function optionTable() {
  return JSON.parse(wasm.optionTable());
}
