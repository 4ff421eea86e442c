//! Control events: instructions between gateways about who may see what, carried by the
//! bus beside the rooms' events. Each gateway applies them to the people connected to it
//! (`People::apply`).

use bytes::Bytes;
use chat_bus::EventKind;
use chat_domain::protocol::RemovedReason;
use chat_domain::{RoomName, UserId};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// An instruction between gateways, typed on both ends: an event that does not parse into
/// one of these (a newer gateway's, say) is ignored whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Control {
    /// `user` became (or stopped being) a member of `room`.
    Membership { user: UserId, room: RoomName, member: bool },
    /// `user`'s sockets must close: one session's (`Some`), or all of them (a disabled
    /// account), or all but those of session `keep` (a password changed there).
    EndSessions {
        user: UserId,
        session: Option<String>,
        /// Absent from events of gateways older than password changes: nothing kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keep: Option<String>,
    },
    /// An admin deleted `room`: it has no members any more.
    RoomDeleted { room: RoomName },
    /// A moderator changed `user`'s standing in `room` in a way their sockets act on at
    /// once: taken out of the room, or muted, or unmuted.
    Standing {
        user: UserId,
        room: RoomName,
        change: StandingChange,
    },
}

/// What [`Control::Standing`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StandingChange {
    /// No longer a member: their sockets leave the room.
    Removed {
        reason: RemovedReason,
    },
    /// They may read but not send until then (Unix ms).
    Muted {
        until_ms: i64,
    },
    Unmuted,
}

/// The bus carries a room with every event. A session's end concerns no room; it carries
/// this one.
static SESSIONS_ROOM: LazyLock<RoomName> =
    LazyLock::new(|| RoomName::parse("control").expect("`control` is a valid room name"));

impl Control {
    pub fn to_json(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("control events serialize"))
    }

    pub fn parse(payload: &[u8]) -> Option<Self> {
        serde_json::from_slice(payload).ok()
    }

    /// How the bus carries it. What changes a room for its members (a removal, a
    /// deletion) travels on the room's partition, after the room's events published before
    /// it, to the gateways serving the room (its members' sockets there watch or have
    /// joined it). What concerns people wherever they are (a membership, a session) goes
    /// to every gateway: their sockets may be on a gateway that does not read the room.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::RoomDeleted { .. } | Self::Standing { .. } => EventKind::Control,
            Self::Membership { .. } | Self::EndSessions { .. } => EventKind::Broadcast,
        }
    }

    /// The room the bus carries with this event.
    pub fn room(&self) -> &RoomName {
        match self {
            Self::Membership { room, .. } | Self::RoomDeleted { room } | Self::Standing { room, .. } => room,
            Self::EndSessions { .. } => &SESSIONS_ROOM,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_events_round_trip_as_json() {
        let user = UserId::parse("u:1").unwrap();
        for control in [
            Control::Membership {
                user: user.clone(),
                room: RoomName::parse("a").unwrap(),
                member: true,
            },
            Control::EndSessions {
                user: user.clone(),
                session: Some("s".into()),
                keep: None,
            },
            Control::EndSessions {
                user,
                session: None,
                keep: Some("k".into()),
            },
            Control::RoomDeleted {
                room: RoomName::parse("b").unwrap(),
            },
            Control::Standing {
                user: UserId::parse("u:2").unwrap(),
                room: RoomName::parse("c").unwrap(),
                change: StandingChange::Muted { until_ms: 9 },
            },
            Control::Standing {
                user: UserId::parse("u:2").unwrap(),
                room: RoomName::parse("c").unwrap(),
                change: StandingChange::Removed {
                    reason: RemovedReason::Banned,
                },
            },
        ] {
            assert_eq!(Control::parse(&control.to_json()), Some(control));
        }
        assert_eq!(Control::parse(b"{\"op\":\"unknown\"}"), None);
        assert_eq!(
            Control::parse(br#"{"op":"room_deleted","room":"not a room"}"#),
            None,
            "a name that breaks the rules does not parse"
        );
    }

    #[test]
    fn the_wire_form_is_unchanged() {
        let control = Control::Membership {
            user: UserId::parse("u:1").unwrap(),
            room: RoomName::parse("a").unwrap(),
            member: false,
        };
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&control.to_json()).unwrap(),
            serde_json::json!({"op": "membership", "user": "u:1", "room": "a", "member": false})
        );
        let end = Control::EndSessions {
            user: UserId::parse("u:1").unwrap(),
            session: None,
            keep: None,
        };
        assert_eq!(end.room().as_str(), "control");
        // What a gateway older than password changes sends still reads: nothing kept.
        let old: Control =
            serde_json::from_value(serde_json::json!({"op": "end_sessions", "user": "u:1", "session": null})).unwrap();
        assert_eq!(old, end);
    }
}
