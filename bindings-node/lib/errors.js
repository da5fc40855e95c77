'use strict';
// The error classes: the core's one list (`ErrorClass` in core/src/error_class.rs: name,
// parent, default code), so Node raises exactly the classes Python and the browser do, with
// the same codes. The native layer throws an error report naming the class (src/error.rs),
// and `fromReport` builds it.

const native = require('../native.js');

// meterline-web's errors.js is built from what stands between these markers
// (scripts/build-browser.sh), so both packages define the classes once. An ES module's
// exports exist before its WebAssembly is loaded, so the classes are written out here and
// `checkAgainstCore()` (run when the core is loaded: below, and by meterline-web's `init()`)
// fails loudly on any drift from the core's list.
// -- shared with meterline-web: begin
/** Every class by name, in the core's order. */
const ERROR_CLASSES = {};

/**
 * Records `Class` as `name`, with the `code` its instances get when none is given. The class
 * keeps `name` itself: a bundler's minifier renames classes (Vite's turns `ValidationError`
 * into `n`), and `error.name` and `checkAgainstCore()` must read the same after it.
 */
function errorClass(name, defaultCode, Class) {
  Object.defineProperty(Class, 'name', { value: name });
  Class.defaultCode = defaultCode;
  ERROR_CLASSES[name] = Class;
  return Class;
}

/** Base class of every error meterline throws, rejects with or reports. */
const MeterlineError = errorClass(
  'MeterlineError',
  'meterline_error',
  class extends Error {
    constructor(message, options = {}) {
      super(message, options.cause === undefined ? undefined : { cause: options.cause });
      this.name = new.target.name;
      /** Stable, machine-readable code (the HTTP API's spelling, e.g. `schema_violation`). */
      this.code = options.code ?? new.target.defaultCode;
      if (options.status !== undefined) this.status = options.status;
    }
  },
);

/** An event was refused by `track()` before it was queued (`path` says where). */
const ValidationError = errorClass(
  'ValidationError',
  'invalid_event',
  class extends MeterlineError {
    constructor(message, options = {}) {
      super(message, options);
      /** JSON pointer of the offending value inside the event, e.g. `/data/tokens`. */
      this.path = options.path ?? '';
    }
  },
);

/** The server refused one event of a batch (the rest was stored); reported, never thrown. */
errorClass(
  'RejectedError',
  'invalid_event',
  class extends ValidationError {
    constructor(message, options = {}) {
      super(message, options);
      /** The refused event's id, when the server could read it. */
      if (options.eventId !== undefined) this.eventId = options.eventId;
    }
  },
);

/** A method argument is wrong: wrong type, empty, too long, out of range. */
errorClass(
  'ArgumentError',
  'invalid_argument',
  class extends ValidationError {
    constructor(message, options = {}) {
      super(message, options);
      /** The parameter at fault (`subject`, `feature`, `ttlMs`, `timeoutMs`, `payload` …). */
      this.argument = options.argument;
    }
  },
);

/** An option of `new Client()` is missing, unknown, of the wrong type or out of range. */
errorClass(
  'ConfigError',
  'invalid_config',
  class extends MeterlineError {
    constructor(message, options = {}) {
      super(message, options);
      /** The option at fault, as spelled in JavaScript (`flushAt`, `apiKey` …). */
      this.option = options.option;
    }
  },
);

/** The server refused the API key or the customer token (HTTP 401). */
const AuthError = errorClass('AuthError', 'unauthorized', class extends MeterlineError {});
/** The key lacks the scope for the call (HTTP 403). */
errorClass('ForbiddenError', 'forbidden', class extends AuthError {});
/** A call did not finish in time; what `flush()` did not deliver stays queued. */
errorClass('TimeoutError', 'timeout', class extends MeterlineError {});
/** The queue was full and the overflow policy refused the event. */
errorClass('QueueFullError', 'queue_full', class extends MeterlineError {});

/** The client has been shut down. */
errorClass(
  'ClosedError',
  'client_closed',
  class extends MeterlineError {
    constructor(message = 'the client has been shut down', options = {}) {
      super(message, options);
    }
  },
);

/** The server could not be reached (in a page, a CORS refusal looks the same). */
errorClass('NetworkError', 'network_error', class extends MeterlineError {});
/** The server answered with an error status no class above covers, with `status`. */
errorClass('ServerError', 'server_error', class extends MeterlineError {});
/** A body could not be encoded or decoded, or a schema is not valid JSON Schema. */
errorClass('CodecError', 'codec_error', class extends MeterlineError {});
/** The realtime stream reported a problem. */
errorClass('StreamError', 'stream_error', class extends MeterlineError {});
/** The disk spool could not store an event (never in the browser, which has none). */
errorClass('SpoolError', 'spool_error', class extends MeterlineError {});

/** Throws unless the classes above are the core's list (`[{ name, parent, defaultCode }]`). */
function checkAgainstCore(coreList) {
  const problems = [];
  for (const { name, parent, defaultCode } of coreList) {
    const Class = ERROR_CLASSES[name];
    if (Class === undefined) {
      problems.push(`missing class ${name}`);
      continue;
    }
    const up = Object.getPrototypeOf(Class.prototype).constructor;
    if ((parent ?? 'Error') !== up.name) problems.push(`${name} extends ${up.name}, the core says ${parent}`);
    if (Class.defaultCode !== defaultCode) problems.push(`${name}.defaultCode ${Class.defaultCode} ≠ ${defaultCode}`);
  }
  if (Object.keys(ERROR_CLASSES).length !== coreList.length) problems.push('the number of classes differs');
  if (problems.length) throw new Error(`meterline: error classes differ from the core: ${problems.join('; ')}`);
}

/** Builds the class an error report of the native layer names. */
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

// -- shared with meterline-web: end

checkAgainstCore(JSON.parse(native.errorClasses()));

module.exports = { ERROR_CLASSES, fromReport, toError };
