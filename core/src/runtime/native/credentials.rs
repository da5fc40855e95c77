//! The native runtime's side of [`crate::credentials`]: the customer token on every
//! request (a header set per request, never a client default, so a refreshed token applies
//! at once), the token provider called on a blocking thread under one lock (single flight),
//! and [`send`], which retries a request refused with `401 token_expired` once with a
//! fresher token. Every decision — when to refresh, whether a retry needs the provider — is
//! the core's [`TokenState`].

use std::sync::{Arc, Mutex};

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

/// The client's customer token, if its key is publishable.
pub(crate) struct Credentials {
    state: Mutex<TokenState>,
    provider: Option<TokenProvider>,
    /// Held while the provider is asked: concurrent refreshes share one call.
    asking: tokio::sync::Mutex<()>,
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
    /// No customer token could be had (the provider failed before there was one).
    NoToken(Error),
}

impl Credentials {
    /// Credentials starting with the configured token (already checked by
    /// [`Config::validate`](crate::Config::validate)).
    pub fn new(token: Option<&str>, provider: Option<TokenProvider>, customer: bool) -> Result<Self, Error> {
        let token = token
            .map(|t| Token::parse(t.trim()).map_err(|why| Error::config("customer_token", why)))
            .transpose()?;
        Ok(Credentials {
            state: Mutex::new(TokenState::new(token, provider.is_some())),
            provider,
            asking: tokio::sync::Mutex::new(()),
            customer,
        })
    }

    /// Provider calls that failed, since start.
    pub fn failures(&self) -> u64 {
        lock(&self.state).failures()
    }

    /// The token for a request going out now and its generation, asking the provider
    /// first when there is none yet or the current one is due for refresh.
    pub async fn for_request(&self, shared: &Shared) -> Result<Option<(String, u64)>, Error> {
        if !self.customer {
            return Ok(None);
        }
        let now = shared.entitlements.clock.now_ms();
        if lock(&self.state).refresh_due(now) {
            let _asking = self.asking.lock().await;
            // Another request may have refreshed while this one waited.
            let now = shared.entitlements.clock.now_ms();
            if lock(&self.state).refresh_due(now) {
                self.ask(shared).await;
            }
        }
        let state = lock(&self.state);
        match state.current() {
            Some((token, generation)) => Ok(Some((token.value().to_owned(), generation))),
            None => Err(Error::Unauthorized {
                message: "no customer token yet: the token provider has not returned one".into(),
            }),
        }
    }

    /// The server refused generation `refused` as expired: makes sure a newer token is
    /// there (asking the provider at most once for all requests refused with the same
    /// generation). Returns whether a retry can use a newer token.
    pub async fn after_expired(&self, shared: &Shared, refused: u64) -> bool {
        match lock(&self.state).after_expired(refused) {
            AfterExpired::Retry => return true,
            AfterExpired::GiveUp => return false,
            AfterExpired::Refresh => {}
        }
        let _asking = self.asking.lock().await;
        if lock(&self.state).after_expired(refused) == AfterExpired::Refresh {
            self.ask(shared).await;
        }
        lock(&self.state).generation() > refused
    }

    /// Asks the provider (on a blocking thread; a panic is contained) and installs its
    /// answer; a failure is reported, rate-limited.
    async fn ask(&self, shared: &Shared) {
        let Some(provider) = self.provider.clone() else { return };
        lock(&self.state).asking(shared.entitlements.clock.now_ms());
        // A provider that never answers must not hold every request: it gets the request
        // timeout (its thread is left to finish on its own).
        let limit = shared.config.request_timeout;
        let answer = match tokio::time::timeout(limit, tokio::task::spawn_blocking(move || provider())).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) if e.is_panic() => Err("the provider panicked".to_owned()),
            Ok(Err(_)) => Err("the provider was cancelled".to_owned()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        };
        let installed = lock(&self.state).provided(answer);
        match installed {
            Ok(generation) => tracing::debug!(generation, "customer token refreshed"),
            Err(err) => report(shared, "token_provider", &err),
        }
    }
}

/// Sends the request `build` makes with the current customer token; a `401 token_expired`
/// is retried once with a fresher one (the same request: same body, same event ids — the
/// server stored nothing of a refused request).
pub(crate) async fn send(shared: &Shared, build: impl Fn() -> RequestBuilder) -> Sent {
    let credentials = &shared.credentials;
    let mut retried = false;
    loop {
        let token = match credentials.for_request(shared).await {
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
        if expired && !retried && credentials.after_expired(shared, generation).await {
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
