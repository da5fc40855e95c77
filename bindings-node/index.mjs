// ESM entry: the same module instance as the CommonJS entry, so `instanceof` and the
// process-exit flush work the same whichever way the package is loaded.
import meterline from './index.js';

export const {
  Client,
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
} = meterline;

export default meterline;
