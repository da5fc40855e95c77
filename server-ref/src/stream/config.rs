//! `[stream]` section: limits and timers of `GET /v1/stream` and the retained log.

use std::time::Duration;

use serde::Deserialize;

/// `[stream]` section. Defaults follow DESIGN §5.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// Largest client frame (and message) accepted; a larger one closes the connection
    /// with 1009.
    pub max_frame_bytes: usize,
    /// Most subjects one connection may subscribe to (`too_many_subjects` beyond).
    pub max_subjects: usize,
    /// The server pings this often.
    pub ping_interval_ms: u64,
    /// A connection with no client frame (pongs included) for this long is closed (1001).
    pub idle_timeout_ms: u64,
    /// A connection must authenticate within this time (else 4401).
    pub auth_timeout_ms: u64,
    /// A send that cannot complete within this time marks a slow consumer (closed, 1008).
    pub send_timeout_ms: u64,
    /// Client operations per second one connection may send, sustained…
    pub ops_per_second: u32,
    /// …and at once.
    pub ops_burst: u32,
    /// Refused frames (bad messages, rate-limited operations) tolerated in a burst, one
    /// more every 6 s; beyond, the connection is closed with 1008.
    pub max_errors: u32,
    /// Most retained messages one `subscribe` with `since` replays; more → `resync`.
    pub max_replay: usize,
    /// Most open stream connections; more are closed at once with 1013 (try again later).
    pub max_connections: usize,
    /// How long published messages stay in the retained log for `since` resumes.
    pub retention_secs: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_frame_bytes: meterline_core::stream::MAX_FRAME_BYTES,
            max_subjects: meterline_core::stream::MAX_SUBJECTS,
            ping_interval_ms: 20_000,
            idle_timeout_ms: 60_000,
            auth_timeout_ms: 10_000,
            send_timeout_ms: 10_000,
            ops_per_second: 10,
            ops_burst: 100,
            max_errors: 10,
            max_replay: 10_000,
            max_connections: 10_000,
            retention_secs: 24 * 60 * 60,
        }
    }
}

impl StreamConfig {
    /// Checks the values; the error names the key.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("stream.max_frame_bytes", self.max_frame_bytes as u64),
            ("stream.max_subjects", self.max_subjects as u64),
            ("stream.ping_interval_ms", self.ping_interval_ms),
            ("stream.idle_timeout_ms", self.idle_timeout_ms),
            ("stream.auth_timeout_ms", self.auth_timeout_ms),
            ("stream.send_timeout_ms", self.send_timeout_ms),
            ("stream.ops_per_second", u64::from(self.ops_per_second)),
            ("stream.ops_burst", u64::from(self.ops_burst)),
            ("stream.max_errors", u64::from(self.max_errors)),
            ("stream.max_replay", self.max_replay as u64),
            ("stream.max_connections", self.max_connections as u64),
            ("stream.retention_secs", self.retention_secs),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{key}` must be greater than 0"));
        }
        if self.max_frame_bytes < 1024 {
            return Err("`stream.max_frame_bytes` must be at least 1024".into());
        }
        if self.idle_timeout_ms <= self.ping_interval_ms {
            return Err(format!(
                "`stream.idle_timeout_ms` ({}) must be longer than `stream.ping_interval_ms` ({}), or idle \
                 clients that answer every ping are closed",
                self.idle_timeout_ms, self.ping_interval_ms
            ));
        }
        Ok(())
    }

    /// `ping_interval_ms` as a duration.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }

    /// `idle_timeout_ms` as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// `auth_timeout_ms` as a duration.
    pub fn auth_timeout(&self) -> Duration {
        Duration::from_millis(self.auth_timeout_ms)
    }

    /// `send_timeout_ms` as a duration.
    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }

    /// `retention_secs` as a duration.
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_secs)
    }
}
