'use strict';
// meterline for Node.js: the idiomatic JavaScript API over the native client (native.js,
// built by napi-rs from src/*.rs). This layer converts JavaScript values to JSON text,
// builds the error classes and bridges events and process lifecycle; every behaviour
// (validation, batching, retries, flushing) is the Rust core's.

const { EventEmitter } = require('node:events');
const native = require('./native.js');

const DEFAULT_TIMEOUT_MS = 10_000;
/** How long the `beforeExit` flush may keep a process alive (the core's drop flush, too). */
const EXIT_FLUSH_TIMEOUT_MS = 5_000;
/** serde_json's nesting limit, minus the array that carries the call. */
const MAX_DEPTH = 126;

// ---------------------------------------------------------------------------------------
// Errors

/** Base class of every error meterline throws, rejects with or emits. */
class MeterlineError extends Error {
  constructor(message, options = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    /** Stable, machine-readable code (the HTTP API's spelling, e.g. `schema_violation`). */
    this.code = options.code ?? 'meterline_error';
    if (options.status !== undefined) this.status = options.status;
  }
}

/** An event was refused: by `track()` before it was queued, or by the server (`eventId`). */
class ValidationError extends MeterlineError {
  constructor(message, options = {}) {
    super(message, { code: 'invalid_event', ...options });
    /** JSON pointer of the offending value inside the event, e.g. `/data/tokens`. */
    this.path = options.path ?? '';
    if (options.eventId !== undefined) this.eventId = options.eventId;
  }
}

/** An option of `new Client()` is unknown, of the wrong type or out of range. */
class ConfigError extends MeterlineError {
  constructor(message, options = {}) {
    super(message, { code: 'invalid_config', ...options });
    /** The option at fault, as spelled in JavaScript (`flushAt`, `apiKey` …). */
    this.option = options.option;
  }
}

/** The server refused the API key (`unauthorized`) or its scope (`forbidden`). */
class AuthError extends MeterlineError {}

/** A call did not finish within its timeout (`timeout`). */
class TimeoutError extends MeterlineError {
  constructor(message, options = {}) {
    super(message, { code: 'timeout', ...options });
  }
}

/** The queue was full and the overflow policy refused the event (`queue_full`). */
class QueueFullError extends MeterlineError {
  constructor(message, options = {}) {
    super(message, { code: 'queue_full', ...options });
  }
}

/** The client has been shut down (`client_closed`). */
class ClosedError extends MeterlineError {
  constructor(message = 'the client has been shut down', options = {}) {
    super(message, { code: 'client_closed', ...options });
  }
}

/** The server could not be reached or the connection broke (`network_error`). */
class NetworkError extends MeterlineError {
  constructor(message, options = {}) {
    super(message, { code: 'network_error', ...options });
  }
}

/** A method was called with a wrong argument: of the wrong type, empty, too long, out of range (`invalid_argument`). */
class ArgumentError extends MeterlineError {
  constructor(message, options = {}) {
    super(message, { code: 'invalid_argument', ...options });
    /** The parameter at fault (`subject`, `feature`, `ttlMs`, `payload` …). */
    this.argument = options.argument;
    /** Where inside the argument, as a JSON pointer, when it is structured (`/features/sso`). */
    if (options.path !== undefined) this.path = options.path;
  }
}

/** The realtime stream reported a problem: an `error` frame or an unexpected close (`code` is the server's). */
class StreamError extends MeterlineError {}

const ERROR_CLASSES = {
  MeterlineError,
  ValidationError,
  ConfigError,
  AuthError,
  TimeoutError,
  QueueFullError,
  ClosedError,
  NetworkError,
  StreamError,
  ArgumentError,
};

/** Builds the class an error report of the native layer names (see src/error.rs). */
function fromReport(report) {
  const Class = ERROR_CLASSES[report.kind] ?? MeterlineError;
  return new Class(report.message, report);
}

