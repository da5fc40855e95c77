//! Switching users (issue 20): `identify(subject, token)` and `reset()` for a publishable
//! key. The events tracked so far stay the previous user's — delivered under that user's
//! token, never in a batch with the next user's (the outbox cuts the queue, the
//! [`Credentials`](super::credentials) keep one identity per cut) — while the previous
//! user's cached entitlements, fetches in flight and stream subscription are dropped, so
//! nothing of one user is shown to the next.

use std::sync::atomic::Ordering;

use super::{Client, GATE_NO_IDENTITY, GATE_OPTED_OUT, entitlements::lock};
use crate::{
    credentials::{self, Token},
    error::Error,
};

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
        let credentials = &self.shared.credentials;
        if credentials.current_subject().as_deref() == Some(subject) {
            credentials.refresh_current(token);
            self.shared.gate.fetch_and(!GATE_NO_IDENTITY, Ordering::Relaxed);
            return Ok(());
        }
        self.switch(Some(token));
        Ok(())
    }

    /// Drops the identity (a user signed out): events tracked before are still delivered
    /// under the previous user's token; its cached entitlements and stream subscription are
    /// dropped; `track()` then fails with `forbidden` (`ForbiddenError`) until
    /// [`Client::identify`], and nothing is sent for nobody.
    ///
    /// Errors: `invalid_config` (`api_key`) for a secret key; `client_closed` after shutdown.
    pub fn reset(&self) -> Result<(), Error> {
        self.publishable("reset")?;
        if self.shared.credentials.current_subject().is_some() {
            self.switch(None);
        }
        self.shared.gate.fetch_or(GATE_NO_IDENTITY, Ordering::Relaxed);
        Ok(())
    }

    fn publishable(&self, call: &str) -> Result<(), Error> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if !self.shared.credentials.customer {
            return Err(Error::config(
                "api_key",
                format!("{call}() is for publishable keys (ml_pk_…); a secret key acts for every subject"),
            ));
        }
        Ok(())
    }

    /// Starts a new identity at the outbox's next sequence number and forgets the previous
    /// user's entitlements.
    fn switch(&self, token: Option<Token>) {
        let shared = &self.shared;
        {
            // Under the outbox's lock: no `track()` lands between the cut and the switch.
            let mut state = shared.pipeline.lock();
            let first_seq = state.outbox.cut();
            shared.credentials.switch(first_seq, token.clone());
            let bit = if token.is_some() { 0 } else { GATE_NO_IDENTITY };
            let _ = shared.gate.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |gate| {
                Some(gate & !GATE_NO_IDENTITY | bit)
            });
        }
        let ents = &shared.entitlements;
        {
            let mut cache = lock(&ents.cache);
            // Fetches in flight for the previous user check this before storing.
            ents.epoch.fetch_add(1, Ordering::Relaxed);
            cache.forget_all();
        }
        ents.any_cached.store(false, Ordering::Relaxed);
        ents.stream.forget_subjects();
    }

    /// `track()` while [`super::Shared::gate`] is set: opted out (no id, counted) or no
    /// identity (`forbidden`).
    #[cold]
    pub(super) fn gated(&self, gate: u8) -> Result<Option<String>, Error> {
        if gate & GATE_OPTED_OUT != 0 {
            self.shared.opted_out_events.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        Err(Error::Forbidden {
            message: "no identity: reset() dropped it; call identify(subject, token) before tracking".into(),
        })
    }
}
