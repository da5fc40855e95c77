//! The worker's side of `entitlement()`: one flight fetches
//! `GET /v1/customers/{subject}/entitlements` (with `If-None-Match` when an answer is
//! cached), stores what came back, and ends its callers' wait — at the latest after
//! `entitlement_timeout`, while the request goes on to fill the cache.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use reqwest::{
    StatusCode,
    header::{ACCEPT, ETAG, IF_NONE_MATCH, RETRY_AFTER},
};

use super::{
    Shared,
    credentials::{self, Sent, Whose},
    entitlements::lock,
    flight::{Flight, Landing},
    sender::describe,
};
use crate::{
    entitlement::Entitlements,
    entitlement_cache::{FetchCompletion, FetchResult},
    error::Error,
    retry::parse_retry_after,
    stream::STREAM_SEQ_HEADER,
    wire::ErrorBody,
};

/// Ends the flight ("client shut down") and unregisters it however the task ends — also
/// when the runtime drops it unpolled at shutdown.
struct FlightGuard {
    shared: Arc<Shared>,
    subject: String,
    flight: Arc<Flight>,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.flight.land(Landing::Failed("client shut down".into()));
        self.shared.entitlements.flights.finish(&self.subject, &self.flight);
    }
}

/// The flight for `subject`, started on the worker unless one is already under way.
pub(crate) fn start(shared: &Arc<Shared>, subject: &str) -> Arc<Flight> {
    let (flight, created) = shared.entitlements.flights.join(subject);
    if created {
        let guard = FlightGuard {
            shared: shared.clone(),
            subject: subject.to_owned(),
            flight: flight.clone(),
        };
        shared.runtime.spawn(run(guard));
    }
    flight
}

/// Refetches `subjects` (after a stream `resync`), `REFETCH_CONCURRENCY` at a time.
pub(crate) async fn refetch_all(shared: Arc<Shared>, subjects: Vec<String>) {
    use futures_util::StreamExt;
    futures_util::stream::iter(subjects)
        .for_each_concurrent(crate::entitlement_cache::REFETCH_CONCURRENCY, |subject| {
            let shared = shared.clone();
            async move {
                let (flight, created) = shared.entitlements.flights.join(&subject);
                if created {
                    run(FlightGuard {
                        shared: shared.clone(),
                        subject,
                        flight,
                    })
                    .await;
                } else {
                    flight.wait_async().await;
                }
            }
        })
        .await;
}

async fn run(guard: FlightGuard) {
    let timeout = guard.shared.config.entitlement_timeout;
    let fetch = fetch_and_store(&guard.shared, &guard.subject);
    tokio::pin!(fetch);
    let landing = tokio::select! {
        landing = &mut fetch => landing,
        () = tokio::time::sleep(timeout) => {
            guard.flight.land(Landing::timed_out(timeout));
            fetch.await
        }
    };
    guard.flight.land(landing);
}

/// One fetch, stored into the cache. A `304` for an answer evicted meanwhile is followed by
/// one unconditional fetch.
async fn fetch_and_store(shared: &Arc<Shared>, subject: &str) -> Landing {
    let ents = &shared.entitlements;
    let mut conditional = true;
    loop {
        // Every event below the low watermark is settled: the server has counted it.
        let counted_through = shared.pipeline.lock().low_watermark();
        let epoch = ents.epoch.load(Ordering::Relaxed);
        let ticket = lock(&ents.cache).begin_fetch(subject, counted_through);
        let etag = ticket.etag.clone().filter(|_| conditional);
        let (result, error, as_of) = get(shared, subject, etag.as_deref()).await;
        let landing = Landing::of(&result);
        let now = ents.clock.now_ms();
        let completion = {
            let mut cache = lock(&ents.cache);
            if ents.epoch.load(Ordering::Relaxed) != epoch {
                // The user switched meanwhile: the answer is the previous user's.
                return Landing::Failed("the identity changed during the fetch".into());
            }
            cache.complete_fetch(ticket, result, now, fastrand::f64())
        };
        match error {
            Some(err) => report(shared, "entitlements", &err),
            None => lock(&ents.throttle).clear(),
        }
        after_completion(shared, subject, &completion, as_of);
        if completion.refetch && conditional {
            conditional = false;
            continue;
        }
        return landing;
    }
}

