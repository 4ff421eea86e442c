//! Membership of rooms and read markers, the same whether a person acts over HTTP or on a
//! socket. A new or ended membership is announced to every gateway, so the person's other
//! sockets start (or stop) getting notifications for the room.

use super::announce::announce;
use crate::auth::{Principal, now_ms};
use crate::control::Control;
use crate::error::GatewayError;
use crate::presence;
use crate::state::AppState;
use chat_bus::{Signal, SignalKind};
use chat_domain::protocol::ServerFrame;
use chat_domain::{ErrorCode, RoomName, UserId};
use chat_store::Entered;

/// Makes the caller a member of `room` (which exists). Returns whether the membership is
/// new.
pub async fn become_member(app: &AppState, principal: &Principal, room: &RoomName) -> Result<bool, GatewayError> {
    let user = &principal.author.id;
    let entered = app
        .directory()
        .enter(user, &principal.author.name, room, now_ms())
        .await?;
    match entered {
        Entered::Joined => {
            announce(
                app,
                Control::Membership {
                    user: user.clone(),
                    room: room.clone(),
                    member: true,
                },
            )
            .await;
            Ok(true)
        }
        Entered::AlreadyMember => Ok(false),
        Entered::RoomNotFound => Err(GatewayError::not_found("room")),
    }
}

/// Ends the caller's membership of `room`: off their panel, no notifications. They may
/// enter it again.
pub async fn leave(app: &AppState, user: &UserId, room: &RoomName) -> Result<(), GatewayError> {
    if !app.directory().leave(user, room).await? {
        return Err(not_a_member());
    }
    announce(
        app,
        Control::Membership {
            user: user.clone(),
            room: room.clone(),
            member: false,
        },
    )
    .await;
    app.presence().left(user, room).await;
    Ok(())
}

/// Mutes or unmutes the notifications of `room` for its member `user`. Nothing is
/// announced: whether to notify is the client's decision, and each of their devices reads
/// the setting with the panel.
pub async fn mute_notifications(
    app: &AppState,
    user: &UserId,
    room: &RoomName,
    muted: bool,
) -> Result<(), GatewayError> {
    if !app.directory().mute_notifications(user, room, muted).await? {
        return Err(not_a_member());
    }
    Ok(())
}

fn not_a_member() -> GatewayError {
    GatewayError::new(ErrorCode::NotFound, "you are not a member of this room")
}

/// Raises the user's read marker in `room` to `seq`: the panel's unread count follows it.
/// When it moved and they send read receipts (the one place that rule is kept), the room's
/// members on every gateway hear it as a `read` frame.
pub async fn mark_read(app: &AppState, user: &UserId, room: &RoomName, seq: u64) -> Result<(), GatewayError> {
    let Some(seq) = app.directory().mark_read(user, room, seq).await? else {
        return Ok(());
    };
    let receipt = Signal {
        kind: SignalKind::Read,
        room: room.clone(),
        user: user.clone(),
        payload: ServerFrame::Read {
            room: room.clone(),
            user_id: user.clone(),
            seq,
        }
        .to_bytes(),
    };
    // Bounded: a join or an HTTP call marks read, and must not wait out Redis's retries.
    match presence::within("read receipt", app.bus().signal(&[receipt])).await {
        Some(Err(error)) => tracing::debug!(%room, %error, "a read receipt was lost"),
        None => tracing::debug!(%room, "a read receipt was dropped: Redis is slow"),
        Some(Ok(())) => {}
    }
    Ok(())
}
