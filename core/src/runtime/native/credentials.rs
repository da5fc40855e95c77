//! The native runtime's side of [`crate::credentials`]: the customer token on every
//! request (a header set per request, never a client default, so a refreshed token applies
//! at once), the token provider called on a blocking thread under one lock (single flight),
//! and [`send`], which retries a request refused with `401 token_expired` once with a
//! fresher token. Every decision — when to refresh, whether a retry needs the provider — is
//! the core's [`TokenState`].

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use reqwest::{RequestBuilder, Response, StatusCode};
use tokio_tungstenite::tungstenite::http;

use super::{CUSTOMER_TOKEN_HEADER, Shared, entitlements::lock, fetch::report};
use crate::{
    credentials::{AfterExpired, Token, TokenState},
    error::Error,
    wire::ErrorBody,
};

/// A function returning a fresh customer token (or why it cannot). Called on a blocking
/// thread of the worker, at most one call at a time: when the client has no token yet, ahead
/// of the current one's expiry, and after the server refused it as expired. An `Err`, a
/// panic or an answer that is not a JWT is reported to `on_error` (rate-limited) and
/// counted; the client keeps its current token.
pub type TokenProvider = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// The code of a `401` whose customer token expired.
pub(crate) const TOKEN_EXPIRED: &str = "token_expired";

/// One user's credential: the token state and the lock its provider calls share.
struct Identity {
    state: Mutex<TokenState>,
    /// Held while the provider is asked: concurrent refreshes share one call.
    asking: tokio::sync::Mutex<()>,
}

impl Identity {
    fn new(state: TokenState) -> Arc<Identity> {
        Arc::new(Identity {
            state: Mutex::new(state),
            asking: tokio::sync::Mutex::new(()),
        })
    }
}

/// The client's customer tokens, if its key is publishable: one [`Identity`] per user
/// since the oldest one with events still undelivered, each from the sequence number of its
/// first event (`identify()` starts a new one; batches never span two, see
/// [`Outbox::cut`](crate::outbox::Outbox::cut)).
pub(crate) struct Credentials {
    identities: Mutex<Vec<(u64, Arc<Identity>)>>,
    provider: Option<TokenProvider>,
    failures: AtomicU64,
    /// Whether requests carry a token at all (a publishable key).
    pub customer: bool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("customer", &self.customer)
            .field("provider", &self.provider.is_some())
            .finish_non_exhaustive()
    }
}

/// What [`send`] came back with.
pub(crate) enum Sent {
    /// The server's answer (a `401 token_expired` only when the retry was refused too).
    Answered(Response),
    /// The request did not reach the server.
    Failed(reqwest::Error),
    /// No customer token could be had (the provider failed before there was one, or
    /// `reset()` left no identity).
    NoToken(Error),
}

/// Whose credential a request carries.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Whose {
    /// The current user's (entitlements, schemas, the stream).
    Current,
    /// The user who tracked the batch starting at this sequence number.
    Batch(u64),
}

impl Credentials {
    /// Credentials starting with the configured token (already checked by
    /// [`Config::validate`](crate::Config::validate)).
    pub fn new(token: Option<&str>, provider: Option<TokenProvider>, customer: bool) -> Result<Self, Error> {
        let token = token
            .map(|t| Token::parse(t.trim()).map_err(|why| Error::config("customer_token", why)))
            .transpose()?;
        let first = Identity::new(TokenState::new(token, provider.is_some()));
        Ok(Credentials {
            identities: Mutex::new(vec![(0, first)]),
            provider,
            failures: AtomicU64::new(0),
            customer,
        })
    }

    /// Provider calls that failed, since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The identity of `whose`, and whether it is the current one.
    fn identity(&self, whose: Whose) -> (Arc<Identity>, bool) {
        let identities = lock(&self.identities);
        let last = identities.len() - 1;
        let index = match whose {
            Whose::Current => last,
            Whose::Batch(seq) => identities.iter().rposition(|(first, _)| *first <= seq).unwrap_or(0),
        };
        (identities[index].1.clone(), index == last)
    }

    /// The subject of the current identity (`None`: none yet, or after `reset()`).
    pub fn current_subject(&self) -> Option<String> {
        let (identity, _) = self.identity(Whose::Current);
        let state = lock(&identity.state);
        state.subject().map(str::to_owned)
    }

    /// Whether the batch starting at `first_seq` was tracked by the current user.
    pub fn is_current(&self, first_seq: u64) -> bool {
        self.identity(Whose::Batch(first_seq)).1
    }

    /// `identify()` with the current subject: a fresh token for the same user.
    pub fn refresh_current(&self, token: Token) {
        let (identity, _) = self.identity(Whose::Current);
        lock(&identity.state).install(token);
    }

    /// `identify()` / `reset()`: events from `first_seq` on belong to a new identity with
    /// `token` (`None`: anonymous — nothing is sent for it, and the provider is not asked).
    /// Called under the outbox's lock, so no event lands on the wrong side.
    pub fn switch(&self, first_seq: u64, token: Option<Token>) {
        let has_provider = self.provider.is_some() && token.is_some();
        let identity = Identity::new(TokenState::new(token, has_provider));
        let mut identities = lock(&self.identities);
        // An identity without events (its successor starts at the same seq) is gone.
        identities.retain(|(first, _)| *first < first_seq);
        identities.push((first_seq, identity));
    }

