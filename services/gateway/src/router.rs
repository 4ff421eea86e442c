//! The router: the one place the application is assembled from its layers (websocket,
//! HTTP API, static files) with the security headers every response carries. Used alike by
//! the binary, the all-in-one and the tests, through [`crate::Gateway::start`].

use crate::state::AppState;
use crate::{api, ws};
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::routing::any;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::set_status::SetStatus;

/// No inline script, no eval, nothing from other origins.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub fn router(app: AppState) -> Router {
    let static_dir = &app.settings().static_dir;
    // A path that is no file gets our own page, with 404 (not a blank one).
    let not_found = SetStatus::new(ServeFile::new(static_dir.join("404.html")), StatusCode::NOT_FOUND);
    let static_files = ServeDir::new(static_dir)
        .append_index_html_on_directories(true)
        .not_found_service(not_found);
    let (api, _document) = api::routes();
    Router::new()
        .route("/ws", any(ws::handshake::websocket))
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
