//! What the server sends: [`ServerFrame`], the mirror of [`super::ClientFrame`].
//!
//! Every frame the gateway writes to a socket, every body the HTTP API returns in the shape
//! of a frame (a message, an ack), and every frame a test or the load generator reads back
//! is one variant of this enum, serde-tagged by `type`. A frame is serialized once by
//! whoever builds it ([`ServerFrame::to_bytes`]), and the fan-out sends the same bytes to
//! every receiver.

use crate::error::ErrorCode;
use crate::message::{Author, ChatMessage, MessageId, MessageKind, format_millis, thumbnail_url, upload_url};
use crate::names::{ClientMsgId, Emoji, RoomName, UserId};
use crate::room::{RoomAction, RoomEvent, RoomRole, Visibility};
use crate::timeline::{Change, ChangeEvent, TimelineEvent};
use crate::upload::{ImageSize, UploadId};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Characters of a message's text that a `notify` frame carries.
pub const PREVIEW_CHARS: usize = 100;

/// Every frame the server sends on `/ws` (docs/protocol.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The join took effect: the room's `last_seq` then, and the history the client needs
    /// before live events. Without `since_seq` that is the newest messages in their current
    /// state; with it, exactly the events after it, in order. `has_more` says older
    /// messages exist beyond `history` (page them over HTTP).
    Joined {
        room: RoomName,
        last_seq: u64,
        history: Vec<HistoryItem>,
        has_more: bool,
        /// Who of the room's members is online; absent when presence is switched off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        presence: Option<RoomPresence>,
        /// How far the members who send read receipts have read, furthest first (in a room
        /// of at most `big_room_members`); absent in a bigger room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reads: Option<Vec<ReadMarker>>,
    },
    /// The socket no longer receives the room's messages.
    Left { room: RoomName },
    /// A committed message, live or from a gap fill.
    Message(MessageFrame),
    /// The message at `target_seq` has new `text`.
    Edited(ChangeFrame),
    /// The message at `target_seq` was deleted (by its author or an administrator): it
    /// becomes a tombstone.
    Deleted(ChangeFrame),
    /// `user` reacted to the message at `target_seq` with `emoji`.
    Reacted(ChangeFrame),
    /// `user` took back their `emoji` reaction to the message at `target_seq`.
    Unreacted(ChangeFrame),
    /// A change to the room itself (moderation, roles, topic, visibility), in its place in
    /// the timeline.
    RoomEvent(RoomEventFrame),
    /// The socket was taken out of the room (its person was removed or banned): it gets
    /// no more of the room's events.
    Removed { room: RoomName, reason: RemovedReason },
    /// A send or change is committed with this `seq`.
    Ack(AckFrame),
    /// An administrator deleted the room; the socket no longer receives it.
    RoomDeleted { room: RoomName },
    /// The answer to the client's `ping`: the connection is alive.
    Pong,
    /// A new message in a room the user belongs to but has not joined on this socket;
    /// `mention` when it mentions them.
    Notify {
        room: RoomName,
        seq: u64,
        user: Author,
        preview: String,
        kind: MessageKind,
        mention: bool,
    },
    /// A member of the room came online or went offline (a room up to the size where
    /// presence is told person by person), or, in a bigger room, how many are online now.
    Presence(PresenceFrame),
    /// A member who sends read receipts has read the room up to `seq`.
    Read { room: RoomName, user_id: UserId, seq: u64 },
    /// Someone in the room is typing: `user`, or, once more are typing than a client
    /// shows by name, only how many (`count`), at most once every few seconds.
    Typing(TypingFrame),
    /// A frame or request failed; the connection stays usable. `ref` names the request:
    /// the `client_msg_id` of a refused send, or the room of a refused join.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
}

/// How far one member has read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadMarker {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub user_id: UserId,
    pub seq: u64,
}

/// Who of a room's members is online, as `joined` tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomPresence {
    /// How many members are online.
    pub online_count: usize,
    /// Their ids, in a room small enough for presence person by person; absent in a bigger
    /// one, whose members get only the count (`presence` frames with `online_count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub online: Option<Vec<UserId>>,
}

