//! Rate limits (DESIGN §3, §6): a token bucket per API key — governor's keyed GCRA limiter,
//! configured by `[limits]` — charged by every authenticated HTTP request and every stream
//! operation of that key; over it the answer is `429 rate_limited` with `Retry-After`.
//! A publishable key's requests are also charged to a smaller bucket of the customer token's
//! subject (per project), checked first, so one user's page cannot spend the key's budget
//! for every other user. The subject buckets are bounded: idle ones are dropped by
//! [`RateLimits::forget_idle`], and past `limits.max_tracked_subjects` all are dropped at
//! once (they start full again — a reset, never a refusal). The stream also gives each
//! connection its own small [`Bucket`]s (operations, refused frames).

use std::{
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

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
    /// Sustained requests per second per customer-token subject (publishable keys).
    pub subject_requests_per_second: u32,
    /// Requests a subject may make at once before its sustained rate applies.
    pub subject_burst: u32,
    /// Most subject buckets kept; beyond it they are all dropped (and start full again).
    pub max_tracked_subjects: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            requests_per_second: 1_000,
            burst: 2_000,
            subject_requests_per_second: 10,
            subject_burst: 50,
            max_tracked_subjects: 100_000,
        }
    }
}

impl LimitsConfig {
    /// Checks the values; the error names the key.
    pub fn check(&self) -> Result<(), String> {
        for (key, value) in [
            ("limits.requests_per_second", self.requests_per_second),
            ("limits.burst", self.burst),
            ("limits.subject_requests_per_second", self.subject_requests_per_second),
            ("limits.subject_burst", self.subject_burst),
            ("limits.max_tracked_subjects", self.max_tracked_subjects),
        ] {
            if value == 0 {
                return Err(format!("`{key}` must be greater than 0"));
            }
        }
        Ok(())
    }
}

/// The per-key and per-subject token buckets.
#[derive(Debug)]
pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<String>,
    /// Keyed by `<project id>/<subject>`; replaced by an empty one when it holds too many.
    subjects: Mutex<Arc<DefaultKeyedRateLimiter<String>>>,
    subject_quota: Quota,
    config: LimitsConfig,
}

impl RateLimits {
    /// Buckets of `config.burst` tokens refilled at `config.requests_per_second` per key,
    /// and of `config.subject_burst` refilled at `config.subject_requests_per_second` per
    /// subject.
    pub fn new(config: &LimitsConfig) -> Self {
        let quota = Quota::per_second(nonzero(config.requests_per_second)).allow_burst(nonzero(config.burst));
        let subject_quota =
            Quota::per_second(nonzero(config.subject_requests_per_second)).allow_burst(nonzero(config.subject_burst));
        RateLimits {
            limiter: RateLimiter::keyed(quota),
            subjects: Mutex::new(Arc::new(RateLimiter::keyed(subject_quota))),
            subject_quota,
            config: config.clone(),
        }
    }

    /// Takes one token from `key_id`'s bucket; `429 rate_limited` with `Retry-After` (whole
    /// seconds, rounded up) when it is empty.
    pub fn check(&self, key_id: &str) -> Result<(), ApiError> {
        let Err(not_until) = self.limiter.check_key(&key_id.to_owned()) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(self.limiter.clock().now());
        Err(limited(
            wait,
            format!(
                "API key {key_id} is over its limit of {} requests per second (burst {})",
                self.config.requests_per_second, self.config.burst
            ),
        ))
    }

    /// Takes one token from the bucket of `subject` in `project_id` (a publishable key's
    /// customer); `429 rate_limited` with `Retry-After` when it is empty.
    pub fn check_subject(&self, project_id: i64, subject: &str) -> Result<(), ApiError> {
        let limiter = self.subject_limiter();
        let Err(not_until) = limiter.check_key(&format!("{project_id}/{subject}")) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(limiter.clock().now());
        let shown: String = subject.chars().take(100).collect();
        Err(limited(
            wait,
            format!(
                "subject {shown:?} is over its limit of {} requests per second (burst {})",
                self.config.subject_requests_per_second, self.config.subject_burst
            ),
        ))
    }

    /// The subject buckets, first dropped (all at once) when they outgrew
    /// `max_tracked_subjects` and idle ones do not make room.
    fn subject_limiter(&self) -> Arc<DefaultKeyedRateLimiter<String>> {
        let mut current = self.subjects.lock().unwrap_or_else(|p| p.into_inner());
        let max = self.config.max_tracked_subjects as usize;
        if current.len() >= max {
            current.retain_recent();
            if current.len() >= max {
                tracing::warn!(
                    max,
                    "more subjects than limits.max_tracked_subjects: their buckets start over"
                );
                *current = Arc::new(RateLimiter::keyed(self.subject_quota));
            }
        }
        current.clone()
    }

    /// Buckets held: per key, per subject.
    pub fn tracked(&self) -> (usize, usize) {
        let subjects = self.subjects.lock().unwrap_or_else(|p| p.into_inner()).len();
        (self.limiter.len(), subjects)
    }

    /// Drops the buckets of keys and subjects idle long enough to be full again (the server
    /// runs it every few seconds, so memory follows the keys and users active now).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let subjects = self.subject_limiter();
        subjects.retain_recent();
        subjects.shrink_to_fit();
    }
}

/// `429 rate_limited` with `Retry-After` for a wait of `wait`.
fn limited(wait: Duration, what: String) -> ApiError {
    metrics::counter!(RATE_LIMITED).increment(1);
    let secs = ceil_secs(wait);
    ApiError {
        retry_after: Some(secs),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("{what}; retry in {secs} s"),
        )
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
            ..LimitsConfig::default()
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
    fn subjects_have_their_own_bounded_buckets() {
        let limits = RateLimits::new(&LimitsConfig {
            subject_requests_per_second: 1,
            subject_burst: 2,
            max_tracked_subjects: 3,
            ..LimitsConfig::default()
        });
        assert!(limits.check_subject(1, "a").is_ok());
        assert!(limits.check_subject(1, "a").is_ok());
        let err = limits.check_subject(1, "a").unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (429, "rate_limited"));
        assert!(err.message.contains("subject \"a\""), "{}", err.message);
        assert!(limits.check_subject(2, "a").is_ok(), "another project's subject");
        assert!(limits.check_subject(1, "b").is_ok(), "another subject");
        assert_eq!(limits.tracked().1, 3);
        // A fourth subject finds the buckets full of busy ones: they start over.
        assert!(limits.check_subject(1, "c").is_ok());
        assert_eq!(limits.tracked().1, 1);
        assert!(limits.check_subject(1, "a").is_ok(), "a's bucket started over");
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
            ..LimitsConfig::default()
        }
        .check()
        .unwrap_err();
        assert!(err.contains("limits.requests_per_second"), "{err}");
    }
}
