//! The router: the one place the application is assembled from its layers (websocket,
//! HTTP API, static files) with the security and caching headers every response carries.
//! Used alike by the binary, the all-in-one and the tests, through [`crate::Gateway::start`].
//!
//! Caching, by kind of response:
//! * **Static files** are `no-cache` with `Last-Modified`: a browser keeps them but asks
//!   before each use (a `304` costs a round trip, not the file), so a deploy never leaves it
//!   running old JS under new HTML. The service worker (`static/sw.js`) goes to the network
//!   first for the same reason.
//! * **The API** is `no-store`: private data stays out of every cache, the browser's and any
//!   proxy's. Uploads set their own header first (an upload never changes, so it is kept
//!   privately for a long time) and keep it.
//! * **Compression** (brotli, else gzip, as the request accepts) applies to both; images and
//!   bodies too small to gain are left alone, and the websocket is outside it.

use crate::state::AppState;
use crate::{api, ws};
use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::routing::any;
use tower::ServiceBuilder;
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::set_status::SetStatus;

/// No inline script, no eval, nothing from other origins.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The powerful browser features no page of ours uses, switched off for them and for
/// anything that might ever be framed or injected.
const PERMISSIONS_POLICY: &str = "accelerometer=(), camera=(), display-capture=(), \
geolocation=(), gyroscope=(), magnetometer=(), microphone=(), midi=(), payment=(), usb=()";

/// Brotli's own default (11) is for files compressed once, far too slow for each response;
/// 4 is what servers use on the fly (and gzip's 4 is close to its default of 6).
const COMPRESSION: CompressionLevel = CompressionLevel::Precise(4);

pub fn router(app: AppState) -> Router {
    let static_dir = &app.settings().static_dir;
    // A path that is no file gets our own page, with 404 (not a blank one).
    let not_found = SetStatus::new(ServeFile::new(static_dir.join("404.html")), StatusCode::NOT_FOUND);
    let static_files = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ))
        .service(
            ServeDir::new(static_dir)
                .append_index_html_on_directories(true)
                .not_found_service(not_found),
        );
    let (api_routes, _document) = api::routes();
    let api_routes =
        api_routes
            .route("/api/{*rest}", any(api::not_found))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ));
    Router::new()
        .merge(api_routes)
        .fallback_service(static_files)
        .layer(CompressionLayer::new().br(true).gzip(true).quality(COMPRESSION))
        // After the compression layer: a websocket's handshake has nothing to compress.
        .route("/ws", any(ws::handshake::websocket))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(PERMISSIONS_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
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
