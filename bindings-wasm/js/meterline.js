// meterline-web: usage metering and entitlements for the browser, the Rust core as
// WebAssembly. `await init()` once (it loads the .wasm), then `new Client({...})`.
import { ERROR_CLASSES, checkAgainstCore } from './errors.js';
import { setLimits } from './json.js';
import { loadNative } from './native.js';

export { Client } from './client.js';
export const {
  ArgumentError,
  AuthError,
  ClosedError,
  CodecError,
  ConfigError,
  ForbiddenError,
  MeterlineError,
  NetworkError,
  QueueFullError,
  RejectedError,
  ServerError,
  SpoolError,
  StreamError,
  TimeoutError,
  ValidationError,
} = ERROR_CLASSES;

let ready;

/**
 * Loads the WebAssembly module (once; later calls return the same promise). `input` is
 * what wasm-bindgen's loader takes: a URL, a `Response`, bytes or a compiled module; by
 * default the `.wasm` file beside this module.
 */
export default function init(input) {
  ready ??= loadNative(input).then((native) => {
    checkAgainstCore(JSON.parse(native.errorClasses()));
    setLimits(JSON.parse(native.limits()));
  });
  return ready;
}

/** The core's option table (names, types, defaults, ranges, docs); after `init()`. */
export { optionTable } from './native.js';
