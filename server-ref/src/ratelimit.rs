//! Rate limits (DESIGN §3, §6): a token bucket per API key — governor's keyed GCRA limiter,
//! configured by `[limits]` — charged by every authenticated HTTP request and every stream
//! operation of that key; over it the answer is `429 rate_limited` with `Retry-After`.
//! A publishable key's requests are also charged to a smaller bucket of the customer token's
//! subject (per project), checked first, so one user's page cannot spend the key's budget
//! for every other user. The subject buckets are bounded: idle ones are dropped by
//! [`RateLimits::forget_idle`], and past `limits.max_tracked_subjects` all are dropped at
//! once (they start full again — a reset, never a refusal). The stream also gives each
//! connection its own small [`Bucket`]s (operations, refused frames).
//!
//! On PostgreSQL several nodes serve one key: each enforces its [`Share`] of the limits, the
//! configured values divided by the live nodes ([`crate::nodes`] counts them), so the
//! cluster together allows about what one node would (DR-115).

use std::{
    num::NonZeroU32,
    sync::{Arc, RwLock},
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

/// What one node enforces of `[limits]` when `nodes` nodes share the database: each limit
/// divided by the live node count, rounded up (DR-115). With one node, the limits as set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// Live nodes counted (at least 1).
    pub nodes: u32,
    /// This node's sustained requests per second per key.
    pub requests_per_second: u32,
    /// This node's burst per key.
    pub burst: u32,
    /// This node's sustained requests per second per subject.
    pub subject_requests_per_second: u32,
    /// This node's burst per subject.
    pub subject_burst: u32,
}

impl Share {
    /// `config`'s limits split over `live_nodes` (0 counts as 1: this node is alive).
    pub fn of(config: &LimitsConfig, live_nodes: u32) -> Share {
        let nodes = live_nodes.max(1);
        Share {
            nodes,
            requests_per_second: share(config.requests_per_second, nodes),
            burst: share(config.burst, nodes),
            subject_requests_per_second: share(config.subject_requests_per_second, nodes),
            subject_burst: share(config.subject_burst, nodes),
        }
    }
}

/// `limit / nodes` rounded up, at least 1: the nodes together allow at most `nodes - 1`
/// more than `limit` (the rounding), never less.
fn share(limit: u32, nodes: u32) -> u32 {
    limit.div_ceil(nodes.max(1)).max(1)
}

/// Live server nodes this node counts (`1` on SQLite).
pub const LIVE_NODES: &str = "meterline_live_nodes";
/// This node's share of each `[limits]` value, by `limit`.
pub const RATE_LIMIT_SHARE: &str = "meterline_rate_limit_share";

/// One generation of buckets: replaced whole when the share changes, its subject buckets
/// alone when they outgrow `max_tracked_subjects`.
#[derive(Debug)]
struct Buckets {
    share: Share,
    keys: Arc<DefaultKeyedRateLimiter<String>>,
    /// Keyed by `<project id>/<subject>`.
    subjects: Arc<DefaultKeyedRateLimiter<String>>,
}

impl Buckets {
    fn new(share: Share) -> Buckets {
        Buckets {
            share,
            keys: Arc::new(RateLimiter::keyed(key_quota(&share))),
            subjects: Arc::new(RateLimiter::keyed(subject_quota(&share))),
        }
    }
}

fn key_quota(share: &Share) -> Quota {
    Quota::per_second(nonzero(share.requests_per_second)).allow_burst(nonzero(share.burst))
}

fn subject_quota(share: &Share) -> Quota {
    Quota::per_second(nonzero(share.subject_requests_per_second)).allow_burst(nonzero(share.subject_burst))
}

/// The per-key and per-subject token buckets of this node, sized to its [`Share`].
#[derive(Debug)]
pub struct RateLimits {
    /// Read (an `Arc` clone) on every request; written when the share changes.
    current: RwLock<Arc<Buckets>>,
    config: LimitsConfig,
}

