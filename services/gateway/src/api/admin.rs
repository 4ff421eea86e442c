//! Administration, for principals with the admin role (granted by the `grant-admin`
//! command or the `auth.admins` setting, never through this API). Every change is written
//! to the audit log before it is announced.

use super::extract::{Admin, JsonBody, PathParams, QueryParams};
use super::schema::{
    AdminMessagesPage, AuditPage, AuditQuery, AuditView, ErrorBody, MessageSearch, OwnProfile, RoomView, RoomsPage,
    SearchPage, SetDisabled, UsersPage,
};
use super::{ApiResult, account_named, limit, next_cursor, text_param};
use crate::actions::announce::{announce, publish_unsequenced};
use crate::auth::{Principal, now_ms};
use crate::control::Control;
use crate::error::GatewayError;
use crate::state::AppState;
use crate::upstream::Proposal;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chat_bus::EventKind;
use chat_domain::protocol::{HistoryItem, ServerFrame};
use chat_domain::{Change, ClientMsgId, MessageId, RoomName};
use chat_store::{NewAuditEntry, Search};

/// How often an action on one target is audited.
#[derive(Clone, Copy)]
enum Record {
    /// Each time: a room or an account can be deleted, disabled or enabled again.
    Each,
    /// Once: a request keyed by its target (a message's deletion) that is retried after a
    /// lost answer cannot tell whether its first try reached the audit.
    Once,
}

async fn audit(
    app: &AppState,
    admin: &Principal,
    (action, target, detail): (&str, &str, &str),
    record: Record,
) -> Result<(), GatewayError> {
    let entry = NewAuditEntry {
        actor_id: admin.author.id.as_str(),
        actor_name: admin.author.name.as_str(),
        action,
        target,
        detail,
    };
    let written = match record {
        Record::Each => {
            app.directory().audit(&entry, now_ms()).await?;
            true
        }
        Record::Once => app.directory().audit_once(&entry, now_ms()).await?,
    };
    if written {
        tracing::info!(admin = %admin.author.id, action, target, "admin action");
    }
    Ok(())
}

/// Search rooms by name.
#[utoipa::path(get, path = "/api/v1/admin/rooms", tag = "admin", params(SearchPage),
    responses((status = 200, body = RoomsPage), (status = 403, body = ErrorBody)))]
pub async fn rooms(State(app): State<AppState>, _: Admin, QueryParams(q): QueryParams<SearchPage>) -> ApiResult {
    let limit = limit(q.limit)?;
    let search = Search {
        query: q.q.as_deref().map(|q| text_param("q", q)).transpose()?,
        after: q.after.as_deref().map(|a| text_param("after", a)).transpose()?,
        limit,
    };
    let rooms = app.directory().search_rooms(&search).await?;
    let next_after = next_cursor(&rooms, limit, |r| r.name.as_str().to_owned());
    Ok(Json(RoomsPage {
        rooms: rooms.iter().map(RoomView::from).collect(),
        next_after,
    })
    .into_response())
}

