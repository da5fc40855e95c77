'use strict';
// The `Client` class: the idiomatic JavaScript API over the native client. Arguments are
// converted here (JavaScript types); every rule and behaviour is the Rust core's.

const { EventEmitter } = require('node:events');

const { ERROR_CLASSES, fromReport, toError } = require('./errors.js');
const {
  checkAttribute,
  checkData,
  checkJsonObject,
  checkTrackOptions,
  describe,
  encodeData,
  timeText,
} = require('./json.js');
const { forgetAtExit, kExitFlush, watchForExit } = require('./lifecycle.js');
const native = require('../native.js');

const { ArgumentError, ConfigError, MeterlineError } = ERROR_CLASSES;

/** How long the `beforeExit` flush may keep the process alive (the core's grace). */
const EXIT_FLUSH_GRACE_MS = native.limits().exitFlushGraceMs;

// meterline-web's client.js is built from what stands between these markers
// (scripts/build-browser.sh), so both packages' `Client` make these calls one way; the heads
// of both files give them `ArgumentError`, `checkJsonObject`, `describe` and `toError`.
// -- shared with meterline-web: begin
/** A number argument (`timeoutMs`) may be left out; its range is the core's to check. */
function checkNumber(argument, value) {
  if (value !== undefined && typeof value !== 'number') {
    throw new ArgumentError(`\`${argument}\` must be a number of milliseconds, got ${describe(value)}`, {
      argument,
      path: `/${argument}`,
    });
  }
}

/** A string argument; empty and over-long strings are the core's to refuse (it names it). */
function checkString(argument, value) {
  if (typeof value !== 'string') {
    throw new ArgumentError(`\`${argument}\` must be a string, got ${describe(value)}`, {
      argument,
      path: `/${argument}`,
    });
  }
}

/**
 * `subject` / `feature` must be strings that are valid Unicode: a lone UTF-16 surrogate would
 * reach the core as U+FFFD, another name.
 */
function checkName(argument, value) {
  checkString(argument, value);
  if (value.isWellFormed?.() === false) {
    throw new ArgumentError(`\`${argument}\` is not valid Unicode (a lone UTF-16 surrogate)`, {
      argument,
      path: `/${argument}`,
    });
  }
}

/** Each `Client`'s native client, as its constructor gives it to `attachNative()`. */
const nativeClients = new WeakMap();

/** Gives `client` the native client the methods of `withNativeCalls()` call. */
function attachNative(client, nativeClient) {
  nativeClients.set(client, nativeClient);
}

/** Calls `method` of `client`'s native client; what it throws becomes a `MeterlineError`. */
function callNative(client, method, ...args) {
  try {
    return nativeClients.get(client)[method](...args);
  } catch (e) {
    throw toError(e);
  }
}

/**
 * `Base` with the `Client` methods both packages have alike: each checks its arguments'
 * JavaScript types, calls the native client and throws (or rejects with) what that throws
 * as a `MeterlineError`. Node's `Client` extends it over `EventEmitter`, the browser's over
 * `Object`.
 */
