//! Realtime stream wire types (DESIGN §5): the JSON text frames of `GET /v1/stream`.
//!
//! Server → client: `{"type":"…","seq":43,"subject":"c1","data":{…}}`, `seq` per project
//! and strictly increasing. Client → server: `{"op":"subscribe"|"unsubscribe"|"auth", …}`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{entitlement::Entitlements, retry::RetryPolicy};

/// Largest frame either side accepts by default (64 KiB).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Most subjects one connection may subscribe to by default.
pub const MAX_SUBJECTS: usize = 1_000;

/// WebSocket close code: the connection never authenticated (or its credentials were bad).
pub const CLOSE_UNAUTHENTICATED: u16 = 4401;
/// WebSocket close code: the key was revoked (or may not use the stream).
pub const CLOSE_FORBIDDEN: u16 = 4403;
/// WebSocket close code: policy violation — a slow consumer, a frame over the limit.
pub const CLOSE_POLICY: u16 = 1008;

/// A client → server frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientOp {
    /// First frame of a browser connection that cannot send an `Authorization` header.
    Auth {
        /// `ml_pk_…` (with `token`) or `ml_sk_…`.
        key: String,
        /// Customer token (JWT) for a publishable key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Adds subjects; with `since`, replays every retained message with `seq > since`
    /// for them first.
    Subscribe {
        /// Subjects to receive messages for.
        subjects: Vec<String>,
        /// Last `seq` the client saw.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
    },
    /// Removes subjects.
    Unsubscribe {
        /// Subjects to stop receiving.
        subjects: Vec<String>,
    },
}

/// The `type`s of [`ServerMessage`].
const SERVER_MESSAGE_TYPES: &[&str] = &[
    "subscribed",
    "entitlements.updated",
    "usage.threshold",
    "schema.updated",
    "resync",
    "error",
];

/// A server → client frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerMessage {
    /// Answers a subscribe; `seq` is the project's current one.
    #[serde(rename = "subscribed")]
    Subscribed {
        /// The project's current seq.
        seq: u64,
        /// Every subject the connection is now subscribed to.
        subjects: Vec<String>,
    },
    /// A subject's entitlements changed; `data` is the full answer.
    #[serde(rename = "entitlements.updated")]
    EntitlementsUpdated {
        /// Message seq.
        seq: u64,
        /// The customer.
        subject: String,
        /// The full entitlement answer, with its `version`.
        data: Entitlements,
    },
    /// A metered feature's usage crossed a notification threshold.
    #[serde(rename = "usage.threshold")]
    UsageThreshold {
        /// Message seq.
        seq: u64,
        /// The customer.
        subject: String,
        /// Which threshold.
        data: UsageThreshold,
    },
    /// An event type's schema changed.
    #[serde(rename = "schema.updated")]
    SchemaUpdated {
        /// Message seq.
        seq: u64,
        /// The new schema document's ETag.
        data: SchemaUpdated,
    },
    /// The requested `since` is not covered by the retained log (or is ahead of the current
    /// seq): refetch everything, then continue from `seq`.
    #[serde(rename = "resync")]
    Resync {
        /// The project's current seq.
        seq: u64,
    },
    /// A request was refused; the connection stays open unless a close frame follows.
    #[serde(rename = "error")]
    Error {
        /// Stable code (`bad_message`, `too_many_subjects`, `forbidden`, …).
        code: String,
        /// What was wrong.
        message: String,
    },
}