impl RateLimits {
    /// Buckets of `config.burst` tokens refilled at `config.requests_per_second` per key,
    /// and of `config.subject_burst` refilled at `config.subject_requests_per_second` per
    /// subject: the whole limits, as for a single node.
    pub fn new(config: &LimitsConfig) -> Self {
        let share = Share::of(config, 1);
        record_share(&share);
        RateLimits {
            current: RwLock::new(Arc::new(Buckets::new(share))),
            config: config.clone(),
        }
    }

    /// The share enforced now.
    pub fn share(&self) -> Share {
        self.buckets().share
    }

    /// Enforces `config / live_nodes` from now on (DR-115). When the count changed, every
    /// bucket is replaced by a full one of the new size (governor's quotas are fixed per
    /// limiter): a reset, so each key may spend one extra burst share at the change.
    /// Returns whether the count changed.
    pub fn set_live_nodes(&self, live_nodes: u32) -> bool {
        let share = Share::of(&self.config, live_nodes);
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.share == share {
            return false;
        }
        tracing::info!(
            live_nodes = share.nodes,
            was = current.share.nodes,
            requests_per_second = share.requests_per_second,
            burst = share.burst,
            subject_requests_per_second = share.subject_requests_per_second,
            subject_burst = share.subject_burst,
            "live server nodes changed: this node enforces its share of [limits]"
        );
        *current = Arc::new(Buckets::new(share));
        record_share(&share);
        true
    }

    fn buckets(&self) -> Arc<Buckets> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes one token from `key_id`'s bucket; `429 rate_limited` with `Retry-After` (whole
    /// seconds, rounded up) when it is empty.
    pub fn check(&self, key_id: &str) -> Result<(), ApiError> {
        let buckets = self.buckets();
        let Err(not_until) = buckets.keys.check_key(&key_id.to_owned()) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(buckets.keys.clock().now());
        let share = &buckets.share;
        Err(limited(
            wait,
            format!(
                "API key {key_id} is over its limit of {} requests per second (burst {}){}",
                self.config.requests_per_second,
                self.config.burst,
                of_nodes(share, share.requests_per_second, share.burst)
            ),
        ))
    }

    /// Takes one token from the bucket of `subject` in `project_id` (a publishable key's
    /// customer); `429 rate_limited` with `Retry-After` when it is empty.
    pub fn check_subject(&self, project_id: i64, subject: &str) -> Result<(), ApiError> {
        let buckets = self.subject_buckets();
        let limiter = &buckets.subjects;
        let Err(not_until) = limiter.check_key(&format!("{project_id}/{subject}")) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(limiter.clock().now());
        let shown: String = subject.chars().take(100).collect();
        let share = &buckets.share;
        Err(limited(
            wait,
            format!(
                "subject {shown:?} is over its limit of {} requests per second (burst {}){}",
                self.config.subject_requests_per_second,
                self.config.subject_burst,
                of_nodes(share, share.subject_requests_per_second, share.subject_burst)
            ),
        ))
    }

    /// The buckets, their subject buckets first dropped (all at once) when they outgrew
    /// `max_tracked_subjects` and idle ones do not make room.
    fn subject_buckets(&self) -> Arc<Buckets> {
        let buckets = self.buckets();
        let max = self.config.max_tracked_subjects as usize;
        if buckets.subjects.len() < max {
            return buckets;
        }
        buckets.subjects.retain_recent();
        if buckets.subjects.len() < max {
            return buckets;
        }
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.subjects.len() >= max {
            tracing::warn!(
                max,
                "more subjects than limits.max_tracked_subjects: their buckets start over"
            );
            *current = Arc::new(Buckets {
                share: current.share,
                keys: current.keys.clone(),
                subjects: Arc::new(RateLimiter::keyed(subject_quota(&current.share))),
            });
        }
        current.clone()
    }

    /// Buckets held: per key, per subject.
    pub fn tracked(&self) -> (usize, usize) {
        let buckets = self.buckets();
        (buckets.keys.len(), buckets.subjects.len())
    }

