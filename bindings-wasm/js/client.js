// The `Client` class over the core's wasm client. Arguments are converted here (JavaScript
// types, what JSON cannot carry); every rule and decision is the Rust core's.

import { ArgumentError, ClosedError, ConfigError, fromReport, toError } from './errors.js';
import {
  checkAttribute,
  checkData,
  checkJsonObject,
  checkTrackOptions,
  describe,
  encodeData,
  timeText,
} from './json.js';
import { native } from './native.js';

function checkNumber(argument, value) {
  if (value !== undefined && typeof value !== 'number') {
    throw new ArgumentError(`\`${argument}\` must be a number of milliseconds, got ${describe(value)}`, {
      argument,
      path: `/${argument}`,
    });
  }
}

function checkName(argument, value) {
  if (typeof value !== 'string') {
    throw new ArgumentError(`\`${argument}\` must be a string, got ${describe(value)}`, {
      argument,
      path: `/${argument}`,
    });
  }
}

/**
 * Sends usage events to a meterline server from a page, with a publishable key and a
 * customer token. `track()` validates at once and queues; batches leave with `fetch`, gzip,
 * and retries decided by the core.
 */
export class Client {
  #native;

  constructor(options) {
    if (native.NativeClient === undefined) {
      throw new ConfigError('call `await init()` (the default export of meterline-web) before `new Client()`', {
        option: 'options',
      });
    }
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new ConfigError(
        `\`options\` must be an object like { apiKey, endpoint, customerToken }, got ${describe(options)}`,
        {
          option: 'options',
        },
      );
    }
    const { onError } = options;
    if (onError !== undefined && typeof onError !== 'function') {
      throw new ConfigError(`\`onError\` must be a function, got ${describe(onError)}`, { option: 'onError' });
    }
    if (options.fallbacks !== undefined && options.fallbacks !== null) {
      checkJsonObject(options.fallbacks, 'fallbacks', (path, detail) => {
        const where = path ? `fallbacks${path.replaceAll('/', '.')}` : 'fallbacks';
        return new ConfigError(`invalid option \`${where}\`: ${detail}`, { option: 'fallbacks', path });
      });
    }
    const { onUsageThreshold, onConnectionChange, tokenProvider, ...coreOptions } = options;
    if (tokenProvider !== undefined && tokenProvider !== null && typeof tokenProvider !== 'function') {
      throw new ConfigError(`invalid option \`tokenProvider\`: must be a function, got ${describe(tokenProvider)}`, {
        option: 'tokenProvider',
      });
    }
    for (const [name, value] of [
      ['onUsageThreshold', onUsageThreshold],
      ['onConnectionChange', onConnectionChange],
    ]) {
      if (value !== undefined && typeof value !== 'function') {
        throw new ConfigError(`\`${name}\` must be a function, got ${describe(value)}`, { option: name });
      }
    }
    const report = onError === undefined ? undefined : (r) => onError(fromReport(r));
    try {
      this.#native =
        typeof tokenProvider === 'function'
          ? native.NativeClient.withTokenProvider(coreOptions, report, tokenProvider)
          : new native.NativeClient(coreOptions, report);
    } catch (e) {
      throw toError(e);
    }
    this.#native.setStreamCallbacks(
      onUsageThreshold === undefined ? undefined : (json) => onUsageThreshold(JSON.parse(json)),
      onConnectionChange,
    );
  }

  /**
   * Acts for `subject` from now on, with its customer `token` (publishable keys). Events
   * tracked before are still delivered under the previous user's token (never in a batch with
   * the next user's); its cached entitlements and stream subscription are dropped. With a
   * `tokenProvider`, later tokens come from it and must be for `subject`. Throws
   * `ArgumentError` for a subject or token of the wrong type, a token that is not a customer
   * token for `subject`; `ConfigError` with a secret key; `ClosedError` after shutdown.
   */
  identify(subject, token) {
    checkName('subject', subject);
    checkName('token', token);
    try {
      this.#native.identify(subject, token);
    } catch (e) {
      throw toError(e);
    }
  }

  /** Drops the identity (sign-out): `track()` throws `ForbiddenError` until `identify()`. */
  reset() {
    try {
      this.#native.reset();
    } catch (e) {
      throw toError(e);
    }
  }

  /**
   * The realtime stream's state (`idle` before any entitlement is cached, `connecting`,
   * `open`, `waiting` to reconnect, `paused` after a refusal, `stopped`) and its reconnect
   * attempts since the last healthy connection.
   */
  streamState() {
    return JSON.parse(this.#native.streamState());
  }

  /**
   * Validates one event and queues it; never waits on the network. Returns the event id, or
   * `null` when the overflow policy dropped it. Throws a `ValidationError` (with `path`) for
   * an invalid event, which is not queued; `QueueFullError` only under `reject`;
   * `ClosedError` after `shutdown()`.
   */
  track(type, subject, data, options) {
    checkAttribute('type', type);
    checkAttribute('subject', subject);
    checkData(data);
    const plain = options === undefined || options === null;
    if (!plain) checkTrackOptions(options);
    const json = encodeData(data);
    if (this.#native === undefined) throw new ClosedError();
    try {
      const id = plain
        ? this.#native.track(type, subject, json)
        : this.#native.track(type, subject, json, options.id ?? undefined, timeText(options.time) ?? undefined);
      return id ?? null;
    } catch (e) {
      throw toError(e);
    }
  }

  /** Resolves when everything tracked so far is delivered (or given up on). */
  async flush(timeoutMs) {
    checkNumber('timeoutMs', timeoutMs);
    try {
      await this.#native.flush(timeoutMs);
    } catch (e) {
      throw toError(e);
    }
  }

  /** Stops accepting events and delivers what is queued within `timeoutMs`. */
  async shutdown(timeoutMs) {
    checkNumber('timeoutMs', timeoutMs);
    try {
      await this.#native.shutdown(timeoutMs);
    } catch (e) {
      throw toError(e);
    }
  }

  /** A snapshot of the counters (enqueued, sent, duplicates, rejected, dropped …). */
  stats() {
    return JSON.parse(this.#native.stats());
  }

  /**
   * Whether `subject` may use `feature`, with the details and where the answer came from
   * (`source`). Never rejects for network or server failures (the fallback answers, with
   * `reason`); rejects with `ArgumentError` for bad arguments, `ClosedError` after shutdown.
   */
  async entitlement(subject, feature) {
    checkName('subject', subject);
    checkName('feature', feature);
    try {
      return JSON.parse(await this.#native.entitlement(subject, feature));
    } catch (e) {
      throw toError(e);
    }
  }

  /** `entitlement()` without waiting: the cached answer, or the fallback while one fetch fills the cache. */
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
   * Caches an entitlement answer obtained elsewhere (bootstrapped into the page by the
   * backend): the body of `GET /v1/customers/{subject}/entitlements`, i.e.
   * `{ subject, version, ttl_ms, entitlements }`. An answer older than the cached one is
   * ignored; the subject then gets stream updates like any cached one. Throws
   * `ArgumentError` (`payload`) when it is not such an answer, `ClosedError` after shutdown.
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

  /**
   * The user withdrew consent: `track()` keeps nothing and sends nothing (returns `null`,
   * counted in `stats().optedOut`), and events queued but not sent are discarded. Recorded in
   * `localStorage` for this API key, so it holds after a reload. Throws `SpoolError` when
   * `localStorage` refuses the entry (the choice applies to this page all the same).
   */
  optOut() {
    try {
      this.#native.optOut();
    } catch (e) {
      throw toError(e);
    }
  }

  /** The user consents again: `track()` queues and sends events from now on. */
  optIn() {
    try {
      this.#native.optIn();
    } catch (e) {
      throw toError(e);
    }
  }

  /** Whether the user opted out (in this page, or as recorded in `localStorage`). */
  get optedOut() {
    return this.#native.optedOut();
  }

  /** Whether the client keeps no timer and has no request out (an idle page costs nothing). */
  idle() {
    return this.#native.idle();
  }
}
