//! The `chat.v1` gRPC contract between gateways and message services.
//!
//! Re-exports the generated client and server, converts between wire messages and domain
//! types, and maps [`ErrorCode`] to and from [`tonic::Status`] so that a gateway can tell a
//! client exactly what the message service refused.

pub use prost;
pub use tonic;

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("chat.v1");
}

use chat_domain::{
    Author, Change, ChangeEvent, ChatMessage, ClientMsgId, DisplayName, Emoji, ErrorCode, ImageSize, MessageId,
    MessageKind, Reaction, RoomName, TimelineEvent, UploadId, UserId,
};
use tonic::{Code, Status};

/// gRPC metadata key that carries the stable [`ErrorCode`] of a failed call.
pub const ERROR_CODE_KEY: &str = "x-chat-error-code";

/// The gRPC code for each of our error codes.
pub fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::Unauthorized => Code::Unauthenticated,
        ErrorCode::Forbidden => Code::PermissionDenied,
        ErrorCode::RateLimited => Code::ResourceExhausted,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::Internal => Code::Internal,
        _ => Code::InvalidArgument,
    }
}

/// A status that carries our error code in metadata beside the message.
pub fn status(code: ErrorCode, message: impl Into<String>) -> Status {
    let mut status = Status::new(grpc_code(code), message);
    status
        .metadata_mut()
        .insert(ERROR_CODE_KEY, code.as_str().parse().expect("error codes are ASCII"));
    status
}

