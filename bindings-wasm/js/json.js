// JavaScript values → JSON text for the wasm calls: `track()`'s `data`, `type`, `subject`,
// `{ id, time }`, and JSON-object arguments and options. Only what a JavaScript value can be
// and JSON cannot carry is refused here (with the JSON pointer); the rules of an event are the
// core's.
//
// This file is the module's head and exports; the checks themselves are the Node package's
// (bindings-node/lib/json.js, between its "rules shared with meterline-web" markers), put in
// place of the @rules line by scripts/build-browser.sh, so both packages run one copy.

import { ERROR_CLASSES } from './errors.js';

const { ArgumentError, ValidationError } = ERROR_CLASSES;

/** The core's nesting limit of `data` (`data` itself is one level). */
let MAX_DEPTH = 126;

/** Takes the core's limits once the WebAssembly is loaded. */
export function setLimits(limits) {
  MAX_DEPTH = limits.maxDataDepth;
}

// @rules from bindings-node/lib/json.js

export { checkAttribute, checkData, checkJsonObject, checkTrackOptions, describe, encodeData, timeText };
