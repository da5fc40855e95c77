//! Memory per idle stream connection: opens N authenticated, subscribed, idle WebSocket
//! connections to the optimised server binary and reports its resident memory growth
//! (`VmRSS` of `/proc/<pid>/status`) divided by N.
//!
//! `cargo bench -p meterline-server --bench stream_idle`. Knobs: `BENCH_CONNECTIONS`
//! (default 2000), `BENCH_AUTH` (`secret` default, or `token` for a publishable key with a
//! customer token, as browsers connect). Talks only to 127.0.0.1 and stops by itself.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use common::BenchServer;
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use meterline_core::key::ApiKey;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn customer_token(secret_key: &str, sub: &str) -> String {
    let key = ApiKey::parse(secret_key).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let head = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT", "kid": key.id}).to_string());
    let body = URL_SAFE_NO_PAD.encode(json!({"sub": sub, "iat": now, "exp": now + 3600}).to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.customer_token_signing_key()).unwrap();
    mac.update(format!("{head}.{body}").as_bytes());
    format!("{head}.{body}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fn main() {
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with("--") && a != "stream_idle")
    {
        return;
    }
    let n: usize = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let with_token = std::env::var("BENCH_AUTH").is_ok_and(|v| v == "token");

    let server = BenchServer::start(n);
    let (url, secret, admin) = (server.stream_url(), server.secret.clone(), server.admin.clone());
    let pid = server.child.id();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let publishable = if with_token {
            let http = reqwest::Client::new();
            let created: Value = http
                .post(format!("{}/v1/admin/keys", server.base))
                .bearer_auth(&admin)
                .json(&json!({"kind": "publishable"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            Some(created["key"].as_str().unwrap().to_owned())
        } else {
            None
        };
        let open = |i: usize| {
            let (url, secret, publishable) = (url.clone(), secret.clone(), publishable.clone());
            async move {
                let subject = format!("customer-{i}");
                let mut request = url.into_client_request().unwrap();
                let key = publishable.as_deref().unwrap_or(&secret);
                let headers = request.headers_mut();
                headers.insert(
                    "authorization",
                    HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
                );
                if publishable.is_some() {
                    let token = customer_token(&secret, &subject);
                    headers.insert("x-meterline-customer-token", HeaderValue::from_str(&token).unwrap());
                }
                let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("connect");
                let op = json!({"op": "subscribe", "subjects": [subject]});
                ws.send(Message::text(op.to_string())).await.unwrap();
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(text))) if text.contains("\"subscribed\"") => break,
                        Some(Ok(_)) => {}
                        other => panic!("connection {i}: {other:?}"),
                    }
                }
                ws
            }
        };
        // Warm up: the first connection allocates the runtime's and allocator's pools.
        let warm = open(usize::MAX).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = rss_kib(pid);
        let started = Instant::now();
        let mut held = Vec::with_capacity(n);
        for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
            let opened = futures_util::future::join_all(chunk.iter().map(|&i| open(i))).await;
            held.extend(opened);
        }
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = rss_kib(pid);
        let per = (after.saturating_sub(before)) as f64 / n as f64;
        println!(
            "{n} idle subscribed connections ({}): server RSS {:.1} MiB -> {:.1} MiB, {per:.1} KiB per connection \
             (opened in {:.1} s)",
            if with_token {
                "publishable key + customer token"
            } else {
                "secret key"
            },
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            took.as_secs_f64()
        );
        drop(held);
        drop(warm);
    });
}
