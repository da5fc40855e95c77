//! HTTP over the host's `fetch`: one request with the client's credentials, raced against
//! `request_timeout`, read back as status, headers and body.

use std::time::Duration;

use futures_util::future::{Either, select};
use gloo_timers::future::TimeoutFuture;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestInit, Response};

use super::host::{describe, fetch_request};
use crate::{error::Error, wire::ErrorBody};

/// The header that carries a publishable key's customer token (DESIGN §6).
pub(crate) const CUSTOMER_TOKEN_HEADER: &str = "x-meterline-customer-token";

/// A request to send.
#[derive(Clone, Copy)]
pub(crate) struct Call<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: Option<&'a [u8]>,
    /// `fetch`'s `keepalive`: the request outlives the page (pagehide).
    pub keepalive: bool,
}

/// What came back.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).ok().flatten()
    }

    /// The error an error status stands for (the server's `{code, message}` body).
    pub fn error(&self) -> Error {
        let status = self.status;
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(b) => (b.code, b.message),
            Err(_) => (format!("http_{status}"), format!("the server answered {status}")),
        };
        match status {
            401 => Error::Unauthorized { message },
            403 => Error::Forbidden { message },
            _ => Error::Http { status, code, message },
        }
    }
}

/// How a request failed without a status.
pub(crate) enum Failure {
    /// `fetch` rejected: no connection, a CORS refusal, an aborted page.
    Network(String),
    /// No answer within the timeout.
    Timeout,
}

impl Failure {
    /// As the client's error.
    pub fn into_error(self, timeout: Duration) -> Error {
        match self {
            Failure::Network(detail) => Error::Network(detail),
            Failure::Timeout => Error::Timeout(timeout),
        }
    }
}

/// Sends `call`; the reply, or why none came within `timeout`.
pub(crate) async fn send(call: Call<'_>, timeout: Duration) -> Result<Reply, Failure> {
    let request = build(&call).map_err(|e| Failure::Network(describe(&e)))?;
    let exchange = async {
        let response = JsFuture::from(fetch_request(&request))
            .await
            .map_err(|e| Failure::Network(describe(&e)))?;
        let response: Response = response
            .dyn_into()
            .map_err(|_| Failure::Network("fetch resolved to something other than a Response".into()))?;
        let buffer = response.array_buffer().map_err(|e| Failure::Network(describe(&e)))?;
        let buffer = JsFuture::from(buffer)
            .await
            .map_err(|e| Failure::Network(describe(&e)))?;
        Ok(Reply {
            status: response.status(),
            headers: response.headers(),
            body: js_sys::Uint8Array::new(&buffer).to_vec(),
        })
    };
    let millis = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let exchange = std::pin::pin!(exchange);
    match select(exchange, TimeoutFuture::new(millis)).await {
        Either::Left((reply, _)) => reply,
        Either::Right(_) => Err(Failure::Timeout),
    }
}

fn build(call: &Call<'_>) -> Result<Request, JsValue> {
    let headers = Headers::new()?;
    for (name, value) in call.headers {
        headers.set(name, value)?;
    }
    let init = RequestInit::new();
    init.set_method(call.method);
    init.set_headers(&headers);
    if let Some(body) = call.body {
        init.set_body(&js_sys::Uint8Array::from(body));
    }
    if call.keepalive {
        // Not in web-sys' `RequestInit` bindings: set as a plain property.
        js_sys::Reflect::set(&init, &"keepalive".into(), &JsValue::TRUE)?;
    }
    Request::new_with_str_and_init(call.url, &init)
}
