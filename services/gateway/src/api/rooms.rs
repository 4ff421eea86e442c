//! Rooms, membership, history, publishing, and the panel.

use super::schema::{
    AckDoc, EnterRoom, ErrorBody, HistoryPage, HistoryQuery, MarkRead, MemberView, MembersPage, OwnProfile, Page,
    Panel, PanelRoom, PrincipalView, Publish, RoomEntered, RoomView, RoomsPage,
};
use super::{ApiError, ApiResult, authenticate, limit, messages_json, next_cursor, room_param};
use crate::app::AppState;
use crate::auth::{IdentityKind, Principal, now_ms};
use crate::people::Control;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chat_domain::message::format_millis;
use chat_domain::{ClientMsgId, ErrorCode, MessageText, RoomName};
use chat_store::Entered;
use serde_json::Value;

/// Makes the caller a member of `room` (which exists), telling every gateway when the
/// membership is new so the caller's other sockets start getting notifications for it.
pub async fn become_member(app: &AppState, principal: &Principal, room: &RoomName) -> Result<bool, ApiError> {
    let user = principal.author.id.as_str();
    let entered = app
        .directory()
        .enter(user, principal.author.name.as_str(), room, now_ms())
        .await?;
    match entered {
        Entered::Joined => {
            app.announce(Control::Membership {
                user: user.to_owned(),
                room: room.as_str().to_owned(),
                member: true,
            })
            .await;
            Ok(true)
        }
        Entered::AlreadyMember => Ok(false),
        Entered::RoomNotFound => Err(ApiError::not_found("room")),
    }
}

/// Rooms in name order, paged by cursor.
#[utoipa::path(get, path = "/api/v1/rooms", tag = "rooms", params(Page),
    responses((status = 200, body = RoomsPage), (status = 400, body = ErrorBody)))]
pub async fn list_rooms(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Page>, QueryRejection>,
) -> ApiResult {
    authenticate(&app, &headers).await?;
    let Query(page) = query?;
    let after = page.after.as_deref().map(room_param).transpose()?;
    let limit = limit(page.limit)?;
    let (rooms, next_after) = app.upstream().list_rooms(after.as_ref(), limit).await?;
    Ok(Json(RoomsPage {
        rooms: rooms.iter().map(RoomView::from).collect(),
        next_after: next_after.map(|r| r.as_str().to_owned()),
    })
    .into_response())
}

/// Enter a room by name: it is created if new, and the caller becomes a member.
#[utoipa::path(post, path = "/api/v1/rooms", tag = "rooms", request_body = EnterRoom,
    responses((status = 200, body = RoomEntered), (status = 400, description = "`invalid_room`", body = ErrorBody)))]
pub async fn enter_room(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<EnterRoom>, JsonRejection>,
) -> ApiResult {
    let principal = authenticate(&app, &headers).await?;
    let Json(body) = body?;
    let room = app.upstream().enter_room(&room_param(&body.name)?).await?;
    let joined = become_member(&app, &principal, &room.name).await?;
    Ok(Json(RoomEntered {
        room: RoomView::from(&room),
        joined,
    })
    .into_response())
}

/// A page of history, oldest first. Without a position, the newest page.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/messages", tag = "rooms",
    params(("room" = String, Path), HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 400, body = ErrorBody)))]
pub async fn history(
    State(app): State<AppState>,
    headers: HeaderMap,
    room: Result<Path<String>, PathRejection>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult {
    authenticate(&app, &headers).await?;
    let Path(room) = room?;
    let Query(query) = query?;
    let room = room_param(&room)?;
    let limit = limit(query.limit)?;
    let page = match (query.after_seq, query.before_seq) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "give after_seq or before_seq, not both",
            ));
        }
        (Some(after), None) => app.upstream().history_after(&room, after, limit).await?,
        (None, Some(before)) => app.upstream().history_before(&room, before, limit).await?,
        (None, None) => app.upstream().history_before(&room, u64::MAX, limit).await?,
    };
    Ok(Json(HistoryPage {
        room: room.as_str().to_owned(),
        last_seq: page.last_seq,
        messages: messages_json(&page.messages),
    })
    .into_response())
}

