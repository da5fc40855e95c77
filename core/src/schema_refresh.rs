//! When the client refreshes the server's event schemas (`GET /v1/schema`), sans I/O.
//!
//! The client validates `track()` against the server's schemas. [`SchemaRefresh`] decides
//! when to fetch them and with which `If-None-Match`: at start, then every
//! `schema_refresh_interval`, and at once when the stream announces a new ETag
//! (`schema.updated`) that differs from the one held. The runtime sends the GET it is given
//! ([`SchemaRefresh::poll`]), tells it how the GET ended ([`SchemaRefresh::completed`]) and
//! sleeps until [`SchemaRefresh::next_wake`]; one fetch runs at a time, and an announcement
//! that arrives while one runs is fetched right after it.

use std::time::Duration;

use crate::error::Error;

/// A `GET /v1/schema` to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRequest {
    /// Send as `If-None-Match` (the ETag of the schemas held).
    pub if_none_match: Option<String>,
}

/// How a `GET /v1/schema` ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaAnswer {
    /// `200` with a document the client installed, and its ETag (the `ETag` header, else
    /// the document's `etag`).
    Installed {
        /// The new ETag.
        etag: Option<String>,
    },
    /// `304 Not Modified`: the schemas held are current.
    NotModified,
    /// No usable answer (network, an error status, an unreadable or invalid document).
    Failed,
}

/// What an HTTP status answering `GET /v1/schema` means.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaStatus {
    /// `304`: nothing changed.
    NotModified,
    /// `2xx`: read the body and install it.
    Document,
}

/// Reads the status of a `GET /v1/schema` answer: `304`, a document, or the error to report
/// (`unauthorized` for 401, an HTTP error naming the status otherwise).
pub fn status_meaning(status: u16) -> Result<SchemaStatus, Error> {
    match status {
        304 => Ok(SchemaStatus::NotModified),
        200..=299 => Ok(SchemaStatus::Document),
        401 => Err(Error::Unauthorized {
            message: "the server refused the API key while fetching schemas".into(),
        }),
        status => Err(Error::Http {
            status,
            code: format!("http_{status}"),
            message: format!("GET /v1/schema answered {status}"),
        }),
    }
}

/// The refresh schedule and the ETag of the schemas held. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRefresh {
    interval: u64,
    etag: Option<String>,
    /// When the next fetch is due (Unix ms).
    due_at: u64,
    in_flight: bool,
    /// A new ETag was announced while a fetch ran: fetch again when it ends.
    again: bool,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl SchemaRefresh {
    /// A schedule refreshing every `interval`, the first fetch due at `now`.
    pub fn new(interval: Duration, now: u64) -> Self {
        SchemaRefresh {
            interval: ms(interval),
            etag: None,
            due_at: now,
            in_flight: false,
            again: false,
        }
    }

    /// The GET to send now, if one is due (the schedule then waits for
    /// [`SchemaRefresh::completed`]).
    pub fn poll(&mut self, now: u64) -> Option<SchemaRequest> {
        if self.in_flight || now < self.due_at {
            return None;
        }
        self.in_flight = true;
        self.again = false;
        Some(SchemaRequest {
            if_none_match: self.etag.clone(),
        })
    }

    /// When to call [`SchemaRefresh::poll`] next (Unix ms); `None` while a fetch runs.
    pub fn next_wake(&self) -> Option<u64> {
        (!self.in_flight).then_some(self.due_at)
    }

    /// The stream announced schemas with `etag` at `now`: fetch at once unless they are the
    /// ones held.
    pub fn announced(&mut self, etag: &str, now: u64) {
        if self.etag.as_deref() == Some(etag) {
            return;
        }
        if self.in_flight {
            self.again = true;
        } else {
            self.due_at = self.due_at.min(now);
        }
    }

    /// The fetch from [`SchemaRefresh::poll`] ended at `now`. The next one is due an
    /// interval later (at once if a new ETag was announced meanwhile).
    pub fn completed(&mut self, answer: SchemaAnswer, now: u64) {
        self.in_flight = false;
        self.installed(answer);
        self.due_at = if self.again {
            now
        } else {
            now.saturating_add(self.interval)
        };
        self.again = false;
    }

    /// A fetch made outside the schedule (an explicit refresh, sent without
    /// `If-None-Match`) ended: keeps the ETag of what it installed.
    pub fn installed(&mut self, answer: SchemaAnswer) {
        if let SchemaAnswer::Installed { etag } = answer {
            self.etag = etag;
        }
    }

    /// The ETag of the schemas held.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_795_514_400_000;
    const MIN: u64 = 60_000;

    fn refresh() -> SchemaRefresh {
        SchemaRefresh::new(Duration::from_secs(300), T0)
    }

    #[test]
    fn fetches_at_start_then_every_interval_with_the_etag_held() {
        let mut r = refresh();
        assert_eq!(r.next_wake(), Some(T0));
        assert_eq!(r.poll(T0), Some(SchemaRequest { if_none_match: None }));
        assert_eq!(r.poll(T0), None, "one fetch at a time");
        assert_eq!(r.next_wake(), None);
        r.completed(
            SchemaAnswer::Installed {
                etag: Some("\"e1\"".into()),
            },
            T0 + 10,
        );
        assert_eq!(r.next_wake(), Some(T0 + 10 + 5 * MIN));
        assert_eq!(r.poll(T0 + 5 * MIN), None);
        let req = r.poll(T0 + 10 + 5 * MIN).unwrap();
        assert_eq!(req.if_none_match.as_deref(), Some("\"e1\""));
        r.completed(SchemaAnswer::NotModified, T0 + 6 * MIN);
        assert_eq!(r.etag(), Some("\"e1\""));
        r.poll(T0 + 11 * MIN).unwrap();
        r.completed(SchemaAnswer::Failed, T0 + 11 * MIN);
        assert_eq!(r.etag(), Some("\"e1\""), "a failure keeps what is held");
        assert_eq!(r.next_wake(), Some(T0 + 16 * MIN));
    }

    #[test]
    fn a_new_etag_from_the_stream_is_fetched_at_once_and_the_held_one_is_not() {
        let mut r = refresh();
        r.poll(T0).unwrap();
        r.completed(
            SchemaAnswer::Installed {
                etag: Some("\"e1\"".into()),
            },
            T0,
        );
        r.announced("\"e1\"", T0 + MIN);
        assert_eq!(r.poll(T0 + MIN), None, "the schemas held");
        r.announced("\"e2\"", T0 + MIN);
        assert_eq!(r.next_wake(), Some(T0 + MIN));
        let req = r.poll(T0 + MIN).unwrap();
        assert_eq!(req.if_none_match.as_deref(), Some("\"e1\""));
        // Announced again while that fetch runs: fetched once more right after it.
        r.announced("\"e3\"", T0 + MIN + 5);
        r.completed(
            SchemaAnswer::Installed {
                etag: Some("\"e2\"".into()),
            },
            T0 + MIN + 10,
        );
        assert_eq!(r.next_wake(), Some(T0 + MIN + 10));
    }

    #[test]
    fn statuses_read_as_the_design_says() {
        assert_eq!(status_meaning(304).unwrap(), SchemaStatus::NotModified);
        assert_eq!(status_meaning(200).unwrap(), SchemaStatus::Document);
        assert_eq!(status_meaning(401).unwrap_err().code(), "unauthorized");
        let err = status_meaning(503).unwrap_err();
        assert_eq!(err.code(), "http_503");
        assert!(err.to_string().contains("503"), "{err}");
    }
}
