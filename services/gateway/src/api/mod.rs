//! The JSON HTTP API under `/api/v1`: the documented contract the browser client uses.
//!
//! Every handler is annotated for OpenAPI, and [`routes`] registers handlers and their
//! documentation together (utoipa-axum), so the document served at `/api/v1/openapi.json`
//! lists exactly the routes the server mounts. Errors are `{"error": {"code", "message"}}`
//! with a stable `code` and the status that fits it (from [`GatewayError`]); every list is paged by cursor with an
//! enforced limit.
//!
//! # Layout
//! * [`accounts`]: sign-up, log-in (account or guest), log-out, sessions, password changes.
//! * [`resets`]: password reset by e-mail.
//! * [`profiles`]: your own profile and anyone's.
//! * [`rooms`]: rooms, membership, history, publishing, the panel.
//! * [`uploads`]: images in and out.
//! * [`admin`]: what operators with the admin role may do, each action audited.
//! * [`schema`]: the shapes of bodies, as documented.
//! * [`extract`]: the caller (any session, an account, an admin) and the body, path and
//!   query, checked before a handler runs.

pub mod accounts;
pub mod admin;
pub mod extract;
pub mod profiles;
pub mod resets;
pub mod room_access;
pub mod rooms;
pub mod schema;
pub mod search;
pub mod uploads;

use crate::error::GatewayError;
use crate::state::AppState;
use axum::Json;
use axum::response::Response;
use chat_domain::{ErrorCode, Username};
use chat_store::UserRecord;
use serde_json::Value;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Default and largest page size of every list.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

pub type ApiResult = Result<Response, GatewayError>;

/// A free-text path or query parameter (a search, a cursor, an id) before it reaches the
/// database. PostgreSQL cannot store NUL in text and answers it with an error, not a miss;
/// and no validated name or text holds NUL, so such a parameter can only be a bad argument.
pub fn text_param<'a>(name: &str, value: &'a str) -> Result<&'a str, GatewayError> {
    if value.contains('\0') {
        return Err(GatewayError::new(
            ErrorCode::InvalidArgument,
            format!("{name} must not contain NUL characters"),
        ));
    }
    Ok(value)
}

/// The account a path names by username (any case). A name that breaks the username rules
/// (a NUL, say) names no account.
pub async fn account_named(app: &AppState, username: &str) -> Result<Option<UserRecord>, GatewayError> {
    let Ok(username) = Username::parse(username) else {
        return Ok(None);
    };
    Ok(app.directory().user_by_username(username.as_str()).await?)
}

/// A page size: the default when absent, refused when out of range.
pub fn limit(requested: Option<u32>) -> Result<u32, GatewayError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(GatewayError::new(
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

/// Any other path under `/api`: a JSON 404, not the static site's.
pub async fn not_found() -> GatewayError {
    GatewayError::new(ErrorCode::NotFound, "no such endpoint")
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
        (name = "search", description = "Message search"),
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
        .routes(routes!(accounts::change_password))
        .routes(routes!(resets::request_reset))
        .routes(routes!(resets::confirm_reset))
        .routes(routes!(profiles::my_profile, profiles::update_profile))
        .routes(routes!(profiles::user_profile))
        .routes(routes!(rooms::panel))
        .routes(routes!(rooms::list_rooms, rooms::enter_room))
        .routes(routes!(rooms::history, rooms::publish))
        .routes(routes!(rooms::members))
        .routes(routes!(rooms::leave_room, rooms::update_membership))
        .routes(routes!(room_access::room_details))
        .routes(routes!(room_access::room_action))
        .routes(routes!(room_access::create_invite_link))
        .routes(routes!(room_access::invite_preview, room_access::redeem_invite))
        .routes(routes!(room_access::open_dm))
        .routes(routes!(rooms::mark_read))
        .routes(routes!(search::search))
        .routes(routes!(uploads::upload))
        .routes(routes!(uploads::download))
        .routes(routes!(uploads::thumbnail))
        .routes(routes!(admin::rooms))
        .routes(routes!(admin::delete_room))
        .routes(routes!(admin::users))
        .routes(routes!(admin::set_disabled))
        .routes(routes!(admin::messages))
        .routes(routes!(admin::delete_message))
        .routes(routes!(admin::audit_log))
        .split_for_parts()
}