    /// Drops the buckets of keys and subjects idle long enough to be full again (the server
    /// runs it every few seconds, so memory follows the keys and users active now).
    pub fn forget_idle(&self) {
        let buckets = self.buckets();
        buckets.keys.retain_recent();
        buckets.keys.shrink_to_fit();
        buckets.subjects.retain_recent();
        buckets.subjects.shrink_to_fit();
    }
}

/// `; this node's share over N nodes is R per second (burst B)`, or nothing on one node.
fn of_nodes(share: &Share, rate: u32, burst: u32) -> String {
    if share.nodes <= 1 {
        return String::new();
    }
    format!(
        "; this node's share over {} nodes is {rate} per second (burst {burst})",
        share.nodes
    )
}

/// Describes the share gauges (called once when the recorder is installed).
pub fn describe_metrics() {
    metrics::describe_gauge!(
        LIVE_NODES,
        "Server nodes this node counts as live (heartbeat on PostgreSQL; 1 on SQLite)."
    );
    metrics::describe_gauge!(
        RATE_LIMIT_SHARE,
        "This node's share of each [limits] value: the limit divided by the live nodes, rounded up."
    );
}

/// Sets the `/metrics` gauges of the live node count and this node's share.
fn record_share(share: &Share) {
    metrics::gauge!(LIVE_NODES).set(f64::from(share.nodes));
    for (limit, value) in [
        ("requests_per_second", share.requests_per_second),
        ("burst", share.burst),
        ("subject_requests_per_second", share.subject_requests_per_second),
        ("subject_burst", share.subject_burst),
    ] {
        metrics::gauge!(RATE_LIMIT_SHARE, "limit" => limit).set(f64::from(value));
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
    fn a_share_is_the_limit_over_the_live_nodes_rounded_up() {
        assert_eq!(share(20, 2), 10);
        assert_eq!(share(21, 2), 11, "rounded up: together at most nodes - 1 over");
        assert_eq!(share(2_000, 3), 667);
        assert_eq!(share(1, 3), 1, "never 0");
        assert_eq!(share(20, 0), 20, "no live rows: this node alone");
        let config = LimitsConfig {
            requests_per_second: 20,
            burst: 20,
            subject_requests_per_second: 5,
            subject_burst: 9,
            ..LimitsConfig::default()
        };
        assert_eq!(
            Share::of(&config, 0),
            Share {
                nodes: 1,
                requests_per_second: 20,
                burst: 20,
                subject_requests_per_second: 5,
                subject_burst: 9
            }
        );
        assert_eq!(
            Share::of(&config, 4),
            Share {
                nodes: 4,
                requests_per_second: 5,
                burst: 5,
                subject_requests_per_second: 2,
                subject_burst: 3
            }
        );
    }

    #[test]
    fn a_new_live_count_swaps_the_buckets_and_an_unchanged_one_keeps_them() {
        let limits = RateLimits::new(&LimitsConfig {
            requests_per_second: 1,
            burst: 4,
            subject_requests_per_second: 1,
            subject_burst: 4,
            ..LimitsConfig::default()
        });
        assert!(limits.set_live_nodes(2));
        assert_eq!(limits.share().burst, 2);
        assert!(limits.check("a").is_ok() && limits.check("a").is_ok());
        let err = limits.check("a").unwrap_err();
        assert!(
            err.message.contains("limit of 1 requests per second (burst 4)")
                && err.message.contains("share over 2 nodes is 1 per second (burst 2)"),
            "{}",
            err.message
        );
        assert!(limits.check_subject(1, "s").is_ok() && limits.check_subject(1, "s").is_ok());
        assert!(limits.check_subject(1, "s").is_err(), "the subject's share is 2 too");
        assert!(!limits.set_live_nodes(2), "same count: buckets kept");
        assert!(limits.check("a").is_err(), "still empty");
        assert!(limits.set_live_nodes(0));
        assert_eq!(limits.share().nodes, 1);
        assert!(
            (0..4).all(|_| limits.check("a").is_ok()),
            "alone: the whole burst, new buckets"
        );
        assert!(limits.check("a").is_err());
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
