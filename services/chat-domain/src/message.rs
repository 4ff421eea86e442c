//! A committed chat message and its single JSON serialization.
//!
//! The `message` frame is serialized once, by whoever first holds the committed message,
//! and the same bytes are sent to every receiver. History and gap fill use the same
//! function, so a client cannot tell which path a message came by.

use crate::names::{ClientMsgId, DisplayName, NameError, RoomName, UserId};
use bytes::Bytes;
use serde::Serialize;
use std::time::{Duration, UNIX_EPOCH};

/// What a message carries: text, or an image (an upload, with the text as its caption).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Text,
    Image,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
        }
    }

    pub fn parse(s: &str) -> Result<Self, NameError> {
        match s {
            "text" => Ok(Self::Text),
            "image" => Ok(Self::Image),
            _ => Err(NameError("unknown message kind")),
        }
    }
}

/// Who wrote a message, as the server knows it from the session. Never taken from a frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Author {
    pub id: UserId,
    pub name: DisplayName,
}

/// A message as committed: it has its room's `seq` and the database id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub id: i64,
    pub room: RoomName,
    pub seq: u64,
    pub author: Author,
    /// Validated as [`crate::MessageText`] when it was sent; kept as a plain string here so
    /// that reading history never rejects what the database already holds.
    pub text: String,
    pub client_msg_id: ClientMsgId,
    pub kind: MessageKind,
    /// Commit time, milliseconds since the Unix epoch.
    pub sent_at_ms: i64,
    /// The upload an image message shows.
    pub attachment: Option<i64>,
    /// Deleted by an administrator: a tombstone that keeps its seq (so the room's sequence
    /// stays gapless for readers) but has no content and is never shown.
    pub deleted: bool,
}

/// Where clients fetch an upload; the one place the URL is spelled.
pub fn upload_url(id: i64) -> String {
    format!("/api/v1/uploads/{id}")
}

#[derive(Serialize)]
pub(crate) struct AttachmentView {
    id: i64,
    url: String,
}

/// The `message` frame's shape, borrowed from a [`ChatMessage`].
#[derive(Serialize)]
pub(crate) struct MessageView<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    room: &'a RoomName,
    seq: u64,
    id: i64,
    user: &'a Author,
    text: &'a str,
    sent_at: String,
    client_msg_id: &'a ClientMsgId,
    kind: MessageKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    attachment: Option<AttachmentView>,
}

impl ChatMessage {
    pub(crate) fn view(&self) -> MessageView<'_> {
        MessageView {
            ty: "message",
            room: &self.room,
            seq: self.seq,
            id: self.id,
            user: &self.author,
            text: &self.text,
            sent_at: format_millis(self.sent_at_ms),
            client_msg_id: &self.client_msg_id,
            kind: self.kind,
            attachment: self.attachment.map(|id| AttachmentView {
                id,
                url: upload_url(id),
            }),
        }
    }

    /// The `message` frame as the bytes every receiver gets.
    pub fn to_frame(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(&self.view()).expect("a message always serializes"))
    }
}

/// RFC 3339 in UTC with milliseconds, the protocol's one time format.
pub fn format_millis(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> ChatMessage {
        ChatMessage {
            id: 7,
            room: RoomName::parse("lobby").unwrap(),
            seq: 3,
            author: Author {
                id: UserId::parse("guest:1").unwrap(),
                name: DisplayName::parse("Ann").unwrap(),
            },
            text: "<b>hi</b> \"there\"".into(),
            client_msg_id: ClientMsgId::parse("c-1").unwrap(),
            kind: MessageKind::Text,
            sent_at_ms: 1_700_000_000_123,
            attachment: None,
            deleted: false,
        }
    }

    #[test]
    fn message_frame_has_every_field_of_the_protocol() {
        let frame: serde_json::Value = serde_json::from_slice(&sample().to_frame()).unwrap();
        assert_eq!(
            frame,
            serde_json::json!({
                "type": "message", "room": "lobby", "seq": 3, "id": 7,
                "user": {"id": "guest:1", "name": "Ann"},
                "text": "<b>hi</b> \"there\"",
                "sent_at": "2023-11-14T22:13:20.123Z",
                "client_msg_id": "c-1", "kind": "text"
            })
        );
    }

    #[test]
    fn an_image_message_names_its_upload() {
        let message = ChatMessage {
            kind: MessageKind::Image,
            attachment: Some(12),
            ..sample()
        };
        let frame: serde_json::Value = serde_json::from_slice(&message.to_frame()).unwrap();
        assert_eq!(frame["kind"], "image");
        assert_eq!(
            frame["attachment"],
            serde_json::json!({"id": 12, "url": "/api/v1/uploads/12"})
        );
    }
}