/** What the native layer threw or rejected with, as a `MeterlineError`. */
function toError(thrown) {
  if (
    thrown !== null &&
    typeof thrown === 'object' &&
    typeof thrown.kind === 'string' &&
    typeof thrown.code === 'string'
  ) {
    return fromReport(thrown);
  }
  if (thrown instanceof MeterlineError) return thrown;
  return new MeterlineError(`internal error: ${thrown && thrown.message ? thrown.message : String(thrown)}`, {
    code: 'internal_error',
    cause: thrown,
  });
}

// ---------------------------------------------------------------------------------------
// JavaScript values → JSON text

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

function checkTimeout(timeoutMs) {
  if (timeoutMs === undefined) return DEFAULT_TIMEOUT_MS;
  if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0) || !Number.isFinite(timeoutMs)) {
    throw new ArgumentError(`\`timeoutMs\` must be a finite number of milliseconds ≥ 0, got ${describe(timeoutMs)}`, {
      argument: 'timeoutMs',
    });
  }
  return timeoutMs;
}

// ---------------------------------------------------------------------------------------
// Entitlement arguments

/** 30 days: the longest customer token `customerToken()` mints. */
const MAX_TOKEN_TTL_MS = 30 * 24 * 3600 * 1000;

/**
 * `subject` / `feature` must be strings that are valid Unicode; empty and over-long strings
 * are the core's to refuse (it names the argument, too).
 */
function checkName(argument, value) {
  if (typeof value !== 'string') {
    throw new ArgumentError(`\`${argument}\` must be a string, got ${describe(value)}`, {
      argument,
      path: `/${argument}`,
    });
  }
  if (!value.isWellFormed()) {
    throw new ArgumentError(`\`${argument}\` is not valid Unicode (a lone UTF-16 surrogate)`, {
      argument,
      path: `/${argument}`,
    });
  }
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

/** Entitlement answers are promises even on a cache hit; errors become `MeterlineError`s. */
function rejectWith(e) {
  throw toError(e);
}

// ---------------------------------------------------------------------------------------
// Process lifecycle: flush live clients on `beforeExit`

/** Clients not shut down yet. Weak: forgetting a client must not keep it alive. */
const liveClients = new Set();
const forgotten = new FinalizationRegistry((ref) => liveClients.delete(ref));
let exitHookInstalled = false;

function watchForExit(client, ref) {
  liveClients.add(ref);
  forgotten.register(client, ref, ref);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('beforeExit', flushLiveClients);
  }
}

// `beforeExit` fires again after the flush's own async work, so each client flushes only
// when something was tracked since its last exit flush: the process still exits.
function flushLiveClients() {
  const pending = [];
  for (const ref of liveClients) {
    const client = ref.deref();
    if (client === undefined) liveClients.delete(ref);
    else pending.push(client[kExitFlush]());
  }
  return Promise.all(pending);
}

const kExitFlush = Symbol('meterline.exitFlush');

// ---------------------------------------------------------------------------------------
// Client

/**
 * Sends usage events to a meterline server. `track()` validates at once and queues; a
 * background thread batches, compresses and delivers with retries.
 */
class Client extends EventEmitter {
  #native;
  /** `(type, subject, dataJson, id?, time?) => id`, bound to the native client (the hot path). */
  #track;
  #ref;
  #exitFlushedAt = 0;

