//! Error and close codes of the protocol, stable strings and numbers that clients branch on.

use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code. The same codes appear in websocket `error`
/// frames, in HTTP JSON error bodies and (mapped) as gRPC statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not a JSON object, or a field has the wrong JSON type.
    InvalidJson,
    /// The frame's `type` is not one the protocol knows.
    UnknownType,
    /// A required field is absent.
    MissingField,
    /// The room name breaks the naming rules.
    InvalidRoom,
    /// The message text is empty, too long or holds forbidden characters.
    InvalidText,
    /// The `client_msg_id` breaks its rules.
    InvalidClientMsgId,
    /// A display name breaks its rules.
    InvalidName,
    /// A request parameter (limit, cursor …) is out of range.
    InvalidArgument,
    /// A username breaks its rules.
    InvalidUsername,
    /// An e-mail address is not shaped like one.
    InvalidEmail,
    /// A profile field (first or last name, bio) breaks its rules.
    InvalidProfile,
    /// A new password is too short, too long, or contains the username.
    WeakPassword,
    /// The username is registered already (usernames are unique regardless of case).
    UsernameTaken,
    /// Log-in failed: no such user or wrong password (deliberately not told apart).
    InvalidCredentials,
    /// The account has been disabled by an administrator.
    AccountDisabled,
    /// An upload or body is larger than allowed.
    PayloadTooLarge,
    /// An upload is not one of the accepted image types (judged by its bytes).
    UnsupportedMediaType,
    /// A search query is empty, too long, holds a control character, has too many terms,
    /// or has no word to look for.
    InvalidQuery,
    /// Binary websocket frames are not part of the protocol.
    BinaryFrame,
    /// The connection is already in as many rooms as allowed.
    TooManyRooms,
    /// The frame names a room this connection has not joined.
    NotJoined,
    /// The connection has already joined this room.
    AlreadyJoined,
    /// The room does not exist, or (for a change or a reply) no message has that `seq` in
    /// the room.
    NotFound,
    /// The message was deleted: it cannot be edited, reacted to or replied to.
    MessageDeleted,
    /// A reaction is not one emoji (one grapheme cluster of the Unicode emoji set) nor a
    /// `:name:` from the shipped list.
    InvalidEmoji,
    /// The message already has reactions with the most distinct emoji allowed.
    TooManyReactions,
    /// You have already reacted to the message with this emoji.
    AlreadyReacted,
    /// You have not reacted to the message with this emoji.
    NotReacted,
    /// You are banned from the room: you may neither join nor read it.
    Banned,
    /// You are muted in the room until the time the message gives: you may read, not send.
    Muted,
    /// The request would change nothing (removing a non-member, unbanning someone who is
    /// not banned …).
    Conflict,
    /// The invite link is unknown, used up or expired.
    InviteInvalid,
    /// No valid session: log in or create a session first.
    Unauthorized,
    /// The request came from an origin that is not allowed.
    Forbidden,
    /// Too many requests; slow down.
    RateLimited,
    /// Too many failed log-ins (or password checks, or reset requests) for the account or
    /// from the address: wait as long as `Retry-After` says.
    TooManyAttempts,
    /// A password change whose current password is wrong.
    WrongPassword,
    /// A password-reset link that is unknown, used already or expired.
    ResetInvalid,
    /// A dependency (database, message service) is down or did not answer in time; retry
    /// later. A send may or may not have been stored: retrying it with the same
    /// `client_msg_id` is safe and never stores it twice.
    Unavailable,
    /// An unexpected server error. Details are in the server log, never in the reply.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::UnknownType => "unknown_type",
            Self::MissingField => "missing_field",
            Self::InvalidRoom => "invalid_room",
            Self::InvalidText => "invalid_text",
            Self::InvalidClientMsgId => "invalid_client_msg_id",
            Self::InvalidName => "invalid_name",
            Self::InvalidArgument => "invalid_argument",
            Self::InvalidUsername => "invalid_username",
            Self::InvalidEmail => "invalid_email",
            Self::InvalidProfile => "invalid_profile",
            Self::WeakPassword => "weak_password",
            Self::UsernameTaken => "username_taken",
            Self::InvalidCredentials => "invalid_credentials",
            Self::AccountDisabled => "account_disabled",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidQuery => "invalid_query",
            Self::BinaryFrame => "binary_frame",
            Self::TooManyRooms => "too_many_rooms",
            Self::NotJoined => "not_joined",
            Self::AlreadyJoined => "already_joined",
            Self::NotFound => "not_found",
            Self::MessageDeleted => "message_deleted",
            Self::InvalidEmoji => "invalid_emoji",
            Self::TooManyReactions => "too_many_reactions",
            Self::AlreadyReacted => "already_reacted",
            Self::NotReacted => "not_reacted",
            Self::Banned => "banned",
            Self::Muted => "muted",
            Self::Conflict => "conflict",
            Self::InviteInvalid => "invite_invalid",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::TooManyAttempts => "too_many_attempts",
            Self::WrongPassword => "wrong_password",
            Self::ResetInvalid => "reset_invalid",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// Parses a code from its wire string, as sent across gRPC status details.
    pub fn from_wire(s: &str) -> Option<Self> {
        ALL_CODES.iter().copied().find(|c| c.as_str() == s)
    }

    /// The HTTP status the JSON API answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidJson
            | Self::UnknownType
            | Self::MissingField
            | Self::InvalidRoom
            | Self::InvalidText
            | Self::InvalidClientMsgId
            | Self::InvalidName
            | Self::InvalidArgument
            | Self::InvalidUsername
            | Self::InvalidEmail
            | Self::InvalidProfile
            | Self::WeakPassword
            | Self::InvalidQuery
            | Self::BinaryFrame
            | Self::TooManyRooms
            | Self::NotJoined
            | Self::AlreadyJoined
            | Self::InvalidEmoji
            | Self::TooManyReactions => 400,
            Self::Unauthorized | Self::InvalidCredentials => 401,
            Self::Forbidden | Self::AccountDisabled | Self::Banned | Self::Muted | Self::WrongPassword => 403,
            Self::UsernameTaken | Self::Conflict | Self::MessageDeleted | Self::AlreadyReacted | Self::NotReacted => {
                409
            }
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::NotFound | Self::InviteInvalid | Self::ResetInvalid => 404,
            Self::RateLimited | Self::TooManyAttempts => 429,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

