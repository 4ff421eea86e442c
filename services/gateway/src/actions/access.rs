//! Who may see and do what in a room, asked the same way from every path: a websocket join,
//! the HTTP history and member list, an HTTP publish, an upload's download. The rules are
//! the domain's ([`chat_domain::RoomAccess`]); this reads where the caller stands and turns
//! a refusal into the error the client gets.

use super::membership;
use crate::auth::{Principal, now_ms};
use crate::error::GatewayError;
use crate::state::AppState;
use chat_domain::room::is_reserved;
use chat_domain::{AccessError, ErrorCode, RoomAccess, RoomName, UploadId};
use chat_store::{RoomInfo, SearchScope};

impl From<AccessError> for GatewayError {
    fn from(e: AccessError) -> Self {
        match e {
            // Word for word what a room that does not exist answers.
            AccessError::NotFound => GatewayError::not_found("room"),
            AccessError::Muted { until_ms } => GatewayError::new(
                ErrorCode::Muted,
                format!(
                    "you are muted in this room until {}; nothing was sent",
                    chat_domain::message::format_millis(until_ms)
                ),
            ),
            other => GatewayError::new(other.code(), other.to_string()),
        }
    }
}

/// Where the caller stands with `room`; `None` when there is no such room.
pub async fn standing(
    app: &AppState,
    principal: &Principal,
    room: &RoomName,
) -> Result<Option<RoomAccess>, GatewayError> {
    Ok(app
        .directory()
        .room_access(room, &principal.author.id, principal.is_admin())
        .await?)
}

/// The caller may see `room`: read its history and members, join it. Refused as if it did
/// not exist when it is private and theirs to see is not.
pub async fn readable(app: &AppState, principal: &Principal, room: &RoomName) -> Result<RoomAccess, GatewayError> {
    let access = standing(app, principal, room)
        .await?
        .ok_or_else(|| GatewayError::not_found("room"))?;
    access.check_read()?;
    Ok(access)
}

/// The caller may send to `room` now (the HTTP publish; a socket keeps what its join read,
/// kept current by the bus).
pub async fn sendable(app: &AppState, principal: &Principal, room: &RoomName) -> Result<RoomAccess, GatewayError> {
    let access = readable(app, principal, room).await?;
    access.check_send(now_ms())?;
    Ok(access)
}

/// Enters a room by name, as the index page's form and a websocket join do: a public room
/// is created when new (its creator owns it); a private one, and any name only the server
/// gives, must exist and be the caller's to see. Makes the caller a member. Returns the
/// room, where the caller stands, and whether the membership is new.
pub async fn enter(
    app: &AppState,
    principal: &Principal,
    room: &RoomName,
) -> Result<(RoomInfo, RoomAccess, bool), GatewayError> {
    let access = match standing(app, principal, room).await? {
        Some(access) => {
            access.check_read()?;
            Some(access)
        }
        None if is_reserved(room) => return Err(GatewayError::not_found("room")),
        None => None,
    };
    let (info, created) = app.upstream().enter_room(room).await?;
    let joined = membership::become_member(app, principal, room).await?;
    let access = match access {
        Some(access) if !created => access,
        // New here: the creator becomes its owner; read the standing that made.
        _ => {
            if created {
                app.directory().claim_ownership(room, &principal.author.id).await?;
            }
            readable(app, principal, room).await?
        }
    };
    Ok((info, access, joined))
}

/// The caller may fetch upload `id`: it is theirs, someone's avatar, or posted in a room
/// they may read. Anything else answers as an upload that does not exist.
pub async fn may_fetch_upload(app: &AppState, principal: &Principal, id: UploadId) -> Result<(), GatewayError> {
    let uses = app
        .directory()
        .upload_uses(id)
        .await?
        .ok_or_else(|| GatewayError::not_found("upload"))?;
    if uses.owner == principal.author.id || uses.avatar || principal.is_admin() {
        return Ok(());
    }
    for room in &uses.rooms {
        if let Some(access) = standing(app, principal, room).await?
            && access.check_read().is_ok()
        {
            return Ok(());
        }
    }
    Err(GatewayError::not_found("upload"))
}

/// Where the caller's search looks: one room they may read (refused as [`readable`]
/// refuses it), every public room and their own (`everywhere`), or their own rooms. The
/// store keeps bans and privacy in the set form ([`SearchScope`]); a site administrator
/// searches a private room they are not in by naming it.
pub async fn search_scope<'a>(
    app: &AppState,
    principal: &'a Principal,
    room: Option<&'a RoomName>,
    everywhere: bool,
) -> Result<SearchScope<'a>, GatewayError> {
    Ok(match room {
        Some(room) => {
            readable(app, principal, room).await?;
            SearchScope::Room(room)
        }
        None if everywhere => SearchScope::Public(&principal.author.id),
        None => SearchScope::Member(&principal.author.id),
    })
}