/// After a batch settled: refetches the subjects whose streamed answers may already count
/// local usage still kept on top of them (see
/// [`EntitlementCache::settled`](crate::entitlement_cache::EntitlementCache::settled)).
pub(crate) fn refetch_settled(shared: &Arc<Shared>) {
    let ents = &shared.entitlements;
    if !ents.any_cached.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let counted_through = shared.pipeline.lock().low_watermark();
    let due = lock(&ents.cache).settled(counted_through);
    for subject in due {
        start(shared, &subject);
    }
}

/// Keeps the stream's subscriptions in step with the cache. `as_of`: the stream seq the
/// stored answer is current to (the server's `Meterline-Stream-Seq`), the `since` of the
/// subject's subscription.
pub(crate) fn after_completion(shared: &Arc<Shared>, subject: &str, completion: &FetchCompletion, as_of: Option<u64>) {
    let ents = &shared.entitlements;
    if completion.added {
        ents.any_cached.store(true, std::sync::atomic::Ordering::Relaxed);
        ents.stream.subscribe(shared, subject, as_of);
    }
    if let Some(evicted) = &completion.evicted {
        ents.stream.unsubscribe(evicted);
    }
}

/// Reports a background failure to `on_error`, at most once a minute per kind.
pub(crate) fn report(shared: &Shared, context: &str, err: &Error) {
    let now = shared.entitlements.clock.now_ms();
    let kind = format!("{context}/{}", err.code());
    let Some(held_back) = lock(&shared.entitlements.throttle).allow(&kind, now) else {
        return;
    };
    tracing::warn!(code = err.code(), held_back, "{context}: {err}");
    shared.callbacks.error(err);
}

/// One `GET`; failures come back as [`FetchResult::Failed`] with the reason the answers
/// carry, and the error to report.
async fn get(shared: &Shared, subject: &str, etag: Option<&str>) -> (FetchResult, Option<Error>, Option<u64>) {
    let mut url = shared.entitlements.base_url.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(["v1", "customers", subject, "entitlements"]);
    }
    let request = || {
        let request = shared.http.get(url.clone()).header(ACCEPT, "application/json");
        match etag {
            Some(etag) => request.header(IF_NONE_MATCH, etag),
            None => request,
        }
    };
    let failed = |reason: String, retry_after: Option<Duration>, err: Error| {
        (FetchResult::Failed { reason, retry_after }, Some(err), None)
    };
    let resp = match credentials::send(shared, Whose::Current, request).await {
        Sent::Answered(resp) => resp,
        Sent::NoToken(err) => return failed(format!("no customer token: {err}"), None, err),
        Sent::Failed(e) if e.is_timeout() => {
            let after = shared.config.request_timeout;
            return failed(format!("timeout after {after:?}"), None, Error::Timeout(after));
        }
        Sent::Failed(e) => {
            let detail = describe(&e);
            return failed(format!("server unreachable: {detail}"), None, Error::Network(detail));
        }
    };
    let status = resp.status();
    let as_of = resp
        .headers()
        .get(STREAM_SEQ_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if status == StatusCode::NOT_MODIFIED {
        return (FetchResult::NotModified, None, as_of);
    }
    if status == StatusCode::OK {
        let etag = resp
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let message = match resp.json::<Entitlements>().await {
            Ok(answer) if answer.subject == subject => return (FetchResult::Fetched { answer, etag }, None, as_of),
            Ok(answer) => format!("asked for subject {subject:?}, got {:?}", answer.subject),
            Err(e) => format!("unreadable entitlements body: {}", describe(&e)),
        };
        return failed(
            format!("bad response: {message}"),
            None,
            Error::Codec {
                code: "invalid_json",
                message,
            },
        );
    }
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
    let code_status = status.as_u16();
    let body: Option<ErrorBody> = resp.json().await.ok();
    let (code, message) = match body {
        Some(b) => (b.code, b.message),
        None => (format!("http_{code_status}"), format!("the server answered {status}")),
    };
    let detail = format!("{code}: {message}");
    match code_status {
        401 => failed(
            format!("unauthorized: {detail}"),
            None,
            Error::Unauthorized { message: detail },
        ),
        403 => failed(
            format!("forbidden: {detail}"),
            None,
            Error::Forbidden { message: detail },
        ),
        _ => {
            let prefix = match code_status {
                429 => "rate limited".to_owned(),
                500..=599 => format!("server error {code_status}"),
                _ => format!("unexpected answer {code_status}"),
            };
            let err = Error::Http {
                status: code_status,
                code,
                message,
            };
            failed(format!("{prefix}: {detail}"), retry_after, err)
        }
    }
}