function withNativeCalls(Base) {
  return class extends Base {
    /**
     * Acts for `subject` from now on, with its customer `token` (publishable keys). Events
     * tracked before are still delivered under the previous user's token; its cached
     * entitlements and stream subscription are dropped. Throws `ArgumentError` for a subject
     * or token of the wrong type or a token that is not `subject`'s, `ConfigError` with a
     * secret key, `ClosedError` after shutdown.
     */
    identify(subject, token) {
      checkString('subject', subject);
      checkString('token', token);
      callNative(this, 'identify', subject, token);
    }

    /** Drops the identity (sign-out): `track()` throws `ForbiddenError` until `identify()`. */
    reset() {
      callNative(this, 'reset');
    }

    /**
     * The user withdrew consent: `track()` keeps nothing and sends nothing (returns `null`,
     * counted in `stats().optedOut`), and events queued but not sent are discarded. Recorded
     * for the next start (Node: in `spoolDir` when set; the browser: in `localStorage` for
     * this API key, and `SpoolError` when it refuses the entry).
     */
    optOut() {
      callNative(this, 'optOut');
    }

    /** The user consents again: `track()` queues and sends events from now on. */
    optIn() {
      callNative(this, 'optIn');
    }

    /** Resolves when everything tracked so far is delivered (or given up on). */
    async flush(timeoutMs) {
      checkNumber('timeoutMs', timeoutMs);
      try {
        await nativeClients.get(this).flush(timeoutMs);
      } catch (e) {
        throw toError(e);
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
      return JSON.parse(callNative(this, 'cachedEntitlement', subject, feature));
    }

    /**
     * Caches an entitlement answer obtained elsewhere (bootstrapped into the page by the
     * backend, fetched by another service): the body of
     * `GET /v1/customers/{subject}/entitlements`, i.e. `{ subject, version, ttl_ms,
     * entitlements }`. An answer older than the cached one is ignored; the subject then gets
     * stream updates like any cached one. Throws `ArgumentError` (`payload`) when it is not
     * such an answer, `ClosedError` after shutdown.
     */
    primeEntitlements(payload) {
      checkJsonObject(
        payload,
        'payload',
        (path, detail) =>
          new ArgumentError(`\`payload\`${path ? ` at ${path}` : ''}: ${detail}`, { argument: 'payload', path }),
      );
      try {
        nativeClients.get(this).primeEntitlements(JSON.stringify(payload));
      } catch (e) {
        const error = toError(e);
        // The core names the field inside the answer (`/subject`); the argument is `payload`.
        if (error instanceof ArgumentError) error.argument = 'payload';
        throw error;
      }
    }
  };
}

// -- shared with meterline-web: end

/** Entitlement answers are promises even on a cache hit; errors become `MeterlineError`s. */
function rejectWith(e) {
  throw toError(e);
}

/**
 * Sends usage events to a meterline server. `track()` validates at once and queues; a
 * background thread batches, compresses and delivers with retries.
 */
class Client extends withNativeCalls(EventEmitter) {
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
    let provider = null;
    if (options.tokenProvider !== undefined && options.tokenProvider !== null) {
      const tokenProvider = options.tokenProvider;
      if (typeof tokenProvider !== 'function') {
        throw new ConfigError(`invalid option \`tokenProvider\`: must be a function, got ${describe(tokenProvider)}`, {
          option: 'tokenProvider',
        });
      }
      // Always a promise of a string: a throw, a rejection or a non-string rejects it, and
      // the core reports that to the 'error' event (never thrown into track()).
      provider = () =>
        Promise.resolve()
          .then(() => tokenProvider())
          .then(
            (token) => {
              if (typeof token !== 'string') throw new TypeError(`returned ${describe(token)}, not a string`);
              return token;
            },
            (e) => {
              throw new Error(`threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
            },
          );
    }
    const { tokenProvider: _provider, ...coreOptions } = options;
    options = coreOptions;
    const ref = new WeakRef(this);
    const dispatch = (report) => ref.deref()?.#report(fromReport(report));
    const onUsageThreshold = (event) => ref.deref()?.#dispatch('usageThreshold', event);
    const onConnection = (change) => ref.deref()?.#dispatch('connection', change);
    try {
      this.#native = new native.NativeClient(options, dispatch, onUsageThreshold, onConnection, provider);
      this.#track = this.#native.tracker();
      attachNative(this, this.#native);
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

  /** Whether the user opted out (in this run, or as recorded in `spoolDir`). */
  get optedOut() {
    try {
      return this.#native.optedOut;
    } catch (e) {
      throw toError(e);
    }
  }

  /** Stops accepting events, delivers what is queued and stops the background thread. */
  async shutdown(timeoutMs) {
    checkNumber('timeoutMs', timeoutMs);
    try {
      // Started (the core accepted `timeoutMs`) before the exit flush forgets the client.
      const done = this.#native.shutdown(timeoutMs);
      forgetAtExit(this.#ref);
      await done;
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
   * Mints a customer token for `subject`, valid `ttlMs` (1 s–30 days, rounded up to whole
   * seconds), for a browser or app that uses a publishable key. Offline: no request.
   * Throws `ConfigError` (`apiKey`) unless the client has a secret key, `ArgumentError` for a
   * bad `subject` or `ttlMs`.
   */
  customerToken(subject, ttlMs) {
    checkName('subject', subject);
    if (typeof ttlMs !== 'number') {
      throw new ArgumentError(`\`ttlMs\` must be a number of milliseconds, got ${describe(ttlMs)}`, {
        argument: 'ttlMs',
        path: '/ttlMs',
      });
    }
    try {
      return this.#native.customerToken(subject, ttlMs);
    } catch (e) {
      throw toError(e);
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
      await this.flush(EXIT_FLUSH_GRACE_MS);
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

module.exports = { Client };
