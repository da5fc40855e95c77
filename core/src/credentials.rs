//! A publishable key's customer token as a live credential (DESIGN §6), without I/O.
//!
//! The client is given a token, a token provider (a function returning a fresh one), or
//! both. [`TokenState`] holds the current token and decides when to ask the provider:
//!
//! - **Ahead of expiry**: at 80 % of the token's life (`iat` → `exp`) or 60 s before `exp`,
//!   whichever comes first ([`Token::refresh_at_ms`]), but at most once per
//!   [`MIN_REFRESH_GAP`], so a provider handing out short or already expired tokens is not
//!   asked in a loop. The token's claims are read without checking the signature (a client
//!   cannot); its `exp` only schedules the refresh — a token is never refused for its `exp`,
//!   since the client's clock may differ from the server's.
//! - **On `token_expired`** (an HTTP 401 with that code, or a stream closed 4401): the
//!   request is retried once with a newer token. [`TokenState::after_expired`] says whether
//!   a newer one already came (another request refreshed meanwhile: retry with it) or the
//!   provider must be asked. The runtime asks it under one lock, so concurrent requests
//!   refused with the same token share one call ("single flight"): each compares the
//!   generation it was refused with against the current one.
//! - **A provider that fails** (throws, returns something that is not a JWT) leaves the
//!   current token in place; the failure is counted ([`TokenState::failures`]) and the
//!   runtime reports it, rate-limited. It is never raised into `track()`.

use std::time::Duration;

use crate::{
    customer_token,
    error::{Error, ValidationError},
};

/// The argument rules of `identify(subject, token)`, shared by every runtime: `subject` is a
/// valid subject, `token` a customer token for that subject. Answers the parsed token.
pub fn identify_token(subject: &str, token: &str) -> Result<Token, Error> {
    customer_token::check_subject(subject)?;
    let token = Token::parse(token.trim())
        .map_err(|why| ValidationError::invalid_argument("/token", format!("not a customer token: {why}")))?;
    if token.subject() != subject {
        return Err(ValidationError::invalid_argument(
            "/token",
            format!("the token is for subject {:?}, not {subject:?}", token.subject()),
        )
        .into());
    }
    Ok(token)
}

/// The share of a token's life after which it is refreshed ahead of time.
pub const REFRESH_AT_SHARE: (u64, u64) = (4, 5);

/// A token is refreshed at the latest this long before its `exp`.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Ahead-of-expiry refreshes are at least this far apart (a refresh after `token_expired`
/// is not held back by it).
pub const MIN_REFRESH_GAP: Duration = Duration::from_secs(10);

/// A customer token with the claims a client reads from it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    value: String,
    subject: String,
    issued_at_ms: u64,
    expires_at_ms: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself: it is a credential.
        f.debug_struct("Token")
            .field("subject", &self.subject)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Reads a token's claims (`sub`, `iat`, `exp`). Errors: a message saying what is wrong
    /// with it (not a JWT, unreadable claims, characters a header cannot carry).
    pub fn parse(value: impl Into<String>) -> Result<Token, String> {
        let value = value.into();
        if value.len() > 8 * 1024 {
            return Err("longer than 8 KiB".to_owned());
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err("holds characters a JWT (base64url parts and dots) cannot".to_owned());
        }
        let claims = customer_token::claims_unverified(&value).map_err(|e| e.message)?;
        Ok(Token {
            subject: claims.sub,
            issued_at_ms: claims.iat.saturating_mul(1000),
            expires_at_ms: claims.exp.saturating_mul(1000),
            value,
        })
    }

    /// The token as sent in `X-Meterline-Customer-Token`.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The subject the token acts for (its `sub`).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// When to refresh it ahead of expiry (Unix ms): at 80 % of its life or 60 s before
    /// `exp`, whichever is first, and never before `iat`.
    pub fn refresh_at_ms(&self) -> u64 {
        let (num, den) = REFRESH_AT_SHARE;
        let life = self.expires_at_ms.saturating_sub(self.issued_at_ms);
        let by_share = self.issued_at_ms + life / den * num + life % den * num / den;
        let by_margin = self.expires_at_ms.saturating_sub(REFRESH_MARGIN.as_millis() as u64);
        by_share.min(by_margin).max(self.issued_at_ms)
    }
}

