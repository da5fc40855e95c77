//! Conformance only: the core's retry decision, exposed so the Node test suite runs
//! `tests/vectors/retry.json` through this binding. Not part of the public API.

use std::time::{Duration, SystemTime};

use meterline_core::retry::{Outcome, RetryDecision, RetryPolicy};
use napi::{Either, Result};
use napi_derive::napi;

/// Backoff parameters of [`retry_decision`], in milliseconds.
#[napi(object)]
pub struct RetryPolicyInput {
    /// Ceiling of the first retry's delay.
    pub initial_delay_ms: f64,
    /// Largest ceiling.
    pub max_delay_ms: f64,
    /// `Retry-After` is honoured up to this long.
    pub max_retry_after_ms: f64,
    /// Give up after this many retries (unlimited when absent).
    pub max_retries: Option<u32>,
}

/// What [`retry_decision`] decided.
#[napi(object)]
pub struct RetryDecisionOutput {
    /// `done`, `retry` or `give_up`.
    pub decision: String,
    /// The delay before the retry, when `decision` is `retry`.
    pub delay_ms: Option<f64>,
}

/// `RetryPolicy::decide` for one attempt: `outcome` is an HTTP status or `"network"` /
/// `"timeout"`, `retry` the retries already made, `jitter` a draw in `[0, 1)`, `nowMs` the
/// clock (Unix milliseconds) that resolves an HTTP-date `Retry-After`.
///
/// Conformance-only: exported as `_retryDecision`, for `tests/vectors/retry.json`.
#[napi(js_name = "_retryDecision")]
pub fn retry_decision(
    policy: RetryPolicyInput,
    outcome: Either<u32, String>,
    retry: u32,
    jitter: f64,
    now_ms: f64,
    retry_after: Option<String>,
) -> Result<RetryDecisionOutput> {
    let policy = RetryPolicy {
        initial_delay: millis(policy.initial_delay_ms)?,
        max_delay: millis(policy.max_delay_ms)?,
        max_retry_after: millis(policy.max_retry_after_ms)?,
        max_retries: policy.max_retries,
    };
    let outcome = match &outcome {
        Either::A(status) => Outcome::Status {
            status: u16::try_from(*status)
                .map_err(|_| napi::Error::from_reason(format!("status {status} is not an HTTP status")))?,
            retry_after: retry_after.as_deref(),
        },
        Either::B(s) if s == "network" => Outcome::Network,
        Either::B(s) if s == "timeout" => Outcome::Timeout,
        Either::B(s) => {
            return Err(napi::Error::from_reason(format!(
                "unknown outcome {s:?}: use a status, \"network\" or \"timeout\""
            )));
        }
    };
    let now = SystemTime::UNIX_EPOCH + millis(now_ms)?;
    Ok(match policy.decide(outcome, retry, jitter, now) {
        RetryDecision::Done => RetryDecisionOutput {
            decision: "done".into(),
            delay_ms: None,
        },
        RetryDecision::Retry { delay } => RetryDecisionOutput {
            decision: "retry".into(),
            delay_ms: Some(delay.as_secs_f64() * 1000.0),
        },
        RetryDecision::GiveUp => RetryDecisionOutput {
            decision: "give_up".into(),
            delay_ms: None,
        },
    })
}

fn millis(ms: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(ms / 1000.0)
        .map_err(|_| napi::Error::from_reason(format!("{ms} is not a duration in milliseconds")))
}
