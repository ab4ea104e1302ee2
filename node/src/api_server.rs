//! Serving the HTTP API with bounds on what a client can hold: a cap on
//! open connections, a deadline for each request head (which also closes
//! idle keep-alive connections), and graceful shutdown with a bound.
//!
//! Built from hyper's HTTP/1 connection builder rather than `axum::serve`,
//! which does not expose the header-read timeout. The request timeout and
//! the body limits are layers of the router (`api.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Layer;

use crate::config::ApiConfig;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// After a failed `accept` that is not about one connection (out of file
/// handles, most likely), wait this long before accepting again, so that
/// the loop does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE_MS: u64 = 100;

/// On shutdown, open connections get this long to finish the request they
/// are serving; then they are dropped.
pub const API_SHUTDOWN_WAIT_MS_MAX: u64 = 5_000;

/// Serves `router` on `listener` with the connection `limits` until `stop`
/// fires (it has no other way to end: a failed `accept` is waited out).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ApiConfig,
    metrics: Arc<Metrics>,
    mut stop: Shutdown,
) {
    let permits = Arc::new(Semaphore::new(limits.connections_max));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
        .keep_alive(limits.keep_alive);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    tracing::warn!(%error, "HTTP API cannot accept a connection; pausing");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                    continue;
                }
            },
        };
        // Closing at once a connection over the cap costs one file handle
        // for an instant, and the client learns right away to come back.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics
                .api_connections_refused_total
                .fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Each connection's requests carry its peer address, for the
        // routes that count per client (the citizen lookup): one extension
        // around the shared router, which is not rebuilt per connection.
        let service = TowerToHyperService::new(
            axum::Extension(axum::extract::ConnectInfo(peer)).layer(router.clone()),
        );
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        let metrics = metrics.clone();
        metrics.api_connections_open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // Timeouts and clients that go away are routine.
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
            metrics.api_connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_millis(API_SHUTDOWN_WAIT_MS_MAX)) => {
            tracing::warn!("HTTP connections still open at shutdown were dropped");
        }
    }
}

/// Errors of `accept` that concern only the one connection being accepted.
fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
