//! The browser's side of [`crate::credentials`]: the customer token on every request (set
//! per request, so a refreshed token applies at once), the token provider asked by one task
//! at a time (single flight: requests refused with the same token share one call), and
//! [`send`], which retries a request refused with `401 token_expired` once with a fresher
//! token — the same request, so the same event ids. Every decision — when to refresh ahead
//! of expiry, whether a retry needs the provider, which tokens to refuse — is the core's
//! [`TokenState`]; identities per user (`identify()` / `reset()`) follow the native runtime:
//! one per cut of the outbox, so no batch spans two users.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    pin::Pin,
    rc::Rc,
};

use futures_channel::oneshot;
use futures_util::future::{Either, select};
use gloo_timers::future::TimeoutFuture;

use super::{
    Inner, host,
    http::{self, CUSTOMER_TOKEN_HEADER, Call, Failure, Reply},
};
use crate::{
    credentials::{AfterExpired, Token, TokenState},
    error::Error,
    throttle::ErrorThrottle,
    wire::ErrorBody,
};

/// The code of a `401` whose customer token expired.
const TOKEN_EXPIRED: &str = "token_expired";

/// What a token provider's call comes back with: the token text, or why there is none.
pub type TokenAnswer = Pin<Box<dyn Future<Output = Result<String, String>>>>;

/// A function returning a fresh customer token (the binding wraps the page's function, which
/// may return a string or a Promise of one). Asked when there is no token yet, ahead of the
/// current one's expiry and after `token_expired`, one call at a time; a failure or an
/// answer that is not a JWT of the current subject is reported to the error callback
/// (rate-limited) and counted, and the current token stays.
pub type TokenProvider = Rc<dyn Fn() -> TokenAnswer>;

/// One user's credential: its token state and whoever waits on a provider call.
struct Identity {
    state: RefCell<TokenState>,
    /// A provider call is under way; these wait for it.
    asking: Cell<bool>,
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
}

impl Identity {
    fn new(state: TokenState) -> Rc<Identity> {
        Rc::new(Identity {
            state: RefCell::new(state),
            asking: Cell::new(false),
            waiters: RefCell::new(Vec::new()),
        })
    }
}

/// Whose credential a request carries.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Whose {
    /// The current user's (entitlements, schemas, the stream).
    Current,
    /// The user who tracked the batch starting at this sequence number.
    Batch(u64),
}

/// The client's customer tokens (a publishable key): one identity per user since the oldest
/// with events still undelivered, each from the sequence number of its first event.
pub(crate) struct Credentials {
    identities: RefCell<Vec<(u64, Rc<Identity>)>>,
    provider: Option<TokenProvider>,
    failures: Cell<u64>,
    /// Whether requests carry a token at all (a publishable key).
    pub customer: bool,
    /// `reset()` left no identity: `track()` fails with `forbidden`.
    pub anonymous: Cell<bool>,
    /// Provider failures reach the error callback at most once a minute per kind.
    throttle: RefCell<ErrorThrottle>,
}

/// What [`send`] came back with.
pub(crate) enum Sent {
    /// The server's answer (a `401 token_expired` only when the retry was refused too).
    Answered(Reply),
    /// The request did not reach the server.
    Failed(Failure),
    /// No customer token could be had (the provider failed before there was one).
    NoToken(Error),
}

impl Credentials {
    /// Credentials starting with the configured token (checked by `Config::validate_for`).
    pub fn new(token: Option<&str>, provider: Option<TokenProvider>, customer: bool) -> Result<Self, Error> {
        let token = token
            .map(|t| Token::parse(t.trim()).map_err(|why| Error::config("customer_token", why)))
            .transpose()?;
        let first = Identity::new(TokenState::new(token, provider.is_some()));
        Ok(Credentials {
            identities: RefCell::new(vec![(0, first)]),
            provider,
            failures: Cell::new(0),
            customer,
            anonymous: Cell::new(false),
            throttle: RefCell::new(ErrorThrottle::new(60_000)),
        })
    }

