//! What a handler takes as arguments, checked before it runs. A handler names the caller it
//! needs ([`Session`], [`Account`] or [`Admin`]) and cannot forget to authenticate; a body,
//! path or query that does not parse is answered with the API's JSON error before the
//! handler sees it. Extractors run in argument order, so the caller comes first: a request
//! without a session gets 401 whatever else is wrong with it.

use crate::auth::{self, IdentityKind, Principal};
use crate::client_addr::client_ip;
use crate::error::GatewayError;
use crate::state::AppState;
use crate::ws::handshake::origin_allowed;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Any session: an account's, a guest's, or an external token's.
pub struct Session(pub Principal);

/// An account's session; guests and external users are refused (403).
pub struct Account(pub Principal);

/// A session of someone with the admin role; anyone else is refused (403).
pub struct Admin(pub Principal);

impl FromRequestParts<AppState> for Session {
    type Rejection = GatewayError;

    /// A request with side effects that authenticates by cookie must come from our own
    /// pages: `SameSite=Lax` already keeps the cookie off most cross-site requests, and
    /// this refuses the rest (another site's form or script, a sibling subdomain).
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        if !parts.method.is_safe()
            && auth::by_cookie(&parts.headers)
            && cross_site(&parts.headers, &app.settings().gateway.allowed_origins)
        {
            return Err(GatewayError::forbidden(
                "a request from another site cannot use this site's session cookie",
            ));
        }
        Ok(Self(app.auth().authenticate(&parts.headers).await?))
    }
}

/// Whether a browser sent this request for another site. `Origin`, which browsers send
/// with every request that can have side effects, decides as it does for a websocket
/// (this host, or a configured origin); without it, `Sec-Fetch-Site`; with neither, the
/// client is not a browser, and no other site made it send the cookie.
pub fn cross_site(headers: &HeaderMap, allowed: &[String]) -> bool {
    if headers.contains_key(header::ORIGIN) {
        return !origin_allowed(headers, allowed);
    }
    headers
        .get("sec-fetch-site")
        .is_some_and(|site| !matches!(site.as_bytes(), b"same-origin" | b"none"))
}

impl FromRequestParts<AppState> for Account {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let Session(principal) = Session::from_request_parts(parts, app).await?;
        if principal.kind != IdentityKind::Account {
            return Err(GatewayError::forbidden("this needs an account: sign up or log in"));
        }
        Ok(Self(principal))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let Session(principal) = Session::from_request_parts(parts, app).await?;
        if !principal.is_admin() {
            return Err(GatewayError::forbidden("this needs the admin role"));
        }
        Ok(Self(principal))
    }
}

/// The address the request is from ([`crate::client_addr`]): the connection's peer, or the
/// client a trusted proxy names. A request that did not come through the listener (the
/// router called directly) has no peer and counts as `0.0.0.0`.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(Self(client_ip(peer, &parts.headers, app.trusted_proxies())))
    }
}

/// A JSON body; one that does not parse is `invalid_json` (or `payload_too_large`).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(GatewayError))]
pub struct JsonBody<T>(pub T);

/// Path parameters; ones that do not parse are `invalid_argument`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(GatewayError))]
pub struct PathParams<T>(pub T);

/// Query parameters; ones that do not parse are `invalid_argument`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(GatewayError))]
pub struct QueryParams<T>(pub T);

impl<T: serde::Serialize> IntoResponse for JsonBody<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
