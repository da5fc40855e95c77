'use strict';
// JavaScript values → JSON text for the native calls: `track()`'s `data`, `type`, `subject`,
// `{ id, time }`, and JSON-object arguments and options. Only what a JavaScript value can be
// and JSON cannot carry is refused here (with the JSON pointer); the rules of an event are the
// core's.

const { ERROR_CLASSES } = require('./errors.js');
const native = require('../native.js');

const { ArgumentError, ValidationError } = ERROR_CLASSES;

/** The core's nesting limit of `data` (`data` itself is one level). */
const MAX_DEPTH = native.limits().maxDataDepth;

// meterline-web's json.js is built from the rules between these markers (scripts/build-browser.sh):
// they use nothing Node-only; MAX_DEPTH and the error classes come from each file's head.
// -- rules shared with meterline-web: begin
/** `typeof`, in words, for messages. */
function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'undefined':
      return 'undefined';
    case 'object':
      return value instanceof Map ? 'a Map' : value instanceof Set ? 'a Set' : 'an object';
    case 'bigint':
      return 'a BigInt';
    case 'number':
      return Number.isNaN(value) ? 'NaN' : Number.isFinite(value) ? 'a number' : String(value);
    default:
      return `a ${typeof value}`;
  }
}

function pointer(keys) {
  let out = '';
  for (const key of keys) out += '/' + String(key).replaceAll('~', '~0').replaceAll('/', '~1');
  return out;
}

/** A refused event, worded like the core's refusals: `<code> at <path>: <detail>`. */
function invalid(path, detail, code = 'invalid_event') {
  const where = path.length > 120 ? `${path.slice(0, 120)}…` : path;
  return new ValidationError(where ? `${code} at ${where}: ${detail}` : `${code}: ${detail}`, { code, path });
}

function notJson(keys, what) {
  return invalid(pointer(keys), `${what}, which JSON cannot represent`);
}

function illFormed(keys) {
  return invalid(pointer(keys), 'a string with a lone UTF-16 surrogate is not valid Unicode');
}

/**
 * Refuses what JSON.stringify would silently change or lose: functions and symbols (dropped,
 * or null in arrays), NaN and ±Infinity (null), BigInt and cycles (a TypeError), `undefined`
 * in arrays (null), Maps and Sets (`{}`), lone surrogates (not valid Unicode). `undefined`
 * object properties are left out, as JSON.stringify does; objects with `toJSON` (Date …) are
 * serialized by it.
 */
function checkValue(value, keys, ancestors) {
  switch (typeof value) {
    case 'string':
      if (!value.isWellFormed()) throw illFormed(keys);
      return;
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw notJson(keys, `${value}`);
      return;
    case 'object':
      if (value === null || typeof value.toJSON === 'function') return;
      checkObject(value, keys, ancestors);
      return;
    case 'undefined':
      throw notJson(keys, 'undefined in an array');
    default:
      throw notJson(keys, describe(value));
  }
}

function checkObject(value, keys, ancestors) {
  if (ancestors.includes(value)) throw invalid(pointer(keys), 'a circular reference');
  if (ancestors.length >= MAX_DEPTH) throw invalid(pointer(keys), `nested more than ${MAX_DEPTH} levels deep`);
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== Array.prototype && (value instanceof Map || value instanceof Set)) {
    throw invalid(pointer(keys), `${describe(value)}; convert it to a plain object or array`);
  }
  ancestors.push(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      keys.push(i);
      checkValue(value[i], keys, ancestors);
      keys.pop();
    }
  } else {
    for (const key of Object.keys(value)) {
      const item = value[key];
      if (item === undefined) continue;
      keys.push(key);
      if (!key.isWellFormed()) throw illFormed(keys);
      checkValue(item, keys, ancestors);
      keys.pop();
    }
  }
  ancestors.pop();
}