impl ServerMessage {
    /// Reads one text frame: its `type` first, then the fields of that type (`data` straight
    /// into its own type). The same messages and refusals as the derived `Deserialize`
    /// (`unknown variant`, `missing field`, `duplicate field`; unknown fields ignored),
    /// without serde's buffering of an internally tagged enum's whole content — that, and a
    /// second copy of the entitlement answer's decoder, was ≈ 9 KB of the gzipped browser
    /// bundle.
    pub fn from_frame(text: &str) -> Result<ServerMessage, serde_json::Error> {
        use serde::de::Error as _;
        use serde_json::value::RawValue;

        /// The frame's fields, each read only if its `type` has it (as the derived
        /// `Deserialize` ignores the fields a variant does not have).
        #[derive(Deserialize)]
        struct Fields<'a> {
            #[serde(rename = "type", borrow)]
            kind: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            seq: Option<&'a RawValue>,
            #[serde(borrow)]
            subject: Option<&'a RawValue>,
            #[serde(borrow)]
            subjects: Option<&'a RawValue>,
            #[serde(borrow)]
            data: Option<&'a RawValue>,
            #[serde(borrow)]
            code: Option<&'a RawValue>,
            #[serde(borrow)]
            message: Option<&'a RawValue>,
        }
        fn field<'a, T: Deserialize<'a>>(
            value: Option<&'a RawValue>,
            name: &'static str,
        ) -> Result<T, serde_json::Error> {
            let raw = value.ok_or_else(|| serde_json::Error::missing_field(name))?;
            serde_json::from_slice(raw.get().as_bytes())
        }

        let f: Fields<'_> = serde_json::from_slice(text.as_bytes())?;
        let kind = f.kind.ok_or_else(|| serde_json::Error::missing_field("type"))?;
        Ok(match &*kind {
            "subscribed" => ServerMessage::Subscribed {
                seq: field(f.seq, "seq")?,
                subjects: field(f.subjects, "subjects")?,
            },
            "entitlements.updated" => ServerMessage::EntitlementsUpdated {
                seq: field(f.seq, "seq")?,
                subject: field(f.subject, "subject")?,
                data: field(f.data, "data")?,
            },
            "usage.threshold" => ServerMessage::UsageThreshold {
                seq: field(f.seq, "seq")?,
                subject: field(f.subject, "subject")?,
                data: field(f.data, "data")?,
            },
            "schema.updated" => ServerMessage::SchemaUpdated {
                seq: field(f.seq, "seq")?,
                data: field(f.data, "data")?,
            },
            "resync" => ServerMessage::Resync {
                seq: field(f.seq, "seq")?,
            },
            "error" => ServerMessage::Error {
                code: field(f.code, "code")?,
                message: field(f.message, "message")?,
            },
            other => return Err(serde_json::Error::unknown_variant(other, SERVER_MESSAGE_TYPES)),
        })
    }

    /// The message's seq (`None` for `error`).
    pub fn seq(&self) -> Option<u64> {
        match self {
            ServerMessage::Subscribed { seq, .. }
            | ServerMessage::EntitlementsUpdated { seq, .. }
            | ServerMessage::UsageThreshold { seq, .. }
            | ServerMessage::SchemaUpdated { seq, .. }
            | ServerMessage::Resync { seq } => Some(*seq),
            ServerMessage::Error { .. } => None,
        }
    }
}

/// `data` of `usage.threshold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageThreshold {
    /// The metered feature.
    pub feature: String,
    /// The threshold crossed, as a fraction of the limit (0.8, 1.0).
    pub threshold: f64,
    /// Usage after the crossing.
    pub usage: f64,
    /// The limit.
    pub limit: f64,
}

/// `data` of `schema.updated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaUpdated {
    /// ETag of the new `/v1/schema` document.
    pub etag: String,
}

/// Response header of `GET /v1/customers/{subject}/entitlements`: the project's stream seq
/// the answer is current to. A client subscribing the subject afterwards sends it as `since`,
/// so a change made between the fetch and the subscription is replayed, not missed.
pub const STREAM_SEQ_HEADER: &str = "meterline-stream-seq";

/// How a stream connection ended, or why it could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// The server closed the WebSocket with this code.
    Closed(u16),
    /// The upgrade was answered with this HTTP status instead of 101.
    Refused(u16),
    /// The connection failed or broke, or the server fell silent past the idle limit.
    Network,
}