/// What to do after the server refused a request's token as expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExpired {
    /// A newer token came meanwhile: retry with it.
    Retry,
    /// Ask the provider, then retry.
    Refresh,
    /// No provider: nothing fresher can come; the request fails.
    GiveUp,
}

/// The current token, its generation, and the refresh schedule.
#[derive(Debug, Clone)]
pub struct TokenState {
    token: Option<Token>,
    /// The subject every token must be for (set by the first token): a provider answering
    /// for another user is refused (`identify()` switches users, never a refresh).
    subject: Option<String>,
    /// Bumped by every token installed; a request remembers the one it was sent with.
    generation: u64,
    has_provider: bool,
    /// When the provider was last asked (Unix ms).
    last_asked_ms: Option<u64>,
    failures: u64,
}

impl TokenState {
    /// A state starting with `token` (if given); `has_provider`: a provider can be asked.
    pub fn new(token: Option<Token>, has_provider: bool) -> Self {
        TokenState {
            generation: u64::from(token.is_some()),
            subject: token.as_ref().map(|t| t.subject.clone()),
            token,
            has_provider,
            last_asked_ms: None,
            failures: 0,
        }
    }

    /// The current token and its generation (`None` before any token came).
    pub fn current(&self) -> Option<(&Token, u64)> {
        self.token.as_ref().map(|t| (t, self.generation))
    }

    /// The generation of the current token (0: none yet).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a request about to go out should first ask the provider: there is no token
    /// yet, or the current one reached its refresh time and the provider was not asked in
    /// the last [`MIN_REFRESH_GAP`].
    pub fn refresh_due(&self, now_ms: u64) -> bool {
        if !self.has_provider {
            return false;
        }
        let rested = self
            .last_asked_ms
            .is_none_or(|at| now_ms >= at.saturating_add(MIN_REFRESH_GAP.as_millis() as u64));
        match &self.token {
            None => rested,
            Some(token) => rested && now_ms >= token.refresh_at_ms(),
        }
    }

    /// The server refused the token of generation `refused` as expired: retry with a newer
    /// one, ask the provider, or give up.
    pub fn after_expired(&self, refused: u64) -> AfterExpired {
        if self.generation > refused && self.token.is_some() {
            AfterExpired::Retry
        } else if self.has_provider {
            AfterExpired::Refresh
        } else {
            AfterExpired::GiveUp
        }
    }

    /// Records that the provider is being asked now.
    pub fn asking(&mut self, now_ms: u64) {
        self.last_asked_ms = Some(now_ms);
    }

    /// Takes the provider's answer: a token becomes the current one (a new generation); a
    /// failure, or an answer that is not a JWT, is counted and returned as the error to
    /// report (`unauthorized`), and the current token stays.
    pub fn provided(&mut self, answer: Result<String, String>) -> Result<u64, Error> {
        let parsed = answer
            .map_err(|why| format!("the token provider failed: {why}"))
            .and_then(|text| {
                Token::parse(text.trim()).map_err(|why| format!("the token provider returned no customer token: {why}"))
            })
            .and_then(|token| match &self.subject {
                Some(subject) if *subject != token.subject => Err(format!(
                    "the token provider returned a token for subject {:?}, not {subject:?} (identify() switches users)",
                    token.subject
                )),
                _ => Ok(token),
            });
        match parsed {
            Ok(token) => {
                self.subject = Some(token.subject.clone());
                self.token = Some(token);
                self.generation += 1;
                Ok(self.generation)
            }
            Err(message) => {
                self.failures += 1;
                Err(Error::Unauthorized { message })
            }
        }
    }

    /// Whether a provider can be asked for its tokens.
    pub fn has_provider(&self) -> bool {
        self.has_provider
    }

    /// The subject its tokens are for (`None` before the first token).
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// Installs a token the application gave (`identify()` for the same subject: a fresh
    /// token, not a switch); a new generation.
    pub fn install(&mut self, token: Token) -> u64 {
        self.subject = Some(token.subject.clone());
        self.token = Some(token);
        self.generation += 1;
        self.generation
    }

    /// Provider calls that failed or returned no token, since start.
    pub fn failures(&self) -> u64 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use serde_json::json;

    use super::*;

