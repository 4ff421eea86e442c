//! Rooms as people stand with them: public or private, who holds which role, who is
//! invited, banned or muted, and the rules of what each may see and do.
//!
//! This is the one place access is decided. The store reads where a person stands
//! ([`RoomAccess`]) and every path asks it: a websocket join or send, the HTTP history,
//! member list and publish, an upload's download. (Notifications go to members only, and a
//! removal ends membership.) A moderation action is decided here
//! too ([`RoomAccess::check_action`]), by the store, under the room's lock, against what it
//! read there, so two moderators racing cannot undo each other's rules.

use crate::error::ErrorCode;
use crate::message::Author;
use crate::names::{NameError, RoomName};
use serde::{Deserialize, Serialize};

/// Names that only the server gives: private rooms are `p.<random>`, direct messages
/// `dm.<random>`. Nobody creates a room by entering such a name, so an outsider who types
/// one learns nothing: whether it exists or not, the answer is "no such room".
pub const RESERVED_PREFIXES: [&str; 2] = ["p.", "dm."];

/// Whether only the server may create a room of this name.
pub fn is_reserved(name: &RoomName) -> bool {
    RESERVED_PREFIXES.iter().any(|p| name.as_str().starts_with(p))
}

/// Longest topic, in characters.
pub const MAX_TOPIC_CHARS: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Longest title of a private room, in characters.
pub const MAX_TITLE_CHARS: usize = 64;
/// Longest mute: a year.
pub const MAX_MUTE_MINUTES: u32 = 525_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Visibility {
    /// Anyone may find, join and read it (the rooms entered by name).
    Public,
    /// Only its members and the people it invited may see it at all.
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }

    pub fn parse(s: &str) -> Result<Self, NameError> {
        match s {
            "public" => Ok(Self::Public),
            "private" => Ok(Self::Private),
            _ => Err(NameError::new(
                ErrorCode::InvalidArgument,
                "visibility is `public` or `private`",
            )),
        }
    }
}

/// A member's role in one room. Ordered by rank: a moderator acts on members only, the
/// owner on everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RoomRole {
    Member,
    /// Named by the owner: invites, removes, bans and mutes members, deletes any message.
    Moderator,
    /// The creator (or whom they handed the room to): names moderators, changes the topic,
    /// the description and the visibility.
    Owner,
}

impl RoomRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Moderator => "moderator",
            Self::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Result<Self, NameError> {
        match s {
            "member" => Ok(Self::Member),
            "moderator" => Ok(Self::Moderator),
            "owner" => Ok(Self::Owner),
            _ => Err(NameError::new(ErrorCode::InvalidArgument, "unknown room role")),
        }
    }
}

/// Where one person stands with one room, as the store read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    /// `None` when not a member.
    pub role: Option<RoomRole>,
    pub invited: bool,
    pub banned: bool,
    /// Until when (Unix ms) they may read but not send.
    pub muted_until_ms: Option<i64>,
    /// A site administrator: keeps every power over every room.
    pub site_admin: bool,
}

impl Standing {
    /// How far up they rank for acting on others: above every role for a site
    /// administrator, nowhere for a non-member.
    fn rank(&self) -> u8 {
        if self.site_admin {
            return 4;
        }
        match self.role {
            Some(RoomRole::Owner) => 3,
            Some(RoomRole::Moderator) => 2,
            Some(RoomRole::Member) => 1,
            None => 0,
        }
    }

    pub fn muted_at(&self, now_ms: i64) -> Option<i64> {
        self.muted_until_ms.filter(|until| *until > now_ms)
    }
}

/// A room and where one person stands with it: all an access decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomAccess {
    pub visibility: Visibility,
    /// A direct message: a private room of two with no owner, which nobody moderates.
    pub dm: bool,
    pub standing: Standing,
}

/// Why access was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// No such room, or a private one the person may not see: the two are never told
    /// apart, so an outsider learns nothing of a private room.
    #[error("no such room")]
    NotFound,
    #[error("you are banned from this room")]
    Banned,
    #[error("you are muted in this room")]
    Muted { until_ms: i64 },
    #[error("{0}")]
    Forbidden(&'static str),
    /// The action would change nothing (removing a non-member, unbanning someone not banned).
    #[error("{0}")]
    Conflict(&'static str),
}

impl AccessError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound => ErrorCode::NotFound,
            Self::Banned => ErrorCode::Banned,
            Self::Muted { .. } => ErrorCode::Muted,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::Conflict(_) => ErrorCode::Conflict,
        }
    }
}

