//! A chat message: what a send carries ([`MessageBody`]) and what was committed
//! ([`ChatMessage`]).
//!
//! Its `message` frame (`protocol::ServerFrame::Message`) is serialized once, by
//! whoever first holds the committed message, and the same bytes are sent to every
//! receiver. History and gap fill use the same type, so a client cannot tell which path a
//! message came by.

use crate::error::ErrorCode;
use crate::names::{ClientMsgId, DisplayName, Emoji, MessageText, NameError, RoomName, UserId, positive_id};
use crate::upload::{ImageSize, UploadId};
use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};

/// What a message carries: text, or an image (an upload, with the text as its caption).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
            _ => Err(NameError::new(ErrorCode::InvalidArgument, "unknown message kind")),
        }
    }
}

positive_id!(
    /// A committed message's id, as the database assigned it: positive. It names a message
    /// to delete, and every frame that carries a message carries it.
    MessageId,
    "a message id is a positive number"
);

/// Who wrote a message, as the server knows it from the session. Never taken from a frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Author {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: UserId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: DisplayName,
}

/// A message as committed: it has its room's `seq` and the database id. Read back from
/// history it is in its current state: the changes made to it since are folded in (the
/// timeline module's fold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub id: MessageId,
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
    pub attachment: Option<UploadId>,
    /// Its image's size, for the space a client reserves and the thumbnails it may fetch;
    /// `None` for uploads stored before sizes were recorded.
    pub attachment_size: Option<ImageSize>,
    /// Deleted (by its author or an administrator): a tombstone that keeps its seq and
    /// author but has no content: no text, attachment, reply, mentions or reactions.
    pub deleted: bool,
    /// The seq of the message (in the same room) this one replies to.
    pub reply_to: Option<u64>,
    /// The members its text mentions (`@name`), as resolved when it was sent.
    pub mentions: Vec<Author>,
    /// When it was last edited.
    pub edited_at_ms: Option<i64>,
    /// Standing reactions, one entry per emoji ([`Reaction::group`] gives the order).
    pub reactions: Vec<Reaction>,
}

/// The people who reacted to a message with one emoji, in the order they reacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reaction {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub emoji: Emoji,
    pub users: Vec<Author>,
}

impl ChatMessage {
    /// Makes the message a tombstone: its content is gone for good, its seq and author stay.
    pub fn erase(&mut self) {
        self.deleted = true;
        self.text.clear();
        self.attachment = None;
        self.attachment_size = None;
        self.reply_to = None;
        self.mentions.clear();
        self.edited_at_ms = None;
        self.reactions.clear();
    }
}

/// Where clients fetch an upload; the one place the URL is spelled.
pub fn upload_url(id: UploadId) -> String {
    format!("/api/v1/uploads/{id}")
}

/// Where clients fetch an upload's thumbnail `width` pixels wide (for a width of
/// [`crate::upload::THUMBNAIL_WIDTHS`], the image itself when it is no wider).
pub fn thumbnail_url(id: UploadId, width: u32) -> String {
    format!("/api/v1/uploads/{id}/thumbnails/{width}")
}

/// Where clients fetch a profile picture: its small thumbnail.
pub fn avatar_url(id: UploadId) -> String {
    thumbnail_url(id, crate::upload::AVATAR_WIDTH)
}

/// What a send carries: text, or an image (an upload of the sender's) whose text is its
/// caption and may be empty. The one statement of this rule: the websocket, the HTTP API
/// and the message service all build a body through [`MessageBody::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody {
    pub text: MessageText,
    pub attachment: Option<UploadId>,
}

impl MessageBody {
    pub fn new(text: Option<String>, attachment: Option<UploadId>) -> Result<Self, NameError> {
        let text = match (text, attachment) {
            (Some(text), None) => MessageText::parse(text)?,
            (text, Some(_)) => MessageText::caption(text.unwrap_or_default())?,
            (None, None) => return Err(NameError::new(ErrorCode::MissingField, "missing field `text`")),
        };
        Ok(Self { text, attachment })
    }

    pub fn kind(&self) -> MessageKind {
        if self.attachment.is_some() {
            MessageKind::Image
        } else {
            MessageKind::Text
        }
    }
}

/// RFC 3339 in UTC with milliseconds, the protocol's one time format.
pub fn format_millis(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> ChatMessage {
        crate::testing::message()
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
            attachment: Some(UploadId::new(12).unwrap()),
            ..sample()
        };
        let frame: serde_json::Value = serde_json::from_slice(&message.to_frame()).unwrap();
        assert_eq!(frame["kind"], "image");
        assert_eq!(
            frame["attachment"],
            serde_json::json!({"id": 12, "url": "/api/v1/uploads/12"}),
            "an upload from before sizes were recorded"
        );

        let sized = ChatMessage {
            attachment_size: Some(ImageSize {
                width: 1000,
                height: 500,
            }),
            ..message
        };
        let frame: serde_json::Value = serde_json::from_slice(&sized.to_frame()).unwrap();
        assert_eq!(
            frame["attachment"],
            serde_json::json!({
                "id": 12, "url": "/api/v1/uploads/12", "width": 1000, "height": 500,
                "thumbnails": [
                    {"width": 160, "height": 80, "url": "/api/v1/uploads/12/thumbnails/160"},
                    {"width": 360, "height": 180, "url": "/api/v1/uploads/12/thumbnails/360"},
                    {"width": 720, "height": 360, "url": "/api/v1/uploads/12/thumbnails/720"},
                ]
            })
        );
    }

    #[test]
    fn a_body_is_text_or_an_image_with_a_caption() {
        let upload = UploadId::new(3).unwrap();
        let text = MessageBody::new(Some("hi".into()), None).unwrap();
        assert_eq!((text.text.as_str(), text.kind()), ("hi", MessageKind::Text));
        let image = MessageBody::new(None, Some(upload)).unwrap();
        assert_eq!((image.text.as_str(), image.kind()), ("", MessageKind::Image));
        let captioned = MessageBody::new(Some("look".into()), Some(upload)).unwrap();
        assert_eq!(captioned.text.as_str(), "look");
        let code =
            |text: Option<&str>, attachment| MessageBody::new(text.map(Into::into), attachment).unwrap_err().code();
        assert_eq!(code(None, None), ErrorCode::MissingField);
        assert_eq!(code(Some(" "), None), ErrorCode::InvalidText);
        assert_eq!(code(Some("bell\u{7}"), Some(upload)), ErrorCode::InvalidText);
    }
}