const ALL_CODES: [ErrorCode; 40] = [
    ErrorCode::InvalidJson,
    ErrorCode::UnknownType,
    ErrorCode::MissingField,
    ErrorCode::InvalidRoom,
    ErrorCode::InvalidText,
    ErrorCode::InvalidClientMsgId,
    ErrorCode::InvalidName,
    ErrorCode::InvalidArgument,
    ErrorCode::InvalidUsername,
    ErrorCode::InvalidEmail,
    ErrorCode::InvalidProfile,
    ErrorCode::WeakPassword,
    ErrorCode::UsernameTaken,
    ErrorCode::InvalidCredentials,
    ErrorCode::AccountDisabled,
    ErrorCode::PayloadTooLarge,
    ErrorCode::UnsupportedMediaType,
    ErrorCode::InvalidQuery,
    ErrorCode::BinaryFrame,
    ErrorCode::TooManyRooms,
    ErrorCode::NotJoined,
    ErrorCode::AlreadyJoined,
    ErrorCode::NotFound,
    ErrorCode::MessageDeleted,
    ErrorCode::InvalidEmoji,
    ErrorCode::TooManyReactions,
    ErrorCode::AlreadyReacted,
    ErrorCode::NotReacted,
    ErrorCode::Banned,
    ErrorCode::Muted,
    ErrorCode::Conflict,
    ErrorCode::InviteInvalid,
    ErrorCode::Unauthorized,
    ErrorCode::Forbidden,
    ErrorCode::RateLimited,
    ErrorCode::TooManyAttempts,
    ErrorCode::WrongPassword,
    ErrorCode::ResetInvalid,
    ErrorCode::Unavailable,
    ErrorCode::Internal,
];

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Websocket close codes the server uses. Standard codes where one fits, 4xxx otherwise.
/// `docs/protocol.md` documents each one and what a client should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum CloseCode {
    /// The server is shutting down or draining: reconnect (to another gateway) and resume.
    ServiceRestart = 1012,
    /// A frame exceeded the maximum frame size.
    MessageTooBig = 1009,
    /// A text frame was not UTF-8 (RFC 6455 §8.1 fails the connection).
    InvalidPayload = 1007,
    /// The connection could not keep up: its outbound queue filled. Reconnect and resume
    /// with `since_seq`.
    SlowConsumer = 4008,
    /// The session expired or was revoked: authenticate again.
    SessionEnded = 4001,
    /// Nothing was heard from the client (not even a pong) for the idle timeout: the
    /// connection is presumed dead. Reconnect and resume.
    IdleTimeout = 4002,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        self as u16
    }

    pub fn reason(self) -> &'static str {
        match self {
            Self::ServiceRestart => "server restarting, reconnect",
            Self::MessageTooBig => "frame too large",
            Self::InvalidPayload => "text frame is not UTF-8",
            Self::SlowConsumer => "slow consumer, reconnect and resume",
            Self::SessionEnded => "session ended",
            Self::IdleTimeout => "idle timeout, reconnect and resume",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_wire_string() {
        for code in ALL_CODES {
            assert_eq!(ErrorCode::from_wire(code.as_str()), Some(code));
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        assert_eq!(ErrorCode::from_wire("nope"), None);
    }
}
