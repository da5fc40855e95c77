//! `entitlement()` on the page's thread: cache hits answer at once; a miss joins the
//! subject's one fetch (the core's [`Flights`]) and waits at most `entitlement_timeout`;
//! tracked events count into cached metered answers at once.

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
    time::Duration,
};

use futures_channel::oneshot;
use futures_util::future::select;
use gloo_timers::future::TimeoutFuture;

use super::{
    Inner, TrackData,
    credentials::{self, Sent, Whose},
    host,
    http::{self, Call},
};
use crate::{
    config::Config,
    entitlement::Entitlements,
    entitlement_cache::{
        EntitlementAnswer, EntitlementCache, FetchResult, Flights, Join, Landing, Lookup, Source, check_lookup,
    },
    error::Error,
    retry::parse_retry_after,
    stream::STREAM_SEQ_HEADER,
    throttle::ErrorThrottle,
};

/// Counters behind the entitlement part of `stats()`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AnswerCounters {
    pub misses: u64,
    pub stale: u64,
    pub fallback: u64,
}

/// One fetch under way: its landing once it came, and who waits for it.
#[derive(Default)]
pub(crate) struct Flight {
    landing: RefCell<Option<Landing>>,
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
}

impl Flight {
    fn land(&self, landing: Landing) {
        if self.landing.borrow().is_some() {
            return;
        }
        *self.landing.borrow_mut() = Some(landing);
        for tx in self.waiters.borrow_mut().drain(..) {
            let _ = tx.send(());
        }
    }
}

/// The entitlement half of the client.
pub(crate) struct EntitlementState {
    pub cache: RefCell<EntitlementCache>,
    flights: RefCell<Flights<Rc<Flight>>>,
    pub counters: Cell<AnswerCounters>,
    /// Set once anything was cached: until then `track()` skips the cache.
    any_cached: Cell<bool>,
    /// Fetch failures reach the error callback at most once a minute per kind.
    throttle: RefCell<ErrorThrottle>,
    /// Bumped when the user switches: a fetch that started before stores nothing.
    epoch: Cell<u64>,
}

impl EntitlementState {
    pub fn new(config: &Config) -> Self {
        EntitlementState {
            cache: super::new_cache(config),
            flights: RefCell::new(Flights::default()),
            counters: Cell::new(AnswerCounters::default()),
            any_cached: Cell::new(false),
            throttle: RefCell::new(ErrorThrottle::new(60_000)),
            epoch: Cell::new(0),
        }
    }

    /// `identify()` / `reset()`: forgets every cached answer; fetches under way store nothing.
    pub fn forget_all(&self) {
        self.epoch.set(self.epoch.get() + 1);
        self.cache.borrow_mut().forget_all();
        self.any_cached.set(false);
    }

    fn counted(&self, answer: EntitlementAnswer) -> EntitlementAnswer {
        let mut c = self.counters.get();
        match answer.source {
            Source::Stale => c.stale += 1,
            Source::Fallback => c.fallback += 1,
            Source::Fresh | Source::Cache => {}
        }
        self.counters.set(c);
        answer
    }

    fn missed(&self) {
        let mut c = self.counters.get();
        c.misses += 1;
        self.counters.set(c);
    }
}

/// What the fast path found.
pub(crate) enum Next {
    Answer(EntitlementAnswer),
    Wait(Rc<Flight>),
}

impl super::Client {
    /// Whether `subject` may use `feature`, and where the answer came from: a cached answer
    /// at once (`cache`, or `stale` while one revalidation runs), else the subject's one
    /// fetch, waited for at most `entitlement_timeout` before the configured fallback.
    /// Errors only for bad arguments (`invalid_argument`) and after shutdown.
    pub async fn entitlement(&self, subject: &str, feature: &str) -> Result<EntitlementAnswer, Error> {
        let flight = match lookup(&self.inner, subject, feature)? {
            Next::Answer(answer) => return Ok(answer),
            Next::Wait(flight) => flight,
        };
        let timeout = self.inner.config.entitlement_timeout;
        let landed = flight.landing.borrow().is_some();
        if !landed {
            let (tx, rx) = oneshot::channel();
            flight.waiters.borrow_mut().push(tx);
            let millis = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
            let _ = select(rx, TimeoutFuture::new(millis)).await;
        }
        let landing = flight.landing.borrow().clone();
        let ents = &self.inner.entitlements;
        let answer =
            ents.cache
                .borrow()
                .answer_after_flight(subject, feature, landing.as_ref(), timeout, host::wall_ms());
        Ok(ents.counted(answer))
    }