impl RoomAccess {
    /// Whether they may see the room at all: read its history and members, fetch what was
    /// posted there, join it. A ban shuts a public room too (and says so: a public room is
    /// no secret); a private room is for its members and invitees only.
    pub fn check_read(&self) -> Result<(), AccessError> {
        let s = &self.standing;
        if s.site_admin {
            return Ok(());
        }
        if s.banned {
            return Err(match self.visibility {
                Visibility::Public => AccessError::Banned,
                Visibility::Private => AccessError::NotFound,
            });
        }
        match self.visibility {
            Visibility::Public => Ok(()),
            Visibility::Private if s.role.is_some() || s.invited => Ok(()),
            Visibility::Private => Err(AccessError::NotFound),
        }
    }

    /// Whether they may send (or change their messages) now: they may read, and they are
    /// not muted.
    pub fn check_send(&self, now_ms: i64) -> Result<(), AccessError> {
        self.check_read()?;
        match self.standing.muted_at(now_ms) {
            Some(until_ms) if !self.standing.site_admin => Err(AccessError::Muted { until_ms }),
            _ => Ok(()),
        }
    }

    /// Whether they may delete anyone's message here: a moderator, the owner, or a site
    /// administrator.
    pub fn moderates(&self) -> bool {
        self.standing.rank() >= 2
    }

    /// Decides `action` by this person on `target` (where the action names one). Checked
    /// again by the store under the room's lock, against what it read there.
    pub fn check_action(&self, action: &RoomAction, target: Option<&Standing>) -> Result<(), AccessError> {
        self.check_read()?;
        let actor = &self.standing;
        if self.dm {
            return Err(AccessError::Forbidden("a direct message has no moderators"));
        }
        let owner_only = matches!(
            action,
            RoomAction::RoleChanged { .. }
                | RoomAction::Updated { .. }
                | RoomAction::VisibilityChanged { .. }
                | RoomAction::OwnerChanged { .. }
        );
        if owner_only && actor.rank() < 3 {
            return Err(AccessError::Forbidden("only the room's owner may do this"));
        }
        if actor.rank() < 2 {
            return Err(AccessError::Forbidden(
                "only the room's moderators and owner may do this",
            ));
        }
        let Some(target) = target else {
            return match action {
                RoomAction::VisibilityChanged { visibility } if *visibility == self.visibility => {
                    Err(AccessError::Conflict("the room already has this visibility"))
                }
                _ => Ok(()),
            };
        };
        // Acting on someone who outranks or equals you is refused (a moderator cannot
        // remove another, nor anyone the owner); naming moderators is the owner's.
        let outranks = actor.rank() > target.rank().max(1);
        match action {
            RoomAction::Invited { .. } if target.banned => {
                Err(AccessError::Conflict("they are banned; unban them first"))
            }
            RoomAction::Invited { .. } if target.role.is_some() => {
                Err(AccessError::Conflict("they are a member already"))
            }
            RoomAction::Invited { .. } if target.invited => Err(AccessError::Conflict("they are invited already")),
            RoomAction::Invited { .. } => Ok(()),
            RoomAction::Unbanned { .. } if !target.banned => Err(AccessError::Conflict("they are not banned")),
            RoomAction::Unbanned { .. } => Ok(()),
            _ if !outranks => Err(AccessError::Forbidden(
                "you may not act on someone of your role or above",
            )),
            RoomAction::Banned { .. } if target.banned => Err(AccessError::Conflict("they are banned already")),
            RoomAction::Banned { .. } => Ok(()),
            _ if target.role.is_none() => Err(AccessError::Conflict("they are not a member")),
            RoomAction::Muted { .. } | RoomAction::Kicked { .. } => Ok(()),
            RoomAction::Unmuted { .. } if target.muted_until_ms.is_none() => {
                Err(AccessError::Conflict("they are not muted"))
            }
            RoomAction::Unmuted { .. } => Ok(()),
            RoomAction::RoleChanged { role, .. } if *role == RoomRole::Owner => {
                Err(AccessError::Forbidden("hand the room over to make someone its owner"))
            }
            RoomAction::RoleChanged { role, .. } if Some(*role) == target.role => {
                Err(AccessError::Conflict("they have this role already"))
            }
            RoomAction::RoleChanged { .. } | RoomAction::OwnerChanged { .. } => Ok(()),
            RoomAction::Updated { .. } | RoomAction::VisibilityChanged { .. } => Ok(()),
        }
    }
}

