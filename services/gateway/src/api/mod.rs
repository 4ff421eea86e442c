//! The JSON HTTP API under `/api/v1`: the documented contract the browser client uses.
//!
//! Every handler is annotated for OpenAPI, and [`routes`] registers handlers and their
//! documentation together (utoipa-axum), so the document served at `/api/v1/openapi.json`
//! lists exactly the routes the server mounts. Errors are `{"error": {"code", "message"}}`
//! with a stable `code` and the status that fits it; every list is paged by cursor with an
//! enforced limit.
//!
//! # Layout
//! * [`accounts`]: sign-up, log-in (account or guest), log-out, sessions.
//! * [`profiles`]: your own profile and anyone's.
//! * [`rooms`]: rooms, membership, history, publishing, the panel.
//! * [`uploads`]: images in and out.
//! * [`admin`]: what operators with the admin role may do, each action audited.
//! * [`schema`]: the shapes of bodies, as documented.

pub mod accounts;
pub mod admin;
pub mod profiles;
pub mod rooms;
pub mod schema;
pub mod uploads;

use crate::app::AppState;
use crate::auth::{AuthError, IdentityKind, Principal};
use crate::upstream::UpstreamError;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chat_domain::{ChatMessage, ErrorCode, RoomName};
use chat_store::StoreError;
use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Default and largest page size of every list.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// An API failure: a stable code and a message safe to show.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("no such {what}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

impl From<UpstreamError> for ApiError {
    fn from(e: UpstreamError) -> Self {
        Self::new(e.code, e.message)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Disabled => Self::new(ErrorCode::AccountDisabled, e.to_string()),
            AuthError::Unavailable(store) => store.into(),
            other => Self::new(ErrorCode::Unauthorized, other.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            Self::new(ErrorCode::Unavailable, "the database is unavailable; retry later")
        } else if matches!(e, StoreError::InvalidText(_)) {
            Self::new(
                ErrorCode::InvalidArgument,
                "text parameters must not contain NUL characters",
            )
        } else {
            tracing::error!(error = %e, "database error");
            Self::new(ErrorCode::Internal, "internal error")
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        // A body past the JSON body limit was never parsed: it is too large, not malformed.
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(ErrorCode::PayloadTooLarge, "the request body is too large");
        }
        Self::new(ErrorCode::InvalidJson, e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::new(ErrorCode::InvalidArgument, e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        Self::new(ErrorCode::InvalidArgument, e.body_text())
    }
}

pub type ApiResult = Result<Response, ApiError>;

pub async fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    Ok(app.auth().authenticate(headers).await?)
}

pub async fn require_account(app: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let principal = authenticate(app, headers).await?;
    if principal.kind != IdentityKind::Account {
        return Err(ApiError::forbidden("this needs an account: sign up or log in"));
    }
    Ok(principal)
}

/// A free-text path or query parameter (a search, a cursor, an id) before it reaches the
/// database. PostgreSQL cannot store NUL in text and answers it with an error, not a miss;
/// and no validated name or text holds NUL, so such a parameter can only be a bad argument.
pub fn text_param<'a>(name: &str, value: &'a str) -> Result<&'a str, ApiError> {
    if value.contains('\0') {
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            format!("{name} must not contain NUL characters"),
        ));
    }
    Ok(value)
}

pub fn room_param(room: &str) -> Result<RoomName, ApiError> {
    RoomName::parse(room).map_err(|e| ApiError::new(ErrorCode::InvalidRoom, e.0))
}

/// A page size: the default when absent, refused when out of range.
pub fn limit(requested: Option<u32>) -> Result<u32, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::new(
            ErrorCode::InvalidArgument,
            format!("limit must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// The cursor for the page after `items`: the last item's key when the page is full (there
/// may be more), none when it came back short (there is not).
pub fn next_cursor<T, K>(items: &[T], limit: u32, key: impl Fn(&T) -> K) -> Option<K> {
    if items.len() == limit as usize {
        items.last().map(key)
    } else {
        None
    }
}

/// Messages as their `message` frames, deleted ones left out.
pub fn messages_json(messages: &[ChatMessage]) -> Vec<Value> {
    messages
        .iter()
        .filter(|m| !m.deleted)
        .map(|m| serde_json::from_slice(&m.to_frame()).expect("message frames are JSON"))
        .collect()
}

/// Any other path under `/api`: a JSON 404, not the static site's.
pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Super Channels API",
        version = "1",
        description = "The JSON HTTP API of the gateway. Authenticate with the `sc_session` cookie \
                       (set by log-in) or `Authorization: Bearer <token>`. Errors are \
                       `{\"error\": {\"code\", \"message\"}}`; lists are paged by cursor. The websocket \
                       protocol on `/ws` is documented in docs/protocol.md."
    ),
    tags(
        (name = "accounts", description = "Sign-up, log-in, log-out and sessions"),
        (name = "profiles", description = "Profiles"),
        (name = "rooms", description = "Rooms, membership, history and the panel"),
        (name = "uploads", description = "Images"),
        (name = "admin", description = "Administration (admin role)"),
    )
)]
struct ApiDoc;

/// The document, built once from the same registrations as the router.
static DOCUMENT: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| serde_json::to_value(routes().1).expect("the OpenAPI document serializes"));

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "accounts",
    responses((status = 200, description = "This document", body = Object)))]
pub async fn openapi_document() -> Json<&'static Value> {
    Json(&DOCUMENT)
}

/// Every API route with its documentation, and the document itself.
pub fn routes() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(openapi_document))
        .routes(routes!(accounts::sign_up))
        .routes(routes!(accounts::log_in))
        .routes(routes!(accounts::current_session, accounts::log_out))
        .routes(routes!(accounts::list_sessions))
        .routes(routes!(accounts::revoke_session))
        .routes(routes!(profiles::my_profile, profiles::update_profile))
        .routes(routes!(profiles::user_profile))
        .routes(routes!(rooms::panel))
        .routes(routes!(rooms::list_rooms, rooms::enter_room))
        .routes(routes!(rooms::history, rooms::publish))
        .routes(routes!(rooms::members))
        .routes(routes!(rooms::leave_room))
        .routes(routes!(rooms::mark_read))
        .routes(routes!(uploads::upload))
        .routes(routes!(uploads::download))
        .routes(routes!(admin::rooms))
        .routes(routes!(admin::delete_room))
        .routes(routes!(admin::users))
        .routes(routes!(admin::set_disabled))
        .routes(routes!(admin::messages))
        .routes(routes!(admin::delete_message))
        .routes(routes!(admin::audit_log))
        .split_for_parts()
}
