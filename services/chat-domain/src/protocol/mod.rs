//! The v1 websocket protocol: JSON text frames, each with a `"type"`.
//!
//! Client frames are parsed into [`ClientFrame`] with a precise [`FrameError`] for every way
//! a frame can be wrong; server frames are built by the `*_frame` functions, which return
//! the bytes to send. `docs/protocol.md` is the document of record.

use crate::error::ErrorCode;
use crate::message::{Author, ChatMessage, MessageKind, MessageView, format_millis};
use crate::names::{ClientMsgId, MessageText, RoomName};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A valid frame from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// Enter a room on this socket. With `since_seq`, history holds exactly the messages
    /// after it; without, the most recent ones.
    Join {
        room: RoomName,
        since_seq: Option<u64>,
    },
    Leave {
        room: RoomName,
    },
    Send {
        room: RoomName,
        text: MessageText,
        client_msg_id: ClientMsgId,
        /// A W3C `traceparent` from the browser: the send's trace continues it. One that is
        /// not well formed is ignored, as the W3C specification asks.
        traceparent: Option<String>,
        /// An upload of the sender's: the message is an image, and `text` its caption
        /// (which may then be empty).
        attachment: Option<i64>,
    },
}

/// Why a client frame was refused. Becomes an `error` frame; the connection stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
    /// The `client_msg_id` of a refused send, or the room of a refused join, so the client
    /// can tell which of its requests failed.
    pub reference: Option<String>,
}

impl FrameError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            reference: None,
        }
    }

    pub fn with_ref(mut self, reference: Option<String>) -> Self {
        self.reference = reference;
        self
    }

    pub fn to_frame(&self) -> Bytes {
        error_frame(self.code, &self.message, self.reference.as_deref())
    }
}

/// Every field any client frame may carry; which are required depends on `type`.
/// Unknown fields are ignored so that newer clients can talk to older servers.
#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "type")]
    ty: Option<String>,
    room: Option<String>,
    text: Option<String>,
    client_msg_id: Option<String>,
    since_seq: Option<u64>,
    traceparent: Option<String>,
    attachment_id: Option<i64>,
}

impl ClientFrame {
    /// Parses one text frame.
    pub fn parse(input: &str) -> Result<Self, FrameError> {
        let raw: RawFrame = serde_json::from_str(input).map_err(|e| {
            let message = if e.is_data() {
                format!("frame has a field of the wrong type: {e}")
            } else {
                "frame is not a JSON object".to_string()
            };
            FrameError::new(ErrorCode::InvalidJson, message)
        })?;
        let reference = raw.client_msg_id.clone().or_else(|| raw.room.clone());
        Self::from_raw(raw).map_err(|e| e.with_ref(reference))
    }

    fn from_raw(raw: RawFrame) -> Result<Self, FrameError> {
        let ty = raw
            .ty
            .ok_or_else(|| FrameError::new(ErrorCode::MissingField, "missing field `type`"))?;
        let room = || {
            let room = raw.room.as_deref().ok_or_else(|| missing("room"))?;
            RoomName::parse(room).map_err(|e| FrameError::new(ErrorCode::InvalidRoom, e.0))
        };
        match ty.as_str() {
            "join" => Ok(Self::Join {
                room: room()?,
                since_seq: raw.since_seq,
            }),
            "leave" => Ok(Self::Leave { room: room()? }),
            "send" => {
                let room = room()?;
                let client_msg_id = raw.client_msg_id.as_deref().ok_or_else(|| missing("client_msg_id"))?;
                let client_msg_id = ClientMsgId::parse(client_msg_id)
                    .map_err(|e| FrameError::new(ErrorCode::InvalidClientMsgId, e.0))?;
                let attachment = match raw.attachment_id {
                    Some(id) if id <= 0 => {
                        return Err(FrameError::new(
                            ErrorCode::InvalidArgument,
                            "attachment_id must be a positive upload id",
                        ));
                    }
                    other => other,
                };
                let text = match (raw.text, attachment) {
                    (Some(text), None) => MessageText::parse(text),
                    (text, Some(_)) => MessageText::caption(text.unwrap_or_default()),
                    (None, None) => return Err(missing("text")),
                }
                .map_err(|e| FrameError::new(ErrorCode::InvalidText, e.0))?;
                Ok(Self::Send {
                    room,
                    text,
                    client_msg_id,
                    traceparent: raw.traceparent.filter(|tp| is_traceparent(tp)),
                    attachment,
                })
            }
            other => Err(FrameError::new(
                ErrorCode::UnknownType,
                format!("unknown frame type `{}`", other.chars().take(32).collect::<String>()),
            )),
        }
    }
}

