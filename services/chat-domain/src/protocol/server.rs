//! What the server sends: [`ServerFrame`], the mirror of [`super::ClientFrame`].
//!
//! Every frame the gateway writes to a socket, every body the HTTP API returns in the shape
//! of a frame (a message, an ack), and every frame a test or the load generator reads back
//! is one variant of this enum, serde-tagged by `type`. A frame is serialized once by
//! whoever builds it ([`ServerFrame::to_bytes`]), and the fan-out sends the same bytes to
//! every receiver.

use crate::error::ErrorCode;
use crate::message::{Author, ChatMessage, MessageId, MessageKind, format_millis, upload_url};
use crate::names::{ClientMsgId, RoomName};
use crate::upload::UploadId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Characters of a message's text that a `notify` frame carries.
pub const PREVIEW_CHARS: usize = 100;

/// Every frame the server sends on `/ws` (docs/protocol.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The join took effect: the room's `last_seq` then, and the history the client needs
    /// before live messages (deleted messages left out). `has_more` says older messages
    /// exist beyond `history` (page them over HTTP).
    Joined {
        room: RoomName,
        last_seq: u64,
        history: Vec<HistoryItem>,
        has_more: bool,
    },
    /// The socket no longer receives the room's messages.
    Left { room: RoomName },
    /// A committed message, live or from a gap fill.
    Message(MessageFrame),
    /// A send is committed with this `seq`.
    Ack(AckFrame),
    /// An administrator deleted message `id` (seq `seq`) of `room`; clients remove it.
    Deleted { room: RoomName, id: MessageId, seq: u64 },
    /// An administrator deleted the room; the socket no longer receives it.
    RoomDeleted { room: RoomName },
    /// A new message in a room the user belongs to but has not joined on this socket.
    Notify {
        room: RoomName,
        seq: u64,
        user: Author,
        preview: String,
        kind: MessageKind,
    },
    /// A frame or request failed; the connection stays usable. `ref` names the request:
    /// the `client_msg_id` of a refused send, or the room of a refused join.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
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
}

/// Where an image message's upload is fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attachment {
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: UploadId,
    pub url: String,
}

/// A message in history: in `joined`, and in the HTTP API's pages. Tagged like the live
/// `message` frame, so a client handles both alike. (Its OpenAPI name, `MessageDoc`, is
/// the one the document has always given the message shape.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = MessageDoc))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HistoryItem {
    Message(MessageFrame),
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
            attachment: message.attachment.map(|id| Attachment {
                id,
                url: upload_url(id),
            }),
        }
    }
}

impl HistoryItem {
    /// Messages as history shows them: deleted ones left out.
    pub fn messages(messages: &[ChatMessage]) -> Vec<Self> {
        messages
            .iter()
            .filter(|m| !m.deleted)
            .map(|m| Self::Message(m.into()))
            .collect()
    }
}

impl AckFrame {
    /// The ack of a committed send; `duplicate` when it had been stored before.
    pub fn new(message: &ChatMessage, duplicate: bool) -> Self {
        Self {
            client_msg_id: message.client_msg_id.clone(),
            room: message.room.clone(),
            seq: message.seq,
            id: message.id,
            sent_at: format_millis(message.sent_at_ms),
            duplicate,
        }
    }
}

impl ServerFrame {
    pub fn joined(room: &RoomName, last_seq: u64, history: &[ChatMessage], has_more: bool) -> Self {
        Self::Joined {
            room: room.clone(),
            last_seq,
            history: HistoryItem::messages(history),
            has_more,
        }
    }

    pub fn left(room: &RoomName) -> Self {
        Self::Left { room: room.clone() }
    }

    pub fn ack(message: &ChatMessage, duplicate: bool) -> Self {
        Self::Ack(AckFrame::new(message, duplicate))
    }

    pub fn deleted(room: &RoomName, id: MessageId, seq: u64) -> Self {
        Self::Deleted {
            room: room.clone(),
            id,
            seq,
        }
    }

    pub fn room_deleted(room: &RoomName) -> Self {
        Self::RoomDeleted { room: room.clone() }
    }

    /// A notification of `message`, with the first [`PREVIEW_CHARS`] of its text.
    pub fn notify(message: &MessageFrame) -> Self {
        Self::Notify {
            room: message.room.clone(),
            seq: message.seq,
            user: message.user.clone(),
            preview: message.text.chars().take(PREVIEW_CHARS).collect(),
            kind: message.kind,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tests::sample;
    use serde_json::{Value, json};

    fn json_of(frame: &ServerFrame) -> Value {
        serde_json::from_slice(&frame.to_bytes()).unwrap()
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
        let deleted = ChatMessage {
            deleted: true,
            seq: 4,
            ..sample()
        };
        assert_eq!(
            json_of(&ServerFrame::joined(&room, 4, &[message.clone(), deleted], true)),
            json!({"type": "joined", "room": "lobby", "last_seq": 4, "history": [message_json], "has_more": true})
        );
        assert_eq!(
            json_of(&ServerFrame::left(&room)),
            json!({"type": "left", "room": "lobby"})
        );
        assert_eq!(
            json_of(&ServerFrame::ack(&message, true)),
            json!({"type": "ack", "client_msg_id": "c-1", "room": "lobby", "seq": 3, "id": 7,
                   "sent_at": "2023-11-14T22:13:20.123Z", "duplicate": true})
        );
        assert_eq!(
            json_of(&ServerFrame::deleted(&room, MessageId::new(7).unwrap(), 3)),
            json!({"type": "deleted", "room": "lobby", "id": 7, "seq": 3})
        );
        assert_eq!(
            json_of(&ServerFrame::room_deleted(&room)),
            json!({"type": "room_deleted", "room": "lobby"})
        );
        assert_eq!(
            json_of(&ServerFrame::notify(&(&message).into())),
            json!({"type": "notify", "room": "lobby", "seq": 3, "user": {"id": "guest:1", "name": "Ann"},
                   "preview": "<b>hi</b> \"there\"", "kind": "text"})
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
            ..sample()
        };
        for frame in [
            ServerFrame::joined(&room, 3, std::slice::from_ref(&message), false),
            ServerFrame::left(&room),
            ServerFrame::Message((&message).into()),
            ServerFrame::ack(&message, false),
            ServerFrame::deleted(&room, MessageId::new(7).unwrap(), 3),
            ServerFrame::room_deleted(&room),
            ServerFrame::notify(&(&message).into()),
            ServerFrame::error(ErrorCode::RateLimited, "slow down", Some("c-1")),
        ] {
            assert_eq!(ServerFrame::parse(&frame.to_bytes()).unwrap(), frame);
        }
    }

    #[test]
    fn an_ack_on_its_own_is_the_ack_frame() {
        let ack = AckFrame::new(&sample(), false);
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
        let ServerFrame::Notify { preview, .. } = ServerFrame::notify(&(&message).into()) else {
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