/// The `presence` frame: one member came online or went offline, or a bigger room's count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PresenceFrame {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub room: RoomName,
    /// Who changed; absent in a count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub user_id: Option<UserId>,
    /// Whether `user_id` is online now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// A bigger room's count of members online.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_count: Option<usize>,
}

/// The `typing` frame: who is typing, or how many are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TypingFrame {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub room: RoomName,
    /// The person typing; absent in a summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Author>,
    /// A summary: this many people are typing now (more than are named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
}

/// A committed message as clients see it: the `message` frame's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageFrame {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub room: RoomName,
    pub seq: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: MessageId,
    pub user: Author,
    /// Validated when it was sent; read back as stored.
    pub text: String,
    /// Commit time, RFC 3339 in UTC with milliseconds.
    pub sent_at: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub client_msg_id: ClientMsgId,
    pub kind: MessageKind,
    /// The upload an image message shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
    /// The seq of the message this one replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    /// The members the text mentions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<Author>,
    /// When it was last edited (RFC 3339); absent if never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    /// A tombstone: the message was deleted and shows no content.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Standing reactions, per emoji.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionCount>,
}

/// One emoji's reactions to a message: how many, and who, in the order they reacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReactionCount {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub emoji: Emoji,
    pub count: usize,
    pub users: Vec<Author>,
}

/// A change to a message: the fields of the `edited`, `deleted`, `reacted` and
/// `unreacted` frames. `seq` is the change's own place in the room's timeline,
/// `target_seq` the message it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeFrame {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub room: RoomName,
    pub seq: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: MessageId,
    pub target_seq: u64,
    /// Who made the change.
    pub user: Author,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub client_msg_id: ClientMsgId,
    /// Commit time, RFC 3339 in UTC with milliseconds.
    pub at: String,
    /// `edited`: the new text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `edited`: the members the new text mentions, replacing the message's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<Author>,
    /// `reacted`, `unreacted`: the emoji.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub emoji: Option<Emoji>,
}

/// Why a socket was taken out of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovedReason {
    Kicked,
    Banned,
}

/// A room event: the `room_event` frame's fields. `user` acted; `action` says what
/// happened, and the fields it names say to whom and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomEventFrame {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub room: RoomName,
    pub seq: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: MessageId,
    /// Who acted.
    pub user: Author,
    /// Commit time, RFC 3339 in UTC with milliseconds.
    pub at: String,
    /// `invited`, `kicked`, `banned`, `unbanned`, `muted`, `unmuted`, `role_changed`,
    /// `updated`, `visibility_changed` or `owner_changed`.
    pub action: String,
    /// Whom the action is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Author>,
    /// `muted`: until when, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// `role_changed`: the new role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoomRole>,
    /// `updated`: the new topic and description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `visibility_changed`: the new visibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
}

impl From<&RoomEvent> for RoomEventFrame {
    fn from(event: &RoomEvent) -> Self {
        let mut frame = Self {
            room: event.room.clone(),
            seq: event.seq,
            id: event.id,
            user: event.author.clone(),
            at: format_millis(event.at_ms),
            action: event.action.name().to_owned(),
            target: event.action.target().cloned(),
            until: None,
            role: None,
            topic: None,
            description: None,
            visibility: None,
        };
        match &event.action {
            RoomAction::Muted { until_ms, .. } => frame.until = Some(format_millis(*until_ms)),
            RoomAction::RoleChanged { role, .. } => frame.role = Some(*role),
            RoomAction::Updated { topic, description } => {
                frame.topic = Some(topic.clone());
                frame.description = Some(description.clone());
            }
            RoomAction::VisibilityChanged { visibility } => frame.visibility = Some(*visibility),
            _ => {}
        }
        frame
    }
}

