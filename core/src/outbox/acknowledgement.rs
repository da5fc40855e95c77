//! What a 2xx answer to a batch says, read by the rules every runtime shares (DESIGN §7).
//!
//! A success status alone proves nothing about a batch: the connection can break after the
//! status line and headers, leaving the body short of its `Content-Length` (or of its last
//! chunk), and a body can arrive whole but unreadable. Such an answer is *unclear* — the
//! server may have stored the batch or not — so the batch is sent again with the same ids
//! (the server stores each `(source, id)` once) and nothing is counted as delivered until a
//! whole answer comes. A whole answer without counts (an empty body, as an
//! OpenMeter-compatible `204`; JSON that is not ours; a body that does not claim to be JSON)
//! delivers every event, as before.

use super::Answer;
use crate::wire::{IngestResponse, Rejection};

/// A 2xx answer to a batch, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acknowledgement {
    /// A whole `202` with per-event results.
    Counted(IngestResponse),
    /// A whole answer without per-event results: every event counts as delivered.
    Uncounted,
    /// Not whole, or not readable: the batch is sent again. Says why, for the logs.
    Unclear(String),
}

impl Acknowledgement {
    /// Reads a 2xx answer. `content_type` and `declared_length` are the answer's
    /// `Content-Type` and `Content-Length` headers as received (pass `None` for the length
    /// when the HTTP layer decoded a compressed body); `body` is the body read to its end, or
    /// why reading it failed (the connection broke, the body ended short of its length).
    pub fn read(
        status: u16,
        content_type: Option<&str>,
        declared_length: Option<u64>,
        body: Result<&[u8], &str>,
    ) -> Acknowledgement {
        let body = match body {
            Ok(body) => body,
            Err(reason) => return Acknowledgement::Unclear(format!("the {status} answer's body was cut: {reason}")),
        };
        if let Some(declared) = declared_length
            && declared != body.len() as u64
        {
            return Acknowledgement::Unclear(format!(
                "the {status} answer's body has {} bytes of the {declared} its Content-Length declares",
                body.len()
            ));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Acknowledgement::Uncounted;
        }
        if status == 202
            && let Ok(counts) = serde_json::from_slice::<IngestResponse>(body)
        {
            return Acknowledgement::Counted(counts);
        }
        let claims_json = content_type.is_none_or(is_json);
        if claims_json && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
            return Acknowledgement::Unclear(format!(
                "the {status} answer's body is not the JSON it claims to be ({} bytes)",
                body.len()
            ));
        }
        Acknowledgement::Uncounted
    }

    /// The answer to hand to [`Outbox::answer`](super::Outbox::answer).
    pub fn answer(&self) -> Answer<'static> {
        match self {
            Acknowledgement::Counted(counts) => Answer::Counted {
                accepted: counts.accepted,
                duplicates: counts.duplicates,
                rejected: counts.rejected.len() as u64,
            },
            Acknowledgement::Uncounted => Answer::Delivered,
            Acknowledgement::Unclear(_) => Answer::Unclear,
        }
    }

    /// The events the server refused, to report one by one once the batch settled.
    pub fn rejections(&self) -> &[Rejection] {
        match self {
            Acknowledgement::Counted(counts) => &counts.rejected,
            _ => &[],
        }
    }
}

/// `application/json`, or any `…+json` type, parameters aside.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence
            .rsplit_once('+')
            .is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case("json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");
    const COUNTS: &[u8] =
        br#"{"accepted":2,"duplicates":1,"rejected":[{"index":2,"code":"invalid_event","message":"m","path":"/id"}]}"#;

    fn read(status: u16, content_type: Option<&str>, declared: Option<u64>, body: &[u8]) -> Acknowledgement {
        Acknowledgement::read(status, content_type, declared, Ok(body))
    }

    #[test]
    fn a_whole_202_is_counted_with_its_rejections() {
        let ack = read(202, JSON, Some(COUNTS.len() as u64), COUNTS);
        assert_eq!(
            ack.answer(),
            Answer::Counted {
                accepted: 2,
                duplicates: 1,
                rejected: 1
            }
        );
        assert_eq!(ack.rejections()[0].code, "invalid_event");
        // Decoded by the HTTP layer: no length to compare.
        assert!(matches!(read(202, JSON, None, COUNTS), Acknowledgement::Counted(_)));
    }

    #[test]
    fn a_body_cut_or_short_of_its_length_is_unclear() {
        let cut = Acknowledgement::read(202, JSON, Some(90), Err("connection reset"));
        assert_eq!(cut.answer(), Answer::Unclear);
        assert!(cut.rejections().is_empty());
        let short = &COUNTS[..20];
        for declared in [Some(COUNTS.len() as u64), None] {
            assert_eq!(
                read(202, JSON, declared, short).answer(),
                Answer::Unclear,
                "{declared:?}"
            );
        }
        // Nothing of the body arrived, although its length says it has some.
        assert_eq!(read(202, JSON, Some(45), b"").answer(), Answer::Unclear);
        let long = read(202, JSON, Some(10), COUNTS);
        assert!(
            matches!(long, Acknowledgement::Unclear(ref why) if why.contains("Content-Length")),
            "{long:?}"
        );
    }

    #[test]
    fn a_whole_body_that_is_not_the_json_it_claims_is_unclear() {
        let garbled = [b"<".as_slice(), &COUNTS[1..]].concat();
        for status in [200, 202] {
            for content_type in [JSON, Some("application/problem+json; charset=utf-8"), None] {
                assert_eq!(
                    read(status, content_type, Some(garbled.len() as u64), &garbled).answer(),
                    Answer::Unclear,
                    "{status} {content_type:?}"
                );
            }
        }
    }

    #[test]
    fn a_whole_answer_without_counts_delivers_every_event() {
        // An OpenMeter-compatible 204; an empty 200; JSON that is not ours; plain text.
        assert_eq!(read(204, None, None, b"").answer(), Answer::Delivered);
        assert_eq!(read(200, JSON, Some(0), b"").answer(), Answer::Delivered);
        assert_eq!(read(202, JSON, Some(11), br#"{"ok":true}"#).answer(), Answer::Delivered);
        assert_eq!(read(200, JSON, None, COUNTS).answer(), Answer::Delivered);
        assert_eq!(
            read(200, Some("text/plain"), Some(2), b"OK").answer(),
            Answer::Delivered
        );
    }
}