    /// [`Self::entitlement`] without waiting: the cached answer, or on a miss the fallback at
    /// once while one fetch fills the cache.
    pub fn cached_entitlement(&self, subject: &str, feature: &str) -> Result<EntitlementAnswer, Error> {
        match lookup(&self.inner, subject, feature)? {
            Next::Answer(answer) => Ok(answer),
            Next::Wait(_) => {
                let ents = &self.inner.entitlements;
                let reason = "not cached yet: fetching in the background";
                let answer = ents
                    .cache
                    .borrow()
                    .answer_or_fallback(subject, feature, reason, host::wall_ms());
                Ok(ents.counted(answer))
            }
        }
    }
}

impl super::Client {
    /// Caches an entitlement answer obtained elsewhere (bootstrapped into the page by the
    /// backend), as if just fetched; an answer older than the cached one is ignored. The
    /// subject then gets stream updates like any cached subject.
    ///
    /// Errors: `invalid_argument` for a bad `subject`, `client_closed` after shutdown.
    pub fn prime_entitlements(&self, answer: Entitlements) -> Result<(), Error> {
        crate::customer_token::check_subject(&answer.subject)?;
        let inner = &self.inner;
        if inner.closed.get() {
            return Err(Error::Closed);
        }
        let counted_through = inner.outbox.borrow().low_watermark();
        let subject = answer.subject.clone();
        let ents = &inner.entitlements;
        let completion = ents
            .cache
            .borrow_mut()
            .insert(answer, None, host::wall_ms(), counted_through);
        if completion.added {
            ents.any_cached.set(true);
            super::stream::subscribe(inner, &subject, None);
        }
        if let Some(evicted) = &completion.evicted {
            super::stream::unsubscribe(inner, evicted);
        }
        Ok(())
    }
}

fn lookup(inner: &Rc<Inner>, subject: &str, feature: &str) -> Result<Next, Error> {
    check_lookup(subject, feature)?;
    if inner.closed.get() {
        return Err(Error::Closed);
    }
    let ents = &inner.entitlements;
    let found = ents.cache.borrow_mut().lookup(subject, feature, host::wall_ms());
    Ok(match found {
        Lookup::Hit(answer) => Next::Answer(answer),
        Lookup::Stale { answer, revalidate } => {
            if revalidate {
                start(inner, subject);
            }
            Next::Answer(ents.counted(answer))
        }
        Lookup::Backoff(answer) => {
            ents.missed();
            Next::Answer(ents.counted(answer))
        }
        Lookup::Miss => {
            ents.missed();
            Next::Wait(start(inner, subject))
        }
    })
}

/// The flight for `subject`, started unless one is under way.
fn start(inner: &Rc<Inner>, subject: &str) -> Rc<Flight> {
    let join = inner
        .entitlements
        .flights
        .borrow_mut()
        .join(subject, || Rc::new(Flight::default()));
    match join {
        Join::Wait(flight) => flight,
        Join::Start(flight) => {
            let (inner, subject, this) = (inner.clone(), subject.to_owned(), flight.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let landing = fetch_and_store(&inner, &subject).await;
                this.land(landing);
                inner
                    .entitlements
                    .flights
                    .borrow_mut()
                    .finish(&subject, |f| Rc::ptr_eq(f, &this));
            });
            flight
        }
    }
}

/// One fetch stored into the cache; a `304` for an answer evicted meanwhile is followed by
/// one unconditional fetch.
async fn fetch_and_store(inner: &Rc<Inner>, subject: &str) -> Landing {
    let ents = &inner.entitlements;
    let mut conditional = true;
    loop {
        let counted_through = inner.outbox.borrow().low_watermark();
        let ticket = ents.cache.borrow_mut().begin_fetch(subject, counted_through);
        let etag = ticket.etag.clone().filter(|_| conditional);
        let epoch = ents.epoch.get();
        let (result, error, as_of) = get(inner, subject, etag.as_deref()).await;
        if ents.epoch.get() != epoch {
            // The user switched meanwhile: the answer is the previous user's.
            return Landing::Failed("the identity changed during the fetch".into());
        }
        let landing = Landing::of(&result);
        let completion = ents
            .cache
            .borrow_mut()
            .complete_fetch(ticket, result, host::wall_ms(), host::jitter());
        match error {
            Some(err) => {
                let kind = format!("entitlements/{}", err.code());
                if ents.throttle.borrow_mut().allow(&kind, host::wall_ms()).is_some() {
                    inner.report(err);
                }
            }
            None => ents.throttle.borrow_mut().clear(),
        }
        if completion.added {
            ents.any_cached.set(true);
            super::stream::subscribe(inner, subject, as_of);
        }
        if let Some(evicted) = &completion.evicted {
            super::stream::unsubscribe(inner, evicted);
        }
        if completion.refetch && conditional {
            conditional = false;
            continue;
        }
        return landing;
    }
}

