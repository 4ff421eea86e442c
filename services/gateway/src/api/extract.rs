//! What a handler takes as arguments, checked before it runs. A handler names the caller it
//! needs ([`Session`], [`Account`] or [`Admin`]) and cannot forget to authenticate; a body,
//! path or query that does not parse is answered with the API's JSON error before the
//! handler sees it. Extractors run in argument order, so the caller comes first: a request
//! without a session gets 401 whatever else is wrong with it.

use crate::auth::{IdentityKind, Principal};
use crate::error::GatewayError;
use crate::state::AppState;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

/// Any session: an account's, a guest's, or an external token's.
pub struct Session(pub Principal);

/// An account's session; guests and external users are refused (403).
pub struct Account(pub Principal);

/// A session of someone with the admin role; anyone else is refused (403).
pub struct Admin(pub Principal);

impl FromRequestParts<AppState> for Session {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self(app.auth().authenticate(&parts.headers).await?))
    }
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
