//! The websocket handshake, `GET /ws`: the Origin check, the handshake pace, the session,
//! and admission (the gateway's and the user's connection caps), all before upgrading.
//! Every refusal is an HTTP error with the JSON body the API uses.

use super::{Start, run};
use crate::error::GatewayError;
use crate::limits::Refused;
use crate::state::AppState;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chat_domain::ErrorCode;

/// `GET /ws`: checks the Origin and the session before upgrading.
pub async fn websocket(State(app): State<AppState>, headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    if !origin_allowed(&headers, &app.settings().gateway.allowed_origins) {
        app.metrics().error(ErrorCode::Forbidden);
        return GatewayError::new(
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
            let error = GatewayError::from(error);
            app.metrics().error(error.code);
            return error.into_response();
        }
    };
    if app.shutdown().is_cancelled() {
        return GatewayError::new(ErrorCode::Unavailable, "gateway is shutting down").into_response();
    }
    let admitted = match app.admission().admit(&principal.author.id) {
        Ok(admitted) => admitted,
        Err(refused) => {
            let error = match refused {
                Refused::Paced => return paced(&app),
                Refused::GatewayFull => {
                    GatewayError::new(ErrorCode::Unavailable, "this gateway is full; retry shortly")
                }
                Refused::TooManyForUser => GatewayError::new(
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
    // Boxed: the upgrade's task keeps what its callback captured for as long as the socket
    // lives, and this is one pointer there.
    let who = Box::new((app, principal, admitted));
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            let (app, principal, admitted) = *who;
            connections.track_future(run(Box::new(Start {
                app,
                principal,
                admitted,
                socket,
            })))
        })
}

/// The answer to a handshake past the pace: 503 with `Retry-After`, which a client takes
/// as the floor of its randomised backoff (docs/protocol.md §9).
fn paced(app: &AppState) -> Response {
    app.metrics().error(ErrorCode::Unavailable);
    app.metrics().handshakes_paced.inc();
    let mut response = GatewayError::new(
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
/// read buffer up to its capacity on every read, so all of it is resident on every socket,
/// idle or not (measured: 140 KiB per idle connection, docs/benchmarks.md). A larger frame
/// grows the buffer for itself, and the socket keeps what it grew to: so the buffer starts
/// at what a `join` needs, a socket that sends grows it once to its usual frame, and one
/// that only listens (most of them) keeps 128 bytes, where 1 KiB was an eighth of an idle
/// connection's whole cost. The writer flushes per batch anyway.
const READ_BUFFER_BYTES: usize = 128;
const WRITE_BUFFER_BYTES: usize = 8 * 1024;

/// A browser always sends `Origin` on a websocket handshake; a cross-site page must not be
/// able to open a socket with the user's cookie. Same-origin (the `Host` the request was
/// sent to) and configured origins pass; clients that send no `Origin` (not browsers) pass.
/// HTTP requests with side effects that use the cookie are held to the same rule
/// (`api::extract`).
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