    /// Provider calls that failed, since start.
    pub fn failures(&self) -> u64 {
        self.failures.get()
    }

    fn identity(&self, whose: Whose) -> Rc<Identity> {
        let identities = self.identities.borrow();
        let index = match whose {
            Whose::Current => identities.len() - 1,
            Whose::Batch(seq) => identities.iter().rposition(|(first, _)| *first <= seq).unwrap_or(0),
        };
        identities[index].1.clone()
    }

    /// The subject of the current identity (`None`: none yet, or after `reset()`).
    pub fn current_subject(&self) -> Option<String> {
        self.identity(Whose::Current)
            .state
            .borrow()
            .subject()
            .map(str::to_owned)
    }

    /// The token `whose` requests would carry now, as it is (no provider call: a page that is
    /// leaving cannot wait for one). `None`: no token yet, or not a publishable key.
    pub fn token_now(&self, whose: Whose) -> Option<String> {
        let identity = self.identity(whose);
        let state = identity.state.borrow();
        state.current().map(|(token, _)| token.value().to_owned())
    }

    /// The longest of the tokens [`Self::token_now`] may give (sizes the beacon's envelope).
    pub fn longest_token(&self) -> usize {
        let identities = self.identities.borrow();
        let lengths = identities.iter().filter_map(|(_, identity)| {
            let state = identity.state.borrow();
            state.current().map(|(token, _)| token.value().len())
        });
        lengths.max().unwrap_or(0)
    }

    /// `identify()` with the current subject: a fresh token for the same user.
    pub fn refresh_current(&self, token: Token) {
        self.identity(Whose::Current).state.borrow_mut().install(token);
    }

    /// `identify()` / `reset()`: events from `first_seq` on belong to a new identity with
    /// `token` (`None`: anonymous); identities whose events are all settled (below
    /// `low_watermark`) are forgotten.
    pub fn switch(&self, first_seq: u64, token: Option<Token>, low_watermark: u64) {
        let has_provider = self.provider.is_some() && token.is_some();
        let identity = Identity::new(TokenState::new(token, has_provider));
        let mut identities = self.identities.borrow_mut();
        identities.retain(|(first, _)| *first < first_seq);
        let gone = identities
            .iter()
            .skip(1)
            .take_while(|(first, _)| *first <= low_watermark)
            .count();
        identities.drain(..gone);
        identities.push((first_seq, identity));
    }
}

/// The token for a request going out now, and its generation; asks the provider first when
/// there is none yet or the current one is due for refresh.
async fn for_request(inner: &Rc<Inner>, identity: &Rc<Identity>) -> Result<Option<(String, u64)>, Error> {
    let creds = &inner.identity;
    if !creds.customer {
        return Ok(None);
    }
    if identity.state.borrow().refresh_due(host::wall_ms()) {
        ask_once(inner, identity, |state| state.refresh_due(host::wall_ms())).await;
    }
    let state = identity.state.borrow();
    match state.current() {
        Some((token, generation)) => Ok(Some((token.value().to_owned(), generation))),
        None if !state.has_provider() => Err(Error::Forbidden {
            message: "no identity: call identify(subject, token) (after reset(), nothing is sent)".into(),
        }),
        None => Err(Error::Unauthorized {
            message: "no customer token yet: the token provider has not returned one".into(),
        }),
    }
}

/// The token for the stream's next connection (see [`for_request`]).
pub(crate) async fn for_stream(inner: &Rc<Inner>) -> Result<Option<(String, u64)>, Error> {
    let identity = inner.identity.identity(Whose::Current);
    for_request(inner, &identity).await
}

/// The stream was refused (4401) with the token of generation `refused`: when a newer token
/// can be had, the session reconnects at once; otherwise its pause stands.
pub(crate) fn stream_refused(inner: &Rc<Inner>, refused: u64) {
    if !inner.identity.customer {
        return;
    }
    let inner = inner.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let identity = inner.identity.identity(Whose::Current);
        if after_expired(&inner, &identity, refused).await {
            super::stream::credentials_refreshed(&inner);
        }
    });
}