/// Where an image message's upload is fetched, and how big it is: a client reserves the
/// space before the image arrives, shows a thumbnail in the timeline and the whole image on
/// request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attachment {
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: UploadId,
    /// The whole image, its metadata (EXIF, GPS …) removed.
    pub url: String,
    /// Absent only for images uploaded before sizes were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Smaller copies, narrowest first; none when the image is no wider than the narrowest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thumbnails: Vec<Thumbnail>,
}

/// A smaller copy of an uploaded image, made at upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Thumbnail {
    pub width: u32,
    pub height: u32,
    pub url: String,
}

impl Attachment {
    pub fn new(id: UploadId, size: Option<ImageSize>) -> Self {
        Self {
            id,
            url: upload_url(id),
            width: size.map(|s| s.width),
            height: size.map(|s| s.height),
            thumbnails: size
                .into_iter()
                .flat_map(ImageSize::thumbnails)
                .map(|t| Thumbnail {
                    width: t.width,
                    height: t.height,
                    url: thumbnail_url(id, t.width),
                })
                .collect(),
        }
    }
}

/// An event in history: in `joined`, and in the HTTP API's pages. Tagged like the live
/// frames, so a client handles both alike. A page of messages holds only `message` items,
/// in their current state; a replay (`joined` with `since_seq`) holds every event missed.
/// (Its OpenAPI name, `MessageDoc`, is the one the document has always given it.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = MessageDoc))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HistoryItem {
    Message(MessageFrame),
    Edited(ChangeFrame),
    Deleted(ChangeFrame),
    Reacted(ChangeFrame),
    Unreacted(ChangeFrame),
    RoomEvent(RoomEventFrame),
}

/// The `ack` frame on its own, as the HTTP publish answers: tagged as on the socket, the
/// same bytes as `ServerFrame::Ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AckDoc))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AckItem {
    Ack(AckFrame),
}

/// The `ack` frame's fields (and the HTTP publish answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AckFrame {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub client_msg_id: ClientMsgId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub room: RoomName,
    pub seq: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: MessageId,
    pub sent_at: String,
    /// True when this `client_msg_id` was stored before: this repeats the original.
    pub duplicate: bool,
}

impl From<&ChatMessage> for MessageFrame {
    fn from(message: &ChatMessage) -> Self {
        Self {
            room: message.room.clone(),
            seq: message.seq,
            id: message.id,
            user: message.author.clone(),
            text: message.text.clone(),
            sent_at: format_millis(message.sent_at_ms),
            client_msg_id: message.client_msg_id.clone(),
            kind: message.kind,
            attachment: message
                .attachment
                .map(|id| Attachment::new(id, message.attachment_size)),
            reply_to: message.reply_to,
            mentions: message.mentions.clone(),
            edited_at: message.edited_at_ms.map(format_millis),
            deleted: message.deleted,
            reactions: message
                .reactions
                .iter()
                .map(|r| ReactionCount {
                    emoji: r.emoji.clone(),
                    count: r.users.len(),
                    users: r.users.clone(),
                })
                .collect(),
        }
    }
}

impl From<&ChangeEvent> for ChangeFrame {
    fn from(event: &ChangeEvent) -> Self {
        let (text, mentions, emoji) = match &event.change {
            Change::Edit { text, mentions } => (Some(text.clone()), mentions.clone(), None),
            Change::Delete => (None, Vec::new(), None),
            Change::React { emoji } | Change::Unreact { emoji } => (None, Vec::new(), Some(emoji.clone())),
        };
        Self {
            room: event.room.clone(),
            seq: event.seq,
            id: event.id,
            target_seq: event.target_seq,
            user: event.author.clone(),
            client_msg_id: event.client_msg_id.clone(),
            at: format_millis(event.at_ms),
            text,
            mentions,
            emoji,
        }
    }
}

impl From<&TimelineEvent> for HistoryItem {
    fn from(event: &TimelineEvent) -> Self {
        let change = match event {
            TimelineEvent::Message(message) => return Self::Message(message.into()),
            TimelineEvent::Room(room) => return Self::RoomEvent(room.into()),
            TimelineEvent::Change(change) => change,
        };
        let frame = ChangeFrame::from(change);
        match change.change {
            Change::Edit { .. } => Self::Edited(frame),
            Change::Delete => Self::Deleted(frame),
            Change::React { .. } => Self::Reacted(frame),
            Change::Unreact { .. } => Self::Unreacted(frame),
        }
    }
}

