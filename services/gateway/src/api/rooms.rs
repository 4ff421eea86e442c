//! Rooms, membership, history, publishing, and the panel.

use super::extract::{JsonBody, PathParams, QueryParams, Session};
use super::schema::{
    DirectoryPage, DirectoryRoom, EnterRoom, ErrorBody, HistoryPage, HistoryQuery, InvitationView, MarkRead,
    MemberView, MembersPage, MembershipUpdate, MembershipView, OwnProfile, Page, Panel, PanelRoom, PrincipalView,
    Publish, RoomEntered, RoomView, SearchPage,
};
use super::{ApiResult, limit, next_cursor, text_param};
use crate::actions::propose::prepare;
use crate::actions::{access, membership, moderation};
use crate::auth::{IdentityKind, now_ms};
use crate::error::GatewayError;
use crate::state::AppState;
use crate::upstream::Proposal;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chat_domain::message::format_millis;
use chat_domain::protocol::{AckFrame, AckItem, HistoryItem};
use chat_domain::{ClientMsgId, ErrorCode, MessageBody, RoomName, UploadId, UserId, Visibility};
use chat_store::MAX_INVITATIONS;

/// The room directory: public rooms in name order, filtered by `q` (a case-insensitive
/// part of the name), with member counts and last activity, paged by cursor.
#[utoipa::path(get, path = "/api/v1/rooms", tag = "rooms", params(SearchPage),
    responses((status = 200, body = DirectoryPage), (status = 400, body = ErrorBody)))]
pub async fn list_rooms(
    State(app): State<AppState>,
    _: Session,
    QueryParams(page): QueryParams<SearchPage>,
) -> ApiResult {
    let after = page.after.as_deref().map(RoomName::parse).transpose()?;
    let query = page.q.as_deref().map(|q| text_param("q", q)).transpose()?;
    let limit = limit(page.limit)?;
    let rooms = app.directory().public_rooms(query, after.as_ref(), limit).await?;
    let next_after = next_cursor(&rooms, limit, |r| r.name.as_str().to_owned());
    Ok(Json(DirectoryPage {
        rooms: rooms.iter().map(DirectoryRoom::from).collect(),
        next_after,
    })
    .into_response())
}

