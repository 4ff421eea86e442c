//! The operations endpoints every service serves: `/healthz` (the process is alive),
//! `/readyz` (its dependencies answer and it is not draining) and `/metrics` (Prometheus
//! text format).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// What `/readyz` asks. `Err` carries a short reason shown in the response body.
#[async_trait::async_trait]
pub trait Readiness: Send + Sync + 'static {
    async fn ready(&self) -> Result<(), String>;
}

#[derive(Clone)]
struct OpsState {
    readiness: Arc<dyn Readiness>,
    registries: Arc<[Arc<Registry>]>,
}

/// The ops routes, to be merged into a service's router or served on their own port.
/// `/metrics` shows every registry given, in order, as one exposition: a process that runs
/// several services (the all-in-one) has one `/metrics` for all of them. Their metric names
/// must not collide; each service prefixes its own.
pub fn router(readiness: Arc<dyn Readiness>, registries: Vec<Arc<Registry>>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(OpsState {
            readiness,
            registries: registries.into(),
        })
}

async fn readyz(State(state): State<OpsState>) -> Response {
    match state.readiness.ready().await {
        Ok(()) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "not_ready", "reason": reason})),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<OpsState>) -> Response {
    use prometheus_client::encoding::text::{encode_eof, encode_registry};
    let mut body = String::new();
    let encoded = state
        .registries
        .iter()
        .try_for_each(|registry| encode_registry(&mut body, registry))
        .and_then(|()| encode_eof(&mut body));
    if let Err(error) = encoded {
        tracing::error!(%error, "cannot encode metrics");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// A listener that could not be bound, and where.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct ListenError {
    pub addr: std::net::SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds a listener (port 0 picks a free port) and returns it with the address it got.
pub async fn listen(
    addr: std::net::SocketAddr,
) -> Result<(tokio::net::TcpListener, std::net::SocketAddr), ListenError> {
    let bound = async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        Ok((listener, local))
    };
    bound.await.map_err(|source| ListenError { addr, source })
}

/// Asks a service's own ops endpoint whether it answers 200: the container health check,
/// with no curl in the image. An unspecified listen address (`0.0.0.0`) is probed on
/// loopback.
pub async fn probe(addr: std::net::SocketAddr, path: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(std::time::Duration::from_secs(3), exchange)
        .await
        .map_err(|_| format!("{addr}{path}: no answer within 3 s"))?
        .map_err(|e| format!("{addr}{path}: {e}"))?;
    let status_line = response.split(|&b| b == b'\n').next().unwrap_or_default();
    let status_line = String::from_utf8_lossy(status_line);
    if status_line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("{addr}{path}: {}", status_line.trim()))
    }
}

/// A running ops server. It is stopped explicitly, after the service has drained, so that
/// `/readyz` (503 while draining) and `/metrics` stay readable through a shutdown.
pub struct OpsServer {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl OpsServer {
    pub fn spawn(
        listener: tokio::net::TcpListener,
        readiness: Arc<dyn Readiness>,
        registries: Vec<Arc<Registry>>,
    ) -> Self {
        let stop = tokio_util::sync::CancellationToken::new();
        let app = router(readiness, registries);
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
            }
        });
        Self { stop, task }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