/// `version-traceid-spanid-flags` in lowercase hex (W3C Trace Context, version 00).
fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
}

fn missing(field: &str) -> FrameError {
    FrameError::new(ErrorCode::MissingField, format!("missing field `{field}`"))
}

fn to_bytes<T: Serialize>(frame: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(frame).expect("server frames always serialize"))
}

/// `joined`: the room's `last_seq` when the join took effect and the history the client
/// needs before live messages (deleted messages left out). `has_more` says older messages exist beyond `history`
/// (page them over HTTP).
pub fn joined_frame(room: &RoomName, last_seq: u64, history: &[ChatMessage], has_more: bool) -> Bytes {
    #[derive(Serialize)]
    struct Joined<'a> {
        #[serde(rename = "type")]
        ty: &'static str,
        room: &'a RoomName,
        last_seq: u64,
        history: Vec<MessageView<'a>>,
        has_more: bool,
    }
    to_bytes(&Joined {
        ty: "joined",
        room,
        last_seq,
        history: history.iter().filter(|m| !m.deleted).map(ChatMessage::view).collect(),
        has_more,
    })
}

/// `left`: the socket no longer receives the room's messages.
pub fn left_frame(room: &RoomName) -> Bytes {
    #[derive(Serialize)]
    struct Left<'a> {
        #[serde(rename = "type")]
        ty: &'static str,
        room: &'a RoomName,
    }
    to_bytes(&Left { ty: "left", room })
}

/// `ack`: the send is committed with this `seq`. `duplicate` is true when the
/// `client_msg_id` had been stored before and this ack repeats the original.
pub fn ack_frame(message: &ChatMessage, duplicate: bool) -> Bytes {
    #[derive(Serialize)]
    struct Ack<'a> {
        #[serde(rename = "type")]
        ty: &'static str,
        client_msg_id: &'a ClientMsgId,
        room: &'a RoomName,
        seq: u64,
        id: i64,
        sent_at: String,
        duplicate: bool,
    }
    to_bytes(&Ack {
        ty: "ack",
        client_msg_id: &message.client_msg_id,
        room: &message.room,
        seq: message.seq,
        id: message.id,
        sent_at: format_millis(message.sent_at_ms),
        duplicate,
    })
}

/// `deleted`: an administrator deleted message `id` (seq `seq`) of `room`; clients remove it.
pub fn deleted_frame(room: &RoomName, id: i64, seq: u64) -> Bytes {
    #[derive(Serialize)]
    struct Deleted<'a> {
        #[serde(rename = "type")]
        ty: &'static str,
        room: &'a RoomName,
        id: i64,
        seq: u64,
    }
    to_bytes(&Deleted {
        ty: "deleted",
        room,
        id,
        seq,
    })
}

/// `room_deleted`: an administrator deleted the room; the socket no longer receives it.
pub fn room_deleted_frame(room: &RoomName) -> Bytes {
    #[derive(Serialize)]
    struct RoomDeleted<'a> {
        #[serde(rename = "type")]
        ty: &'static str,
        room: &'a RoomName,
    }
    to_bytes(&RoomDeleted {
        ty: "room_deleted",
        room,
    })
}

/// Characters of a message's text that a `notify` frame carries.
pub const PREVIEW_CHARS: usize = 100;

/// `notify`: a new message in a room the user belongs to but has not joined on this socket.
pub fn notify_frame(room: &RoomName, seq: u64, user: &Author, text: &str, kind: MessageKind) -> Bytes {
    #[derive(Serialize)]
    struct Notify<'a> {
        #[serde(rename = "type")]
        ty: &'static str,
        room: &'a RoomName,
        seq: u64,
        user: &'a Author,
        preview: String,
        kind: MessageKind,
    }
    to_bytes(&Notify {
        ty: "notify",
        room,
        seq,
        user,
        preview: text.chars().take(PREVIEW_CHARS).collect(),
        kind,
    })
}

