//! Rate limits (DESIGN §3, §6): a token bucket per API key — governor's keyed GCRA limiter,
//! configured by `[limits]` — charged by every authenticated HTTP request and every stream
//! operation of that key; over it the answer is `429 rate_limited` with `Retry-After`. The
//! stream also gives each connection its own small [`Bucket`]s (operations, refused frames).

use std::{num::NonZeroU32, time::Duration};

use axum::http::StatusCode;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use serde::Deserialize;

use crate::error::ApiError;

/// Requests refused with `429 rate_limited`.
pub const RATE_LIMITED: &str = "meterline_rate_limited_total";

/// `[limits]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Sustained requests (HTTP requests and stream operations) per second per API key.
    pub requests_per_second: u32,
    /// Requests a key may make at once before the sustained rate applies.
    pub burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            requests_per_second: 1_000,
            burst: 2_000,
        }
    }
}

impl LimitsConfig {
    /// Checks the values; the error names the key.
    pub fn check(&self) -> Result<(), String> {
        for (key, value) in [
            ("limits.requests_per_second", self.requests_per_second),
            ("limits.burst", self.burst),
        ] {
            if value == 0 {
                return Err(format!("`{key}` must be greater than 0"));
            }
        }
        Ok(())
    }
}

/// The per-key token buckets.
#[derive(Debug)]
pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<String>,
    config: LimitsConfig,
}

impl RateLimits {
    /// Buckets of `config.burst` tokens refilled at `config.requests_per_second`.
    pub fn new(config: &LimitsConfig) -> Self {
        let quota = Quota::per_second(nonzero(config.requests_per_second)).allow_burst(nonzero(config.burst));
        RateLimits {
            limiter: RateLimiter::keyed(quota),
            config: config.clone(),
        }
    }

    /// Takes one token from `key_id`'s bucket; `429 rate_limited` with `Retry-After` (whole
    /// seconds, rounded up) when it is empty.
    pub fn check(&self, key_id: &str) -> Result<(), ApiError> {
        let Err(not_until) = self.limiter.check_key(&key_id.to_owned()) else {
            return Ok(());
        };
        metrics::counter!(RATE_LIMITED).increment(1);
        let wait = not_until.wait_time_from(self.limiter.clock().now());
        let secs = ceil_secs(wait);
        Err(ApiError {
            retry_after: Some(secs),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "API key {key_id} is over its limit of {} requests per second (burst {}); retry in {secs} s",
                    self.config.requests_per_second, self.config.burst
                ),
            )
        })
    }

    /// Drops the buckets of keys idle long enough to be full again (run periodically, so
    /// memory follows the keys in use, not every key ever seen).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// A single token bucket (one stream connection's operations or refused frames).
#[derive(Debug)]
pub struct Bucket(DefaultDirectRateLimiter);

impl Bucket {
    /// `burst` tokens, one more every `refill` (at least 1 ms).
    pub fn new(refill: Duration, burst: u32) -> Self {
        let quota = Quota::with_period(refill.max(Duration::from_millis(1)))
            .unwrap_or_else(|| Quota::per_second(nonzero(1)))
            .allow_burst(nonzero(burst));
        Bucket(RateLimiter::direct(quota))
    }

    /// Takes a token; `false` when the bucket is empty.
    pub fn take(&self) -> bool {
        self.0.check().is_ok()
    }
}

fn nonzero(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).unwrap_or(NonZeroU32::MIN)
}

/// Whole seconds, rounded up, at least 1 (for `Retry-After`).
fn ceil_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn buckets_are_per_key_and_say_when_to_retry() {
        let limits = RateLimits::new(&LimitsConfig {
            requests_per_second: 1,
            burst: 2,
        });
        assert!(limits.check("a").is_ok());
        assert!(limits.check("a").is_ok());
        let err = limits.check("a").unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (429, "rate_limited"));
        assert_eq!(err.retry_after, Some(1));
        assert!(err.message.contains("API key a"), "{}", err.message);
        assert!(limits.check("b").is_ok(), "another key has its own bucket");
        limits.forget_idle();
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ceil_secs(Duration::from_secs(3)), 3);
        assert_eq!(ceil_secs(Duration::ZERO), 1);
    }

    #[test]
    fn a_bucket_empties_and_refills() {
        let bucket = Bucket::new(Duration::from_millis(20), 3);
        assert!((0..3).all(|_| bucket.take()));
        assert!(!bucket.take());
        std::thread::sleep(Duration::from_millis(30));
        assert!(bucket.take());
    }

    #[test]
    fn zero_is_refused_by_name() {
        let err = LimitsConfig {
            requests_per_second: 0,
            burst: 1,
        }
        .check()
        .unwrap_err();
        assert!(err.contains("limits.requests_per_second"), "{err}");
    }
}
