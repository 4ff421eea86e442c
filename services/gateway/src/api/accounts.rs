//! Sign-up (a guest's rooms kept), log-in (an account, throttled; or a guest name that cannot
//! pass for a registered user's), log-out, password changes and the caller's sessions.

use super::ApiResult;
use super::extract::{Account, ClientIp, JsonBody, PathParams, Session, cross_site};
use super::schema::{
    CurrentSession, ErrorBody, LogIn, PasswordChange, PrincipalView, SessionCreated, SessionInfo, SessionList, SignUp,
};
use crate::actions::announce::announce;
use crate::auth::{self, Auth, IdentityKind, Principal, now_ms};
use crate::control::Control;
use crate::error::GatewayError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_domain::lookalike;
use chat_domain::message::format_millis;
use chat_domain::{Author, DisplayName, Email, ErrorCode, Password, PersonName, Role, UserId, Username};
use chat_store::{NewUser, SessionRecord, StoreError};

/// Most sessions listed for one user.
const MAX_SESSIONS_LISTED: u32 = 100;

fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn with_cookie(mut response: Response, cookie: &str) -> ApiResult {
    let value = HeaderValue::from_str(cookie).map_err(|_| GatewayError::new(ErrorCode::Internal, "internal error"))?;
    response.headers_mut().insert(header::SET_COOKIE, value);
    Ok(response)
}

/// A new session's response: 201, the token in the body and in the HttpOnly cookie.
async fn session_response(app: &AppState, author: Author, kind: IdentityKind, role: Role, ua: &str) -> ApiResult {
    let auth = app.auth();
    let (token, record) = auth.start_session(&author, kind == IdentityKind::Guest, ua).await?;
    let principal = Principal {
        author,
        kind,
        role,
        session_id: Some(record.id),
        expires_at: u64::try_from(record.expires_at_ms / 1000).unwrap_or(0),
    };
    let body = SessionCreated {
        token: token.clone(),
        user: PrincipalView::from(&principal),
        expires_at: format_millis(record.expires_at_ms),
    };
    let cookie = auth.cookie_header(&token, app.settings().auth.cookie_secure);
    with_cookie((StatusCode::CREATED, Json(body)).into_response(), &cookie)
}

fn role_of(auth: &Auth, username: &str, stored: Role) -> Role {
    if auth.admin_by_config(username) {
        Role::Admin
    } else {
        stored
    }
}

/// Create an account and log in. A guest who signs up keeps their rooms: when the request
/// carries a guest session, its memberships (with roles and read markers), invitations and
/// bans become the new account's in the same transaction, and the guest session ends. The
/// guest's messages stay theirs, under the guest's name (`docs/api.md`).
#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", request_body = SignUp,
    responses(
        (status = 201, description = "Account created; the session cookie is set", body = SessionCreated),
        (status = 400, description = "`invalid_username`, `invalid_email`, `invalid_profile`, `weak_password`", body = ErrorBody),
        (status = 403, description = "`forbidden`: another site's request carrying a guest session cookie", body = ErrorBody),
        (status = 409, description = "`username_taken`: taken in any case, or looks like a registered username", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many password checks from this address at once", body = ErrorBody),
    ))]