    fn token(sub: &str, iat: u64, exp: u64) -> String {
        let part = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.c2ln",
            part(json!({"alg": "HS256", "typ": "JWT", "kid": "k"})),
            part(json!({"sub": sub, "iat": iat, "exp": exp}))
        )
    }

    #[test]
    fn identify_takes_a_valid_subject_and_a_token_for_it() {
        let good = token("u1", 1_000, 2_000);
        assert_eq!(identify_token("u1", &good).unwrap().subject(), "u1");
        let path = |err: Error| match err {
            Error::Validation(v) => (v.code, v.path),
            other => panic!("not a validation error: {other:?}"),
        };
        let (code, at) = path(identify_token("u2", &good).unwrap_err());
        assert_eq!((code, at.as_str()), ("invalid_argument", "/token"));
        let (code, at) = path(identify_token("u1", "not-a-jwt").unwrap_err());
        assert_eq!((code, at.as_str()), ("invalid_argument", "/token"));
        let (_, at) = path(identify_token("", &good).unwrap_err());
        assert_eq!(at, "/subject");
    }

    #[test]
    fn refreshes_at_four_fifths_of_the_life_or_a_minute_before_exp() {
        // One hour: 80 % is at 48 min, a minute before exp at 59 min → 48 min.
        let t = Token::parse(token("c", 1_000, 4_600)).unwrap();
        assert_eq!(t.refresh_at_ms(), 1_000_000 + 2_880_000);
        // Two minutes: 80 % is at 96 s, a minute before exp at 60 s → 60 s.
        let t = Token::parse(token("c", 1_000, 1_120)).unwrap();
        assert_eq!(t.refresh_at_ms(), 1_060_000);
        // Thirty seconds: a minute before exp is before iat → at iat.
        let t = Token::parse(token("c", 1_000, 1_030)).unwrap();
        assert_eq!(t.refresh_at_ms(), 1_000_000);
        assert_eq!(t.subject(), "c");
    }

    #[test]
    fn asks_ahead_of_expiry_at_most_once_per_gap() {
        let t = Token::parse(token("c", 1_000, 1_120)).unwrap();
        let mut state = TokenState::new(Some(t), true);
        assert!(!state.refresh_due(1_059_999));
        assert!(state.refresh_due(1_060_000));
        state.asking(1_060_000);
        assert!(
            state.provided(Ok(token("c", 900, 950))).is_ok(),
            "an old token is still taken"
        );
        assert!(!state.refresh_due(1_069_999), "within the gap");
        assert!(state.refresh_due(1_070_000));
        assert!(!TokenState::new(None, false).refresh_due(0), "nobody to ask");
        assert!(TokenState::new(None, true).refresh_due(0), "no token yet: ask");
    }

    #[test]
    fn one_refresh_per_expired_generation() {
        let mut state = TokenState::new(Some(Token::parse(token("c", 1, 2)).unwrap()), true);
        assert_eq!(state.generation(), 1);
        // Two requests refused with generation 1: the first asks …
        assert_eq!(state.after_expired(1), AfterExpired::Refresh);
        assert_eq!(state.provided(Ok(token("c", 1, 9_999_999_999))).unwrap(), 2);
        // … the second finds generation 2 and retries without asking.
        assert_eq!(state.after_expired(1), AfterExpired::Retry);
        assert_eq!(state.after_expired(2), AfterExpired::Refresh);
        let without = TokenState::new(Some(Token::parse(token("c", 1, 2)).unwrap()), false);
        assert_eq!(without.after_expired(1), AfterExpired::GiveUp);
    }

    #[test]
    fn a_failing_provider_is_counted_and_the_token_stays() {
        let mut state = TokenState::new(Some(Token::parse(token("c", 1, 2)).unwrap()), true);
        for answer in [
            Err("backend down".to_owned()),
            Ok("not a jwt".to_owned()),
            Ok("a.b\n.c".to_owned()),
        ] {
            let err = state.provided(answer).unwrap_err();
            assert_eq!(err.code(), "unauthorized");
            assert!(err.to_string().contains("token provider"), "{err}");
        }
        let other = state.provided(Ok(token("someone-else", 1, 9_999_999_999))).unwrap_err();
        assert!(other.to_string().contains("not \"c\""), "{other}");
        assert_eq!(state.failures(), 4);
        assert_eq!(state.generation(), 1);
        assert_eq!(state.current().unwrap().0.subject(), "c");
    }
}
