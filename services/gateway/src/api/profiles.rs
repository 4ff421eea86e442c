//! Profiles: edit your own, view anyone's by username.

use super::extract::{Account, JsonBody, PathParams, Session};
use super::schema::{ErrorBody, OwnProfile, ProfilePatch, ProfileView};
use super::{ApiResult, account_named};
use crate::actions::uploads::require_own_upload;
use crate::error::GatewayError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use chat_domain::message::format_millis;
use chat_domain::{Bio, Email, PersonName, UploadId};
use chat_store::ProfileUpdate;

/// Your profile (accounts only; guests and external users have none).
#[utoipa::path(get, path = "/api/v1/me", tag = "profiles",
    responses((status = 200, body = OwnProfile), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn my_profile(State(app): State<AppState>, Account(principal): Account) -> ApiResult {
    let user = app
        .directory()
        .user_by_id(&principal.author.id)
        .await?
        .ok_or_else(|| GatewayError::not_found("user"))?;
    let mut profile = OwnProfile::from(&user);
    // The role in effect, which configuration may raise above the stored one.
    profile.profile.role = principal.role;
    Ok(Json(profile).into_response())
}

/// Change your names, e-mail, bio or avatar.
#[utoipa::path(patch, path = "/api/v1/me", tag = "profiles", request_body = ProfilePatch,
    responses(
        (status = 200, body = OwnProfile),
        (status = 400, description = "`invalid_email`, `invalid_profile`, `invalid_argument` (avatar)", body = ErrorBody),
    ))]
pub async fn update_profile(
    State(app): State<AppState>,
    Account(principal): Account,
    JsonBody(patch): JsonBody<ProfilePatch>,
) -> ApiResult {
    let update = ProfileUpdate {
        email: patch.email.as_deref().map(Email::parse).transpose()?,
        first_name: patch.first_name.as_deref().map(PersonName::parse).transpose()?,
        last_name: patch.last_name.as_deref().map(PersonName::parse).transpose()?,
        bio: patch.bio.as_deref().map(Bio::parse).transpose()?,
        avatar_id: patch.avatar_id,
        read_receipts: patch.read_receipts,
    };
    if let Some(Some(avatar)) = update.avatar_id {
        require_own_upload(&app, UploadId::new(avatar)?, &principal.author.id).await?;
    }
    let user = app
        .directory()
        .update_profile(&principal.author.id, &update)
        .await?
        .ok_or_else(|| GatewayError::not_found("user"))?;
    Ok(Json(OwnProfile::from(&user)).into_response())
}

/// Anyone's profile, by username (any case).
#[utoipa::path(get, path = "/api/v1/users/{username}", tag = "profiles",
    params(("username" = String, Path)),
    responses((status = 200, body = ProfileView), (status = 404, body = ErrorBody)))]
pub async fn user_profile(
    State(app): State<AppState>,
    _: Session,
    PathParams(username): PathParams<String>,
) -> ApiResult {
    let user = account_named(&app, &username)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| GatewayError::not_found("user"))?;
    let mut profile = ProfileView::from(&user);
    if let Some((online, last_seen)) = app.presence().seen(&user.id).await {
        profile.online = Some(online);
        profile.last_seen = last_seen.map(|ms| format_millis(ms as i64));
    }
    Ok(Json(profile).into_response())
}