impl From<HistoryItem> for ServerFrame {
    fn from(item: HistoryItem) -> Self {
        match item {
            HistoryItem::Message(frame) => Self::Message(frame),
            HistoryItem::Edited(frame) => Self::Edited(frame),
            HistoryItem::Deleted(frame) => Self::Deleted(frame),
            HistoryItem::Reacted(frame) => Self::Reacted(frame),
            HistoryItem::Unreacted(frame) => Self::Unreacted(frame),
            HistoryItem::RoomEvent(frame) => Self::RoomEvent(frame),
        }
    }
}

impl HistoryItem {
    /// Messages as a page of history shows them, in their current state (tombstones
    /// included: they keep their place).
    pub fn messages(messages: &[ChatMessage]) -> Vec<Self> {
        messages.iter().map(|m| Self::Message(m.into())).collect()
    }

    /// Events as a replay shows them, each as its live frame.
    pub fn events(events: &[TimelineEvent]) -> Vec<Self> {
        events.iter().map(Into::into).collect()
    }
}

impl AckFrame {
    /// The ack of a committed send or change; `duplicate` when it had been stored before.
    pub fn new(event: &TimelineEvent, duplicate: bool) -> Self {
        Self {
            client_msg_id: event.client_msg_id().clone(),
            room: event.room().clone(),
            seq: event.seq(),
            id: event.id(),
            sent_at: format_millis(event.at_ms()),
            duplicate,
        }
    }
}

impl ServerFrame {
    pub fn joined(room: &RoomName, last_seq: u64, history: Vec<HistoryItem>, has_more: bool) -> Self {
        Self::Joined {
            room: room.clone(),
            last_seq,
            history,
            has_more,
            presence: None,
            reads: None,
        }
    }

    pub fn left(room: &RoomName) -> Self {
        Self::Left { room: room.clone() }
    }

    pub fn ack(event: &TimelineEvent, duplicate: bool) -> Self {
        Self::Ack(AckFrame::new(event, duplicate))
    }

    pub fn room_deleted(room: &RoomName) -> Self {
        Self::RoomDeleted { room: room.clone() }
    }

    /// A notification of `message`, with the first [`PREVIEW_CHARS`] of its text;
    /// `mention` when it mentions the person notified.
    pub fn notify(message: &MessageFrame, mention: bool) -> Self {
        Self::Notify {
            room: message.room.clone(),
            seq: message.seq,
            user: message.user.clone(),
            preview: message.text.chars().take(PREVIEW_CHARS).collect(),
            kind: message.kind,
            mention,
        }
    }

    pub fn error(code: ErrorCode, message: &str, reference: Option<&str>) -> Self {
        Self::Error {
            code,
            message: message.to_owned(),
            reference: reference.map(str::to_owned),
        }
    }

    /// The frame as the bytes every receiver gets: serialized once, shared by all.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("server frames always serialize"))
    }

    /// Reads a frame back, as clients do.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

impl ChatMessage {
    /// The `message` frame as the bytes every receiver gets.
    pub fn to_frame(&self) -> Bytes {
        ServerFrame::Message(self.into()).to_bytes()
    }
}

