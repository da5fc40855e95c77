// ESM entry: the same module instance as the CommonJS entry, so `instanceof` and the
// process-exit flush work the same whichever way the package is loaded.
import meterline from './index.js';

export const {
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
} = meterline;

export default meterline;