  constructor(options) {
    super();
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new ConfigError(`\`options\` must be an object like { apiKey, endpoint }, got ${describe(options)}`, {
        option: 'options',
      });
    }
    // The native side holds only a weak path back to this object, so a client the
    // application forgets can still be collected (its queue is then flushed off-thread).
    if (options.fallbacks !== undefined && options.fallbacks !== null) {
      checkJsonObject(options.fallbacks, 'fallbacks', (path, detail) => {
        const where = path ? `fallbacks${path.replaceAll('/', '.')}` : 'fallbacks';
        return new ConfigError(`invalid option \`${where}\`: ${detail}`, { option: 'fallbacks', path });
      });
      // What reaches Rust is plain JSON (`toJSON` applied, `undefined` properties left out).
      options = { ...options, fallbacks: JSON.parse(JSON.stringify(options.fallbacks)) };
    }
    const ref = new WeakRef(this);
    const dispatch = (report) => ref.deref()?.#report(fromReport(report));
    const onUsageThreshold = (event) => ref.deref()?.#dispatch('usageThreshold', event);
    const onConnection = (change) => ref.deref()?.#dispatch('connection', change);
    try {
      this.#native = new native.NativeClient(options, dispatch, onUsageThreshold, onConnection);
      this.#track = this.#native.tracker();
    } catch (e) {
      throw toError(e);
    }
    this.#ref = ref;
    watchForExit(this, ref);
  }

  /**
   * Validates one event and queues it; never waits on the network. Returns the event id, or
   * `null` when the overflow policy dropped it (counted in `stats().dropped`, reported to the
   * `'error'` event). Throws a `ValidationError` (with `path`) for an invalid event, which is
   * not queued; `QueueFullError` only under the `reject` policy; `ClosedError` after
   * `shutdown()`.
   */
  track(type, subject, data, options) {
    checkAttribute('type', type);
    checkAttribute('subject', subject);
    checkData(data);
    const plain = options === undefined || options === null;
    if (!plain) checkTrackOptions(options);
    const json = encodeData(data);
    try {
      return plain
        ? this.#track(type, subject, json)
        : this.#track(type, subject, json, options.id ?? null, timeText(options.time));
    } catch (e) {
      throw toError(e);
    }
  }

  /** Resolves when everything tracked so far is delivered (or given up on). */
  async flush(timeoutMs) {
    const ms = checkTimeout(timeoutMs);
    try {
      await this.#native.flush(ms);
    } catch (e) {
      throw toError(e);
    }
  }

  /** Stops accepting events, delivers what is queued and stops the background thread. */
  async shutdown(timeoutMs) {
    const ms = checkTimeout(timeoutMs);
    liveClients.delete(this.#ref);
    forgotten.unregister(this.#ref);
    try {
      await this.#native.shutdown(ms);
    } catch (e) {
      throw toError(e);
    }
  }

  /** A snapshot of the counters (enqueued, sent, duplicates, rejected, dropped …). */
  stats() {
    return this.#native.stats();
  }

  /**
   * Whether `subject` may use `feature`, with the details (`kind`, `limit`, `usage`,
   * `remaining`, `value` …) and where the answer came from (`source`). A cached answer
   * resolves without leaving the JavaScript thread; a miss waits for one shared fetch, at
   * most `entitlementTimeoutMs`, then resolves the configured fallback (`reason` says why).
   * Never rejects for network or server failures; rejects with `ArgumentError` for a bad
   * `subject`/`feature` and `ClosedError` after `shutdown()`.
   */
  entitlement(subject, feature) {
    try {
      checkName('subject', subject);
      checkName('feature', feature);
      const answer = this.#native.entitlement(subject, feature);
      return typeof answer === 'string' ? Promise.resolve(JSON.parse(answer)) : answer.then(JSON.parse, rejectWith);
    } catch (e) {
      return Promise.reject(toError(e));
    }
  }

  /**
   * `entitlement()` without ever waiting, for synchronous code: the cached answer (`cache`,
   * or `stale` while it revalidates), or on a miss the configured fallback at once (reason
   * `not cached yet: fetching in the background`) while one fetch fills the cache.
   * Throws `ArgumentError` / `ClosedError` like `entitlement()` rejects.
   */
  cachedEntitlement(subject, feature) {
    checkName('subject', subject);
    checkName('feature', feature);
    try {
      return JSON.parse(this.#native.cachedEntitlement(subject, feature));
    } catch (e) {
      throw toError(e);
    }
  }

  /**
   * Mints a customer token for `subject`, valid `ttlMs` (1 s–30 days, rounded up to whole
   * seconds), for a browser or app that uses a publishable key. Offline: no request.
   * Throws `ConfigError` (`apiKey`) unless the client has a secret key, `ArgumentError` for a
   * bad `subject` or `ttlMs`.
   */
  customerToken(subject, ttlMs) {
    checkName('subject', subject);
    if (typeof ttlMs !== 'number' || !(ttlMs > 0) || ttlMs > MAX_TOKEN_TTL_MS) {
      throw new ArgumentError(
        `\`ttlMs\` must be a number of milliseconds > 0 and at most 30 days (${MAX_TOKEN_TTL_MS}), got ${
          typeof ttlMs === 'number' ? ttlMs : describe(ttlMs)
        }`,
        { argument: 'ttlMs', path: '/ttl' },
      );
    }
    try {
      return this.#native.customerToken(subject, ttlMs);
    } catch (e) {
      throw toError(e);
    }
  }

  /**
   * Caches an entitlement answer obtained elsewhere (bootstrapped into the page, fetched by
   * another service): the body of `GET /v1/customers/{subject}/entitlements`, i.e.
   * `{ subject, version, ttl_ms, entitlements }`. An answer older than the cached one is
   * ignored. Throws `ArgumentError` (`payload`) when it is not such an answer.
   */
  primeEntitlements(payload) {
    checkJsonObject(
      payload,
      'payload',
      (path, detail) =>
        new ArgumentError(`\`payload\`${path ? ` at ${path}` : ''}: ${detail}`, { argument: 'payload', path }),
    );
    try {
      this.#native.primeEntitlements(JSON.stringify(payload));
    } catch (e) {
      const error = toError(e);
      // The core names the field inside the answer (`/subject`); the argument is `payload`.
      if (error instanceof ArgumentError) error.argument = 'payload';
      throw error;
    }
  }

  /** `await using client = new Client(…)` shuts the client down at the end of the scope. */
  [Symbol.asyncDispose]() {
    return this.shutdown();
  }

  /** Flushes at `beforeExit` when events were tracked since the last exit flush. */
  async [kExitFlush]() {
    const { enqueued } = this.#native.stats();
    if (enqueued === this.#exitFlushedAt) return;
    this.#exitFlushedAt = enqueued;
    try {
      await this.flush(EXIT_FLUSH_TIMEOUT_MS);
    } catch (e) {
      this.#report(e);
    }
  }

  /**
   * Hands a background error to the `error` listeners. A listener that throws (or rejects)
   * is reported as a process warning and never breaks the client or the other listeners;
   * with no listener the error itself becomes a warning instead of crashing the process.
   */
  #report(error) {
    if (this.listenerCount('error') === 0) {
      process.emitWarning(error);
      return;
    }
    this.#dispatch('error', error);
  }

  /**
   * Calls each listener of `event` with `payload`. A listener that throws or rejects is
   * reported as a process warning (`listener_failed`); the other listeners still run and the
   * client carries on.
   */
  #dispatch(event, payload) {
    for (const listener of this.rawListeners(event)) {
      try {
        const result = Reflect.apply(listener, this, [payload]);
        if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
          result.then(undefined, (thrown) => listenerFailed(event, thrown));
        }
      } catch (thrown) {
        listenerFailed(event, thrown);
      }
    }
  }
}

function listenerFailed(event, thrown) {
  process.emitWarning(
    new MeterlineError(
      `a meterline '${event}' listener threw: ${thrown && thrown.message ? thrown.message : String(thrown)}`,
      {
        code: 'listener_failed',
        cause: thrown,
      },
    ),
  );
}

/**
 * Conformance only (tests/vectors/retry.json): the core's retry decision for one attempt.
 * Not part of the supported API.
 */
const _retryDecision = native._retryDecision;

/**
 * Conformance only (tests/vectors/entitlements.json, stream.json): the core's sans-I/O
 * entitlement cache with an explicit clock. Not part of the supported API.
 */
const _EntitlementCache = native._EntitlementCache;

module.exports = {
  Client,
  MeterlineError,
  ValidationError,
  ConfigError,
  AuthError,
  TimeoutError,
  QueueFullError,
  ClosedError,
  NetworkError,
  ArgumentError,
  StreamError,
  _retryDecision,
  _EntitlementCache,
};