/**
 * True when `data` is a plain object whose values are all strings, finite numbers, booleans,
 * `null` or `undefined` (left out) — the usual event — and every string is valid Unicode:
 * nothing for `checkObject` to refuse. It allocates nothing; anything else (nested values,
 * a value to refuse) returns false and takes the full walk, which finds and names the problem.
 */
function isFlatJson(data) {
  if (Object.getPrototypeOf(data) !== Object.prototype) return false;
  // `for…in` also visits inherited enumerable properties, which JSON.stringify skips: they
  // can only send a valid object down the full walk, never let an invalid one through.
  for (const key in data) {
    const value = data[key];
    switch (typeof value) {
      case 'string':
        if (!value.isWellFormed()) return false;
        break;
      case 'number':
        if (value - value !== 0) return false; // NaN, ±Infinity
        break;
      case 'boolean':
      case 'undefined':
        break;
      default:
        if (value !== null) return false;
    }
    if (!key.isWellFormed()) return false;
  }
  return true;
}

/** `data` must be a plain JSON object; throws a ValidationError naming the JSON pointer. */
function checkData(data) {
  if (data === null || typeof data !== 'object' || Array.isArray(data) || typeof data.toJSON === 'function') {
    throw invalid('/data', `\`data\` must be a JSON object, got ${describe(data)}`);
  }
  if (!isFlatJson(data)) checkObject(data, ['data'], []);
}

function checkAttribute(name, value) {
  if (typeof value !== 'string') throw invalid(`/${name}`, `\`${name}\` must be a string, got ${describe(value)}`);
  if (!value.isWellFormed()) throw illFormed([name]);
}

const TRACK_OPTIONS = new Set(['id', 'time']);

/** Checks `{ id, time }` (either may be absent). */
function checkTrackOptions(options) {
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new ArgumentError(`\`options\` must be an object like { id, time }, got ${describe(options)}`, {
      argument: 'options',
    });
  }
  for (const key of Object.keys(options)) {
    if (!TRACK_OPTIONS.has(key)) {
      throw new ArgumentError(`unknown track() option \`${key}\`; the options are id and time`, {
        argument: 'options',
      });
    }
  }
  const { id, time } = options;
  if (id !== undefined && id !== null) checkAttribute('id', id);
  if (time instanceof Date) {
    if (Number.isNaN(time.getTime())) throw invalid('/time', '`time` is an invalid Date');
  } else if (typeof time === 'string') {
    if (!time.isWellFormed()) throw illFormed(['time']);
  } else if (time !== undefined && time !== null) {
    throw invalid('/time', `\`time\` must be a Date or an RFC 3339 string, got ${describe(time)}`);
  }
}

/** `data` as JSON text for the native call (type and subject cross as strings of their own). */
function encodeData(data) {
  try {
    return JSON.stringify(data);
  } catch (e) {
    // Checked values only fail here by size ("Invalid string length") or a toJSON that threw.
    if (e instanceof RangeError)
      throw invalid('', `the event is too large to serialize (${e.message})`, 'event_too_large');
    const error = invalid('/data', `\`data\` cannot be serialized: ${e.message}`);
    error.cause = e;
    throw error;
  }
}

/** `time` as the native call takes it: an RFC 3339 string (a Date as `toISOString()` writes it). */
function timeText(time) {
  return time instanceof Date ? time.toISOString() : (time ?? null);
}

/** A JSON object argument or option: checked as `data` is, the failure named as `name`. */
function checkJsonObject(value, name, makeError) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw makeError('', `must be an object, got ${describe(value)}`);
  }
  try {
    checkObject(value, [], []);
  } catch (e) {
    if (!(e instanceof ValidationError)) throw e;
    // "invalid_event at /x: detail" → "detail"
    throw makeError(e.path, e.message.replace(/^[a-z_]+( at [^:]*)?: /, ''));
  }
}

// -- rules shared with meterline-web: end

module.exports = {
  checkAttribute,
  checkData,
  checkJsonObject,
  checkTrackOptions,
  describe,
  encodeData,
  timeText,
};
