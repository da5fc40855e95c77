//! Drives the [`Outbox`](crate::outbox::Outbox) on the page's thread: asks it what to send,
//! gzips and POSTs each batch with `fetch`, hands the server's answer back, and sets one
//! `setTimeout` for the outbox's next wake-up — none at all while it is idle. Every batching,
//! retry and drop decision is the outbox's.

use std::{rc::Rc, time::Duration};

use futures_channel::oneshot;
use futures_util::future::{Either, select};
use gloo_timers::{callback::Timeout, future::TimeoutFuture};

use super::{
    Bodies, Inner,
    credentials::{Sent, Whose},
    host,
    http::{self, Call, Failure},
};
use crate::{
    codec::{compress, encode_batch},
    error::Error,
    outbox::{Acknowledgement, Answer, Dispatch, Settled},
    retry::Outcome,
    wire::Rejection,
};

/// The sender's own state: its timer, the bodies of unsettled batches and who waits.
#[derive(Default)]
pub(crate) struct SenderState {
    /// The wake-up set, and for when (outbox time).
    timer: Option<(u64, Timeout)>,
    bodies: Bodies,
    /// Requests out.
    sending: usize,
    /// A drive is queued as a microtask.
    wake_queued: bool,
    /// Body bytes of the keepalive requests out: a browser lets a page have at most
    /// [`KEEPALIVE_MAX_BYTES`](super::lifecycle::KEEPALIVE_MAX_BYTES) of them in flight.
    pub keepalive_bytes: usize,
    /// `flush()`/`shutdown()` callers: resolved once the low watermark reaches the target.
    waiters: Vec<(u64, oneshot::Sender<()>)>,
}

impl SenderState {
    /// No timer and no request out.
    pub fn idle(&self) -> bool {
        self.timer.is_none() && self.sending == 0 && !self.wake_queued
    }
}

/// A push asked for the sender: drive once, from a microtask (not inside `track()`).
pub(crate) fn wake(inner: &Rc<Inner>) {
    {
        let mut state = inner.sender.borrow_mut();
        if state.wake_queued {
            return;
        }
        state.wake_queued = true;
    }
    let inner = inner.clone();
    wasm_bindgen_futures::spawn_local(async move {
        inner.sender.borrow_mut().wake_queued = false;
        drive(&inner);
    });
}

/// Sends what the outbox says is due and sets the timer for its next wake-up.
pub(crate) fn drive(inner: &Rc<Inner>) {
    let now = host::monotonic_ms();
    let (dispatches, wake_at) = {
        let mut outbox = inner.outbox.borrow_mut();
        let dispatches = outbox.poll(now);
        (dispatches, outbox.next_wake(now))
    };
    for dispatch in dispatches {
        let (first_seq, body) = match dispatch {
            Dispatch::Send { first_seq, events } => match encode(inner, &events) {
                Ok(body) => {
                    let body = Rc::new(body);
                    inner.sender.borrow_mut().bodies.insert(first_seq, body.clone());
                    (first_seq, body)
                }
                Err(error) => {
                    settle(inner, first_seq, Answer::Unsendable, Some(error), &[]);
                    continue;
                }
            },
            Dispatch::Resend { first_seq, .. } => match inner.sender.borrow().bodies.get(&first_seq) {
                Some(body) => (first_seq, body.clone()),
                None => continue,
            },
        };
        inner.sender.borrow_mut().sending += 1;
        let inner = inner.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let attempted = attempt(&inner, first_seq, &body, false).await;
            inner.sender.borrow_mut().sending -= 1;
            attempted.settle(&inner, first_seq);
            drive(&inner);
        });
    }
    set_timer(inner, wake_at, now);
}

/// Keeps one timer for `wake_at` (outbox time), or none.
fn set_timer(inner: &Rc<Inner>, wake_at: Option<u64>, now: u64) {
    let mut state = inner.sender.borrow_mut();
    match wake_at {
        None => state.timer = None, // dropping a `Timeout` clears it
        Some(at) if state.timer.as_ref().is_some_and(|(set, _)| *set == at) => {}
        Some(at) => {
            let delay = u32::try_from(at.saturating_sub(now)).unwrap_or(u32::MAX);
            let weak = Rc::downgrade(inner);
            let timeout = Timeout::new(delay, move || {
                if let Some(inner) = weak.upgrade() {
                    inner.sender.borrow_mut().timer = None;
                    drive(&inner);
                }
            });
            state.timer = Some((at, timeout));
        }
    }
}

