//! When to resend a batch, and after how long (DESIGN §7).
//!
//! Sans-I/O: [`RetryPolicy::decide`] takes the outcome of an attempt, the retry number and a
//! jitter draw and returns a [`RetryDecision`]; the runtime does the sleeping. The delay
//! ceiling grows exponentially (computed by `backon`'s [`ExponentialBuilder`]) and the actual
//! delay is a full-jitter draw below it, unless the server sent `Retry-After`, which wins.
//!
//! Retried: network errors, timeouts, 408, 429 and every 5xx. Never retried: any other
//! status. Every retry resends the same event ids, so the server stores each event once.

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};

/// What one send attempt came back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// The connection failed or broke before a status arrived.
    Network,
    /// No answer within the request timeout.
    Timeout,
    /// The server answered.
    Status {
        /// HTTP status.
        status: u16,
        /// The raw `Retry-After` header, when present.
        retry_after: Option<&'a str>,
    },
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// 2xx: the batch is done.
    Done,
    /// Send the same batch again after `delay`.
    Retry {
        /// How long to wait first.
        delay: Duration,
    },
    /// Stop: the failure is permanent (4xx other than 408/429) or retries ran out.
    GiveUp,
}

/// Backoff parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Ceiling of the first retry's delay.
    pub initial_delay: Duration,
    /// Largest ceiling; the exponential growth stops here.
    pub max_delay: Duration,
    /// `Retry-After` is honoured up to this long.
    pub max_retry_after: Duration,
    /// Give up after this many retries; `None` retries until the client shuts down, which is
    /// what "no event lost" needs (the bounded queue then decides what overflows).
    pub max_retries: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            max_retries: None,
        }
    }
}

/// Whether an HTTP status is worth retrying.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

impl RetryPolicy {
    /// The delay ceiling for retry number `retry` (0 = the first retry).
    /// Rounded to whole milliseconds (backon's float arithmetic leaves nanosecond dust).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let raw = ExponentialBuilder::new()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .without_max_times()
            .build()
            .nth(retry as usize)
            .unwrap_or(self.max_delay);
        Duration::from_millis((raw.as_secs_f64() * 1000.0).round() as u64)
    }

    /// Decides what follows an attempt. `retry` is how many retries were already made for
    /// this batch; `jitter` is a uniform draw in `[0, 1)`; `now` resolves an HTTP-date
    /// `Retry-After`.
    pub fn decide(&self, outcome: Outcome<'_>, retry: u32, jitter: f64, now: SystemTime) -> RetryDecision {
        let retry_after = match outcome {
            Outcome::Status { status, .. } if (200..300).contains(&status) => {
                return RetryDecision::Done;
            }
            Outcome::Status { status, .. } if !is_retryable_status(status) => {
                return RetryDecision::GiveUp;
            }
            Outcome::Status { retry_after, .. } => retry_after.and_then(|v| parse_retry_after(v, now)),
            Outcome::Network | Outcome::Timeout => None,
        };
        if self.max_retries.is_some_and(|max| retry >= max) {
            return RetryDecision::GiveUp;
        }
        let delay = match retry_after {
            Some(wait) => wait.min(self.max_retry_after),
            None => self.ceiling(retry).mul_f64(jitter.clamp(0.0, 1.0)),
        };
        RetryDecision::Retry { delay }
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). Garbage → `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn ceiling_doubles_up_to_the_max() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(0), Duration::from_millis(100));
        assert_eq!(p.ceiling(1), Duration::from_millis(200));
        assert_eq!(p.ceiling(3), Duration::from_millis(800));
        assert_eq!(p.ceiling(40), Duration::from_secs(30));
    }

    #[test]
    fn classifies_statuses() {
        let p = RetryPolicy::default();
        let st = |status| Outcome::Status {
            status,
            retry_after: None,
        };
        assert_eq!(p.decide(st(202), 0, 0.5, now()), RetryDecision::Done);
        assert_eq!(p.decide(st(400), 0, 0.5, now()), RetryDecision::GiveUp);
        assert_eq!(p.decide(st(401), 0, 0.5, now()), RetryDecision::GiveUp);
        for s in [408, 429, 500, 502, 503, 599] {
            assert!(
                matches!(p.decide(st(s), 0, 0.5, now()), RetryDecision::Retry { .. }),
                "{s}"
            );
        }
        assert!(matches!(
            p.decide(Outcome::Network, 0, 0.5, now()),
            RetryDecision::Retry { .. }
        ));
    }

    #[test]
    fn full_jitter_stays_below_the_ceiling() {
        let p = RetryPolicy::default();
        let d = |j| match p.decide(Outcome::Timeout, 2, j, now()) {
            RetryDecision::Retry { delay } => delay,
            other => panic!("{other:?}"),
        };
        assert_eq!(d(0.0), Duration::ZERO);
        assert_eq!(d(0.5), Duration::from_millis(200));
        assert!(d(0.999) < Duration::from_millis(400));
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        let p = RetryPolicy::default();
        let out = |v| Outcome::Status {
            status: 429,
            retry_after: Some(v),
        };
        assert_eq!(
            p.decide(out("7"), 0, 0.1, now()),
            RetryDecision::Retry {
                delay: Duration::from_secs(7)
            }
        );
        assert_eq!(
            p.decide(out("99999"), 0, 0.1, now()),
            RetryDecision::Retry {
                delay: Duration::from_secs(300)
            }
        );
        let date = httpdate::fmt_http_date(now() + Duration::from_secs(12));
        assert_eq!(
            p.decide(out(&date), 0, 0.1, now()),
            RetryDecision::Retry {
                delay: Duration::from_secs(12)
            }
        );
        // Garbage falls back to the jittered backoff.
        assert_eq!(
            p.decide(out("soon"), 0, 0.0, now()),
            RetryDecision::Retry { delay: Duration::ZERO }
        );
    }

    #[test]
    fn max_retries_gives_up() {
        let p = RetryPolicy {
            max_retries: Some(2),
            ..RetryPolicy::default()
        };
        assert!(matches!(
            p.decide(Outcome::Network, 1, 0.5, now()),
            RetryDecision::Retry { .. }
        ));
        assert_eq!(p.decide(Outcome::Network, 2, 0.5, now()), RetryDecision::GiveUp);
    }
}
