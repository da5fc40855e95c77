//! The rules for method arguments that every binding used to write itself: how deep `data`
//! may nest, what a `flush()`/`shutdown()` timeout and a customer token's TTL may be, and how
//! long the exit flush may keep a process alive.
//!
//! Each binding converts its host value (Python seconds, JavaScript milliseconds) with the
//! function here; a refusal is an `invalid_argument` [`ValidationError`] naming the argument
//! as the caller spelled it (`/timeout`, `/timeoutMs`, `/ttl`, `/ttlMs`).

use std::time::Duration;

use crate::{customer_token, error::ValidationError};

/// Deepest nesting of objects and arrays accepted inside an event's `data` (`data` itself is
/// one level). serde_json reads at most 128 levels, and a batch puts two around `data` (the
/// array of events and the event), so anything deeper could not be read back by the server.
/// It also turns a cyclic structure into a clear error.
pub const MAX_DATA_DEPTH: usize = 126;

/// How long `flush()` and `shutdown()` wait when the caller gives no timeout. What is still
/// undelivered then stays queued, and the call raises `TimeoutError`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// How long the exit flush (Python's `atexit`, Node's `beforeExit`) may keep a process alive.
pub const EXIT_FLUSH_GRACE: Duration = Duration::from_secs(5);

/// A wait (`flush()`, `shutdown()`) given in seconds; `None` is [`DEFAULT_WAIT`].
///
/// # Errors
/// `invalid_argument` at `/timeout` for NaN, a negative number or one too large to wait for.
pub fn wait_from_secs(secs: Option<f64>) -> Result<Duration, ValidationError> {
    wait(secs.map(|s| (s, s)), "timeout", "seconds")
}

/// A wait given in milliseconds (JavaScript's `timeoutMs`); `None` is [`DEFAULT_WAIT`].
///
/// # Errors
/// `invalid_argument` at `/timeoutMs`, as [`wait_from_secs`].
pub fn wait_from_millis(ms: Option<f64>) -> Result<Duration, ValidationError> {
    wait(ms.map(|m| (m / 1000.0, m)), "timeoutMs", "milliseconds")
}

fn wait(given: Option<(f64, f64)>, name: &str, unit: &str) -> Result<Duration, ValidationError> {
    let Some((secs, as_given)) = given else {
        return Ok(DEFAULT_WAIT);
    };
    Duration::try_from_secs_f64(secs).map_err(|_| {
        ValidationError::invalid_argument(
            format!("/{name}"),
            format!("`{name}` must be a finite number of {unit} ≥ 0, got {as_given}"),
        )
    })
}

/// A customer token's lifetime given in seconds (Python's `ttl`): more than 0, at most
/// [`customer_token::MAX_TTL`] (30 days).
///
/// # Errors
/// `invalid_argument` at `/ttl` otherwise.
pub fn token_ttl_from_secs(secs: f64) -> Result<Duration, ValidationError> {
    token_ttl(secs, secs, "ttl", "seconds")
}

/// A customer token's lifetime given in milliseconds (JavaScript's `ttlMs`).
///
/// # Errors
/// `invalid_argument` at `/ttlMs` unless more than 0 and at most 30 days.
pub fn token_ttl_from_millis(ms: f64) -> Result<Duration, ValidationError> {
    token_ttl(ms / 1000.0, ms, "ttlMs", "milliseconds")
}

fn token_ttl(secs: f64, as_given: f64, name: &str, unit: &str) -> Result<Duration, ValidationError> {
    let max = customer_token::MAX_TTL;
    match Duration::try_from_secs_f64(secs) {
        Ok(ttl) if !ttl.is_zero() && ttl <= max => Ok(ttl),
        _ => {
            let limit = match unit {
                "milliseconds" => max.as_millis(),
                _ => u128::from(max.as_secs()),
            };
            Err(ValidationError::invalid_argument(
                format!("/{name}"),
                format!(
                    "`{name}` must be a number of {unit} more than 0 and at most 30 days ({limit}), got {as_given}"
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_default_to_ten_seconds_and_refuse_nonsense() {
        assert_eq!(wait_from_secs(None).unwrap(), DEFAULT_WAIT);
        assert_eq!(wait_from_millis(Some(250.0)).unwrap(), Duration::from_millis(250));
        assert_eq!(wait_from_secs(Some(0.0)).unwrap(), Duration::ZERO);
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(wait_from_secs(Some(bad)).unwrap_err().path, "/timeout");
            assert_eq!(wait_from_millis(Some(bad)).unwrap_err().path, "/timeoutMs");
        }
    }

    #[test]
    fn token_ttls_are_more_than_zero_and_at_most_thirty_days() {
        let max_ms = 30.0 * 24.0 * 3600.0 * 1000.0;
        assert_eq!(token_ttl_from_millis(max_ms).unwrap(), customer_token::MAX_TTL);
        assert_eq!(token_ttl_from_secs(1.5).unwrap(), Duration::from_millis(1500));
        for bad in [0.0, -1.0, f64::NAN, max_ms + 1.0, f64::INFINITY] {
            let err = token_ttl_from_millis(bad).unwrap_err();
            assert_eq!((err.code, err.path.as_str()), ("invalid_argument", "/ttlMs"), "{bad}");
        }
        assert!(
            token_ttl_from_secs(31.0 * 86_400.0)
                .unwrap_err()
                .message
                .contains("30 days")
        );
    }
}
