//! Reading a request body within a byte limit, the same way on every route that takes one.

use std::pin::Pin;

use axum::{
    body::{Body, HttpBody},
    http::{HeaderMap, StatusCode, header},
};

use crate::error::ApiError;

/// Reads the body, failing with `413 payload_too_large` once it passes `limit`.
///
/// An oversized body is still read (and dropped) up to `4 × limit`, so the client gets to
/// read the 413 instead of a connection reset while it is still sending.
pub(crate) async fn read_limited(headers: &HeaderMap, mut body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::too_large(
            "payload_too_large",
            format!("the request body exceeds the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let drain_limit = limit.saturating_mul(4);
    if declared.is_some_and(|n| n > drain_limit as u64) {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(declared.map_or(64 * 1024, |n| (n as usize).min(limit)));
    let mut seen = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("reading the body failed: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > drain_limit {
                return Err(too_large());
            }
            if seen <= limit {
                buf.extend_from_slice(&data);
            }
        }
    }
    if seen > limit {
        return Err(too_large());
    }
    Ok(buf)
}
