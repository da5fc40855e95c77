'use strict';
// The error classes, built from the core's one list (`ErrorClass` in core/src/error_class.rs:
// name, parent, default code), so Node raises exactly the classes Python does, with the same
// codes. The classes that carry details of their own are written out here; the native layer
// throws an error report naming the class (src/error.rs), and `fromReport` builds it.

const native = require('../native.js');

/** Base class of every error meterline throws, rejects with or emits. */
class MeterlineError extends Error {
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

/** The classes with details of their own, each given the parent the core names. */
const WITH_DETAILS = {
  /** An event was refused by `track()` before it was queued (`path` says where). */
  ValidationError: (Parent) =>
    class ValidationError extends Parent {
      constructor(message, options = {}) {
        super(message, options);
        /** JSON pointer of the offending value inside the event, e.g. `/data/tokens`. */
        this.path = options.path ?? '';
      }
    },
  /** The server refused one event of a batch (the rest was stored); emitted as `'error'`. */
  RejectedError: (Parent) =>
    class RejectedError extends Parent {
      constructor(message, options = {}) {
        super(message, options);
        /** The refused event's id, when the server could read it. */
        if (options.eventId !== undefined) this.eventId = options.eventId;
      }
    },
  /** A method argument is wrong: wrong type, empty, too long, out of range. */
  ArgumentError: (Parent) =>
    class ArgumentError extends Parent {
      constructor(message, options = {}) {
        super(message, options);
        /** The parameter at fault (`subject`, `feature`, `ttlMs`, `timeoutMs`, `payload` …). */
        this.argument = options.argument;
      }
    },
  /** An option of `new Client()` is missing, unknown, of the wrong type or out of range. */
  ConfigError: (Parent) =>
    class ConfigError extends Parent {
      constructor(message, options = {}) {
        super(message, options);
        /** The option at fault, as spelled in JavaScript (`flushAt`, `apiKey` …). */
        this.option = options.option;
      }
    },
  /** The client has been shut down. */
  ClosedError: (Parent) =>
    class ClosedError extends Parent {
      constructor(message = 'the client has been shut down', options = {}) {
        super(message, options);
      }
    },
};

/** Every class by name, built in the core's order (each parent before its children). */
const ERROR_CLASSES = { MeterlineError };
for (const { name, parent, defaultCode } of JSON.parse(native.errorClasses())) {
  if (parent === undefined || parent === null) continue; // MeterlineError itself
  const Parent = ERROR_CLASSES[parent];
  const Class = WITH_DETAILS[name]?.(Parent) ?? { [name]: class extends Parent {} }[name];
  Class.defaultCode = defaultCode;
  ERROR_CLASSES[name] = Class;
}

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

module.exports = { ERROR_CLASSES, fromReport, toError };
