// The `Client` class over the core's wasm client. Arguments are converted here (JavaScript
// types, what JSON cannot carry); every rule and decision is the Rust core's. The calls both
// packages make alike (`withNativeCalls()`, the argument checks) are the Node package's
// (bindings-node/lib/client.js, between its "shared with meterline-web" markers), put in
// place of the @shared line by scripts/build-browser.sh.

import { ERROR_CLASSES, fromReport, toError } from './errors.js';
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

const { ArgumentError, ClosedError, ConfigError } = ERROR_CLASSES;

// @shared from bindings-node/lib/client.js

/** The id buffer of the WebAssembly memory (a new view after the memory grew). */
let idBytes;

/**
 * The id of the event `track()` just queued, from the answer of the native call: its length
 * in ASCII bytes in the id buffer (read here: a string returned by the WebAssembly would cost
 * a `TextDecoder` call), or 2^32 − 1 when `takeId()` has it.
 */
function eventId(length) {
  if (length === 0xffffffff) return native.takeId();
  if (idBytes === undefined || idBytes.byteLength === 0) {
    idBytes = new Uint8Array(native.wasmMemory().buffer, native.idBuffer(), 64);
  }
  const b = idBytes;
  if (length !== 36) return String.fromCharCode.apply(null, b.subarray(0, length));
  // A generated id (a UUID): one call with its 36 characters.
  // prettier-ignore
  return String.fromCharCode(
    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15], b[16],
    b[17], b[18], b[19], b[20], b[21], b[22], b[23], b[24], b[25], b[26], b[27], b[28], b[29], b[30], b[31], b[32],
    b[33], b[34], b[35],
  );
}

/**
 * Sends usage events to a meterline server from a page, with a publishable key and a
 * customer token. `track()` validates at once and queues; batches leave with `fetch`, gzip,
 * and retries decided by the core.
 */
export class Client extends withNativeCalls(Object) {
  #native;

  constructor(options) {
    super();
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
      attachNative(this, this.#native);
    } catch (e) {
      throw toError(e);
    }
    this.#native.setStreamCallbacks(
      onUsageThreshold === undefined ? undefined : (json) => onUsageThreshold(JSON.parse(json)),
      onConnectionChange,
    );
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
    let answer;
    try {
      answer = plain
        ? this.#native.track(type, subject, json)
        : this.#native.track(type, subject, json, options.id ?? undefined, timeText(options.time) ?? undefined);
    } catch (e) {
      throw toError(e);
    }
    return answer === 0 ? null : eventId(answer);
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

  /** Whether the user opted out (in this page, or as recorded in `localStorage`). */
  get optedOut() {
    return this.#native.optedOut();
  }

  /** Whether the client keeps no timer and has no request out (an idle page costs nothing). */
  idle() {
    return this.#native.idle();
  }
}
