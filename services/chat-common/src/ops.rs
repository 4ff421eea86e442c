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
    registry: Arc<Registry>,
}

/// The ops routes, to be merged into a service's router or served on their own port.
pub fn router(readiness: Arc<dyn Readiness>, registry: Arc<Registry>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(OpsState {
            readiness,
            registry,
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
    let mut body = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut body, &state.registry) {
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
