//! A room's page and what owners and moderators do there: details, moderation actions,
//! invite links, and direct messages. Every rule is the domain's, asked through
//! [`crate::actions::access`] and [`crate::actions::moderation`].

use super::extract::{JsonBody, PathParams, Session};
use super::schema::{
    DmOpened, ErrorBody, InviteLinkView, InvitePreview, NewInviteLinkBody, OpenDm, RoomActionBody, RoomDetails,
    RoomEntered, RoomView,
};
use super::{ApiResult, account_named};
use crate::actions::{access, moderation};
use crate::auth::now_ms;
use crate::error::GatewayError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chat_domain::message::format_millis;
use chat_domain::protocol::HistoryItem;
use chat_domain::room::{MAX_MUTE_MINUTES, RoomText};
use chat_domain::{Author, ErrorCode, RoomAction, RoomName, RoomRole, TimelineEvent, UserId};

/// A room's title, topic and description, its owner, and where you stand with it.
#[utoipa::path(get, path = "/api/v1/rooms/{room}", tag = "rooms", params(("room" = String, Path)),
    responses((status = 200, body = RoomDetails), (status = 404, body = ErrorBody)))]
pub async fn room_details(
    State(app): State<AppState>,
    Session(principal): Session,
    PathParams(room): PathParams<String>,
) -> ApiResult {
    let room = RoomName::parse(&room)?;
    let access = access::readable(&app, &principal, &room).await?;
    let record = app
        .directory()
        .room_record(&room)
        .await?
        .ok_or_else(|| GatewayError::not_found("room"))?;
    Ok(Json(RoomDetails::new(
        &record,
        &principal.author.id,
        &access.standing,
        now_ms(),
    ))
    .into_response())
}

/// Whom an action names: by user id (a guest has no username) or by username.
async fn person(app: &AppState, room: &RoomName, body: &RoomActionBody) -> Result<Author, GatewayError> {
    if let Some(username) = &body.username {
        let user = account_named(app, username)
            .await?
            .ok_or_else(|| GatewayError::not_found("user"))?;
        return moderation::author_of(user.id, &user.username);
    }
    let id = body
        .user_id
        .as_deref()
        .ok_or_else(|| GatewayError::new(ErrorCode::MissingField, "name the person: `user_id` or `username`"))?;
    let id = UserId::parse(id)?;
    if let Some(user) = app.directory().user_by_id(&id).await? {
        return moderation::author_of(user.id, &user.username);
    }
    // A guest: known by the name they have in the room.
    let name = app
        .directory()
        .member_name(room, &id)
        .await?
        .ok_or_else(|| GatewayError::not_found("member"))?;
    moderation::author_of(id, &name)
}

/// The action a request asks for, every field checked.
async fn action_of(app: &AppState, room: &RoomName, body: &RoomActionBody) -> Result<RoomAction, GatewayError> {
    let missing = |field: &str| GatewayError::new(ErrorCode::MissingField, format!("missing field `{field}`"));
    Ok(match body.action.as_str() {
        "invite" => RoomAction::Invited {
            target: person(app, room, body).await?,
        },
        "kick" => RoomAction::Kicked {
            target: person(app, room, body).await?,
        },
        "ban" => RoomAction::Banned {
            target: person(app, room, body).await?,
        },
        "unban" => RoomAction::Unbanned {
            target: person(app, room, body).await?,
        },
        "mute" => {
            let minutes = body.minutes.ok_or_else(|| missing("minutes"))?;
            if !(1..=MAX_MUTE_MINUTES).contains(&minutes) {
                return Err(GatewayError::new(
                    ErrorCode::InvalidArgument,
                    format!("minutes is 1 to {MAX_MUTE_MINUTES}"),
                ));
            }
            RoomAction::Muted {
                target: person(app, room, body).await?,
                until_ms: now_ms() + i64::from(minutes) * 60_000,
            }
        }
        "unmute" => RoomAction::Unmuted {
            target: person(app, room, body).await?,
        },
        "set_role" => RoomAction::RoleChanged {
            role: match body.role.ok_or_else(|| missing("role"))? {
                RoomRole::Owner => {
                    return Err(GatewayError::new(
                        ErrorCode::InvalidArgument,
                        "`transfer` the room to make someone its owner",
                    ));
                }
                role => role,
            },
            target: person(app, room, body).await?,
        },
        "update" => {
            // What is left out stays as it is.
            let current = app
                .directory()
                .room_record(room)
                .await?
                .ok_or_else(|| GatewayError::not_found("room"))?;
            RoomAction::Updated {
                topic: RoomText::Topic.parse(body.topic.as_deref().unwrap_or(&current.topic))?,
                description: RoomText::Description
                    .parse(body.description.as_deref().unwrap_or(&current.description))?,
            }
        }
        "set_visibility" => RoomAction::VisibilityChanged {
            visibility: body.visibility.ok_or_else(|| missing("visibility"))?,
        },
        "transfer" => RoomAction::OwnerChanged {
            target: person(app, room, body).await?,
        },
        other => {
            return Err(GatewayError::new(
                ErrorCode::InvalidArgument,
                format!("unknown action `{}`", other.chars().take(32).collect::<String>()),
            ));
        }
    })
}

