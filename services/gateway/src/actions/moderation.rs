//! What owners and moderators do to a room, the same from whichever path asks: the store
//! decides and commits each as a room event ([`chat_store::Rooms::moderate`]); here it is
//! published like any event of the timeline (fan-out, replay) and, when it concerns a
//! person's sockets (removed, muted), told to every gateway as a control event. Invite
//! links, private rooms and direct messages are made here too.

use super::announce::{announce, publish};
use crate::auth::{IdentityKind, Principal, now_ms};
use crate::control::{Control, StandingChange};
use crate::error::GatewayError;
use crate::state::AppState;
use chat_bus::{BusEvent, EventKind};
use chat_domain::protocol::RemovedReason;
use chat_domain::room::RoomText;
use chat_domain::{Author, DisplayName, ErrorCode, RoomAction, RoomEvent, RoomName, TimelineEvent, Visibility};
use chat_store::{Moderation, NewInviteLink, NewRoom, Redeemed, StoreError};

/// Longest an invite link lasts: 30 days.
pub const MAX_INVITE_MINUTES: u32 = 43_200;
/// How long an invite link lasts unless asked otherwise: 7 days.
pub const DEFAULT_INVITE_MINUTES: u32 = 10_080;
/// Most uses one invite link may be given.
pub const MAX_INVITE_USES: u32 = 1_000;

/// Decides and commits `action` in `room` by the caller; on success every member on every
/// gateway sees the room event in its place, and the person it concerns is acted on.
pub async fn moderate(
    app: &AppState,
    principal: &Principal,
    room: &RoomName,
    action: RoomAction,
) -> Result<RoomEvent, GatewayError> {
    let event = app
        .directory()
        .moderate(&Moderation {
            room,
            actor: &principal.author,
            site_admin: principal.is_admin(),
            action: &action,
            now_ms: now_ms(),
        })
        .await??;
    let committed = TimelineEvent::Room(event.clone());
    publish(
        app,
        BusEvent {
            kind: EventKind::Message,
            room: room.clone(),
            seq: event.seq,
            payload: committed.to_frame(),
            traceparent: None,
            published_at_ms: None,
        },
    )
    .await;
    let change = match &action {
        RoomAction::Kicked { .. } => Some(StandingChange::Removed {
            reason: RemovedReason::Kicked,
        }),
        RoomAction::Banned { .. } => Some(StandingChange::Removed {
            reason: RemovedReason::Banned,
        }),
        RoomAction::Muted { until_ms, .. } => Some(StandingChange::Muted { until_ms: *until_ms }),
        RoomAction::Unmuted { .. } => Some(StandingChange::Unmuted),
        _ => None,
    };
    if let (Some(change), Some(target)) = (change, action.target()) {
        announce(
            app,
            Control::Standing {
                user: target.id.clone(),
                room: room.clone(),
                change,
            },
        )
        .await;
        if action.removes() {
            app.presence().left(&target.id, room).await;
        }
    }
    Ok(event)
}

/// A name only the server gives: `prefix` and 16 random letters and digits.
fn server_name(prefix: &str) -> RoomName {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut raw = [0u8; 16];
    rand::fill(&mut raw);
    let tail: String = raw
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    RoomName::parse(&format!("{prefix}{tail}")).expect("a server-made name keeps the rules")
}

