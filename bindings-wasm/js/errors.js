// The error classes: the core's one list (`ErrorClass` in core/src/error_class.rs: name,
// parent, default code), so the browser throws exactly the classes Node and Python do, with
// the same codes. An ES module's exports exist before the WebAssembly is loaded, so the list
// is written out here and `checkAgainstCore()` (run by `init()`) fails loudly on any drift.

/** Base class of every error meterline throws, rejects with or reports. */
export class MeterlineError extends Error {
  /** The `code` an instance gets when none is given. */
  static defaultCode = 'meterline_error';

  constructor(message, options = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    /** Stable, machine-readable code (the HTTP API's spelling, e.g. `schema_violation`). */
    this.code = options.code ?? new.target.defaultCode;
    if (options.status !== undefined) this.status = options.status;
  }
}

/** An event was refused by `track()` before it was queued (`path` says where). */
export class ValidationError extends MeterlineError {
  static defaultCode = 'invalid_event';
  constructor(message, options = {}) {
    super(message, options);
    /** JSON pointer of the offending value inside the event, e.g. `/data/tokens`. */
    this.path = options.path ?? '';
  }
}

/** The server refused one event of a batch (the rest was stored); reported to `onError`. */
export class RejectedError extends ValidationError {
  static defaultCode = 'invalid_event';
  constructor(message, options = {}) {
    super(message, options);
    /** The refused event's id, when the server could read it. */
    if (options.eventId !== undefined) this.eventId = options.eventId;
  }
}

/** A method argument is wrong: wrong type, empty, too long, out of range. */
export class ArgumentError extends ValidationError {
  static defaultCode = 'invalid_argument';
  constructor(message, options = {}) {
    super(message, options);
    /** The parameter at fault (`subject`, `feature`, `timeoutMs` …). */
    this.argument = options.argument;
  }
}

/** An option of `new Client()` is missing, unknown, of the wrong type or out of range. */
export class ConfigError extends MeterlineError {
  static defaultCode = 'invalid_config';
  constructor(message, options = {}) {
    super(message, options);
    /** The option at fault, as spelled in JavaScript (`flushAt`, `apiKey` …). */
    this.option = options.option;
  }
}

/** The server refused the API key or the customer token (HTTP 401). */
export class AuthError extends MeterlineError {
  static defaultCode = 'unauthorized';
}
/** The key lacks the scope for the call (HTTP 403). */
export class ForbiddenError extends AuthError {
  static defaultCode = 'forbidden';
}
/** A call did not finish in time; what `flush()` did not deliver stays queued. */
export class TimeoutError extends MeterlineError {
  static defaultCode = 'timeout';
}
/** The queue was full and the overflow policy refused the event. */
export class QueueFullError extends MeterlineError {
  static defaultCode = 'queue_full';
}
/** The client has been shut down. */
export class ClosedError extends MeterlineError {
  static defaultCode = 'client_closed';
  constructor(message = 'the client has been shut down', options = {}) {
    super(message, options);
  }
}
/** The server could not be reached (a CORS refusal looks the same to a page). */
export class NetworkError extends MeterlineError {
  static defaultCode = 'network_error';
}
/** The server answered with an error status no class above covers, with `status`. */
export class ServerError extends MeterlineError {
  static defaultCode = 'server_error';
}
/** A body could not be encoded or decoded, or a schema is not valid JSON Schema. */
export class CodecError extends MeterlineError {
  static defaultCode = 'codec_error';
}
/** The realtime stream reported a problem. */
export class StreamError extends MeterlineError {
  static defaultCode = 'stream_error';
}
/** The disk spool could not store an event (never in the browser, which has none). */
export class SpoolError extends MeterlineError {
  static defaultCode = 'spool_error';
}

/** Every class by name. */
export const ERROR_CLASSES = {
  MeterlineError,
  ValidationError,
  RejectedError,
  ArgumentError,
  ConfigError,
  AuthError,
  ForbiddenError,
  TimeoutError,
  QueueFullError,
  ClosedError,
  NetworkError,
  ServerError,
  CodecError,
  StreamError,
  SpoolError,
};

// A bundler's minifier renames classes (Vite's turns `ValidationError` into `n`): each class
// keeps its own name, so `error.name` and the check below read the same after minification.
for (const [name, Class] of Object.entries(ERROR_CLASSES)) Object.defineProperty(Class, 'name', { value: name });

/** Throws unless the classes above are the core's list (`errorClasses()` of the wasm). */
export function checkAgainstCore(coreList) {
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
  if (problems.length) throw new Error(`meterline-web: error classes differ from the core: ${problems.join('; ')}`);
}

/** Builds the class an error report of the wasm layer names. */
export function fromReport(report) {
  const Class = ERROR_CLASSES[report.kind] ?? MeterlineError;
  return new Class(report.message, report);
}

/** What the wasm layer threw or rejected with, as a `MeterlineError`. */
export function toError(thrown) {
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
