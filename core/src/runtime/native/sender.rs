//! The background sender: drives the [`Outbox`](crate::outbox::Outbox) — asks it what to
//! send, compresses and POSTs it, hands the server's answer back, and sleeps until the
//! outbox's next wake-up (with no timer at all while it is idle). What to send, when to
//! retry and what is dropped are the outbox's decisions; this file only does the I/O.

use std::{collections::HashMap, sync::Arc, time::SystemTime};

use bytes::Bytes;
use reqwest::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use tokio::sync::mpsc;

use super::{
    Shared,
    credentials::{self, Sent, Whose},
};
use crate::{
    codec::{compress, encode_batch},
    error::Error,
    outbox::{Acknowledgement, Answer, Dispatch, Settled},
    retry::Outcome,
    wire::ErrorBody,
};

/// What one attempt to send a batch came back with.
enum Attempted {
    /// A 2xx, read by the core's rules: whole (with or without counts) or unclear.
    Acknowledged(Acknowledgement),
    /// An error status, a connection failure or a timeout.
    Failed {
        /// 0: no status (connection failure or timeout, see `timeout`).
        status: u16,
        timeout: bool,
        retry_after: Option<String>,
        error: Error,
    },
    /// Shutdown's deadline cut it off.
    Aborted,
}

impl Attempted {
    fn answer(&self) -> Answer<'_> {
        match self {
            Attempted::Acknowledged(ack) => ack.answer(),
            Attempted::Failed { timeout: true, .. } => Answer::Failed(Outcome::Timeout),
            Attempted::Failed {
                status, retry_after, ..
            } => Answer::Failed(match *status {
                0 => Outcome::Network,
                status => Outcome::Status {
                    status,
                    retry_after: retry_after.as_deref(),
                },
            }),
            Attempted::Aborted => Answer::Aborted,
        }
    }
}