/// Creates a private room titled `title`, owned by the caller. Its name is the server's
/// to give, so nobody can come upon it by typing a name.
pub async fn create_private(app: &AppState, principal: &Principal, title: &str) -> Result<RoomName, GatewayError> {
    let title = RoomText::Title.parse(title)?;
    for _ in 0..3 {
        let name = server_name("p.");
        let made = app
            .directory()
            .create_room(&NewRoom {
                name: &name,
                visibility: Visibility::Private,
                title: Some(&title),
                owner: &principal.author,
                now_ms: now_ms(),
            })
            .await;
        match made {
            Ok(()) => {
                announce_member(app, &principal.author, &name).await;
                return Ok(name);
            }
            // 36^16 names: a clash is all but impossible, and a retry settles it.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(GatewayError::internal())
}

/// The direct message between the caller and `other` (a registered user), made the first
/// time either opens it; both are its members.
pub async fn open_dm(app: &AppState, principal: &Principal, other: &Author) -> Result<RoomName, GatewayError> {
    if principal.kind != IdentityKind::Account {
        return Err(GatewayError::forbidden("sign up to send direct messages"));
    }
    if other.id == principal.author.id {
        return Err(GatewayError::new(
            ErrorCode::InvalidArgument,
            "a direct message is between two people",
        ));
    }
    let (room, _) = app
        .directory()
        .open_dm(&principal.author, other, &server_name("dm."), now_ms())
        .await?;
    for person in [&principal.author, other] {
        announce_member(app, person, &room).await;
    }
    Ok(room)
}

/// Tells every gateway `person` belongs to `room`, so their sockets are notified of it.
async fn announce_member(app: &AppState, person: &Author, room: &RoomName) {
    announce(
        app,
        Control::Membership {
            user: person.id.clone(),
            room: room.clone(),
            member: true,
        },
    )
    .await;
}

/// A new invite link to `room`: the caller must moderate it. Returns the token (shown
/// once; only its hash is kept) and when it expires.
pub async fn create_invite_link(
    app: &AppState,
    principal: &Principal,
    room: &RoomName,
    minutes: Option<u32>,
    max_uses: Option<u32>,
) -> Result<(String, i64), GatewayError> {
    let minutes = minutes.unwrap_or(DEFAULT_INVITE_MINUTES);
    if !(1..=MAX_INVITE_MINUTES).contains(&minutes) {
        return Err(GatewayError::new(
            ErrorCode::InvalidArgument,
            format!("expires_in_minutes is 1 to {MAX_INVITE_MINUTES}"),
        ));
    }
    if max_uses.is_some_and(|uses| !(1..=MAX_INVITE_USES).contains(&uses)) {
        return Err(GatewayError::new(
            ErrorCode::InvalidArgument,
            format!("max_uses is 1 to {MAX_INVITE_USES}"),
        ));
    }
    let access = super::access::readable(app, principal, room).await?;
    if access.dm || !access.moderates() {
        return Err(GatewayError::forbidden(
            "only the room's moderators and owner may make invite links",
        ));
    }
    let mut raw = [0u8; 24];
    rand::fill(&mut raw);
    let token = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw);
    let now = now_ms();
    let expires_at_ms = now + i64::from(minutes) * 60_000;
    app.directory()
        .create_invite_link(&NewInviteLink {
            token_hash: &invite_hash(app, &token),
            room,
            by: &principal.author.id,
            expires_at_ms,
            max_uses,
            now_ms: now,
        })
        .await?;
    Ok((token, expires_at_ms))
}

/// The stored form of an invite token: keyed like session tokens, under its own label so
/// one can never stand for the other.
pub fn invite_hash(app: &AppState, token: &str) -> String {
    app.auth().token_hash(&format!("invite:{token}"))
}

fn invalid_invite() -> GatewayError {
    GatewayError::new(
        ErrorCode::InviteInvalid,
        "this invite link is invalid, used up or expired",
    )
}

/// Redeems an invite link: the caller becomes a member of its room. Returns the room and
/// whether the membership is new.
pub async fn redeem_invite(
    app: &AppState,
    principal: &Principal,
    token: &str,
) -> Result<(RoomName, bool), GatewayError> {
    if token.is_empty() || token.len() > 64 {
        return Err(invalid_invite());
    }
    match app
        .directory()
        .redeem_invite(&invite_hash(app, token), &principal.author, now_ms())
        .await?
    {
        Redeemed::Member { room, new } => {
            if new {
                announce_member(app, &principal.author, &room).await;
            }
            Ok((room, new))
        }
        Redeemed::Banned => Err(GatewayError::new(ErrorCode::Banned, "you are banned from this room")),
        Redeemed::Invalid => Err(invalid_invite()),
    }
}

/// The display name a moderation event gives a person named by username: theirs.
pub fn author_of(id: chat_domain::UserId, name: &str) -> Result<Author, GatewayError> {
    Ok(Author {
        id,
        name: DisplayName::parse(name)?,
    })
}