/// Recovers our error code from a status: from metadata when the peer set it, otherwise
/// from the gRPC code (transport failures arrive without metadata).
pub fn error_code(status: &Status) -> ErrorCode {
    if let Some(code) = status
        .metadata()
        .get(ERROR_CODE_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(ErrorCode::from_wire)
    {
        return code;
    }
    match status.code() {
        Code::NotFound => ErrorCode::NotFound,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => ErrorCode::InvalidArgument,
        Code::Unauthenticated => ErrorCode::Unauthorized,
        Code::PermissionDenied => ErrorCode::Forbidden,
        // Without our metadata, `Unknown` is how tonic reports a connection that broke
        // mid-call (a message service killed), and `ResourceExhausted` an HTTP/2 peer that
        // shut the connection with ENHANCE_YOUR_CALM (too many streams reset at once, as
        // when calls time out together across a network cut): the service is unavailable,
        // not wrong, and the caller is not sending too fast.
        Code::Unavailable
        | Code::Unknown
        | Code::ResourceExhausted
        | Code::DeadlineExceeded
        | Code::Cancelled
        | Code::Aborted => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    }
}

/// A wire message that does not hold valid domain values.
#[derive(Debug, thiserror::Error)]
#[error("invalid {field} in chat.v1 message: {reason}")]
pub struct ConversionError {
    pub field: &'static str,
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl ToString) -> ConversionError {
    ConversionError {
        field,
        reason: reason.to_string(),
    }
}

pub fn kind_to_wire(kind: MessageKind) -> v1::MessageKind {
    match kind {
        MessageKind::Text => v1::MessageKind::Text,
        MessageKind::Image => v1::MessageKind::Image,
    }
}

/// What a wire event is: a message of a kind, or a change (whose body is `text`).
pub enum WireKind {
    Message(MessageKind),
    Change(Result<Change, chat_domain::NameError>),
    /// A room event, whose `text` is the action as JSON.
    Room,
}

/// Reads a wire kind; a change's `text` is its new text or emoji, and an edit's
/// `mentions` the members its text names.
pub fn kind_from_wire(kind: i32, text: &str, mentions: &[v1::Author]) -> Result<WireKind, ConversionError> {
    let emoji = || Emoji::parse(text);
    Ok(match v1::MessageKind::try_from(kind) {
        Ok(v1::MessageKind::Text) | Ok(v1::MessageKind::Unspecified) => WireKind::Message(MessageKind::Text),
        Ok(v1::MessageKind::Image) => WireKind::Message(MessageKind::Image),
        Ok(v1::MessageKind::Edit) => WireKind::Change(Ok(Change::Edit {
            text: text.to_owned(),
            mentions: authors(mentions.to_vec())?,
        })),
        Ok(v1::MessageKind::Delete) => WireKind::Change(Ok(Change::Delete)),
        Ok(v1::MessageKind::React) => WireKind::Change(emoji().map(|emoji| Change::React { emoji })),
        Ok(v1::MessageKind::Unreact) => WireKind::Change(emoji().map(|emoji| Change::Unreact { emoji })),
        Ok(v1::MessageKind::Room) => WireKind::Room,
        Err(_) => return Err(invalid("kind", format!("unknown kind {kind}"))),
    })
}

/// The wire kind of a change.
pub fn change_to_wire(change: &Change) -> v1::MessageKind {
    match change {
        Change::Edit { .. } => v1::MessageKind::Edit,
        Change::Delete => v1::MessageKind::Delete,
        Change::React { .. } => v1::MessageKind::React,
        Change::Unreact { .. } => v1::MessageKind::Unreact,
    }
}

impl From<&Author> for v1::Author {
    fn from(a: &Author) -> Self {
        Self {
            id: a.id.as_str().to_owned(),
            name: a.name.as_str().to_owned(),
        }
    }
}

impl TryFrom<v1::Author> for Author {
    type Error = ConversionError;
    fn try_from(a: v1::Author) -> Result<Self, Self::Error> {
        Ok(Author {
            id: UserId::parse(&a.id).map_err(|e| invalid("author.id", e))?,
            name: DisplayName::parse(&a.name).map_err(|e| invalid("author.name", e))?,
        })
    }
}

impl From<ImageSize> for v1::ImageSize {
    fn from(s: ImageSize) -> Self {
        Self {
            width: s.width,
            height: s.height,
        }
    }
}

impl TryFrom<v1::ImageSize> for ImageSize {
    type Error = ConversionError;
    fn try_from(s: v1::ImageSize) -> Result<Self, Self::Error> {
        if s.width == 0 || s.height == 0 {
            return Err(invalid("attachment_size", "an image has at least one pixel each way"));
        }
        Ok(ImageSize {
            width: s.width,
            height: s.height,
        })
    }
}

impl From<&ChatMessage> for v1::ChatMessage {
    fn from(m: &ChatMessage) -> Self {
        Self {
            id: m.id.get(),
            room: m.room.as_str().to_owned(),
            seq: m.seq,
            author: Some((&m.author).into()),
            text: m.text.clone(),
            client_msg_id: m.client_msg_id.as_str().to_owned(),
            kind: kind_to_wire(m.kind) as i32,
            sent_at_ms: m.sent_at_ms,
            attachment_id: m.attachment.map(UploadId::get),
            attachment_size: m.attachment_size.map(Into::into),
            deleted: m.deleted,
            reply_to: m.reply_to,
            mentions: m.mentions.iter().map(Into::into).collect(),
            edited_at_ms: m.edited_at_ms,
            reactions: m
                .reactions
                .iter()
                .map(|r| v1::Reaction {
                    emoji: r.emoji.as_str().to_owned(),
                    users: r.users.iter().map(Into::into).collect(),
                })
                .collect(),
            target_seq: 0,
        }
    }
}

impl From<&TimelineEvent> for v1::ChatMessage {
    fn from(event: &TimelineEvent) -> Self {
        let c = match event {
            TimelineEvent::Message(m) => return m.into(),
            TimelineEvent::Room(r) => {
                return Self {
                    id: r.id.get(),
                    room: r.room.as_str().to_owned(),
                    seq: r.seq,
                    author: Some((&r.author).into()),
                    text: r.action.to_json(),
                    client_msg_id: r.client_msg_id.as_str().to_owned(),
                    kind: v1::MessageKind::Room as i32,
                    sent_at_ms: r.at_ms,
                    ..Default::default()
                };
            }
            TimelineEvent::Change(c) => c,
        };
        Self {
            id: c.id.get(),
            room: c.room.as_str().to_owned(),
            seq: c.seq,
            author: Some((&c.author).into()),
            text: c.change.body().to_owned(),
            client_msg_id: c.client_msg_id.as_str().to_owned(),
            kind: change_to_wire(&c.change) as i32,
            sent_at_ms: c.at_ms,
            target_seq: c.target_seq,
            mentions: match &c.change {
                Change::Edit { mentions, .. } => mentions.iter().map(Into::into).collect(),
                _ => Vec::new(),
            },
            ..Default::default()
        }
    }
}

fn authors(wire: Vec<v1::Author>) -> Result<Vec<Author>, ConversionError> {
    wire.into_iter().map(TryInto::try_into).collect()
}

impl TryFrom<v1::ChatMessage> for TimelineEvent {
    type Error = ConversionError;
    fn try_from(m: v1::ChatMessage) -> Result<Self, Self::Error> {
        let id = MessageId::new(m.id).map_err(|e| invalid("id", e))?;
        let room = RoomName::parse(&m.room).map_err(|e| invalid("room", e))?;
        let author: Author = m.author.ok_or_else(|| invalid("author", "missing"))?.try_into()?;
        let client_msg_id = ClientMsgId::parse(&m.client_msg_id).map_err(|e| invalid("client_msg_id", e))?;
        let kind = match kind_from_wire(m.kind, &m.text, &m.mentions)? {
            WireKind::Change(change) => {
                return Ok(TimelineEvent::Change(ChangeEvent {
                    id,
                    room,
                    seq: m.seq,
                    author,
                    client_msg_id,
                    at_ms: m.sent_at_ms,
                    target_seq: m.target_seq,
                    change: change.map_err(|e| invalid("text", e))?,
                }));
            }
            WireKind::Room => {
                return Ok(TimelineEvent::Room(chat_domain::RoomEvent {
                    id,
                    room,
                    seq: m.seq,
                    author,
                    client_msg_id,
                    at_ms: m.sent_at_ms,
                    action: chat_domain::RoomAction::from_json(&m.text).map_err(|e| invalid("text", e))?,
                }));
            }
            WireKind::Message(kind) => kind,
        };
        Ok(TimelineEvent::Message(ChatMessage {
            id,
            room,
            seq: m.seq,
            author,
            text: m.text,
            client_msg_id,
            kind,
            sent_at_ms: m.sent_at_ms,
            attachment: m
                .attachment_id
                .map(UploadId::new)
                .transpose()
                .map_err(|e| invalid("attachment_id", e))?,
            attachment_size: m.attachment_size.map(ImageSize::try_from).transpose()?,
            deleted: m.deleted,
            reply_to: m.reply_to,
            mentions: authors(m.mentions)?,
            edited_at_ms: m.edited_at_ms,
            reactions: m
                .reactions
                .into_iter()
                .map(|r| {
                    Ok(Reaction {
                        emoji: Emoji::parse(&r.emoji).map_err(|e| invalid("reactions.emoji", e))?,
                        users: authors(r.users)?,
                    })
                })
                .collect::<Result<_, ConversionError>>()?,
        }))
    }
}

impl TryFrom<v1::ChatMessage> for ChatMessage {
    type Error = ConversionError;
    fn try_from(m: v1::ChatMessage) -> Result<Self, Self::Error> {
        match TimelineEvent::try_from(m)? {
            TimelineEvent::Message(message) => Ok(message),
            TimelineEvent::Change(_) | TimelineEvent::Room(_) => {
                Err(invalid("kind", "an event where a message belongs"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_survive_a_status() {
        for code in [
            ErrorCode::NotFound,
            ErrorCode::InvalidRoom,
            ErrorCode::Unavailable,
            ErrorCode::TooManyRooms,
        ] {
            assert_eq!(error_code(&status(code, "x")), code);
        }
        assert_eq!(error_code(&Status::unavailable("conn refused")), ErrorCode::Unavailable);
        // A connection that broke mid-call, and one the peer shut for resetting too many
        // streams at once, as tonic reports them.
        assert_eq!(error_code(&Status::unknown("transport error")), ErrorCode::Unavailable);
        assert_eq!(
            error_code(&Status::resource_exhausted("h2 protocol error: http2 error")),
            ErrorCode::Unavailable
        );
        // Our own refusal keeps its code.
        assert_eq!(error_code(&status(ErrorCode::RateLimited, "x")), ErrorCode::RateLimited);
        assert_eq!(error_code(&Status::internal("?")), ErrorCode::Internal);
    }

    #[test]
    fn every_event_survives_the_wire() {
        let message = chat_domain::testing::message();
        let folded = ChatMessage {
            reply_to: Some(1),
            mentions: vec![message.author.clone()],
            edited_at_ms: Some(5),
            reactions: vec![Reaction {
                emoji: Emoji::parse("👍").unwrap(),
                users: vec![message.author.clone()],
            }],
            ..message.clone()
        };
        let change = |change| {
            TimelineEvent::Change(ChangeEvent {
                id: message.id,
                room: message.room.clone(),
                seq: 9,
                author: message.author.clone(),
                client_msg_id: message.client_msg_id.clone(),
                at_ms: 77,
                target_seq: 3,
                change,
            })
        };
        let thumbs = Emoji::parse("👍").unwrap();
        for event in [
            TimelineEvent::Message(folded),
            change(Change::Edit {
                text: "new".into(),
                mentions: vec![message.author.clone()],
            }),
            change(Change::Delete),
            change(Change::React { emoji: thumbs.clone() }),
            change(Change::Unreact { emoji: thumbs }),
        ] {
            assert_eq!(TimelineEvent::try_from(v1::ChatMessage::from(&event)).unwrap(), event);
        }
    }
}