/// A change to a room (who is in it, who may do what, what it is called), as asked by an
/// owner or moderator and, once decided, as an event of the room's timeline: it takes the
/// next `seq`, is delivered to every member on every gateway and replayed by `since_seq`.
/// Stored as the event's body, in this JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RoomAction {
    /// `target` may now see and join the (private) room.
    Invited {
        target: Author,
    },
    /// `target` is no longer a member (they may come back to a public room).
    Kicked {
        target: Author,
    },
    /// `target` is out and may not come back, nor read.
    Banned {
        target: Author,
    },
    Unbanned {
        target: Author,
    },
    /// `target` may read but not send until `until_ms`.
    Muted {
        target: Author,
        until_ms: i64,
    },
    Unmuted {
        target: Author,
    },
    /// The owner made `target` a moderator, or a member again.
    RoleChanged {
        target: Author,
        role: RoomRole,
    },
    /// The owner changed the topic and description.
    Updated {
        topic: String,
        description: String,
    },
    VisibilityChanged {
        visibility: Visibility,
    },
    /// The owner handed the room to `target`; they stay on as a moderator.
    OwnerChanged {
        target: Author,
    },
}

impl RoomAction {
    /// The person the action is about, if any.
    pub fn target(&self) -> Option<&Author> {
        match self {
            Self::Invited { target }
            | Self::Kicked { target }
            | Self::Banned { target }
            | Self::Unbanned { target }
            | Self::Muted { target, .. }
            | Self::Unmuted { target }
            | Self::RoleChanged { target, .. }
            | Self::OwnerChanged { target } => Some(target),
            Self::Updated { .. } | Self::VisibilityChanged { .. } => None,
        }
    }

    /// The action's wire name (the frame's `action`, the audit log's verb after `room_`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Invited { .. } => "invited",
            Self::Kicked { .. } => "kicked",
            Self::Banned { .. } => "banned",
            Self::Unbanned { .. } => "unbanned",
            Self::Muted { .. } => "muted",
            Self::Unmuted { .. } => "unmuted",
            Self::RoleChanged { .. } => "role_changed",
            Self::Updated { .. } => "updated",
            Self::VisibilityChanged { .. } => "visibility_changed",
            Self::OwnerChanged { .. } => "owner_changed",
        }
    }

    /// Whether the target's sockets must leave the room at once.
    pub fn removes(&self) -> bool {
        matches!(self, Self::Kicked { .. } | Self::Banned { .. })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("room actions serialize")
    }

    pub fn from_json(body: &str) -> Result<Self, NameError> {
        serde_json::from_str(body)
            .map_err(|_| NameError::new(ErrorCode::Internal, "a room event's body does not parse"))
    }
}

/// A committed room event: the event at `seq` in which `author` did `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEvent {
    pub id: crate::MessageId,
    pub room: RoomName,
    pub seq: u64,
    /// Who acted, from the session.
    pub author: Author,
    /// Generated by the server: a room event is no client's send.
    pub client_msg_id: crate::ClientMsgId,
    pub at_ms: i64,
    pub action: RoomAction,
}

/// A room's free text: its title (private rooms), topic or description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomText {
    /// 1 to [`MAX_TITLE_CHARS`] characters on one line.
    Title,
    /// Up to [`MAX_TOPIC_CHARS`] characters on one line.
    Topic,
    /// Up to [`MAX_DESCRIPTION_CHARS`] characters, lines allowed.
    Description,
}

