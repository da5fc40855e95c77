//! A real HTTP fault proxy on 127.0.0.1 between the SDK and the server: it forwards every
//! request to the current upstream, records the event ids of each ingest attempt, and can
//! answer with scripted faults (5xx, 429 + Retry-After, 400) instead of forwarding. When the
//! upstream is down it answers 502, as a load balancer would.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use meterline_core::codec::{Encoding, decompress_limited};
use serde_json::Value;

/// A scripted answer for the next ingest request.
#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    pub retry_after: Option<&'static str>,
}

#[derive(Default)]
struct Inner {
    upstream: String,
    faults: VecDeque<Fault>,
    /// Event ids of every `POST /v1/events` attempt, in arrival order, with the status answered
    /// (`0` until it is answered, and for good when the client went away first).
    attempts: Vec<(Vec<String>, u16)>,
}

#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Mutex<Inner>>,
    pub url: String,
    http: reqwest::Client,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let proxy = Proxy {
            inner: Arc::new(Mutex::new(Inner {
                upstream: upstream.to_owned(),
                ..Inner::default()
            })),
            url,
            http: reqwest::Client::new(),
        };
        let app = Router::new().fallback(forward).with_state(proxy.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        proxy
    }

    pub fn set_upstream(&self, upstream: &str) {
        self.inner.lock().unwrap().upstream = upstream.to_owned();
    }

    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.inner.lock().unwrap().faults.extend(faults);
    }

    pub fn attempts(&self) -> Vec<(Vec<String>, u16)> {
        self.inner.lock().unwrap().attempts.clone()
    }
}

async fn forward(State(proxy): State<Proxy>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let ingest = method == Method::POST && uri.path() == "/v1/events";
    let ids = if ingest { batch_ids(&headers, &body) } else { Vec::new() };
    let (upstream, fault) = {
        let mut inner = proxy.inner.lock().unwrap();
        let fault = if ingest { inner.faults.pop_front() } else { None };
        (inner.upstream.clone(), fault)
    };
    // Recorded on arrival, so an attempt whose client went away (the handler is dropped)
    // stays in the list with no answer.
    let attempt = ingest.then(|| {
        let mut inner = proxy.inner.lock().unwrap();
        inner.attempts.push((ids, 0));
        inner.attempts.len() - 1
    });
    let record = |status: u16| {
        if let Some(at) = attempt {
            proxy.inner.lock().unwrap().attempts[at].1 = status;
        }
    };
    if let Some(fault) = fault {
        record(fault.status);
        let mut resp = (
            StatusCode::from_u16(fault.status).unwrap(),
            [("content-type", "application/json")],
            format!(
                r#"{{"code":"injected","message":"fault injected by the test proxy ({})"}}"#,
                fault.status
            ),
        )
            .into_response();
        if let Some(ra) = fault.retry_after {
            resp.headers_mut().insert("retry-after", ra.parse().unwrap());
        }
        return resp;
    }
    let mut req = proxy.http.request(method, format!("{upstream}{uri}")).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            record(status);
            let mut out = Response::builder().status(status);
            for (name, value) in resp.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    out = out.header(name, value);
                }
            }
            let bytes = resp.bytes().await.unwrap_or_default();
            out.body(axum::body::Body::from(bytes)).unwrap()
        }
        Err(_) => {
            record(502);
            (
                StatusCode::BAD_GATEWAY,
                r#"{"code":"bad_gateway","message":"upstream unreachable"}"#,
            )
                .into_response()
        }
    }
}

fn batch_ids(headers: &HeaderMap, body: &[u8]) -> Vec<String> {
    let encoding: Encoding = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .parse()
        .unwrap();
    let raw = decompress_limited(encoding, body, 64 << 20).unwrap();
    let events: Vec<Value> = serde_json::from_slice(&raw).unwrap();
    events.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}
