//! `GET /v1/stream`: the WebSocket upgrade and where the credentials come from.
//!
//! Three ways to authenticate, tried in this order:
//! 1. `Authorization: Bearer <key>` (plus `X-Meterline-Customer-Token` for a publishable
//!    key) — servers and native apps;
//! 2. `Sec-WebSocket-Protocol` — browsers, which cannot set headers, offer
//!    `meterline.v1, meterline.key.<key>[, meterline.token.<customer token>]`; the server
//!    answers `meterline.v1` (never echoing a credential);
//! 3. a first frame `{"op":"auth","key":"ml_pk_…","token":"…"}` within
//!    `stream.auth_timeout_ms`.
//!
//! Bad or missing credentials never fail the HTTP upgrade: the connection opens and is
//! closed with 4401 and a reason a browser can read (a failed handshake is opaque to it).
//! The same holds for the `Origin` of a browser's upgrade, checked once the key is known
//! against its project's `allowed_origins`: 4403 with reason `origin_not_allowed: …`.

use axum::{
    extract::{
        State,
        ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection},
    },
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};

use super::connection;
use crate::{
    app::AppState,
    auth::{CUSTOMER_TOKEN_HEADER, bearer_key, single_header},
    error::ApiError,
};

/// The subprotocol a browser offers and the server answers.
pub const PROTOCOL: &str = "meterline.v1";
/// Prefix of the offered subprotocol that carries the API key.
pub const KEY_PROTOCOL_PREFIX: &str = "meterline.key.";
/// Prefix of the offered subprotocol that carries the customer token.
pub const TOKEN_PROTOCOL_PREFIX: &str = "meterline.token.";

/// Most bytes one read of a connection takes. tungstenite zero-fills this much before every
/// read attempt — and a connection's loop attempts one each time it wakes, also for the
/// frames it sends — so it is kept small: clients send small frames (subscribe, pong), and a
/// larger one still arrives, over several reads into a buffer grown to its length. (128 KiB
/// by default: most of an idle connection's memory; 4 KiB still cost 3 % of the server's CPU
/// in a fan-out to 1,000 connections.)
const READ_BUFFER_BYTES: usize = 1024;
/// Bytes a burst of fed frames may collect before tungstenite writes them out; the burst is
/// flushed at its end, so this only caps one write (the buffer grows as needed, it is not
/// allocated up front).
const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Most bytes queued for one client before a send fails (each burst is flushed, so this only
/// fills when the client stops reading).
const MAX_WRITE_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Credentials presented before the upgrade. `Debug` never prints the key's secret or the
/// token.
#[derive(Clone, PartialEq, Eq)]
pub enum Presented {
    /// An API key and, for a publishable key, a customer token.
    Credentials {
        /// `ml_…`.
        key: String,
        /// The customer token, if any.
        token: Option<String>,
    },
    /// An `Authorization` header that cannot be used; the reason closes with 4401.
    Unusable(String),
    /// Nothing yet: the first frame must be `auth`.
    Nothing,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Presented::Credentials { key, token } => {
                // `ml_<kind>_<id>` is public; the secret and the token are not.
                let public: String = key
                    .rsplit_once('_')
                    .map_or("?", |(public, _)| public)
                    .chars()
                    .take(140)
                    .collect();
                f.debug_struct("Credentials")
                    .field("key", &format_args!("{public}_***"))
                    .field("token", &token.as_ref().map(|_| "***"))
                    .finish()
            }
            Presented::Unusable(reason) => f.debug_tuple("Unusable").field(reason).finish(),
            Presented::Nothing => f.write_str("Nothing"),
        }
    }
}

