//! Conformance only: the core's retry decision, exposed so the shared vectors
//! (`tests/vectors/retry.json`) run through this package too. Not part of the public API.

use std::time::Duration;

use meterline_core::retry::{Outcome, RetryDecision, RetryPolicy};
use pyo3::{exceptions::PyValueError, prelude::*};

/// `RetryPolicy::decide` for one attempt. `outcome` is an HTTP status or `"network"` /
/// `"timeout"`; `now_http_date` resolves an HTTP-date `Retry-After`. Returns
/// `("done", None)`, `("give_up", None)` or `("retry", delay_ms)`.
#[pyfunction]
#[pyo3(signature = (
    outcome, retry, retry_after, now_http_date, jitter, *,
    initial_delay_ms=100, max_delay_ms=30_000, max_retry_after_ms=300_000, max_retries=None
))]
#[allow(clippy::too_many_arguments)]
pub fn _retry_decision(
    outcome: &Bound<'_, PyAny>,
    retry: u32,
    retry_after: Option<&str>,
    now_http_date: &str,
    jitter: f64,
    initial_delay_ms: u64,
    max_delay_ms: u64,
    max_retry_after_ms: u64,
    max_retries: Option<u32>,
) -> PyResult<(&'static str, Option<f64>)> {
    let outcome = if let Ok(status) = outcome.extract::<u16>() {
        Outcome::Status { status, retry_after }
    } else {
        match outcome.extract::<String>()?.as_str() {
            "network" => Outcome::Network,
            "timeout" => Outcome::Timeout,
            other => return Err(PyValueError::new_err(format!("unknown outcome {other:?}"))),
        }
    };
    let now = httpdate::parse_http_date(now_http_date)
        .map_err(|e| PyValueError::new_err(format!("now_http_date is not an HTTP date: {e}")))?;
    let policy = RetryPolicy {
        initial_delay: Duration::from_millis(initial_delay_ms),
        max_delay: Duration::from_millis(max_delay_ms),
        max_retry_after: Duration::from_millis(max_retry_after_ms),
        max_retries,
    };
    Ok(match policy.decide(outcome, retry, jitter, now) {
        RetryDecision::Done => ("done", None),
        RetryDecision::GiveUp => ("give_up", None),
        RetryDecision::Retry { delay } => ("retry", Some(delay.as_secs_f64() * 1000.0)),
    })
}