/// `opt_out()`: the outbox discards what is queued and waiting for a retry; their bodies go
/// too, and `flush()` callers waiting on them are answered. Returns how many events it
/// discarded.
pub(crate) fn discard(inner: &Rc<Inner>) -> u64 {
    let ranges = inner.outbox.borrow_mut().discard();
    {
        let mut state = inner.sender.borrow_mut();
        for (first_seq, _) in &ranges {
            state.bodies.remove(first_seq);
        }
    }
    for &(first_seq, count) in &ranges {
        super::persist::forget(inner, first_seq, count);
    }
    wake_waiters(inner);
    drive(inner);
    ranges.iter().map(|&(_, count)| count).sum()
}

/// Resolves once every event before `target` is settled; `timeout` error after `timeout`.
pub(crate) async fn wait_settled(inner: &Rc<Inner>, target: u64, timeout: Duration) -> Result<(), Error> {
    if inner.outbox.borrow().low_watermark() >= target {
        return Ok(());
    }
    let (tx, rx) = oneshot::channel();
    inner.sender.borrow_mut().waiters.push((target, tx));
    let millis = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    match select(rx, TimeoutFuture::new(millis)).await {
        Either::Left(_) => Ok(()),
        Either::Right(_) => Err(Error::Timeout(timeout)),
    }
}

fn wake_waiters(inner: &Inner) {
    let low = inner.outbox.borrow().low_watermark();
    let mut state = inner.sender.borrow_mut();
    let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut state.waiters)
        .into_iter()
        .partition(|(target, tx)| *target <= low || tx.is_canceled());
    state.waiters = waiting;
    drop(state);
    for (_, tx) in done {
        let _ = tx.send(());
    }
}

fn encode(inner: &Inner, events: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
    let body = encode_batch(events.iter().map(|e| &e[..]));
    compress(inner.config.compression, &body)
}

/// What one attempt came back with.
enum Attempted {
    /// A 2xx, read by the core's rules: whole (with or without counts) or unclear.
    Acknowledged(Acknowledgement),
    Failed {
        status: u16,
        timeout: bool,
        retry_after: Option<String>,
        error: Error,
    },
}

impl Attempted {
    fn settle(self, inner: &Rc<Inner>, first_seq: u64) {
        match self {
            Attempted::Acknowledged(ack) => {
                let error = match &ack {
                    Acknowledgement::Unclear(why) => Some(Error::Network(why.clone())),
                    _ => None,
                };
                settle(inner, first_seq, ack.answer(), error, ack.rejections());
            }
            Attempted::Failed {
                status,
                timeout,
                retry_after,
                error,
            } => {
                let outcome = match (timeout, status) {
                    (true, _) => Outcome::Timeout,
                    (false, 0) => Outcome::Network,
                    (false, status) => Outcome::Status {
                        status,
                        retry_after: retry_after.as_deref(),
                    },
                };
                settle(inner, first_seq, Answer::Failed(outcome), Some(error), &[]);
            }
        }
    }
}

/// Hands an answer to the outbox and carries out what it decided (callbacks, waiters).
fn settle(inner: &Rc<Inner>, first_seq: u64, answer: Answer<'_>, error: Option<Error>, rejections: &[Rejection]) {
    // As the native spool: a batch leaves the store before the outbox settles it, and stays
    // there only while it may still succeed (at the next page load).
    if answer.leaves_store() {
        let count = inner.outbox.borrow().batch_len(first_seq);
        super::persist::forget(inner, first_seq, count);
    }
    let settled =
        inner
            .outbox
            .borrow_mut()
            .answer(first_seq, answer, host::monotonic_ms(), host::wall(), host::jitter());
    match settled {
        None => {}
        Some(Settled::Delivered { .. }) => {
            inner.sender.borrow_mut().bodies.remove(&first_seq);
            for rejection in rejections {
                inner.report(Error::Rejected(rejection.clone()));
            }
        }
        Some(Settled::Retry { .. }) => {}
        Some(Settled::GaveUp { .. }) => {
            inner.sender.borrow_mut().bodies.remove(&first_seq);
            inner.report(error.unwrap_or(Error::Closed));
        }
    }
    wake_waiters(inner);
    super::entitlements::refetch_settled(inner);
}

