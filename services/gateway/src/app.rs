//! The gateway's shared state and its router: the one place the application is assembled,
//! used alike by the binary, the all-in-one and the tests.

use crate::auth::Sessions;
use crate::metrics::Metrics;
use crate::rooms::{ConnId, Rooms};
use crate::settings::Settings;
use crate::upstream::Upstream;
use crate::{api, ws};
use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use chat_domain::ErrorCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    sessions: Sessions,
    upstream: Upstream,
    rooms: Rooms,
    metrics: Metrics,
    shutdown: CancellationToken,
    next_conn: AtomicU64,
    /// Every websocket task, so that a drain can wait for them to close.
    connections: TaskTracker,
    instance: String,
}

impl AppState {
    pub fn new(
        settings: Settings,
        instance: String,
        upstream: Upstream,
        rooms: Rooms,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Self {
        let sessions = Sessions::new(
            settings.auth.secret.as_bytes(),
            Duration::from_secs(settings.auth.session_ttl_secs),
        );
        Self {
            inner: Arc::new(Inner {
                settings,
                sessions,
                upstream,
                rooms,
                metrics,
                shutdown,
                next_conn: AtomicU64::new(1),
                connections: TaskTracker::new(),
                instance,
            }),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }
    pub fn upstream(&self) -> &Upstream {
        &self.inner.upstream
    }
    pub fn rooms(&self) -> &Rooms {
        &self.inner.rooms
    }
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.inner.settings.drain_timeout_secs)
    }
    pub fn connections(&self) -> &TaskTracker {
        &self.inner.connections
    }
    /// This gateway's public address, naming it in spans and logs.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }
    pub fn next_conn_id(&self) -> ConnId {
        self.inner.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

/// No inline script, no eval, nothing from other origins.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub fn router(app: AppState) -> Router {
    let static_files = ServeDir::new(&app.settings().static_dir).append_index_html_on_directories(true);
    let api = Router::new()
        .route("/sessions", post(api::create_session))
        .route("/session", get(api::current_session))
        .route("/rooms", get(api::list_rooms).post(api::enter_room))
        .route("/rooms/{room}/messages", get(api::history).post(api::publish))
        .fallback(api::not_found);
    Router::new()
        .route("/ws", any(websocket))
        .nest("/api/v1", api)
        .route("/api/{*rest}", any(api::not_found))
        .fallback_service(static_files)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .with_state(app)
}

/// `GET /ws`: checks the Origin and the session before upgrading.
async fn websocket(State(app): State<AppState>, headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    if !origin_allowed(&headers, &app.settings().gateway.allowed_origins) {
        app.metrics().error(ErrorCode::Forbidden);
        return api::ApiError::new(
            ErrorCode::Forbidden,
            "websocket connections from this origin are not allowed",
        )
        .into_response();
    }
    let principal = match app.sessions().authenticate(&headers) {
        Ok(principal) => principal,
        Err(error) => {
            app.metrics().error(ErrorCode::Unauthorized);
            return api::ApiError::from(error).into_response();
        }
    };
    if app.shutdown().is_cancelled() {
        return api::ApiError::new(ErrorCode::Unavailable, "gateway is shutting down").into_response();
    }
    let max = app.settings().gateway.max_frame_bytes;
    let connections = app.connections().clone();
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| connections.track_future(ws::run(app, principal, socket)))
}

/// A browser always sends `Origin` on a websocket handshake; a cross-site page must not be
/// able to open a socket with the user's cookie. Same-origin (the `Host` the request was
/// sent to) and configured origins pass; clients that send no `Origin` (not browsers) pass.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn origin_check() {
        assert!(origin_allowed(&headers(None, "chat.example:8080"), &[]));
        assert!(origin_allowed(
            &headers(Some("http://chat.example:8080"), "chat.example:8080"),
            &[]
        ));
        assert!(!origin_allowed(
            &headers(Some("https://evil.example"), "chat.example:8080"),
            &[]
        ));
        assert!(!origin_allowed(&headers(Some("null"), "chat.example"), &[]));
        assert!(origin_allowed(
            &headers(Some("https://app.example"), "gw-3:8080"),
            &["https://app.example".to_string()]
        ));
    }
}