/// Runs until shutdown has drained (or aborted) the outbox.
pub(crate) async fn run(shared: Arc<Shared>) {
    let pipeline = &shared.pipeline;
    let (answers_tx, mut answers) = mpsc::unbounded_channel::<(u64, Attempted)>();
    // The encoded body of each batch not yet settled: a retry sends the same bytes.
    let mut bodies: HashMap<u64, Bytes> = HashMap::new();
    loop {
        let (dispatches, wake_at, finished) = {
            let mut state = pipeline.lock();
            let now = pipeline.now_ms();
            let dispatches = state.outbox.poll(now);
            // Batches the outbox let go of without an answer (`opt_out()` discards those
            // waiting for a retry) take their bodies with them.
            bodies.retain(|&first_seq, _| state.outbox.batch_len(first_seq) > 0);
            (dispatches, state.outbox.next_wake(now), state.outbox.finished())
        };
        pipeline.wakeups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if dispatches.iter().any(|d| matches!(d, Dispatch::Send { .. })) {
            pipeline.notify_progress(); // room in the queue for blocked `track()` callers
        }
        for dispatch in dispatches {
            let (first_seq, body) = match dispatch {
                Dispatch::Send { first_seq, events } => match encode(&shared, &events) {
                    Ok(body) => {
                        bodies.insert(first_seq, body.clone());
                        (first_seq, body)
                    }
                    Err(error) => {
                        settle(&shared, first_seq, Answer::Unsendable, Some(&error), &[]);
                        continue;
                    }
                },
                Dispatch::Resend { first_seq, retry } => {
                    tracing::debug!(first_seq, retry, "sending a batch again");
                    match bodies.get(&first_seq) {
                        Some(body) => (first_seq, body.clone()),
                        None => continue,
                    }
                }
            };
            let (shared, answers_tx) = (shared.clone(), answers_tx.clone());
            tokio::spawn(async move {
                let attempted = attempt(&shared, first_seq, body).await;
                let _ = answers_tx.send((first_seq, attempted));
            });
        }
        if finished {
            return;
        }
        let sleep = async {
            match wake_at {
                Some(at) => tokio::time::sleep_until(pipeline.instant_at(at).into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some((first_seq, attempted)) = answers.recv() => {
                let closed = Error::Closed;
                let unclear;
                let (error, rejections) = match &attempted {
                    Attempted::Acknowledged(Acknowledgement::Unclear(why)) => {
                        unclear = Error::Network(why.clone());
                        (Some(&unclear), &[][..])
                    }
                    Attempted::Acknowledged(ack) => (None, ack.rejections()),
                    Attempted::Failed { error, .. } => (Some(error), &[][..]),
                    Attempted::Aborted => (Some(&closed), &[][..]),
                };
                if settle(&shared, first_seq, attempted.answer(), error, rejections) {
                    bodies.remove(&first_seq);
                }
            }
            () = pipeline.wake_sender.notified() => {}
            () = sleep => {}
        }
    }
}

/// Hands an answer to the outbox and carries out what it decided (spool, logs, callbacks).
/// Returns whether the batch is settled (its body can go).
fn settle(
    shared: &Arc<Shared>,
    first_seq: u64,
    answer: Answer<'_>,
    error: Option<&Error>,
    rejections: &[crate::wire::Rejection],
) -> bool {
    let pipeline = &shared.pipeline;
    // A batch leaves the spool before the outbox settles it, so `flush()` returning means
    // the spool no longer holds it. It stays there only while it may still succeed (at the
    // next start).
    if answer.leaves_store() {
        let count = pipeline.lock().outbox.batch_len(first_seq);
        pipeline.unspool(first_seq, count);
    }
    let settled = {
        let mut state = pipeline.lock();
        let now = pipeline.now_ms();
        state
            .outbox
            .answer(first_seq, answer, now, SystemTime::now(), fastrand::f64())
    };
    let done = match settled {
        None => false,
        Some(Settled::Delivered { .. }) => {
            for rejection in rejections {
                tracing::warn!(code = %rejection.code, path = %rejection.path, id = ?rejection.id, "event rejected by the server: {}", rejection.message);
                shared.callbacks.error(&Error::Rejected(rejection.clone()));
            }
            true
        }
        Some(Settled::Retry { retry, delay }) => {
            if let Some(err) = error {
                tracing::debug!(retry, ?delay, code = err.code(), "batch send failed; retrying: {err}");
            }
            false
        }
        Some(Settled::GaveUp { count, kept, .. }) => {
            let err = error.cloned().unwrap_or(Error::Closed);
            if kept {
                tracing::warn!(
                    events = count,
                    code = err.code(),
                    "batch kept in the spool for the next start: {err}"
                );
            } else {
                tracing::error!(events = count, code = err.code(), "batch dropped: {err}");
            }
            shared.callbacks.error(&err);
            true
        }
    };
    pipeline.notify_progress();
    if done {
        let low_watermark = pipeline.lock().low_watermark();
        shared.credentials.settled(low_watermark);
    }
    super::fetch::refetch_settled(shared);
    done
}

fn encode(shared: &Shared, events: &[Vec<u8>]) -> Result<Bytes, Error> {
    let body = encode_batch(events.iter().map(|e| &e[..]));
    Ok(Bytes::from(compress(shared.config.compression, &body)?))
}

/// One POST of a batch body (retried once with a fresher customer token after
/// `token_expired`); cut off when shutdown's deadline passes.
async fn attempt(shared: &Shared, first_seq: u64, body: Bytes) -> Attempted {
    let request = credentials::send(shared, Whose::Batch(first_seq), || {
        shared
            .http
            .post(&shared.ingest_url)
            .header(CONTENT_TYPE, "application/cloudevents-batch+json")
            .header(CONTENT_ENCODING, shared.config.compression.as_str())
            .body(body.clone())
    });
    let sent = tokio::select! {
        sent = request => sent,
        () = shared.pipeline.aborted() => return Attempted::Aborted,
    };
    let response = match sent {
        Sent::Answered(response) => response,
        Sent::Failed(e) => {
            return Attempted::Failed {
                status: 0,
                timeout: e.is_timeout(),
                retry_after: None,
                error: if e.is_timeout() {
                    Error::Timeout(shared.config.request_timeout)
                } else {
                    Error::Network(describe(&e))
                },
            };
        }
        // No token to send: waits and tries again, as for an unreachable server — the
        // events are kept, not dropped. (After `reset()` no event is accepted, so an
        // anonymous identity has none to send.)
        Sent::NoToken(error) => return untokened(error),
    };
    let status = response.status().as_u16();
    if response.status().is_success() {
        // Whether the answer is whole is the core's decision: a body cut after the status
        // line proves nothing about the batch (reqwest reports a body short of its
        // `Content-Length` as an error; the length is checked once more in the core).
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(CONTENT_TYPE);
        let declared_length = header(CONTENT_LENGTH).and_then(|v| v.trim().parse().ok());
        let body = response.bytes().await.map_err(|e| describe(&e));
        return Attempted::Acknowledged(Acknowledgement::read(
            status,
            content_type.as_deref(),
            declared_length,
            body.as_deref().map_err(String::as_str),
        ));
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Option<ErrorBody> = response.json().await.ok();
    if status == 401
        && body.as_ref().is_some_and(|b| b.code == credentials::TOKEN_EXPIRED)
        && shared.credentials.is_current(first_seq)
    {
        // Still expired after the one retry with a fresher token (the provider gave none
        // that the server takes): keep the events and try again later. (A previous user's
        // events whose token expired cannot get a fresh one: given up on as a 401.)
        let message = body.map_or_else(String::new, |b| format!("{}: {}", b.code, b.message));
        return untokened(Error::Unauthorized { message });
    }
    Attempted::Failed {
        status,
        timeout: false,
        retry_after,
        error: http_error(status, body),
    }
}

/// A batch that could not carry a valid customer token: retried after a backoff like a
/// connection failure (never given up on as a permanent 401).
fn untokened(error: Error) -> Attempted {
    Attempted::Failed {
        status: 0,
        timeout: false,
        retry_after: None,
        error,
    }
}

fn http_error(status: u16, body: Option<ErrorBody>) -> Error {
    let (code, message) = match body {
        Some(b) => (b.code, b.message),
        None => (format!("http_{status}"), format!("the server answered {status}")),
    };
    match status {
        401 => Error::Unauthorized { message },
        403 => Error::Forbidden { message },
        _ => Error::Http { status, code, message },
    }
}

/// A transport error with its causes, without Debug noise.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