impl RoomText {
    /// Checks and trims one: no control characters (but newlines in a description) and no
    /// bidirectional formatting, which could make the text read as something else.
    pub fn parse(self, input: &str) -> Result<String, NameError> {
        let text = input.trim();
        let (max, lines, empty, long, bad) = match self {
            Self::Title => (
                MAX_TITLE_CHARS,
                false,
                "the title is empty",
                "the title is longer than 64 characters",
                "the title holds control or formatting characters",
            ),
            Self::Topic => (
                MAX_TOPIC_CHARS,
                false,
                "",
                "the topic is longer than 200 characters",
                "the topic holds control or formatting characters",
            ),
            Self::Description => (
                MAX_DESCRIPTION_CHARS,
                true,
                "",
                "the description is longer than 1000 characters",
                "the description holds control or formatting characters",
            ),
        };
        let invalid = |why| NameError::new(ErrorCode::InvalidArgument, why);
        if text.is_empty() && !empty.is_empty() {
            return Err(invalid(empty));
        }
        if text.chars().count() > max {
            return Err(invalid(long));
        }
        if text
            .chars()
            .any(|c| (c.is_control() && !(lines && c == '\n')) || crate::account::is_bidi_control(c))
        {
            return Err(invalid(bad));
        }
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DisplayName, UserId};

    fn someone() -> Author {
        Author {
            id: UserId::parse("u:2").unwrap(),
            name: DisplayName::parse("bob").unwrap(),
        }
    }

    fn standing(role: Option<RoomRole>) -> Standing {
        Standing {
            role,
            ..Standing::default()
        }
    }

    fn room(visibility: Visibility, standing: Standing) -> RoomAccess {
        RoomAccess {
            visibility,
            dm: false,
            standing,
        }
    }

    #[test]
    fn a_private_room_is_for_members_and_invitees_and_outsiders_cannot_tell_it_exists() {
        let outsider = room(Visibility::Private, Standing::default());
        assert_eq!(outsider.check_read(), Err(AccessError::NotFound));
        let banned = room(
            Visibility::Private,
            Standing {
                banned: true,
                role: None,
                ..Standing::default()
            },
        );
        assert_eq!(
            banned.check_read(),
            Err(AccessError::NotFound),
            "a ban says no more than absence"
        );
        let invited = room(
            Visibility::Private,
            Standing {
                invited: true,
                ..Standing::default()
            },
        );
        assert_eq!(invited.check_read(), Ok(()));
        assert_eq!(
            room(Visibility::Private, standing(Some(RoomRole::Member))).check_read(),
            Ok(())
        );
        let admin = room(
            Visibility::Private,
            Standing {
                site_admin: true,
                ..Standing::default()
            },
        );
        assert_eq!(admin.check_read(), Ok(()));
    }

    #[test]
    fn a_public_room_is_open_to_all_but_the_banned() {
        assert_eq!(room(Visibility::Public, Standing::default()).check_read(), Ok(()));
        let banned = room(
            Visibility::Public,
            Standing {
                banned: true,
                ..Standing::default()
            },
        );
        assert_eq!(banned.check_read(), Err(AccessError::Banned));
        assert_eq!(banned.check_send(0), Err(AccessError::Banned));
    }

    #[test]
    fn a_mute_stops_sending_until_it_ends() {
        let muted = room(
            Visibility::Public,
            Standing {
                muted_until_ms: Some(1000),
                ..standing(Some(RoomRole::Member))
            },
        );
        assert_eq!(muted.check_read(), Ok(()), "a muted member still reads");
        assert_eq!(muted.check_send(999), Err(AccessError::Muted { until_ms: 1000 }));
        assert_eq!(muted.check_send(1000), Ok(()));
    }