/// An owner's or moderator's action: invite, kick, ban, unban, mute, unmute, set_role
/// (owner), update the topic and description (owner), set_visibility (owner), transfer
/// (owner). Committed as a `room_event` in the room's timeline, which is the answer.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/actions", tag = "rooms",
    params(("room" = String, Path)), request_body = RoomActionBody,
    responses(
        (status = 200, description = "The committed `room_event`", body = HistoryItem),
        (status = 400, body = ErrorBody), (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "`conflict`: it changes nothing", body = ErrorBody),
    ))]
pub async fn room_action(
    State(app): State<AppState>,
    Session(principal): Session,
    PathParams(room): PathParams<String>,
    JsonBody(body): JsonBody<RoomActionBody>,
) -> ApiResult {
    let room = RoomName::parse(&room)?;
    // An outsider learns nothing of a private room, not even from a bad request.
    access::readable(&app, &principal, &room).await?;
    let action = action_of(&app, &room, &body).await?;
    let event = moderation::moderate(&app, &principal, &room, action).await?;
    Ok(Json(HistoryItem::from(&TimelineEvent::Room(event))).into_response())
}

/// A new invite link (owners and moderators): whoever opens it may join, until it expires
/// or its uses run out.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/invite-links", tag = "rooms",
    params(("room" = String, Path)), request_body = NewInviteLinkBody,
    responses((status = 201, body = InviteLinkView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_invite_link(
    State(app): State<AppState>,
    Session(principal): Session,
    PathParams(room): PathParams<String>,
    JsonBody(body): JsonBody<NewInviteLinkBody>,
) -> ApiResult {
    let room = RoomName::parse(&room)?;
    let (token, expires_at_ms) =
        moderation::create_invite_link(&app, &principal, &room, body.expires_in_minutes, body.max_uses).await?;
    let view = InviteLinkView {
        url: format!("/invite.html#{token}"),
        token,
        expires_at: format_millis(expires_at_ms),
        max_uses: body.max_uses,
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Where an invite link leads, before it is used.
#[utoipa::path(get, path = "/api/v1/invites/{token}", tag = "rooms", params(("token" = String, Path)),
    responses((status = 200, body = InvitePreview), (status = 404, description = "`invite_invalid`", body = ErrorBody)))]
pub async fn invite_preview(
    State(app): State<AppState>,
    _: Session,
    PathParams(token): PathParams<String>,
) -> ApiResult {
    let invalid = || {
        GatewayError::new(
            ErrorCode::InviteInvalid,
            "this invite link is invalid, used up or expired",
        )
    };
    if token.is_empty() || token.len() > 64 {
        return Err(invalid());
    }
    let record = app
        .directory()
        .invite_link_room(&moderation::invite_hash(&app, &token), now_ms())
        .await?
        .ok_or_else(invalid)?;
    Ok(Json(InvitePreview {
        room: record.name.as_str().to_owned(),
        title: record.title,
        visibility: record.visibility,
        member_count: record.member_count,
    })
    .into_response())
}

/// Use an invite link: you become a member of its room.
#[utoipa::path(post, path = "/api/v1/invites/{token}", tag = "rooms", params(("token" = String, Path)),
    responses((status = 200, body = RoomEntered), (status = 403, description = "`banned`", body = ErrorBody),
        (status = 404, description = "`invite_invalid`", body = ErrorBody)))]
pub async fn redeem_invite(
    State(app): State<AppState>,
    Session(principal): Session,
    PathParams(token): PathParams<String>,
) -> ApiResult {
    let (room, joined) = moderation::redeem_invite(&app, &principal, &token).await?;
    entered(&app, &room, joined).await
}

async fn entered(app: &AppState, room: &RoomName, joined: bool) -> ApiResult {
    let record = app
        .directory()
        .room_record(room)
        .await?
        .ok_or_else(|| GatewayError::not_found("room"))?;
    Ok(Json(RoomEntered {
        room: RoomView::from(&record),
        joined,
    })
    .into_response())
}

/// Open the direct message with someone (a registered user): the same room whoever opens
/// it, and however often.
#[utoipa::path(post, path = "/api/v1/dms", tag = "rooms", request_body = OpenDm,
    responses((status = 200, body = DmOpened), (status = 400, body = ErrorBody),
        (status = 403, description = "guests may not", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn open_dm(
    State(app): State<AppState>,
    Session(principal): Session,
    JsonBody(body): JsonBody<OpenDm>,
) -> ApiResult {
    let other = dm_partner(&app, &body.username).await?;
    let room = moderation::open_dm(&app, &principal, &other).await?;
    let record = app
        .directory()
        .room_record(&room)
        .await?
        .ok_or_else(|| GatewayError::not_found("room"))?;
    Ok(Json(DmOpened {
        room: RoomView::from(&record),
        dm_with: other,
    })
    .into_response())
}

/// The registered, enabled user a direct message is opened with.
async fn dm_partner(app: &AppState, username: &str) -> Result<Author, GatewayError> {
    let user = account_named(app, username)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| GatewayError::not_found("user"))?;
    moderation::author_of(user.id, &user.username)
}
