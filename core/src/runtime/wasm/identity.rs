//! Switching users in the page: `identify(subject, token)` and `reset()` for a publishable
//! key, as the native runtime does. The events tracked so far stay the previous user's —
//! delivered under that user's token, never in a batch with the next user's (the outbox
//! cuts the queue, the [`Credentials`](super::credentials) keep one identity per cut) —
//! while the previous user's cached entitlements, fetches in flight and stream subscription
//! are dropped, so nothing of one user is shown to the next.

use super::{Client, stream};
use crate::{
    credentials::{self, Token},
    error::Error,
};

/// `track()` after `reset()`.
pub(crate) fn no_identity() -> Error {
    Error::Forbidden {
        message: "no identity: reset() dropped it; call identify(subject, token) before tracking".into(),
    }
}

impl Client {
    /// Acts for `subject` from now on, with its customer `token` (as the backend's
    /// `customer_token()` minted it). With a token provider, later tokens come from it and
    /// must be for `subject`. Events tracked before stay the previous user's (sent with its
    /// token); the previous user's cached entitlements and stream subscription are dropped.
    /// `identify` with the current subject only installs the fresh token.
    ///
    /// Errors: `invalid_config` (`api_key`) for a secret key (it acts for every subject);
    /// `invalid_argument` for a bad `/subject`, a `/token` that is not a customer token or
    /// is for another subject; `client_closed` after shutdown.
    pub fn identify(&self, subject: &str, token: &str) -> Result<(), Error> {
        self.publishable("identify")?;
        let token = credentials::identify_token(subject, token)?;
        let identity = &self.inner.identity;
        if identity.current_subject().as_deref() == Some(subject) {
            identity.refresh_current(token);
            identity.anonymous.set(false);
            return Ok(());
        }
        self.switch(Some(token));
        Ok(())
    }

    /// Drops the identity (a user signed out): events tracked before are still delivered
    /// under the previous user's token; its cached entitlements and stream subscription are
    /// dropped; `track()` then fails with `forbidden` until [`Client::identify`], and
    /// nothing is sent for nobody.
    ///
    /// Errors: `invalid_config` (`api_key`) for a secret key; `client_closed` after shutdown.
    pub fn reset(&self) -> Result<(), Error> {
        self.publishable("reset")?;
        if self.inner.identity.current_subject().is_some() {
            self.switch(None);
        }
        self.inner.identity.anonymous.set(true);
        Ok(())
    }

    fn publishable(&self, call: &str) -> Result<(), Error> {
        if self.inner.closed.get() {
            return Err(Error::Closed);
        }
        if !self.inner.identity.customer {
            return Err(Error::config(
                "api_key",
                format!("{call}() is for publishable keys (ml_pk_…); a secret key acts for every subject"),
            ));
        }
        Ok(())
    }

    /// Starts a new identity at the outbox's next sequence number and forgets the previous
    /// user's entitlements and stream subscription.
    fn switch(&self, token: Option<Token>) {
        let inner = &self.inner;
        let (first_seq, low_watermark) = {
            let mut outbox = inner.outbox.borrow_mut();
            (outbox.cut(), outbox.low_watermark())
        };
        inner.identity.anonymous.set(token.is_none());
        inner.identity.switch(first_seq, token, low_watermark);
        inner.entitlements.forget_all();
        stream::forget_subjects(inner);
    }
}