/// Sends batch `first_seq`, taken as the page is hidden or left, with `fetch(keepalive)`:
/// `beacon` (the beacon route's body) when given, else its gzip body to the ingest route.
/// The gzip body is kept either way, for a resend should the page live on and this attempt
/// fail.
pub(crate) fn send_keepalive(inner: &Rc<Inner>, first_seq: u64, events: &[Vec<u8>], beacon: Option<Vec<u8>>) {
    let body = match encode(inner, events) {
        Ok(body) => Rc::new(body),
        Err(error) => {
            settle(inner, first_seq, Answer::Unsendable, Some(error), &[]);
            return;
        }
    };
    let size = beacon.as_ref().map_or(body.len(), Vec::len);
    {
        let mut state = inner.sender.borrow_mut();
        state.bodies.insert(first_seq, body.clone());
        state.sending += 1;
        state.keepalive_bytes += size;
    }
    let inner = inner.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let attempted = match &beacon {
            Some(beacon) => {
                let url = format!("{}/v1/beacon", inner.config.base_url());
                let call = Call {
                    method: "POST",
                    url: &url,
                    headers: &[("content-type", "text/plain;charset=UTF-8")],
                    body: Some(beacon),
                    keepalive: true,
                };
                beacon_exchange(&inner, call).await
            }
            None => attempt(&inner, first_seq, &body, true).await,
        };
        {
            let mut state = inner.sender.borrow_mut();
            state.sending -= 1;
            state.keepalive_bytes -= size;
        }
        attempted.settle(&inner, first_seq);
        // Still hidden: the next piece, now that the quota has room again.
        super::lifecycle::continue_unload(&inner);
        drive(&inner);
    });
}

/// One POST of a batch body, with the customer token of the user who tracked it.
async fn attempt(inner: &Rc<Inner>, first_seq: u64, body: &[u8], keepalive: bool) -> Attempted {
    let encoding = inner.config.compression.as_str();
    let headers = inner.headers(&[
        ("content-type", "application/cloudevents-batch+json"),
        ("content-encoding", encoding),
    ]);
    let call = Call {
        method: "POST",
        url: &inner.ingest_url,
        headers: &headers,
        body: Some(body),
        keepalive,
    };
    let sent = match super::credentials::send(inner, Whose::Batch(first_seq), call).await {
        Sent::Answered(reply) => Ok(reply),
        Sent::Failed(failure) => Err(failure),
        // No token to send: waits and tries again, as for an unreachable server (the
        // events are kept, not dropped).
        Sent::NoToken(error) => {
            return Attempted::Failed {
                status: 0,
                timeout: false,
                retry_after: None,
                error,
            };
        }
    };
    read_answer(inner, sent)
}

/// The beacon route: its credentials are in the body, so the request goes as it is (no
/// customer-token header, which would need a preflight).
async fn beacon_exchange(inner: &Inner, call: Call<'_>) -> Attempted {
    let sent = http::send(call, inner.config.request_timeout).await;
    read_answer(inner, sent)
}

/// A request to an ingest route, read as what the outbox needs to hear.
fn read_answer(inner: &Inner, sent: Result<http::Reply, Failure>) -> Attempted {
    match sent {
        // `fetch` rejects a body cut short, and its `Content-Length` counts the bytes before
        // decompression: no length to compare here.
        Ok(reply) if (200..300).contains(&reply.status) => Attempted::Acknowledged(Acknowledgement::read(
            reply.status,
            reply.header("content-type").as_deref(),
            None,
            Ok(&reply.body),
        )),
        Ok(reply) => Attempted::Failed {
            status: reply.status,
            timeout: false,
            retry_after: reply.header("retry-after"),
            error: reply.error(),
        },
        Err(failure) => Attempted::Failed {
            status: 0,
            timeout: matches!(failure, Failure::Timeout),
            retry_after: None,
            error: failure.into_error(inner.config.request_timeout),
        },
    }
}