impl TimelineEvent {
    /// The event's live frame (`message`, `edited`, `deleted` …) as the bytes every
    /// receiver gets.
    pub fn to_frame(&self) -> Bytes {
        ServerFrame::from(HistoryItem::from(self)).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Reaction;
    use crate::message::tests::sample;
    use serde_json::{Value, json};

    fn json_of(frame: &ServerFrame) -> Value {
        serde_json::from_slice(&frame.to_bytes()).unwrap()
    }

    fn change(seq: u64, change: Change) -> TimelineEvent {
        let message = sample();
        TimelineEvent::Change(ChangeEvent {
            id: MessageId::new(20 + seq as i64).unwrap(),
            room: message.room,
            seq,
            author: message.author,
            client_msg_id: ClientMsgId::parse(&format!("c-{seq}")).unwrap(),
            at_ms: message.sent_at_ms + 1000,
            target_seq: 3,
            change,
        })
    }

    fn thumbs() -> Emoji {
        Emoji::parse("👍").unwrap()
    }

    /// The wire form of every frame, field for field, as docs/protocol.md gives it.
    #[test]
    fn each_frame_has_its_documented_fields() {
        let room = RoomName::parse("lobby").unwrap();
        let message = sample();
        let message_json = json!({
            "type": "message", "room": "lobby", "seq": 3, "id": 7,
            "user": {"id": "guest:1", "name": "Ann"},
            "text": "<b>hi</b> \"there\"",
            "sent_at": "2023-11-14T22:13:20.123Z",
            "client_msg_id": "c-1", "kind": "text"
        });
        let mut deleted = ChatMessage { seq: 4, ..sample() };
        deleted.erase();
        assert_eq!(
            json_of(&ServerFrame::joined(
                &room,
                4,
                HistoryItem::messages(&[message.clone(), deleted]),
                true
            )),
            json!({"type": "joined", "room": "lobby", "last_seq": 4, "history": [message_json, {
                "type": "message", "room": "lobby", "seq": 4, "id": 7,
                "user": {"id": "guest:1", "name": "Ann"}, "text": "", "deleted": true,
                "sent_at": "2023-11-14T22:13:20.123Z", "client_msg_id": "c-1", "kind": "text"
            }], "has_more": true})
        );
        let folded = ChatMessage {
            reply_to: Some(1),
            mentions: vec![message.author.clone()],
            edited_at_ms: Some(message.sent_at_ms + 1000),
            reactions: vec![Reaction {
                emoji: thumbs(),
                users: vec![message.author.clone()],
            }],
            ..sample()
        };
        let ann = json!({"id": "guest:1", "name": "Ann"});
        assert_eq!(
            json_of(&ServerFrame::Message((&folded).into())),
            json!({"type": "message", "room": "lobby", "seq": 3, "id": 7, "user": ann,
                   "text": "<b>hi</b> \"there\"", "sent_at": "2023-11-14T22:13:20.123Z",
                   "client_msg_id": "c-1", "kind": "text", "reply_to": 1, "mentions": [ann],
                   "edited_at": "2023-11-14T22:13:21.123Z",
                   "reactions": [{"emoji": "👍", "count": 1, "users": [ann]}]})
        );
        let header = |ty: &str, seq: u64| {
            json!({"type": ty, "room": "lobby", "seq": seq, "id": 20 + seq, "target_seq": 3, "user": ann,
                   "client_msg_id": format!("c-{seq}"), "at": "2023-11-14T22:13:21.123Z"})
        };
        let with = |mut value: Value, key: &str, field: &str| {
            value[key] = json!(field);
            value
        };
        for (event, expected) in [
            (
                change(
                    5,
                    Change::Edit {
                        text: "fixed".into(),
                        mentions: vec![],
                    },
                ),
                with(header("edited", 5), "text", "fixed"),
            ),
            (change(6, Change::Delete), header("deleted", 6)),
            (
                change(7, Change::React { emoji: thumbs() }),
                with(header("reacted", 7), "emoji", "👍"),
            ),
            (
                change(8, Change::Unreact { emoji: thumbs() }),
                with(header("unreacted", 8), "emoji", "👍"),
            ),
        ] {
            assert_eq!(serde_json::from_slice::<Value>(&event.to_frame()).unwrap(), expected);
        }
        assert_eq!(
            json_of(&ServerFrame::left(&room)),
            json!({"type": "left", "room": "lobby"})
        );
        assert_eq!(
            json_of(&ServerFrame::ack(&TimelineEvent::Message(message.clone()), true)),
            json!({"type": "ack", "client_msg_id": "c-1", "room": "lobby", "seq": 3, "id": 7,
                   "sent_at": "2023-11-14T22:13:20.123Z", "duplicate": true})
        );
        assert_eq!(
            json_of(&ServerFrame::room_deleted(&room)),
            json!({"type": "room_deleted", "room": "lobby"})
        );
        assert_eq!(json_of(&ServerFrame::Pong), json!({"type": "pong"}));
        assert_eq!(
            json_of(&ServerFrame::notify(&(&message).into(), true)),
            json!({"type": "notify", "room": "lobby", "seq": 3, "user": {"id": "guest:1", "name": "Ann"},
                   "preview": "<b>hi</b> \"there\"", "kind": "text", "mention": true})
        );
        assert_eq!(
            json_of(&ServerFrame::error(ErrorCode::NotJoined, "join first", Some("c-1"))),
            json!({"type": "error", "code": "not_joined", "message": "join first", "ref": "c-1"})
        );
        assert_eq!(
            json_of(&ServerFrame::error(ErrorCode::Internal, "internal error", None)),
            json!({"type": "error", "code": "internal", "message": "internal error"})
        );
    }

    #[test]
    fn every_frame_reads_back_as_itself() {
        let room = RoomName::parse("lobby").unwrap();
        let message = ChatMessage {
            kind: MessageKind::Image,
            attachment: Some(UploadId::new(12).unwrap()),
            attachment_size: Some(ImageSize {
                width: 800,
                height: 600,
            }),
            ..sample()
        };
        let events = [
            TimelineEvent::Message(message.clone()),
            change(
                5,
                Change::Edit {
                    text: "x".into(),
                    mentions: vec![],
                },
            ),
            change(6, Change::Delete),
            change(7, Change::React { emoji: thumbs() }),
            change(8, Change::Unreact { emoji: thumbs() }),
            TimelineEvent::Room(RoomEvent {
                id: MessageId::new(40).unwrap(),
                room: room.clone(),
                seq: 9,
                author: message.author.clone(),
                client_msg_id: ClientMsgId::parse("room-9").unwrap(),
                at_ms: message.sent_at_ms,
                action: RoomAction::Muted {
                    target: message.author.clone(),
                    until_ms: message.sent_at_ms + 60_000,
                },
            }),
        ];
        let mut frames = vec![
            ServerFrame::Removed {
                room: room.clone(),
                reason: RemovedReason::Banned,
            },
            ServerFrame::joined(&room, 3, HistoryItem::events(&events), false),
            ServerFrame::left(&room),
            ServerFrame::ack(&events[1], false),
            ServerFrame::room_deleted(&room),
            ServerFrame::notify(&(&message).into(), false),
            ServerFrame::error(ErrorCode::RateLimited, "slow down", Some("c-1")),
        ];
        frames.extend(HistoryItem::events(&events).into_iter().map(ServerFrame::from));
        for frame in frames {
            assert_eq!(ServerFrame::parse(&frame.to_bytes()).unwrap(), frame);
        }
    }

    #[test]
    fn an_ack_on_its_own_is_the_ack_frame() {
        let ack = AckFrame::new(&TimelineEvent::Message(sample()), false);
        assert_eq!(
            serde_json::to_vec(&AckItem::Ack(ack.clone())).unwrap(),
            ServerFrame::Ack(ack).to_bytes()
        );
    }

    #[test]
    fn a_notification_previews_the_first_hundred_characters() {
        let message = ChatMessage {
            text: "é".repeat(150),
            ..sample()
        };
        let ServerFrame::Notify { preview, .. } = ServerFrame::notify(&(&message).into(), false) else {
            unreachable!()
        };
        assert_eq!(preview, "é".repeat(PREVIEW_CHARS));
    }

    #[test]
    fn a_frame_that_breaks_the_rules_does_not_read_back() {
        let bad_room = br#"{"type":"left","room":"no spaces allowed"}"#;
        assert!(ServerFrame::parse(bad_room).is_err());
        assert!(ServerFrame::parse(br#"{"type":"dance"}"#).is_err());
    }
}