/// Publish as the session's user, exactly like a websocket `send`. The room must exist.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/messages", tag = "rooms",
    params(("room" = String, Path)), request_body = Publish,
    responses(
        (status = 201, description = "Stored", body = AckDoc),
        (status = 200, description = "Stored before with this client_msg_id: the original's ack", body = AckDoc),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn publish(
    State(app): State<AppState>,
    headers: HeaderMap,
    room: Result<Path<String>, PathRejection>,
    body: Result<Json<Publish>, JsonRejection>,
) -> ApiResult {
    let principal = authenticate(&app, &headers).await?;
    let Path(room) = room?;
    let Json(body) = body?;
    let room = room_param(&room)?;
    let invalid_text = |e: chat_domain::NameError| ApiError::new(ErrorCode::InvalidText, e.0);
    let text = match (body.text, body.attachment_id) {
        (text, Some(id)) => {
            super::uploads::require_own_upload(&app, id, principal.author.id.as_str()).await?;
            MessageText::caption(text.unwrap_or_default()).map_err(invalid_text)?
        }
        (Some(text), None) => MessageText::parse(text).map_err(invalid_text)?,
        (None, None) => return Err(ApiError::new(ErrorCode::MissingField, "missing field `text`")),
    };
    let client_msg_id =
        ClientMsgId::parse(&body.client_msg_id).map_err(|e| ApiError::new(ErrorCode::InvalidClientMsgId, e.0))?;
    let (message, duplicate) = app
        .upstream()
        .send(&room, &principal.author, &text, &client_msg_id, body.attachment_id)
        .await?;
    let status = if duplicate { StatusCode::OK } else { StatusCode::CREATED };
    let ack: Value =
        serde_json::from_slice(&chat_domain::protocol::ack_frame(&message, duplicate)).expect("ack frames are JSON");
    Ok((status, Json(ack)).into_response())
}

/// The room's members and their count, paged by user id.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/members", tag = "rooms",
    params(("room" = String, Path), Page),
    responses((status = 200, body = MembersPage), (status = 400, body = ErrorBody)))]
pub async fn members(
    State(app): State<AppState>,
    headers: HeaderMap,
    room: Result<Path<String>, PathRejection>,
    query: Result<Query<Page>, QueryRejection>,
) -> ApiResult {
    authenticate(&app, &headers).await?;
    let Path(room) = room?;
    let Query(page) = query?;
    let room = room_param(&room)?;
    let limit = limit(page.limit)?;
    let (count, members) = app
        .directory()
        .room_members(&room, page.after.as_deref(), limit)
        .await?;
    let next_after = next_cursor(&members, limit, |m| m.user_id.clone());
    Ok(Json(MembersPage {
        room: room.as_str().to_owned(),
        count,
        members: members.iter().map(MemberView::from).collect(),
        next_after,
    })
    .into_response())
}

/// Leave a room: it is no longer yours (off your panel, no notifications). You may enter
/// it again.
#[utoipa::path(delete, path = "/api/v1/rooms/{room}/membership", tag = "rooms",
    params(("room" = String, Path)),
    responses((status = 204, description = "Left"), (status = 404, description = "Not a member", body = ErrorBody)))]
pub async fn leave_room(
    State(app): State<AppState>,
    headers: HeaderMap,
    room: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let principal = authenticate(&app, &headers).await?;
    let Path(room) = room?;
    let room = room_param(&room)?;
    let user = principal.author.id.as_str();
    if !app.directory().leave(user, &room).await? {
        return Err(ApiError::new(ErrorCode::NotFound, "you are not a member of this room"));
    }
    app.announce(Control::Membership {
        user: user.to_owned(),
        room: room.as_str().to_owned(),
        member: false,
    })
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Mark messages read up to `seq`: the panel's unread count follows it.
#[utoipa::path(put, path = "/api/v1/rooms/{room}/read", tag = "rooms",
    params(("room" = String, Path)), request_body = MarkRead,
    responses((status = 204, description = "Marked"), (status = 400, body = ErrorBody)))]
pub async fn mark_read(
    State(app): State<AppState>,
    headers: HeaderMap,
    room: Result<Path<String>, PathRejection>,
    body: Result<Json<MarkRead>, JsonRejection>,
) -> ApiResult {
    let principal = authenticate(&app, &headers).await?;
    let Path(room) = room?;
    let Json(body) = body?;
    let room = room_param(&room)?;
    app.directory()
        .mark_read(principal.author.id.as_str(), &room, body.seq)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The panel: your counts, last login, join date, and your rooms with unread counts.
#[utoipa::path(get, path = "/api/v1/me/panel", tag = "rooms", params(Page),
    responses((status = 200, body = Panel), (status = 401, body = ErrorBody)))]
pub async fn panel(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Page>, QueryRejection>,
) -> ApiResult {
    let principal = authenticate(&app, &headers).await?;
    let Query(page) = query?;
    let after = page.after.as_deref().map(room_param).transpose()?;
    let limit = limit(page.limit)?;
    let user = principal.author.id.as_str();
    let directory = app.directory();
    let profile = match principal.kind {
        IdentityKind::Account => directory.user_by_id(user).await?,
        IdentityKind::Guest | IdentityKind::External => None,
    };
    let rooms = directory.member_rooms(user, after.as_ref(), limit).await?;
    let next_after = next_cursor(&rooms, limit, |r| r.room.as_str().to_owned());
    Ok(Json(Panel {
        user: PrincipalView::from(&principal),
        message_count: directory.message_count(user).await?,
        room_count: directory.room_count(user).await?,
        last_login: profile.as_ref().and_then(|p| p.last_login_ms).map(format_millis),
        joined_at: profile.as_ref().map(|p| format_millis(p.created_at_ms)),
        profile: profile.as_ref().map(OwnProfile::from),
        rooms: rooms.iter().map(PanelRoom::from).collect(),
        next_after,
    })
    .into_response())
}