/// Enter a public room by name: it is created if new (you own it then), and you become a
/// member. With `"visibility": "private"`, create a private room titled `name`: the
/// server names it, and only its members and the people they invite can see it.
#[utoipa::path(post, path = "/api/v1/rooms", tag = "rooms", request_body = EnterRoom,
    responses((status = 200, body = RoomEntered), (status = 400, description = "`invalid_room`", body = ErrorBody),
        (status = 403, description = "`banned`", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enter_room(
    State(app): State<AppState>,
    Session(principal): Session,
    JsonBody(body): JsonBody<EnterRoom>,
) -> ApiResult {
    let (room, joined) = match body.visibility.unwrap_or(Visibility::Public) {
        Visibility::Public => {
            let (info, _, joined) = access::enter(&app, &principal, &RoomName::parse(&body.name)?).await?;
            // A private room may be entered by its name too (by its members): shown as it is.
            let view = match app.directory().room_record(&info.name).await? {
                Some(record) => RoomView::from(&record),
                None => RoomView::from(&info),
            };
            (view, joined)
        }
        Visibility::Private => {
            let name = moderation::create_private(&app, &principal, &body.name).await?;
            let record = app
                .directory()
                .room_record(&name)
                .await?
                .ok_or_else(GatewayError::internal)?;
            (RoomView::from(&record), true)
        }
    };
    Ok(Json(RoomEntered { room, joined }).into_response())
}

/// A page of history, oldest first. Without a position, or with `before_seq`, the messages
/// in their current state; with `after_seq`, every event after it (messages and changes),
/// as a resuming client replays them.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/messages", tag = "rooms",
    params(("room" = String, Path), HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 400, body = ErrorBody),
        (status = 403, description = "`banned`", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn history(
    State(app): State<AppState>,
    Session(principal): Session,
    PathParams(room): PathParams<String>,
    QueryParams(query): QueryParams<HistoryQuery>,
) -> ApiResult {
    let room = RoomName::parse(&room)?;
    access::readable(&app, &principal, &room).await?;
    let limit = limit(query.limit)?;
    let (last_seq, messages) = match (query.after_seq, query.before_seq) {
        (Some(_), Some(_)) => {
            return Err(GatewayError::new(
                ErrorCode::InvalidArgument,
                "give after_seq or before_seq, not both",
            ));
        }
        (Some(after), None) => {
            let page = app.upstream().history_after(&room, after, limit).await?;
            (page.last_seq, HistoryItem::events(&page.messages))
        }
        (None, before) => {
            let before = before.unwrap_or(u64::MAX);
            let page = app.upstream().history_before(&room, before, limit).await?;
            (page.last_seq, HistoryItem::messages(&page.messages))
        }
    };
    Ok(Json(HistoryPage {
        room: room.as_str().to_owned(),
        last_seq,
        messages,
    })
    .into_response())
}

/// Publish as the session's user, exactly like a websocket `send`. The room must exist.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/messages", tag = "rooms",
    params(("room" = String, Path)), request_body = Publish,
    responses(
        (status = 201, description = "Stored", body = AckItem),
        (status = 200, description = "Stored before with this client_msg_id: the original's ack", body = AckItem),
        (status = 400, body = ErrorBody), (status = 403, description = "`banned`, `muted`", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn publish(
    State(app): State<AppState>,
    Session(principal): Session,
    PathParams(room): PathParams<String>,
    JsonBody(body): JsonBody<Publish>,
) -> ApiResult {
    let room = RoomName::parse(&room)?;
    let attachment = body.attachment_id.map(UploadId::new).transpose()?;
    let mut proposal = Proposal::Message {
        body: MessageBody::new(body.text, attachment)?,
        reply_to: body.reply_to,
        mentions: Vec::new(),
        attachment_size: None,
    };
    let client_msg_id = ClientMsgId::parse(&body.client_msg_id)?;
    access::sendable(&app, &principal, &room).await?;
    prepare(&app, &principal, &room, &mut proposal).await?;
    let (message, duplicate) = app
        .upstream()
        .send(&room, &principal.author, &proposal, &client_msg_id)
        .await?;
    let status = if duplicate { StatusCode::OK } else { StatusCode::CREATED };
    let ack = AckItem::Ack(AckFrame::new(&message, duplicate));
    Ok((status, Json(ack)).into_response())
}

/// The room's members and their count, paged by user id.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/members", tag = "rooms",
    params(("room" = String, Path), Page),
    responses((status = 200, body = MembersPage), (status = 400, body = ErrorBody),
        (status = 403, description = "`banned`", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn members(
    State(app): State<AppState>,
    Session(principal): Session,
    PathParams(room): PathParams<String>,
    QueryParams(page): QueryParams<Page>,
) -> ApiResult {
    let room = RoomName::parse(&room)?;
    access::readable(&app, &principal, &room).await?;
    let limit = limit(page.limit)?;
    let (count, members) = app
        .directory()
        .room_members(&room, page.after.as_deref(), limit)
        .await?;
    let next_after = next_cursor(&members, limit, |m| m.user_id.clone());
    let now = now_ms();
    let mut views: Vec<MemberView> = members.iter().map(|m| MemberView::new(m, now)).collect();
    // The page a client shows is the members in its view: their presence, one lookup.
    let ids: Vec<UserId> = views.iter().filter_map(|m| UserId::parse(&m.user_id).ok()).collect();
    if ids.len() == views.len()
        && let Some(online) = app.presence().online(&ids).await
    {
        for (view, online) in views.iter_mut().zip(online) {
            view.online = Some(online);
        }
    }
    Ok(Json(MembersPage {
        room: room.as_str().to_owned(),
        count,
        members: views,
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
    Session(principal): Session,
    PathParams(room): PathParams<String>,
) -> ApiResult {
    let room = RoomName::parse(&room)?;
    membership::leave(&app, &principal.author.id, &room).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Your settings for a room of yours: mute or unmute its notifications. Every device of
/// yours reads it from the panel (`rooms[].muted`).
#[utoipa::path(patch, path = "/api/v1/rooms/{room}/membership", tag = "rooms",
    params(("room" = String, Path)), request_body = MembershipUpdate,
    responses(
        (status = 200, body = MembershipView),
        (status = 400, body = ErrorBody),
        (status = 404, description = "Not a member", body = ErrorBody),
    ))]
pub async fn update_membership(
    State(app): State<AppState>,
    Session(principal): Session,
    PathParams(room): PathParams<String>,
    JsonBody(body): JsonBody<MembershipUpdate>,
) -> ApiResult {
    let room = RoomName::parse(&room)?;
    membership::mute_notifications(&app, &principal.author.id, &room, body.muted).await?;
    Ok(Json(MembershipView {
        room: room.as_str().to_owned(),
        muted: body.muted,
    })
    .into_response())
}

/// Mark messages read up to `seq`: the panel's unread count follows it.
#[utoipa::path(put, path = "/api/v1/rooms/{room}/read", tag = "rooms",
    params(("room" = String, Path)), request_body = MarkRead,
    responses((status = 204, description = "Marked"), (status = 400, body = ErrorBody)))]
pub async fn mark_read(
    State(app): State<AppState>,
    Session(principal): Session,
    PathParams(room): PathParams<String>,
    JsonBody(body): JsonBody<MarkRead>,
) -> ApiResult {
    let room = RoomName::parse(&room)?;
    membership::mark_read(&app, &principal.author.id, &room, body.seq).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The panel: your counts, last login, join date, and your rooms with unread counts.
#[utoipa::path(get, path = "/api/v1/me/panel", tag = "rooms", params(Page),
    responses((status = 200, body = Panel), (status = 401, body = ErrorBody)))]
pub async fn panel(
    State(app): State<AppState>,
    Session(principal): Session,
    QueryParams(page): QueryParams<Page>,
) -> ApiResult {
    let after = page.after.as_deref().map(RoomName::parse).transpose()?;
    let limit = limit(page.limit)?;
    let user = &principal.author.id;
    let directory = app.directory();
    let profile = match principal.kind {
        IdentityKind::Account => directory.user_by_id(user).await?,
        IdentityKind::Guest | IdentityKind::External => None,
    };
    let rooms = directory.member_rooms(user, after.as_ref(), limit).await?;
    let next_after = next_cursor(&rooms, limit, |r| r.room.as_str().to_owned());
    let invitations = match after {
        None => directory.invitations(user, MAX_INVITATIONS).await?,
        Some(_) => Vec::new(),
    };
    Ok(Json(Panel {
        user: PrincipalView::from(&principal),
        message_count: directory.message_count(user).await?,
        room_count: directory.room_count(user).await?,
        // The log-in before the latest: the latest is most likely this very session.
        last_login: profile.as_ref().and_then(|p| p.previous_login_ms).map(format_millis),
        joined_at: profile.as_ref().map(|p| format_millis(p.created_at_ms)),
        profile: profile.as_ref().map(OwnProfile::from),
        rooms: rooms.iter().map(PanelRoom::from).collect(),
        next_after,
        invitations: invitations.iter().map(InvitationView::from).collect(),
    })
    .into_response())
}