/// One `GET /v1/customers/{subject}/entitlements`, and the stream seq its answer is current
/// to (`Meterline-Stream-Seq`).
async fn get(inner: &Rc<Inner>, subject: &str, etag: Option<&str>) -> (FetchResult, Option<Error>, Option<u64>) {
    let encoded = String::from(js_sys::encode_uri_component(subject));
    let url = format!("{}/v1/customers/{encoded}/entitlements", inner.config.base_url());
    let mut extra = vec![("accept", "application/json")];
    if let Some(etag) = etag {
        extra.push(("if-none-match", etag));
    }
    let headers = inner.headers(&extra);
    let call = Call {
        method: "GET",
        url: &url,
        headers: &headers,
        body: None,
        keepalive: false,
    };
    let failed = |reason: String, retry_after: Option<Duration>, err: Error| {
        (FetchResult::Failed { reason, retry_after }, Some(err), None)
    };
    let timeout = inner.config.request_timeout;
    let reply = match credentials::send(inner, Whose::Current, call).await {
        Sent::Answered(reply) => reply,
        Sent::NoToken(err) => return failed(format!("no customer token: {err}"), None, err),
        Sent::Failed(http::Failure::Timeout) => {
            return failed(format!("timeout after {timeout:?}"), None, Error::Timeout(timeout));
        }
        Sent::Failed(http::Failure::Network(detail)) => {
            return failed(format!("server unreachable: {detail}"), None, Error::Network(detail));
        }
    };
    let as_of = reply.header(STREAM_SEQ_HEADER).and_then(|v| v.parse::<u64>().ok());
    match reply.status {
        304 => (FetchResult::NotModified, None, as_of),
        200 => {
            let message = match serde_json::from_slice::<Entitlements>(&reply.body) {
                Ok(answer) if answer.subject == subject => {
                    let etag = reply.header("etag");
                    return (FetchResult::Fetched { answer, etag }, None, as_of);
                }
                Ok(answer) => format!("asked for subject {subject:?}, got {:?}", answer.subject),
                Err(e) => format!("unreadable entitlements body: {e}"),
            };
            failed(
                format!("bad response: {message}"),
                None,
                Error::Codec {
                    code: "invalid_json",
                    message,
                },
            )
        }
        status => {
            let err = reply.error();
            let retry_after = reply
                .header("retry-after")
                .and_then(|v| parse_retry_after(&v, host::wall()));
            let prefix = match status {
                401 => "unauthorized".to_owned(),
                403 => "forbidden".to_owned(),
                429 => "rate limited".to_owned(),
                500..=599 => format!("server error {status}"),
                _ => format!("unexpected answer {status}"),
            };
            let retry_after = retry_after.filter(|_| !matches!(status, 401 | 403));
            failed(format!("{prefix}: {err}"), retry_after, err)
        }
    }
}

/// Refetches `subjects` (the stream could not resume, or sent `resync`), `REFETCH_CONCURRENCY` at a time,
/// each through its subject's one flight.
pub(crate) fn refetch_all(inner: &Rc<Inner>, subjects: Vec<String>) {
    use futures_util::StreamExt;
    let inner = inner.clone();
    wasm_bindgen_futures::spawn_local(async move {
        futures_util::stream::iter(subjects)
            .for_each_concurrent(crate::entitlement_cache::REFETCH_CONCURRENCY, |subject| {
                let flight = start(&inner, &subject);
                async move {
                    if flight.landing.borrow().is_some() {
                        return;
                    }
                    let (tx, rx) = oneshot::channel();
                    flight.waiters.borrow_mut().push(tx);
                    let _ = rx.await;
                }
            })
            .await;
    });
}

/// After a batch settled: refetches subjects whose streamed answers carried local usage
/// that is now settled (see [`EntitlementCache::settled`]).
pub(crate) fn refetch_settled(inner: &Rc<Inner>) {
    if !inner.entitlements.any_cached.get() {
        return;
    }
    let counted_through = inner.outbox.borrow().low_watermark();
    let due = inner.entitlements.cache.borrow_mut().settled(counted_through);
    for subject in due {
        start(inner, &subject);
    }
}

/// Counts a tracked event (sequence number `seq`) into its subject's cached usage.
pub(crate) fn record_usage(
    inner: &Inner,
    event_type: &str,
    subject: &str,
    data: &mut TrackData<'_>,
    time: Option<&str>,
    seq: u64,
) {
    let ents = &inner.entitlements;
    if !ents.any_cached.get() {
        return;
    }
    let at = match time {
        None => host::wall_ms(),
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(t) => t.timestamp_millis().max(0) as u64,
            Err(_) => return,
        },
    };
    let mut cache = ents.cache.borrow_mut();
    if !cache.counts_usage(event_type, subject) {
        return;
    }
    if let Some(data) = data.map() {
        cache.record_event(event_type, subject, data, at, seq);
    }
}