    #[test]
    fn moderators_act_on_members_only_and_owner_powers_are_the_owners() {
        let kick = RoomAction::Kicked { target: someone() };
        let member = standing(Some(RoomRole::Member));
        let moderator = standing(Some(RoomRole::Moderator));
        let owner = standing(Some(RoomRole::Owner));
        let as_ = |s: &Standing| room(Visibility::Public, s.clone());
        assert!(matches!(
            as_(&member).check_action(&kick, Some(&member)),
            Err(AccessError::Forbidden(_))
        ));
        assert_eq!(as_(&moderator).check_action(&kick, Some(&member)), Ok(()));
        assert!(matches!(
            as_(&moderator).check_action(&kick, Some(&moderator)),
            Err(AccessError::Forbidden(_))
        ));
        assert!(matches!(
            as_(&moderator).check_action(&kick, Some(&owner)),
            Err(AccessError::Forbidden(_))
        ));
        assert_eq!(as_(&owner).check_action(&kick, Some(&moderator)), Ok(()));
        let admin = Standing {
            site_admin: true,
            ..Standing::default()
        };
        assert_eq!(
            as_(&admin).check_action(&kick, Some(&owner)),
            Ok(()),
            "the site admin keeps every power"
        );

        let topic = RoomAction::Updated {
            topic: "t".into(),
            description: String::new(),
        };
        assert!(matches!(
            as_(&moderator).check_action(&topic, None),
            Err(AccessError::Forbidden(_))
        ));
        assert_eq!(as_(&owner).check_action(&topic, None), Ok(()));
        let promote = RoomAction::RoleChanged {
            target: someone(),
            role: RoomRole::Moderator,
        };
        assert!(matches!(
            as_(&moderator).check_action(&promote, Some(&member)),
            Err(AccessError::Forbidden(_))
        ));
        assert_eq!(as_(&owner).check_action(&promote, Some(&member)), Ok(()));
        assert!(matches!(
            as_(&owner).check_action(&promote, Some(&moderator)),
            Err(AccessError::Conflict(_))
        ));
    }

    #[test]
    fn an_action_that_changes_nothing_is_a_conflict() {
        let owner = room(Visibility::Public, standing(Some(RoomRole::Owner)));
        let outsider = Standing::default();
        let kick = RoomAction::Kicked { target: someone() };
        assert!(matches!(
            owner.check_action(&kick, Some(&outsider)),
            Err(AccessError::Conflict(_))
        ));
        let unban = RoomAction::Unbanned { target: someone() };
        assert!(matches!(
            owner.check_action(&unban, Some(&outsider)),
            Err(AccessError::Conflict(_))
        ));
        let ban = RoomAction::Banned { target: someone() };
        assert_eq!(
            owner.check_action(&ban, Some(&outsider)),
            Ok(()),
            "a ban keeps out a non-member too"
        );
        let public = RoomAction::VisibilityChanged {
            visibility: Visibility::Public,
        };
        assert!(matches!(
            owner.check_action(&public, None),
            Err(AccessError::Conflict(_))
        ));
    }

    #[test]
    fn nobody_moderates_a_direct_message() {
        let dm = RoomAccess {
            visibility: Visibility::Private,
            dm: true,
            standing: standing(Some(RoomRole::Member)),
        };
        let invite = RoomAction::Invited { target: someone() };
        assert!(matches!(
            dm.check_action(&invite, Some(&Standing::default())),
            Err(AccessError::Forbidden(_))
        ));
    }

    #[test]
    fn actions_keep_their_stored_form() {
        let action = RoomAction::Muted {
            target: someone(),
            until_ms: 5,
        };
        assert_eq!(RoomAction::from_json(&action.to_json()).unwrap(), action);
        assert_eq!(
            serde_json::to_value(&action).unwrap(),
            serde_json::json!({"action": "muted", "target": {"id": "u:2", "name": "bob"}, "until_ms": 5})
        );
    }

    #[test]
    fn reserved_names_and_titles() {
        assert!(is_reserved(&RoomName::parse("p.abc").unwrap()));
        assert!(is_reserved(&RoomName::parse("dm.abc").unwrap()));
        assert!(!is_reserved(&RoomName::parse("pa.abc").unwrap()));
        assert_eq!(RoomText::Title.parse("  Team  ").unwrap(), "Team");
        assert!(RoomText::Title.parse(" ").is_err());
        assert!(RoomText::Title.parse("a\u{202E}b").is_err());
        assert_eq!(RoomText::Topic.parse("").unwrap(), "");
        assert!(RoomText::Description.parse("a\nb").is_ok());
        assert!(RoomText::Topic.parse("a\nb").is_err());
        assert!(RoomText::Topic.parse(&"x".repeat(201)).is_err());
    }
}
