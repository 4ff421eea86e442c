//! The public listener's accept loop. `axum::serve` would do, but it has no handshake
//! timeout: a client that opens a TCP connection and never finishes its request (or
//! trickles its headers) would hold a descriptor forever. Here every connection must
//! deliver its request headers (for `/ws`, the upgrade request) within
//! `gateway.handshake_timeout_ms`, and sockets get `TCP_NODELAY`, so small frames are not
//! held back by Nagle's algorithm waiting for the peer's delayed ACK. An operator may also
//! cap each socket's kernel send buffer (`gateway.socket_send_buffer_bytes`): with many
//! connections the kernel's autotuned buffers, megabytes each, are the larger memory.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Per-connection settings of the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// The request headers must arrive within this long.
    pub handshake_timeout: Duration,
    /// `SO_SNDBUF` for each socket; `None` leaves it to the kernel's autotuning.
    pub send_buffer_bytes: Option<usize>,
}

/// Pause after a failed accept (out of descriptors, say) before the next one, so the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `app` until `shutdown`; then stops accepting and waits for the HTTP requests in
/// progress. Upgraded websockets are not HTTP connections any more: they drain on the same
/// signal by themselves.
pub async fn serve(listener: TcpListener, app: Router, limits: ConnectionLimits, shutdown: CancellationToken) {
    let ConnectionLimits {
        handshake_timeout,
        send_buffer_bytes,
    } = limits;
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout);
    builder.http2().timer(TokioTimer::new()).enable_connect_protocol();
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        if let Some(bytes) = send_buffer_bytes
            && let Err(error) = socket2::SockRef::from(&stream).set_send_buffer_size(bytes)
        {
            tracing::debug!(%error, "cannot set the socket's send buffer");
        }
        let (app, builder, watcher) = (app.clone(), builder.clone(), graceful.watcher());
        tokio::spawn(async move {
            // hyper's header timeout starts at the first byte, and the protocol detection
            // before it waits for that byte without a bound: a silent client is cut here.
            let mut first = [0u8; 1];
            match tokio::time::timeout(handshake_timeout, stream.peek(&mut first)).await {
                Ok(Ok(1..)) => {}
                _ => return,
            }
            // The peer's address, for what is counted per client (`api::extract::ClientIp`).
            let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(request.map(axum::body::Body::new))
            });
            // The connection borrows this task's own copy of the builder: no second copy.
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