impl Disconnect {
    /// Whether the server refused the credentials (4401/4403, 401/403): retrying soon would
    /// only hammer it.
    pub fn is_auth_failure(self) -> bool {
        matches!(
            self,
            Disconnect::Closed(CLOSE_UNAUTHENTICATED | CLOSE_FORBIDDEN) | Disconnect::Refused(401 | 403)
        )
    }

    /// Whether the server has no stream endpoint (404, 405, 426, 501 to the upgrade).
    pub fn is_unsupported(self) -> bool {
        matches!(self, Disconnect::Refused(404 | 405 | 426 | 501))
    }

    /// What the end of a connection means for the client (see [`CloseMeaning`]).
    pub fn meaning(self) -> CloseMeaning {
        match self {
            Disconnect::Closed(1000 | 1001) => CloseMeaning::Normal,
            Disconnect::Closed(CLOSE_POLICY) => CloseMeaning::Policy,
            Disconnect::Closed(CLOSE_UNAUTHENTICATED) | Disconnect::Refused(401) => CloseMeaning::Unauthenticated,
            Disconnect::Closed(CLOSE_FORBIDDEN) | Disconnect::Refused(403) => CloseMeaning::Revoked,
            why if why.is_unsupported() => CloseMeaning::Unsupported,
            Disconnect::Closed(_) | Disconnect::Refused(_) | Disconnect::Network => CloseMeaning::Broken,
        }
    }
}

/// What a closed or refused connection means, and so what the session does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseMeaning {
    /// 1000 / 1001: the server closed cleanly (restart, deploy). Reconnect with backoff;
    /// not an error.
    Normal,
    /// 1008: policy — this client read too slowly or sent a frame over the limit. Reconnect
    /// with backoff (resuming with `since`), and report it.
    Policy,
    /// 4401 / 401: the credentials did not authenticate (an expired customer token). Pause
    /// for minutes and ask for fresh credentials, then try again.
    Unauthenticated,
    /// 4403 / 403: the key was revoked or may not use the stream. Stop: retrying cannot
    /// succeed with this key.
    Revoked,
    /// 404 / 405 / 426 / 501 to the upgrade: the server has no stream. Pause for minutes.
    Unsupported,
    /// The network failed, the server fell silent, or an unexpected close code: reconnect
    /// with backoff, and report it.
    Broken,
}

/// When to reconnect the stream: exponential backoff with full jitter, and a long pause
/// after an authentication failure or a server without the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Ceiling of the first reconnect's delay (default 1 s).
    pub initial_delay: Duration,
    /// Largest ceiling (default 60 s).
    pub max_delay: Duration,
    /// Pause after 4401/4403 or an unsupported endpoint (default 5 min, ±20 %).
    pub refused_delay: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            refused_delay: Duration::from_secs(300),
        }
    }
}

