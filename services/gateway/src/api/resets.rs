//! Password reset by e-mail: ask for a link, then use it once.
//!
//! * Asking answers 202 the same way whether or not an account has the address, and the mail
//!   goes out after the answer (`crate::mail`), so neither the answer nor its timing tells
//!   who has an account. Requests are counted per client address by the log-in throttle,
//!   and each account gets at most [`RESETS_PER_ACCOUNT`] links per `auth.reset_ttl_secs`.
//! * A link's token is 32 random bytes; only its keyed hash is stored, as for sessions. It
//!   works once, before it expires; using it sets the new password and ends every session
//!   of the account (their sockets close with 4001).

use super::ApiResult;
use super::extract::{ClientIp, JsonBody};
use super::schema::{ErrorBody, ResetConfirm, ResetRequest, ResetRequested};
use crate::actions::announce::announce;
use crate::auth::now_ms;
use crate::control::Control;
use crate::error::GatewayError;
use crate::mail::ResetMail;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chat_domain::{Email, ErrorCode, Password, Username};
use chat_store::NewPasswordReset;
use std::time::Duration;

/// Reset links one account gets per `auth.reset_ttl_secs`: a stranger who knows the address
/// cannot flood its mailbox.
pub const RESETS_PER_ACCOUNT: u32 = 3;

/// Accounts one address's request mails, at most (an address may be on several accounts).
const ACCOUNTS_PER_ADDRESS: u32 = 5;

fn invalid() -> GatewayError {
    GatewayError::new(
        ErrorCode::ResetInvalid,
        "this reset link is invalid, used already or expired: ask for a new one",
    )
}

/// Ask for a password-reset link. The answer is the same whether or not an account has the
/// address.
#[utoipa::path(post, path = "/api/v1/password-resets", tag = "accounts", request_body = ResetRequest,
    responses(
        (status = 202, description = "If an account has this address, a link is on its way", body = ResetRequested),
        (status = 400, description = "`invalid_email`", body = ErrorBody),
        (status = 403, description = "`forbidden`: password reset by e-mail is off on this server", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many requests from this address", body = ErrorBody),
    ))]
pub async fn request_reset(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<ResetRequest>,
) -> ApiResult {
    let email = Email::parse(&body.email)?;
    if !app.mailer().enabled() {
        return Err(GatewayError::forbidden(
            "password reset by e-mail is off on this server: ask an administrator",
        ));
    }
    // Every request counts, known address or not.
    app.throttle().admit_reset(ip).await?.failed().await?;
    let now = now_ms();
    let valid_for = Duration::from_secs(app.settings().auth.reset_ttl_secs);
    let valid_ms = i64::try_from(valid_for.as_millis()).unwrap_or(i64::MAX);
    let users = app
        .directory()
        .users_by_email(email.as_str(), ACCOUNTS_PER_ADDRESS)
        .await?;
    for user in users.iter().filter(|u| !u.disabled) {
        let (token, token_hash) = app.auth().new_token();
        let reset = NewPasswordReset {
            token_hash: &token_hash,
            user_id: &user.id,
            now_ms: now,
            expires_at_ms: now.saturating_add(valid_ms),
        };
        if !app
            .directory()
            .create_password_reset(&reset, now - valid_ms, RESETS_PER_ACCOUNT)
            .await?
        {
            continue;
        }
        let mail = ResetMail {
            to: &user.email,
            username: &user.username,
            token: &token,
            valid_for,
        };
        let message = match app.mailer().reset_message(&mail) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, user = %user.id, "a password-reset mail could not be built");
                continue;
            }
        };
        let (app, user) = (app.clone(), user.id.clone());
        tokio::spawn(async move {
            let sent = app.mailer().send(message).await;
            app.metrics().mail(sent.is_ok());
            match sent {
                Ok(()) => tracing::info!(%user, "password-reset mail sent"),
                Err(error) => tracing::warn!(%error, %user, "a password-reset mail could not be sent"),
            }
        });
    }
    Ok((StatusCode::ACCEPTED, Json(ResetRequested { status: "sent" })).into_response())
}

/// Use a password-reset link: sets the new password and ends every session of the account.
#[utoipa::path(post, path = "/api/v1/password-resets/confirm", tag = "accounts", request_body = ResetConfirm,
    responses(
        (status = 204, description = "The password is set; every session of the account ended"),
        (status = 400, description = "`weak_password`", body = ErrorBody),
        (status = 404, description = "`reset_invalid`: unknown, used already or expired", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many password checks from this address at once", body = ErrorBody),
    ))]
pub async fn confirm_reset(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<ResetConfirm>,
) -> ApiResult {
    // No token of ours is this long or holds NUL (which PostgreSQL would refuse).
    if body.token.is_empty() || body.token.len() > 128 || body.token.contains('\0') {
        return Err(invalid());
    }
    let token_hash = app.auth().token_hash(&body.token);
    let user = app
        .directory()
        .password_reset_user(&token_hash, now_ms())
        .await?
        .ok_or_else(invalid)?;
    let username = Username::parse(&user.username).map_err(|_| GatewayError::internal())?;
    let password = Password::new_for(&body.new_password, &username)?;
    let slot = app.throttle().slot(ip)?;
    let hash = app.auth().hash_password(password).await;
    drop(slot);
    // The redemption is the claim: a link used meanwhile (the same one twice at once) is
    // refused here, whatever the check above saw.
    let (user, _) = app
        .directory()
        .redeem_password_reset(&token_hash, &hash, now_ms())
        .await?
        .ok_or_else(invalid)?;
    app.throttle().forgive_account(&username.key()).await?;
    announce(
        &app,
        Control::EndSessions {
            user,
            session: None,
            keep: None,
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