/// `error`: a frame or request failed; the connection stays usable.
pub fn error_frame(code: ErrorCode, message: &str, reference: Option<&str>) -> Bytes {
    #[derive(Serialize)]
    struct Error<'a> {
        #[serde(rename = "type")]
        ty: &'static str,
        code: ErrorCode,
        message: &'a str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    }
    to_bytes(&Error {
        ty: "error",
        code,
        message,
        reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code_of(input: &str) -> ErrorCode {
        ClientFrame::parse(input).unwrap_err().code
    }

    #[test]
    fn parses_each_client_frame() {
        assert_eq!(
            ClientFrame::parse(r#"{"type":"join","room":"Lobby","since_seq":4}"#).unwrap(),
            ClientFrame::Join {
                room: RoomName::parse("lobby").unwrap(),
                since_seq: Some(4)
            }
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"leave","room":"lobby","extra":[1]}"#).unwrap(),
            ClientFrame::Leave {
                room: RoomName::parse("lobby").unwrap()
            }
        );
        let send = ClientFrame::parse(r#"{"type":"send","room":"lobby","text":"hi","client_msg_id":"a1"}"#).unwrap();
        assert!(matches!(send, ClientFrame::Send { ref text, .. } if text.as_str() == "hi"));
    }

    #[test]
    fn a_well_formed_traceparent_is_kept_and_a_bad_one_ignored() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let frame = format!(r#"{{"type":"send","room":"x","text":"hi","client_msg_id":"a","traceparent":"{tp}"}}"#);
        assert!(
            matches!(ClientFrame::parse(&frame).unwrap(), ClientFrame::Send { traceparent: Some(t), .. } if t == tp)
        );
        for bad in [
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            let frame =
                format!(r#"{{"type":"send","room":"x","text":"hi","client_msg_id":"a","traceparent":"{bad}"}}"#);
            assert!(matches!(
                ClientFrame::parse(&frame).unwrap(),
                ClientFrame::Send { traceparent: None, .. }
            ));
        }
    }

    #[test]
    fn each_bad_frame_gets_its_code() {
        assert_eq!(code_of("not json"), ErrorCode::InvalidJson);
        assert_eq!(code_of("[1,2]"), ErrorCode::InvalidJson);
        assert_eq!(
            code_of(r#"{"type":"join","room":"x","since_seq":"a"}"#),
            ErrorCode::InvalidJson
        );
        assert_eq!(code_of(r#"{"room":"x"}"#), ErrorCode::MissingField);
        assert_eq!(code_of(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
        assert_eq!(code_of(r#"{"type":"join"}"#), ErrorCode::MissingField);
        assert_eq!(code_of(r#"{"type":"join","room":"no spaces"}"#), ErrorCode::InvalidRoom);
        assert_eq!(
            code_of(r#"{"type":"send","room":"x","client_msg_id":"a"}"#),
            ErrorCode::MissingField
        );
        assert_eq!(
            code_of(r#"{"type":"send","room":"x","text":"","client_msg_id":"a"}"#),
            ErrorCode::InvalidText
        );
        assert_eq!(
            code_of(r#"{"type":"send","room":"x","text":"hi","client_msg_id":"a b"}"#),
            ErrorCode::InvalidClientMsgId
        );
    }

    #[test]
    fn a_refused_send_references_its_client_msg_id() {
        let err = ClientFrame::parse(r#"{"type":"send","room":"x","text":" ","client_msg_id":"m-9"}"#).unwrap_err();
        assert_eq!(err.reference.as_deref(), Some("m-9"));
        let frame: serde_json::Value = serde_json::from_slice(&err.to_frame()).unwrap();
        assert_eq!(frame["type"], "error");
        assert_eq!(frame["code"], "invalid_text");
        assert_eq!(frame["ref"], "m-9");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = ClientFrame::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_json_shaped_input(
            ty in prop::sample::select(vec!["join", "leave", "send", "x", ""]),
            room in any::<String>(), text in any::<String>(), id in any::<String>(),
        ) {
            let frame = serde_json::json!({"type": ty, "room": room, "text": text, "client_msg_id": id});
            let _ = ClientFrame::parse(&frame.to_string());
        }
    }
}