/// `GET /v1/stream` (WebSocket upgrade; DESIGN §5). A request that is not an upgrade gets
/// `426 upgrade_required`.
pub async fn get_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return ApiError::new(
                axum::http::StatusCode::UPGRADE_REQUIRED,
                "upgrade_required",
                format!("GET /v1/stream is a WebSocket endpoint: {}", rejection.body_text()),
            )
            .into_response();
        }
    };
    let offered: Vec<String> = upgrade
        .requested_protocols()
        .filter_map(|p| p.to_str().ok().map(str::to_owned))
        .collect();
    let presented = presented(&headers, &offered);
    // Browsers send one Origin; anything else is compared as it reads (and matches nothing).
    let origin = headers
        .get(header::ORIGIN)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let limits = &state.config.stream;
    let mut upgrade = upgrade
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES);
    if offered.iter().any(|p| p == PROTOCOL) {
        upgrade = upgrade.protocols([PROTOCOL]);
    }
    upgrade.on_upgrade(move |socket| connection::run(state, socket, presented, origin))
}

/// The credentials of the request: the `Authorization` header first, then the offered
/// subprotocols.
pub fn presented(headers: &HeaderMap, offered: &[String]) -> Presented {
    let (authorization, token) = match (
        single_header(headers, header::AUTHORIZATION.as_str()),
        single_header(headers, CUSTOMER_TOKEN_HEADER),
    ) {
        (Ok(authorization), Ok(token)) => (authorization, token),
        (Err(e), _) | (_, Err(e)) => return Presented::Unusable(e),
    };
    if let Some(value) = authorization {
        let Ok(text) = value.to_str() else {
            return Presented::Unusable("the Authorization header is not valid text".into());
        };
        return match bearer_key(Some(text)) {
            Ok(key) => Presented::Credentials {
                key: key.to_owned(),
                token: token.map(|v| v.to_str().unwrap_or_default().to_owned()),
            },
            Err(e) => Presented::Unusable(e.message),
        };
    }
    let find = |prefix: &str| offered.iter().find_map(|p| p.strip_prefix(prefix).map(str::to_owned));
    match find(KEY_PROTOCOL_PREFIX) {
        Some(key) => Presented::Credentials {
            key,
            token: find(TOKEN_PROTOCOL_PREFIX),
        },
        None => Presented::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn offered(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn header_wins_over_protocols() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer ml_pk_a_b"));
        headers.insert(CUSTOMER_TOKEN_HEADER, HeaderValue::from_static("t.o.k"));
        let got = presented(&headers, &offered(&["meterline.v1", "meterline.key.ml_sk_x_y"]));
        assert_eq!(
            got,
            Presented::Credentials {
                key: "ml_pk_a_b".into(),
                token: Some("t.o.k".into())
            }
        );
    }

    #[test]
    fn repeated_credential_headers_are_unusable() {
        for name in [header::AUTHORIZATION.as_str(), CUSTOMER_TOKEN_HEADER] {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer ml_sk_a_b"));
            headers.append(name, HeaderValue::from_static("x.y.z"));
            headers.append(name, HeaderValue::from_static("Bearer ml_sk_c_d"));
            let got = presented(&headers, &[]);
            assert!(
                matches!(&got, Presented::Unusable(m) if m.contains("more than once")),
                "{name}: {got:?}"
            );
        }
    }

    #[test]
    fn protocols_carry_key_and_token() {
        let got = presented(
            &HeaderMap::new(),
            &offered(&["meterline.v1", "meterline.key.ml_pk_a_b", "meterline.token.h.c.s"]),
        );
        assert_eq!(
            got,
            Presented::Credentials {
                key: "ml_pk_a_b".into(),
                token: Some("h.c.s".into())
            }
        );
        assert_eq!(
            presented(&HeaderMap::new(), &offered(&["meterline.v1"])),
            Presented::Nothing
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let presented = Presented::Credentials {
            key: "ml_pk_abc_SECRETSECRETSECRET".into(),
            token: Some("h.c.s".into()),
        };
        let shown = format!("{presented:?}");
        assert!(shown.contains("ml_pk_abc_***"), "{shown}");
        assert!(!shown.contains("SECRET") && !shown.contains("h.c.s"), "{shown}");
    }

    #[test]
    fn a_bad_header_is_reported() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(matches!(presented(&headers, &[]), Presented::Unusable(m) if m.contains("Bearer")));
    }
}
