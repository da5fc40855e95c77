//! JSON bodies of the HTTP API shared by the server and the SDKs (DESIGN §3).

use serde::{Deserialize, Serialize};

use crate::{error::ValidationError, event::Event};

/// `202` answer of `POST /v1/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestResponse {
    /// Events stored for the first time.
    pub accepted: u64,
    /// Events whose `(source, id)` was already stored.
    pub duplicates: u64,
    /// Events refused, with the reason; the rest of the batch was stored.
    #[serde(default)]
    pub rejected: Vec<Rejection>,
}

/// One refused event of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Position in the batch (0-based).
    pub index: usize,
    /// The event's id when it had a readable one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Stable error code (`invalid_event`, `schema_violation`, `unknown_type` …).
    pub code: String,
    /// What was wrong.
    pub message: String,
    /// JSON pointer inside the event.
    #[serde(default)]
    pub path: String,
}

impl Rejection {
    /// Builds the report of a refused event.
    pub fn new(index: usize, id: Option<String>, err: ValidationError) -> Self {
        Rejection {
            index,
            id,
            code: err.code.to_owned(),
            message: err.message,
            path: err.path,
        }
    }
}

/// Every error response: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// `GET /v1/events` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsPage {
    /// Stored events, oldest first.
    pub events: Vec<Event>,
    /// Pass as `cursor` to read on; `null` at the end.
    pub next_cursor: Option<String>,
}