impl ReconnectPolicy {
    /// The delay before reconnect number `attempt` (0 = the first after a connection that
    /// worked) after `why`; `jitter` is a uniform draw in `[0, 1)`.
    pub fn delay(&self, why: Disconnect, attempt: u32, jitter: f64) -> Duration {
        let jitter = jitter.clamp(0.0, 1.0);
        if why.is_auth_failure() || why.is_unsupported() {
            return self.refused_delay.mul_f64(0.8 + 0.4 * jitter);
        }
        let policy = RetryPolicy {
            initial_delay: self.initial_delay,
            max_delay: self.max_delay,
            ..RetryPolicy::default()
        };
        policy.ceiling(attempt).mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reconnects_back_off_and_pause_after_refusals() {
        let p = ReconnectPolicy::default();
        assert_eq!(p.delay(Disconnect::Network, 0, 0.5), Duration::from_millis(500));
        assert_eq!(
            p.delay(Disconnect::Closed(CLOSE_POLICY), 3, 0.5),
            Duration::from_secs(4)
        );
        assert_eq!(
            p.delay(Disconnect::Network, 30, 0.999_999),
            Duration::from_secs(60).mul_f64(0.999_999)
        );
        for why in [
            Disconnect::Closed(CLOSE_UNAUTHENTICATED),
            Disconnect::Closed(CLOSE_FORBIDDEN),
            Disconnect::Refused(401),
            Disconnect::Refused(404),
        ] {
            let d = p.delay(why, 0, 0.0);
            assert_eq!(d, Duration::from_secs(240), "{why:?}");
        }
        assert!(Disconnect::Refused(403).is_auth_failure());
        assert!(!Disconnect::Refused(503).is_auth_failure());
    }

    #[test]
    fn subscribe_parses_with_and_without_since() {
        let op: ClientOp = serde_json::from_value(json!({"op":"subscribe","subjects":["c1"],"since":12})).unwrap();
        assert_eq!(
            op,
            ClientOp::Subscribe {
                subjects: vec!["c1".into()],
                since: Some(12)
            }
        );
        let op: ClientOp = serde_json::from_value(json!({"op":"subscribe","subjects":[]})).unwrap();
        assert!(matches!(op, ClientOp::Subscribe { since: None, .. }));
    }

    #[test]
    fn unknown_op_and_extra_fields_are_refused() {
        assert!(serde_json::from_value::<ClientOp>(json!({"op":"drop_tables"})).is_err());
        assert!(serde_json::from_value::<ClientOp>(json!({"op":"subscribe","subjects":[],"x":1})).is_err());
    }

    #[test]
    fn server_messages_use_the_design_shape() {
        let m = ServerMessage::Resync { seq: 7 };
        assert_eq!(serde_json::to_value(&m).unwrap(), json!({"type":"resync","seq":7}));
        let m: ServerMessage = serde_json::from_value(json!({"type":"usage.threshold","seq":9,"subject":"c1",
            "data":{"feature":"api_calls","threshold":0.8,"usage":800,"limit":1000}}))
        .unwrap();
        assert_eq!(m.seq(), Some(9));
    }

    #[test]
    fn a_frame_reads_as_the_derived_deserialize_reads_it() {
        let frames = [
            r#"{"type":"subscribed","seq":3,"subjects":["c1","c2"]}"#,
            r#"{"seq":4,"type":"entitlements.updated","subject":"c1","data":{"subject":"c1","version":2,"ttl_ms":60000,"entitlements":{}}}"#,
            r#"{"type":"usage.threshold","seq":9,"subject":"c1","data":{"feature":"f","threshold":0.8,"usage":8,"limit":10},"x":[1]}"#,
            r#"{"type":"schema.updated","seq":5,"data":{"etag":"\"v2\""}}"#,
            r#"{"type":"resync","seq":7,"subject":12,"data":null}"#,
            r#"{"type":"error","code":"forbidden","message":"no \u00e9"}"#,
            r#"{"type":"nonsense","seq":1}"#,
            r#"{"seq":1}"#,
            r#"{"type":"resync"}"#,
            r#"{"type":"resync","seq":-1}"#,
            r#"{"type":"resync","seq":1,"seq":2}"#,
            r#"{"type":"subscribed","seq":1,"subjects":"c1"}"#,
            r#"{"type":"entitlements.updated","seq":1,"subject":"c1"}"#,
            r#"{"type":"usage.threshold","seq":1,"subject":"c1","data":{"feature":"f"}}"#,
            r#"{"type":7,"seq":1}"#,
            r#"[1,2]"#,
            r#"{"type":"resync","seq":1"#,
        ];
        for frame in frames {
            let derived = serde_json::from_str::<ServerMessage>(frame);
            match (ServerMessage::from_frame(frame), derived) {
                (Ok(read), Ok(derived)) => assert_eq!(read, derived, "{frame}"),
                (Err(_), Err(_)) => {}
                (read, derived) => panic!("{frame}: from_frame {read:?}, derived {derived:?}"),
            }
        }
        assert!(
            ServerMessage::from_frame(r#"{"type":"nonsense"}"#)
                .unwrap_err()
                .to_string()
                .starts_with("unknown variant `nonsense`")
        );
        assert_eq!(
            ServerMessage::from_frame(r#"{"seq":1}"#).unwrap_err().to_string(),
            "missing field `type`"
        );
    }
}
