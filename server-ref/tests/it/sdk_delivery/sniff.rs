//! What the fault proxy's client sent, read off the bytes [`ChaosProxy`](super::chaos) forwards:
//! each HTTP/1.1 `POST /v1/events` a client sent whole (its event ids) and the status of the
//! answer — recorded only once the whole answer was written to the client's socket, so an
//! attempt whose answer was cut, stalled or lost with the server stays unanswered (`0`).
//! A connection that upgrades (the stream) or uses a framing this does not follow is no
//! longer read.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use meterline_core::codec::{Encoding, decompress_limited};
use serde_json::Value;

/// Every ingest attempt seen, in arrival order: its event ids and the status delivered.
pub type Attempts = Arc<Mutex<Vec<(Vec<String>, u16)>>>;

/// One HTTP message head and how many body bytes follow it.
struct Head {
    text: String,
    body: usize,
}

/// Splits the messages of one direction of a connection.
#[derive(Default)]
struct Messages {
    buffer: Vec<u8>,
    head: Option<Head>,
}

impl Messages {
    /// Takes in bytes; returns each message completed by them (head text, body), or `None`
    /// when the framing is one this does not follow.
    fn feed(&mut self, bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
        self.buffer.extend_from_slice(bytes);
        let mut done = Vec::new();
        loop {
            if self.head.is_none() {
                let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                    return Some(done);
                };
                let text = String::from_utf8_lossy(&self.buffer[..end]).to_ascii_lowercase();
                self.buffer.drain(..end + 4);
                if header(&text, "transfer-encoding").is_some() {
                    return None;
                }
                let body = header(&text, "content-length").map_or(Some(0), |v| v.parse().ok())?;
                self.head = Some(Head { text, body });
            }
            let head = self.head.as_ref()?;
            if self.buffer.len() < head.body {
                return Some(done);
            }
            let body: Vec<u8> = self.buffer.drain(..head.body).collect();
            let head = self.head.take()?;
            done.push((head.text, body));
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .skip(1)
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// The two directions of one proxied connection.
pub struct Exchange {
    attempts: Attempts,
    requests: Messages,
    responses: Messages,
    /// For each request sent and not yet answered: its attempt, if it was an ingest.
    waiting: VecDeque<Option<usize>>,
    stopped: bool,
}

impl Exchange {
    pub fn new(attempts: Attempts) -> Exchange {
        Exchange {
            attempts,
            requests: Messages::default(),
            responses: Messages::default(),
            waiting: VecDeque::new(),
            stopped: false,
        }
    }

    /// Bytes the client sent.
    pub fn sent_by_client(&mut self, bytes: &[u8]) {
        if self.stopped {
            return;
        }
        let Some(requests) = self.requests.feed(bytes) else {
            self.stopped = true;
            return;
        };
        for (head, body) in requests {
            let line = head.lines().next().unwrap_or_default().to_owned();
            if header(&head, "upgrade").is_some() || line.contains(" /v1/stream") {
                self.stopped = true;
                return;
            }
            let attempt = line.starts_with("post /v1/events ").then(|| {
                let ids = event_ids(header(&head, "content-encoding"), &body);
                let mut attempts = self.attempts.lock().unwrap();
                attempts.push((ids, 0));
                attempts.len() - 1
            });
            self.waiting.push_back(attempt);
        }
    }

    /// Bytes written to the client's socket.
    pub fn delivered_to_client(&mut self, bytes: &[u8]) {
        if self.stopped {
            return;
        }
        let Some(responses) = self.responses.feed(bytes) else {
            self.stopped = true;
            return;
        };
        for (head, _) in responses {
            let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            if let Some(Some(at)) = self.waiting.pop_front() {
                self.attempts.lock().unwrap()[at].1 = status;
            }
        }
    }
}

fn event_ids(encoding: Option<&str>, body: &[u8]) -> Vec<String> {
    let encoding: Encoding = encoding.unwrap_or("identity").parse().unwrap();
    let raw = decompress_limited(encoding, body, 64 << 20).unwrap();
    let events: Vec<Value> = serde_json::from_slice(&raw).unwrap();
    events.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}
