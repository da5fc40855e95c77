//! The background sender: takes due batches from the pipeline, compresses them, POSTs them
//! and retries by the [`RetryPolicy`](crate::retry::RetryPolicy) until they settle.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};

use super::{Shared, pipeline::Counters};
use crate::{
    codec::{compress, encode_batch},
    error::Error,
    retry::{Outcome, RetryDecision},
    wire::{ErrorBody, IngestResponse},
};

/// Runs until shutdown has drained (or aborted) the pipeline.
pub(crate) async fn run(shared: Arc<Shared>) {
    let pipeline = &shared.pipeline;
    loop {
        let mut batches = Vec::new();
        let finished;
        {
            let mut state = pipeline.lock();
            let since_last = state.last_dispatch.elapsed();
            while state.in_flight.len() < pipeline.max_in_flight
                && !pipeline.is_aborted()
                && (state.queue.batch_due(&pipeline.rules, since_last)
                    || (state.draining && !state.queue.is_empty())
                    || state.head_seq < state.flush_target)
            {
                let first_seq = state.head_seq;
                let batch = state.queue.take_batch(&pipeline.rules);
                state.head_seq += batch.len() as u64;
                state.in_flight.insert(first_seq, batch.len());
                batches.push((first_seq, batch));
            }
            if !batches.is_empty() || state.queue.is_empty() {
                state.last_dispatch = Instant::now();
            }
            finished = (state.draining && state.queue.is_empty() && state.in_flight.is_empty())
                || (pipeline.is_aborted() && state.in_flight.is_empty());
        }
        if !batches.is_empty() {
            pipeline.notify_progress(); // room in the queue for blocked `track()` callers
        }
        for (first_seq, batch) in batches {
            tokio::spawn(send_batch(shared.clone(), first_seq, batch));
        }
        if finished {
            return;
        }
        let _ = tokio::time::timeout(pipeline.rules.flush_interval, pipeline.wake_sender.notified()).await;
    }
}

/// Sends one batch until it settles, then releases its in-flight slot.
async fn send_batch(shared: Arc<Shared>, first_seq: u64, events: Vec<Vec<u8>>) {
    let count = events.len() as u64;
    let counters = &shared.pipeline.counters;
    let result = deliver(&shared, &events).await;
    // The spool keeps a batch only while it may still succeed: at the next start it is sent
    // again (network failures, 5xx, 408/429 retries exhausted, shutdown's deadline). Such a
    // batch is not dropped: it stays in `spool_length`.
    let kept = result.as_ref().is_err_and(|e| !is_permanent(e)) && shared.pipeline.spooling();
    if !kept {
        shared.pipeline.unspool(first_seq, count);
    }
    match result {
        Ok(Delivered::Counted(resp)) => {
            Counters::add(&counters.sent, resp.accepted);
            Counters::add(&counters.duplicates, resp.duplicates);
            Counters::add(&counters.rejected, resp.rejected.len() as u64);
            Counters::add(&counters.batches, 1);
            for rejection in resp.rejected {
                tracing::warn!(code = %rejection.code, path = %rejection.path, id = ?rejection.id, "event rejected by the server: {}", rejection.message);
                shared.callbacks.error(&Error::Rejected(rejection));
            }
        }
        Ok(Delivered::Uncounted) => {
            Counters::add(&counters.sent, count);
            Counters::add(&counters.batches, 1);
        }
        Err(err) if kept => {
            tracing::warn!(
                events = count,
                code = err.code(),
                "batch kept in the spool for the next start: {err}"
            );
            shared.callbacks.error(&err);
        }
        Err(err) => {
            Counters::add(&counters.dropped, count);
            tracing::error!(events = count, code = err.code(), "batch dropped: {err}");
            shared.callbacks.error(&err);
        }
    }
    shared.pipeline.settle(first_seq);
    super::fetch::refetch_settled(&shared);
}

/// A failure that sending the same batch again cannot fix (a 4xx other than 408/429, or a
/// body that cannot be encoded).
fn is_permanent(err: &Error) -> bool {
    match err {
        Error::Http { status, .. } => (400..500).contains(status) && !matches!(status, 408 | 429),
        Error::Unauthorized { .. } | Error::Forbidden { .. } | Error::Codec { .. } => true,
        _ => false,
    }
}

enum Delivered {
    /// 202 with per-event results.
    Counted(IngestResponse),
    /// 2xx without a body we understand (e.g. an OpenMeter-compatible 204).
    Uncounted,
}

async fn deliver(shared: &Shared, events: &[Vec<u8>]) -> Result<Delivered, Error> {
    let body = encode_batch(events.iter().map(|e| &e[..]));
    let encoding = shared.config.compression;
    let body = bytes::Bytes::from(compress(encoding, &body)?);
    let mut retry = 0u32;
    loop {
        let request = shared
            .http
            .post(&shared.ingest_url)
            .header(CONTENT_TYPE, "application/cloudevents-batch+json")
            .header(CONTENT_ENCODING, encoding.as_str())
            .body(body.clone())
            .send();
        let response = tokio::select! {
            response = request => response,
            () = shared.pipeline.aborted() => return Err(Error::Closed),
        };
        let (attempt, failure) = match response {
            Ok(resp) if resp.status().is_success() => {
                let accepted = resp.status().as_u16() == 202;
                return Ok(match resp.json::<IngestResponse>().await {
                    Ok(parsed) if accepted => Delivered::Counted(parsed),
                    _ => Delivered::Uncounted,
                });
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                (Attempt { status, retry_after }, http_error(status, resp).await)
            }
            Err(e) if e.is_timeout() => (Attempt::NETWORK, Error::Timeout(shared.config.request_timeout)),
            Err(e) => (Attempt::NETWORK, Error::Network(describe(&e))),
        };
        let decision = shared
            .config
            .retry
            .decide(attempt.as_outcome(), retry, fastrand::f64(), SystemTime::now());
        match decision {
            RetryDecision::Done => unreachable!("2xx returned above"),
            RetryDecision::GiveUp => return Err(failure),
            RetryDecision::Retry { delay } => {
                tracing::debug!(
                    retry,
                    ?delay,
                    code = failure.code(),
                    "batch send failed; retrying: {failure}"
                );
                Counters::add(&shared.pipeline.counters.retried, 1);
                if !sleep_unless_aborted(shared, delay).await {
                    return Err(failure);
                }
                retry += 1;
            }
        }
    }
}

/// A failed attempt, kept owned so the `Retry-After` text outlives the response.
struct Attempt {
    status: u16,
    retry_after: Option<String>,
}

impl Attempt {
    /// No status: the connection failed or timed out.
    const NETWORK: Attempt = Attempt {
        status: 0,
        retry_after: None,
    };

    fn as_outcome(&self) -> Outcome<'_> {
        match self.status {
            0 => Outcome::Network,
            status => Outcome::Status {
                status,
                retry_after: self.retry_after.as_deref(),
            },
        }
    }
}

/// Sleeps for `delay`, waking early (and returning false) if shutdown gives up.
async fn sleep_unless_aborted(shared: &Shared, delay: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = shared.pipeline.aborted() => false,
    }
}

async fn http_error(status: u16, resp: reqwest::Response) -> Error {
    let body: Option<ErrorBody> = resp.json().await.ok();
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
