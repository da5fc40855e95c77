//! Stream test helpers: a real WebSocket client (tokio-tungstenite) for `/v1/stream`, and
//! customer tokens minted (or forged) by hand.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use meterline_core::key::ApiKey;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue},
};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for one expected frame.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// HS256 over `header.claims` with `key`, base64url without padding, as a JWT library does.
pub fn sign_token(header: &Value, claims: &Value, key: &[u8]) -> String {
    let head = URL_SAFE_NO_PAD.encode(header.to_string());
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{head}.{body}").as_bytes());
    format!("{head}.{body}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// A customer token for `sub`, signed the way the SDK does with `secret_key`, valid
/// `ttl_secs` from now (negative: expired).
pub fn customer_token(secret_key: &str, sub: &str, ttl_secs: i64) -> String {
    let key = ApiKey::parse(secret_key).unwrap();
    let now = unix_now();
    sign_token(
        &json!({"alg": "HS256", "typ": "JWT", "kid": key.id}),
        &json!({"sub": sub, "iat": now, "exp": now + ttl_secs}),
        &key.customer_token_signing_key(),
    )
}

/// How a test connects.
#[derive(Debug, Default, Clone)]
pub struct Connect<'a> {
    /// `Authorization: Bearer <key>`.
    pub bearer: Option<&'a str>,
    /// `X-Meterline-Customer-Token`.
    pub token_header: Option<&'a str>,
    /// `Sec-WebSocket-Protocol` values.
    pub protocols: Vec<String>,
}

/// `ws://…/v1/stream` of a server's `http://…` URL.
pub fn stream_url(http_url: &str) -> String {
    format!("{}/v1/stream", http_url.replacen("http://", "ws://", 1))
}

/// Opens a WebSocket to `/v1/stream`; returns the socket and the answered subprotocol.
pub async fn connect(http_url: &str, how: Connect<'_>) -> (Ws, Option<String>) {
    let mut request = stream_url(http_url).into_client_request().unwrap();
    let headers = request.headers_mut();
    if let Some(key) = how.bearer {
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
        );
    }
    if let Some(token) = how.token_header {
        headers.insert("x-meterline-customer-token", HeaderValue::from_str(token).unwrap());
    }
    if !how.protocols.is_empty() {
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&how.protocols.join(", ")).unwrap(),
        );
    }
    let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect timed out")
        .expect("WebSocket handshake failed");
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    (ws, protocol)
}

/// Connects with `Authorization: Bearer <key>`.
pub async fn connect_key(http_url: &str, key: &str) -> Ws {
    connect(
        http_url,
        Connect {
            bearer: Some(key),
            ..Connect::default()
        },
    )
    .await
    .0
}

pub async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

/// The next text frame as JSON (pings and pongs skipped); panics on close or timeout.
pub async fn recv_json(ws: &mut Ws) -> Value {
    recv_json_within(ws, WAIT)
        .await
        .unwrap_or_else(|| panic!("no frame within {WAIT:?}"))
}

/// The next text frame as JSON, or `None` when nothing arrives within `wait`.
pub async fn recv_json_within(ws: &mut Ws, wait: Duration) -> Option<Value> {
    recv_text_within(ws, wait)
        .await
        .map(|text| serde_json::from_str(&text).unwrap())
}

/// The next text frame's exact text (pings and pongs skipped); panics on close or timeout.
pub async fn recv_text(ws: &mut Ws) -> String {
    recv_text_within(ws, WAIT)
        .await
        .unwrap_or_else(|| panic!("no frame within {WAIT:?}"))
}

/// The next text frame's exact text, or `None` when nothing arrives within `wait`.
pub async fn recv_text_within(ws: &mut Ws, wait: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(message) => message,
        };
        match message {
            Some(Ok(Message::Text(text))) => return Some(text.as_str().to_owned()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Sends `subscribe` and returns the frames before `subscribed` (replay, `resync`) and
/// the `subscribed` answer itself.
pub async fn subscribe(ws: &mut Ws, subjects: &[&str], since: Option<u64>) -> (Vec<Value>, Value) {
    let mut op = json!({"op": "subscribe", "subjects": subjects});
    if let Some(since) = since {
        op["since"] = json!(since);
    }
    send_json(ws, op).await;
    let mut before = Vec::new();
    loop {
        let frame = recv_json(ws).await;
        if frame["type"] == "subscribed" {
            return (before, frame);
        }
        assert_ne!(frame["type"], "error", "subscribe refused: {frame}");
        before.push(frame);
    }
}

/// How a connection ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// A close frame with this code and reason.
    Closed(u16, String),
    /// The TCP connection ended without a close frame (reset or EOF).
    Dropped(String),
}

/// Reads (discarding data frames) until the server ends the connection.
pub async fn ended(ws: &mut Ws, wait: Duration) -> Ended {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("the connection was not closed within {wait:?}"),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return match frame {
                    Some(f) => Ended::Closed(u16::from(f.code), f.reason.to_string()),
                    None => Ended::Closed(1005, String::new()),
                };
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) | None) => {
                return Ended::Dropped("closed".into());
            }
            Ok(Some(Err(e))) => return Ended::Dropped(e.to_string()),
        }
    }
}

/// Asserts the server closes with `code`; returns the reason.
pub async fn closed_with(ws: &mut Ws, code: u16) -> String {
    match ended(ws, WAIT).await {
        Ended::Closed(got, reason) => {
            assert_eq!(got, code, "reason: {reason}");
            reason
        }
        other => panic!("expected close {code}, got {other:?}"),
    }
}

/// Resident memory of a process, KiB (`VmRSS` of /proc/<pid>/status).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