pub async fn sign_up(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SignUp>,
) -> ApiResult {
    let username = Username::parse(&body.username)?;
    let email = Email::parse(&body.email)?;
    let first_name = PersonName::parse(&body.first_name)?;
    let last_name = PersonName::parse(&body.last_name)?;
    let password = Password::new_for(&body.password, &username)?;
    let guest = signing_guest(&app, &headers).await?;
    let auth = app.auth();
    let slot = app.throttle().slot(ip)?;
    let password_hash = auth.hash_password(password).await;
    drop(slot);
    let user = NewUser {
        id: UserId::parse(&format!("u:{}", uuid::Uuid::new_v4().simple())).expect("account ids are valid"),
        username,
        email,
        first_name,
        last_name,
        password_hash,
        role: Role::User,
        now_ms: now_ms(),
        adopt_guest: guest.as_ref().map(|g| g.author.id.clone()),
    };
    let created = match app.directory().create_user(&user).await {
        Ok(created) => created,
        Err(StoreError::Conflict(_)) => {
            return Err(GatewayError::new(
                ErrorCode::UsernameTaken,
                "that username is taken, or looks too much like one that is",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(guest) = guest {
        // The guest session is gone from the database; its sockets close too.
        let control = Control::EndSessions {
            user: guest.author.id,
            session: None,
            keep: None,
        };
        announce(&app, control).await;
    }
    app.directory().record_login(&created.id, now_ms()).await?;
    let author = account_author(&created.id, &created.username)?;
    let role = role_of(auth, &created.username, created.role);
    session_response(&app, author, IdentityKind::Account, role, user_agent(&headers)).await
}

/// The guest session a sign-up carries, whose rooms the new account takes over. Taking them
/// is a side effect of the cookie, so another site's request may not (as for every request
/// with side effects, `api::extract::Session`).
async fn signing_guest(app: &AppState, headers: &HeaderMap) -> Result<Option<Principal>, GatewayError> {
    if auth::by_cookie(headers) && cross_site(headers, &app.settings().gateway.allowed_origins) {
        return Err(GatewayError::forbidden(
            "a request from another site cannot use this site's session cookie",
        ));
    }
    Ok(match app.auth().authenticate(headers).await {
        Ok(principal) if principal.kind == IdentityKind::Guest => Some(principal),
        _ => None,
    })
}

fn account_author(id: &UserId, username: &str) -> Result<Author, GatewayError> {
    Ok(Author {
        id: id.clone(),
        name: DisplayName::parse(username).map_err(|_| GatewayError::internal())?,
    })
}

/// Log in with username and password, or start a guest session with `{"name"}`. Password
/// guessing is throttled per account and per address (`crate::throttle`).
#[utoipa::path(post, path = "/api/v1/sessions", tag = "accounts", request_body = LogIn,
    responses(
        (status = 201, description = "Logged in; the session cookie is set", body = SessionCreated),
        (status = 400, description = "`invalid_name` (guest name: rules, invisible characters, mixed scripts)", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 403, description = "`account_disabled`, or `forbidden` when guests are off", body = ErrorBody),
        (status = 409, description = "`username_taken`: a guest name that is, or looks like, a registered username", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: wait as long as `Retry-After` says", body = ErrorBody),
    ))]
pub async fn log_in(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    JsonBody(body): JsonBody<LogIn>,
) -> ApiResult {
    let ua = user_agent(&headers);
    match body {
        LogIn::Account { username, password } => {
            let wrong = || GatewayError::new(ErrorCode::InvalidCredentials, "wrong username or password");
            let password = Password::offered(&password).map_err(|_| wrong())?;
            // A name that breaks the username rules (a NUL, say) names no account; it still
            // costs a password check, so that the answer takes as long as for any other,
            // and counts against the address.
            let username = Username::parse(&username).ok();
            let attempt = app
                .throttle()
                .admit_login(username.as_ref().map(Username::key).as_deref(), ip)
                .await?;
            let user = match &username {
                Some(username) => app.directory().user_by_username(username.as_str()).await?,
                None => None,
            };
            let stored = user.as_ref().map(|u| u.password_hash.clone());
            if !app.auth().verify_password(password, stored).await {
                attempt.failed().await?;
                return Err(wrong());
            }
            attempt.succeeded().await?;
            let user = user.ok_or_else(wrong)?;
            if user.disabled {
                return Err(GatewayError::new(
                    ErrorCode::AccountDisabled,
                    "this account is disabled",
                ));
            }
            app.directory().record_login(&user.id, now_ms()).await?;
            let role = role_of(app.auth(), &user.username, user.role);
            session_response(
                &app,
                account_author(&user.id, &user.username)?,
                IdentityKind::Account,
                role,
                ua,
            )
            .await
        }
        LogIn::Guest { name } => {
            if !app.auth().guests_allowed() {
                return Err(GatewayError::forbidden("guest access is off: sign up or log in"));
            }
            let name = DisplayName::parse(&name)?;
            lookalike::check_new_display_name(&name)?;
            // A guest must not pass for a registered user.
            if app.directory().looks_like_username(name.as_str()).await? {
                return Err(GatewayError::new(
                    ErrorCode::UsernameTaken,
                    "that name is, or looks like, a registered user's; choose another",
                ));
            }
            let id = UserId::parse(&format!("guest:{}", uuid::Uuid::new_v4().simple())).expect("guest ids are valid");
            session_response(&app, Author { id, name }, IdentityKind::Guest, Role::User, ua).await
        }
    }
}

/// Change your password: the current one is required, and every other session of yours
/// ends (its sockets close with 4001); this one goes on. Wrong current passwords count
/// against the log-in throttle like failed log-ins.
#[utoipa::path(put, path = "/api/v1/me/password", tag = "accounts", request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; your other sessions ended"),
        (status = 400, description = "`weak_password`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`wrong_password`; `forbidden` for guests and external users", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`", body = ErrorBody),
    ))]
pub async fn change_password(
    State(app): State<AppState>,
    Account(principal): Account,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<PasswordChange>,
) -> ApiResult {
    let username = Username::parse(principal.author.name.as_str()).map_err(|_| GatewayError::internal())?;
    let new_password = Password::new_for(&body.new_password, &username)?;
    let wrong = || GatewayError::new(ErrorCode::WrongPassword, "the current password is wrong");
    let current = Password::offered(&body.current_password).map_err(|_| wrong())?;
    let attempt = app.throttle().admit_login(Some(&username.key()), ip).await?;
    let user = app
        .directory()
        .user_by_id(&principal.author.id)
        .await?
        .ok_or_else(GatewayError::internal)?;
    if !app.auth().verify_password(current, Some(user.password_hash)).await {
        attempt.failed().await?;
        return Err(wrong());
    }
    let hash = app.auth().hash_password(new_password).await;
    attempt.succeeded().await?;
    let keep = principal.session_id.clone();
    if app
        .directory()
        .set_password(&principal.author.id, &hash, keep.as_deref())
        .await?
        .is_none()
    {
        return Err(GatewayError::internal());
    }
    let control = Control::EndSessions {
        user: principal.author.id,
        session: None,
        keep,
    };
    announce(&app, control).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/v1/session", tag = "accounts",
    responses((status = 200, body = CurrentSession), (status = 401, body = ErrorBody)))]
pub async fn current_session(Session(principal): Session) -> ApiResult {
    Ok(Json(CurrentSession {
        user: PrincipalView::from(&principal),
        expires_at: format_millis(principal.expires_at as i64 * 1000),
    })
    .into_response())
}

/// Log out: ends this session (its sockets close too) and clears the cookie.
#[utoipa::path(delete, path = "/api/v1/session", tag = "accounts",
    responses((status = 204, description = "Logged out"), (status = 401, body = ErrorBody)))]
pub async fn log_out(State(app): State<AppState>, Session(principal): Session) -> ApiResult {
    if let Some(session) = &principal.session_id {
        end_session(&app, &principal, session).await?;
    }
    with_cookie(
        StatusCode::NO_CONTENT.into_response(),
        &Auth::clear_cookie_header(app.settings().auth.cookie_secure),
    )
}

async fn end_session(app: &AppState, principal: &Principal, session: &str) -> Result<bool, GatewayError> {
    let user = &principal.author.id;
    let ended = app.directory().revoke_session(user, session).await?;
    if ended {
        let control = Control::EndSessions {
            user: user.clone(),
            session: Some(session.to_owned()),
            keep: None,
        };
        announce(app, control).await;
    }
    Ok(ended)
}

/// Your unexpired sessions, newest first.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "accounts",
    responses((status = 200, body = SessionList), (status = 401, body = ErrorBody)))]
pub async fn list_sessions(State(app): State<AppState>, Session(principal): Session) -> ApiResult {
    let sessions: Vec<SessionRecord> = app
        .directory()
        .sessions_of(&principal.author.id, now_ms(), MAX_SESSIONS_LISTED)
        .await?;
    let current = principal.session_id.as_deref();
    Ok(Json(SessionList {
        sessions: sessions.iter().map(|s| SessionInfo::new(s, current)).collect(),
    })
    .into_response())
}

/// Revoke one of your sessions; its sockets close with 4001.
#[utoipa::path(delete, path = "/api/v1/me/sessions/{id}", tag = "accounts",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 204, description = "Revoked"), (status = 404, body = ErrorBody)))]
pub async fn revoke_session(
    State(app): State<AppState>,
    Session(principal): Session,
    PathParams(id): PathParams<String>,
) -> ApiResult {
    // No session id holds NUL, and PostgreSQL would refuse it with an error, not a miss.
    if id.contains('\0') || !end_session(&app, &principal, &id).await? {
        return Err(GatewayError::not_found("session"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
