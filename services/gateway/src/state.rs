//! The gateway's shared state and its router: the one place the application is assembled,
//! used alike by the binary, the all-in-one and the tests.

use crate::auth::Auth;
use crate::limits::{Admission, Refused, TokenBucket};
use crate::metrics::Metrics;
use crate::people::{Control, People};
use crate::rooms::{ConnId, Rooms};
use crate::settings::Settings;
use crate::upstream::Upstream;
use crate::{api, ws};
use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use chat_bus::{Bus, BusEvent, EventKind};
use chat_domain::{ErrorCode, RoomName};
use chat_store::{Blobs, Database, Directory};
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
    auth: Auth,
    database: Database,
    bus: Arc<dyn Bus>,
    people: People,
    admission: Arc<Admission>,
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
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: Settings,
        instance: String,
        database: Database,
        bus: Arc<dyn Bus>,
        upstream: Upstream,
        rooms: Rooms,
        people: People,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Self {
        let auth = Auth::new(&settings.auth, database.directory.clone());
        let admission = Admission::new(
            settings.gateway.max_connections,
            settings.gateway.max_connections_per_user,
            TokenBucket::new(
                settings.gateway.handshakes_per_sec,
                settings.gateway.handshake_burst,
                std::time::Instant::now(),
            ),
        );
        Self {
            inner: Arc::new(Inner {
                settings,
                auth,
                database,
                bus,
                people,
                admission,
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
    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }
    pub fn directory(&self) -> &Arc<dyn Directory> {
        &self.inner.database.directory
    }
    pub fn blobs(&self) -> &Arc<dyn Blobs> {
        &self.inner.database.blobs
    }
    pub fn people(&self) -> &People {
        &self.inner.people
    }
    pub fn admission(&self) -> &Arc<Admission> {
        &self.inner.admission
    }

    /// Puts a notice or control event on the bus, for every gateway (this one included).
    /// A few quick retries; after that the loss is logged: the database already holds the
    /// change, and what a notice would have shown appears on the next history read.
    pub async fn publish_unsequenced(&self, kind: EventKind, room: RoomName, payload: Bytes) {
        let event = [BusEvent::unsequenced(kind, room, payload)];
        for attempt in 1..=3 {
            match self.inner.bus.publish(&event).await {
                Ok(()) => return,
                Err(error) if attempt < 3 => {
                    tracing::warn!(%error, attempt, "publishing a notice failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(error) => tracing::error!(%error, ?kind, "publishing a notice failed; dropped"),
            }
        }
    }

    /// Tells every gateway about a change in who may see what.
    pub async fn announce(&self, control: Control) {
        let room = match &control {
            Control::Membership { room, .. } | Control::RoomDeleted { room } => {
                RoomName::parse(room).expect("control events name valid rooms")
            }
            Control::EndSessions { .. } => RoomName::parse("control").expect("a valid name"),
        };
        self.publish_unsequenced(EventKind::Control, room, control.to_json())
            .await;
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
    let (api, _document) = api::routes();
    Router::new()
        .route("/ws", any(websocket))
        .merge(api)
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
    if app.admission().pace(std::time::Instant::now()).is_err() {
        return paced(&app);
    }
    let principal = match app.auth().authenticate(&headers).await {
        Ok(principal) => principal,
        Err(error) => {
            let error = api::ApiError::from(error);
            app.metrics().error(error.code);
            return error.into_response();
        }
    };
    if app.shutdown().is_cancelled() {
        return api::ApiError::new(ErrorCode::Unavailable, "gateway is shutting down").into_response();
    }
    let admitted = match app.admission().admit(&principal.author.id) {
        Ok(admitted) => admitted,
        Err(refused) => {
            let error = match refused {
                Refused::Paced => return paced(&app),
                Refused::GatewayFull => {
                    api::ApiError::new(ErrorCode::Unavailable, "this gateway is full; retry shortly")
                }
                Refused::TooManyForUser => api::ApiError::new(
                    ErrorCode::RateLimited,
                    format!(
                        "at most {} connections per user",
                        app.settings().gateway.max_connections_per_user
                    ),
                ),
            };
            app.metrics().error(error.code);
            return error.into_response();
        }
    };
    let max = app.settings().gateway.max_frame_bytes;
    let connections = app.connections().clone();
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            connections.track_future(async move {
                // The place is held for as long as the socket lives.
                let _admitted = admitted;
                ws::run(app, principal, socket).await;
            })
        })
}

/// The answer to a handshake past the pace: 503 with `Retry-After`, which a client takes
/// as the floor of its randomised backoff (docs/protocol.md §9).
fn paced(app: &AppState) -> Response {
    app.metrics().error(ErrorCode::Unavailable);
    app.metrics().handshakes_paced.inc();
    let mut response = api::ApiError::new(
        ErrorCode::Unavailable,
        "too many connections at once; retry after a random backoff",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Per-socket buffers. The websocket library's defaults are 128 KiB each, and it zeroes the
/// read buffer, so every idle socket held 128 KiB of resident memory (measured: 140 KiB per
/// idle connection, docs/benchmarks.md). It zeroes up to the buffer's capacity on every
/// read, so all of it is resident: 1 KiB holds an ordinary frame, and a larger frame grows
/// the buffer for itself. The writer flushes per batch anyway.
const READ_BUFFER_BYTES: usize = 1024;
const WRITE_BUFFER_BYTES: usize = 8 * 1024;

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