/// The server refused generation `refused` as expired: makes sure a newer token is there
/// (one provider call for every request refused with the same generation). Whether a retry
/// can use a newer token.
async fn after_expired(inner: &Rc<Inner>, identity: &Rc<Identity>, refused: u64) -> bool {
    match identity.state.borrow().after_expired(refused) {
        AfterExpired::Retry => return true,
        AfterExpired::GiveUp => return false,
        AfterExpired::Refresh => {}
    }
    ask_once(inner, identity, |state| {
        state.after_expired(refused) == AfterExpired::Refresh
    })
    .await;
    identity.state.borrow().generation() > refused
}

/// Asks the provider unless a call is under way (then waits for that one); `still` says,
/// once it is this task's turn, whether the call is still needed.
async fn ask_once(inner: &Rc<Inner>, identity: &Rc<Identity>, still: impl Fn(&TokenState) -> bool) {
    while identity.asking.get() {
        let (tx, rx) = oneshot::channel();
        identity.waiters.borrow_mut().push(tx);
        let _ = rx.await;
    }
    if !still(&identity.state.borrow()) {
        return;
    }
    identity.asking.set(true);
    ask(inner, identity).await;
    identity.asking.set(false);
    for tx in identity.waiters.borrow_mut().drain(..) {
        let _ = tx.send(());
    }
}

/// Calls the provider (given the request timeout to answer) and installs its answer; a
/// failure is counted and reported, rate-limited.
async fn ask(inner: &Rc<Inner>, identity: &Identity) {
    let creds = &inner.identity;
    let Some(provider) = creds.provider.clone() else { return };
    identity.state.borrow_mut().asking(host::wall_ms());
    let limit = inner.config.request_timeout;
    let millis = u32::try_from(limit.as_millis()).unwrap_or(u32::MAX);
    let answer = match select(provider(), TimeoutFuture::new(millis)).await {
        Either::Left((answer, _)) => answer,
        Either::Right(_) => Err(format!("no answer within {limit:?}")),
    };
    let installed = identity.state.borrow_mut().provided(answer);
    if let Err(err) = installed {
        creds.failures.set(creds.failures.get() + 1);
        let kind = format!("token_provider/{}", err.code());
        if creds.throttle.borrow_mut().allow(&kind, host::wall_ms()).is_some() {
            inner.report(err);
        }
    }
}

/// Sends a request with `whose` customer token; a `401 token_expired` is retried once with a
/// fresher one (the same body: the server stored nothing of a refused request).
pub(crate) async fn send(inner: &Rc<Inner>, whose: Whose, call: Call<'_>) -> Sent {
    let identity = inner.identity.identity(whose);
    let timeout = inner.config.request_timeout;
    let mut retried = false;
    loop {
        let token = match for_request(inner, &identity).await {
            Ok(token) => token,
            Err(err) => return Sent::NoToken(err),
        };
        let mut headers: Vec<(&str, &str)> = call.headers.to_vec();
        if let Some((value, _)) = &token {
            headers.retain(|(name, _)| !name.eq_ignore_ascii_case(CUSTOMER_TOKEN_HEADER));
            headers.push((CUSTOMER_TOKEN_HEADER, value));
        }
        let attempt = Call {
            headers: &headers,
            ..call
        };
        let reply = match http::send(attempt, timeout).await {
            Ok(reply) => reply,
            Err(failure) => return Sent::Failed(failure),
        };
        let Some((_, generation)) = token.filter(|_| reply.status == 401) else {
            return Sent::Answered(reply);
        };
        let expired = serde_json::from_slice::<ErrorBody>(&reply.body).is_ok_and(|b| b.code == TOKEN_EXPIRED);
        if expired && !retried && after_expired(inner, &identity, generation).await {
            retried = true;
            continue;
        }
        return Sent::Answered(reply);
    }
}
