//! The HTTP/1.1 accept loop: hyper connections with a header-read timeout (which also bounds
//! the idle time between requests on a kept-alive connection), a cap on open connections,
//! WebSocket upgrades, and graceful shutdown.
//!
//! `axum::serve` runs connections without a timer, so a client that opens a connection and
//! never finishes its headers (slow-loris), or idles after an answer, would hold a task and a
//! file descriptor forever.

use std::{future::Future, sync::Arc, time::Duration};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// See `server.header_read_timeout_secs`.
    pub header_read_timeout: Duration,
    /// See `server.max_connections`.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits
/// for the open HTTP connections to finish their current request (idle ones close at once).
/// Upgraded connections (the stream) are not waited for: they end on their own shutdown path.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    // `stop` tells the connections to finish; each holds a `closed` receiver until it ends.
    let (stop_tx, stop_rx) = watch::channel(());
    let (closed_tx, closed_rx) = watch::channel(());
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; per-connection errors
                    // (ECONNABORTED) are harmless.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()))
            .with_upgrades();
        let (mut stop_rx, closed_rx) = (stop_rx.clone(), closed_rx.clone());
        tokio::spawn(async move {
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stop_rx.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop((permit, closed_rx));
        });
    }
    drop(listener);
    let _ = stop_tx.send(());
    drop(closed_rx);
    closed_tx.closed().await;
}