    /// Forgets the identities whose events are all settled (below `low_watermark`).
    pub fn settled(&self, low_watermark: u64) {
        let mut identities = lock(&self.identities);
        let gone = identities
            .iter()
            .skip(1)
            .take_while(|(first, _)| *first <= low_watermark)
            .count();
        identities.drain(..gone);
    }

    /// The token for a request going out now and its generation, asking the provider
    /// first when there is none yet or the current one is due for refresh.
    async fn for_request(&self, shared: &Shared, identity: &Identity) -> Result<Option<(String, u64)>, Error> {
        if !self.customer {
            return Ok(None);
        }
        let now = shared.entitlements.clock.now_ms();
        if lock(&identity.state).refresh_due(now) {
            let _asking = identity.asking.lock().await;
            // Another request may have refreshed while this one waited.
            let now = shared.entitlements.clock.now_ms();
            if lock(&identity.state).refresh_due(now) {
                self.ask(shared, identity).await;
            }
        }
        let state = lock(&identity.state);
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

    /// The token of the current identity for the stream's upgrade (see [`Self::for_request`]).
    pub async fn for_stream(&self, shared: &Shared) -> Result<Option<(String, u64)>, Error> {
        let (identity, _) = self.identity(Whose::Current);
        self.for_request(shared, &identity).await
    }

    /// The stream was refused the current identity's token of generation `refused`: see
    /// [`Self::after_expired`].
    pub async fn stream_refused(&self, shared: &Shared, refused: u64) -> bool {
        let (identity, _) = self.identity(Whose::Current);
        self.after_expired(shared, &identity, refused).await
    }

    /// The server refused generation `refused` as expired: makes sure a newer token is
    /// there (asking the provider at most once for all requests refused with the same
    /// generation). Returns whether a retry can use a newer token.
    async fn after_expired(&self, shared: &Shared, identity: &Identity, refused: u64) -> bool {
        match lock(&identity.state).after_expired(refused) {
            AfterExpired::Retry => return true,
            AfterExpired::GiveUp => return false,
            AfterExpired::Refresh => {}
        }
        let _asking = identity.asking.lock().await;
        if lock(&identity.state).after_expired(refused) == AfterExpired::Refresh {
            self.ask(shared, identity).await;
        }
        lock(&identity.state).generation() > refused
    }

    /// Asks the provider (on a blocking thread; a panic is contained) and installs its
    /// answer; a failure is reported, rate-limited.
    async fn ask(&self, shared: &Shared, identity: &Identity) {
        let Some(provider) = self.provider.clone() else { return };
        lock(&identity.state).asking(shared.entitlements.clock.now_ms());
        // A provider that never answers must not hold every request: it gets the request
        // timeout (its thread is left to finish on its own).
        let limit = shared.config.request_timeout;
        let answer = match tokio::time::timeout(limit, tokio::task::spawn_blocking(move || provider())).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) if e.is_panic() => Err("the provider panicked".to_owned()),
            Ok(Err(_)) => Err("the provider was cancelled".to_owned()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        };
        let installed = lock(&identity.state).provided(answer);
        match installed {
            Ok(generation) => tracing::debug!(generation, "customer token refreshed"),
            Err(err) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                report(shared, "token_provider", &err);
            }
        }
    }
}

/// Sends the request `build` makes with the current customer token; a `401 token_expired`
/// is retried once with a fresher one (the same request: same body, same event ids — the
/// server stored nothing of a refused request).
pub(crate) async fn send(shared: &Shared, whose: Whose, build: impl Fn() -> RequestBuilder) -> Sent {
    let credentials = &shared.credentials;
    let (identity, _) = credentials.identity(whose);
    let mut retried = false;
    loop {
        let token = match credentials.for_request(shared, &identity).await {
            Ok(token) => token,
            Err(err) => return Sent::NoToken(err),
        };
        let mut request = build();
        if let Some((value, _)) = &token {
            request = request.header(CUSTOMER_TOKEN_HEADER, sensitive(value));
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Sent::Failed(e),
        };
        let Some((_, generation)) = token.filter(|_| response.status() == StatusCode::UNAUTHORIZED) else {
            return Sent::Answered(response);
        };
        // Read the 401's code; hand on an equal response if it is not the one retried.
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        let expired = serde_json::from_slice::<ErrorBody>(&body).is_ok_and(|b| b.code == TOKEN_EXPIRED);
        if expired && !retried && credentials.after_expired(shared, &identity, generation).await {
            retried = true;
            continue;
        }
        let mut rebuilt = http::Response::new(body);
        *rebuilt.status_mut() = StatusCode::UNAUTHORIZED;
        *rebuilt.headers_mut() = headers;
        return Sent::Answered(Response::from(rebuilt));
    }
}

/// A header value that is never logged.
pub(crate) fn sensitive(value: &str) -> reqwest::header::HeaderValue {
    // Tokens are checked to be base64url and dots before they are installed.
    let mut value = reqwest::header::HeaderValue::from_str(value)
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("invalid"));
    value.set_sensitive(true);
    value
}
