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
    Author, ChatMessage, ClientMsgId, DisplayName, ErrorCode, MessageId, MessageKind, RoomName, UploadId, UserId,
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
        Code::ResourceExhausted => ErrorCode::RateLimited,
        // Without our metadata, `Unknown` is how tonic reports a connection that broke
        // mid-call (a message service killed): the service is unavailable, not wrong.
        Code::Unavailable | Code::Unknown | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
            ErrorCode::Unavailable
        }
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

pub fn kind_from_wire(kind: i32) -> Result<MessageKind, ConversionError> {
    match v1::MessageKind::try_from(kind) {
        Ok(v1::MessageKind::Text) | Ok(v1::MessageKind::Unspecified) => Ok(MessageKind::Text),
        Ok(v1::MessageKind::Image) => Ok(MessageKind::Image),
        Err(_) => Err(invalid("kind", format!("unknown kind {kind}"))),
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
            deleted: m.deleted,
        }
    }
}

impl TryFrom<v1::ChatMessage> for ChatMessage {
    type Error = ConversionError;
    fn try_from(m: v1::ChatMessage) -> Result<Self, Self::Error> {
        Ok(ChatMessage {
            id: MessageId::new(m.id).map_err(|e| invalid("id", e))?,
            room: RoomName::parse(&m.room).map_err(|e| invalid("room", e))?,
            seq: m.seq,
            author: m.author.ok_or_else(|| invalid("author", "missing"))?.try_into()?,
            text: m.text,
            client_msg_id: ClientMsgId::parse(&m.client_msg_id).map_err(|e| invalid("client_msg_id", e))?,
            kind: kind_from_wire(m.kind)?,
            sent_at_ms: m.sent_at_ms,
            attachment: m
                .attachment_id
                .map(UploadId::new)
                .transpose()
                .map_err(|e| invalid("attachment_id", e))?,
            deleted: m.deleted,
        })
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
        // A connection that broke mid-call, as tonic reports it.
        assert_eq!(error_code(&Status::unknown("transport error")), ErrorCode::Unavailable);
        assert_eq!(error_code(&Status::internal("?")), ErrorCode::Internal);
    }
}