/// Delete a room: its messages are erased and its members removed. Members in it get
/// `room_deleted`. The name may be entered again later, as a new empty room.
#[utoipa::path(delete, path = "/api/v1/admin/rooms/{room}", tag = "admin",
    params(("room" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_room(
    State(app): State<AppState>,
    Admin(admin): Admin,
    PathParams(room): PathParams<String>,
) -> ApiResult {
    let room = RoomName::parse(&room)?;
    if !app.directory().delete_room(&room, now_ms()).await? {
        return Err(GatewayError::not_found("room"));
    }
    audit(&app, &admin, ("delete_room", room.as_str(), ""), Record::Each).await?;
    announce(&app, Control::RoomDeleted { room: room.clone() }).await;
    publish_unsequenced(
        &app,
        EventKind::Notice,
        room.clone(),
        ServerFrame::room_deleted(&room).to_bytes(),
    )
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Search users by username or e-mail.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", params(SearchPage),
    responses((status = 200, body = UsersPage), (status = 403, body = ErrorBody)))]
pub async fn users(State(app): State<AppState>, _: Admin, QueryParams(q): QueryParams<SearchPage>) -> ApiResult {
    let limit = limit(q.limit)?;
    let search = Search {
        query: q.q.as_deref().map(|q| text_param("q", q)).transpose()?,
        after: q.after.as_deref().map(|a| text_param("after", a)).transpose()?,
        limit,
    };
    let users = app.directory().search_users(&search).await?;
    let next_after = next_cursor(&users, limit, |u| u.username.to_ascii_lowercase());
    Ok(Json(UsersPage {
        users: users.iter().map(OwnProfile::from).collect(),
        next_after,
    })
    .into_response())
}

/// Disable (or re-enable) an account. Disabling ends its sessions and closes its sockets
/// on every gateway.
#[utoipa::path(put, path = "/api/v1/admin/users/{username}/disabled", tag = "admin",
    params(("username" = String, Path)), request_body = SetDisabled,
    responses((status = 204, description = "Done"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_disabled(
    State(app): State<AppState>,
    Admin(admin): Admin,
    PathParams(username): PathParams<String>,
    JsonBody(body): JsonBody<SetDisabled>,
) -> ApiResult {
    let user = account_named(&app, &username)
        .await?
        .ok_or_else(|| GatewayError::not_found("user"))?;
    if user.id == admin.author.id && body.disabled {
        return Err(GatewayError::forbidden("you cannot disable your own account"));
    }
    app.directory().set_disabled(&user.id, body.disabled, now_ms()).await?;
    let action = if body.disabled { "disable_user" } else { "enable_user" };
    audit(&app, &admin, (action, &user.username, ""), Record::Each).await?;
    if body.disabled {
        announce(
            &app,
            Control::EndSessions {
                user: user.id,
                session: None,
                keep: None,
            },
        )
        .await;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Search messages by text, optionally in one room, newest first.
#[utoipa::path(get, path = "/api/v1/admin/messages", tag = "admin", params(MessageSearch),
    responses((status = 200, body = AdminMessagesPage), (status = 403, body = ErrorBody)))]
pub async fn messages(State(app): State<AppState>, _: Admin, QueryParams(q): QueryParams<MessageSearch>) -> ApiResult {
    let limit = limit(q.limit)?;
    let room = q.room.as_deref().map(RoomName::parse).transpose()?;
    let found = app
        .directory()
        .search_messages(
            q.q.as_deref().map(|q| text_param("q", q)).transpose()?,
            room.as_ref(),
            q.before_id,
            limit,
        )
        .await?;
    let next_before_id = next_cursor(&found, limit, |m| m.id.get());
    Ok(Json(AdminMessagesPage {
        messages: HistoryItem::messages(&found),
        next_before_id,
    })
    .into_response())
}

/// Delete a message: it becomes a tombstone (its text erased for good) through a `delete`
/// event in the room's timeline, which every member gets in order and a resuming client
/// replays.
#[utoipa::path(delete, path = "/api/v1/admin/messages/{id}", tag = "admin",
    params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Deleted already", body = ErrorBody)))]
pub async fn delete_message(
    State(app): State<AppState>,
    Admin(admin): Admin,
    PathParams(id): PathParams<i64>,
) -> ApiResult {
    // An id no message can have names none.
    let id = MessageId::new(id).map_err(|_| GatewayError::not_found("message"))?;
    let at = app
        .directory()
        .find_message(id)
        .await?
        .ok_or_else(|| GatewayError::not_found("message"))?;
    let delete = Proposal::Change {
        target_seq: at.seq,
        change: Change::Delete,
        admin: true,
    };
    // Keyed by the message: a retried deletion is the same event.
    let client_msg_id = ClientMsgId::parse(&format!("admin-delete-{id}")).map_err(GatewayError::from)?;
    let (event, _repeated) = app
        .upstream()
        .send(&at.room, &admin.author, &delete, &client_msg_id)
        .await?;
    // Audited on a repeat too: the try that committed may have failed before its audit.
    let detail = format!("room {} seq {} (event seq {})", at.room, at.seq, event.seq());
    let target = id.to_string();
    audit(&app, &admin, ("delete_message", &target, &detail), Record::Once).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)))]
pub async fn audit_log(State(app): State<AppState>, _: Admin, QueryParams(q): QueryParams<AuditQuery>) -> ApiResult {
    let limit = limit(q.limit)?;
    let entries = app.directory().audit_log(q.before_id, limit).await?;
    let next_before_id = next_cursor(&entries, limit, |e| e.id);
    Ok(Json(AuditPage {
        entries: entries.iter().map(AuditView::from).collect(),
        next_before_id,
    })
    .into_response())
}
