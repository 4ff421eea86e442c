//! The v1 websocket protocol: JSON text frames, each with a `"type"`.
//!
//! Client frames are parsed into [`ClientFrame`] with a precise [`FrameError`] for every way
//! a frame can be wrong; everything the server sends is a [`ServerFrame`]. One typed enum
//! per direction. `docs/protocol.md` is the document of record.

mod server;

pub use server::{
    AckFrame, AckItem, Attachment, ChangeFrame, HistoryItem, MessageFrame, PREVIEW_CHARS, PresenceFrame, ReactionCount,
    ReadMarker, RemovedReason, RoomEventFrame, RoomPresence, ServerFrame, TypingFrame,
};

use crate::error::ErrorCode;
use crate::message::MessageBody;
use crate::names::{ClientMsgId, Emoji, MessageText, NameError, RoomName};
use crate::timeline::Change;
use crate::upload::UploadId;
use bytes::Bytes;
use serde::Deserialize;

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
        /// Text, or an upload of the sender's with its caption.
        body: MessageBody,
        client_msg_id: ClientMsgId,
        /// The seq of the message (in the same room) this one replies to.
        reply_to: Option<u64>,
        /// A W3C `traceparent` from the browser: the send's trace continues it. One that is
        /// not well formed is ignored, as the W3C specification asks.
        traceparent: Option<String>,
    },
    /// `edit`, `delete`, `react` or `unreact` the message at `target_seq` (the frame's
    /// `seq` field). Idempotent on `client_msg_id`, like a send.
    Change {
        room: RoomName,
        target_seq: u64,
        change: Change,
        client_msg_id: ClientMsgId,
        traceparent: Option<String>,
    },
    /// The person is typing in a joined room (sent every few seconds while they type).
    /// Ephemeral: stored nowhere, acknowledged never.
    Typing {
        room: RoomName,
    },
    /// The person has seen the joined room up to `seq` (their read marker; a read receipt
    /// if they send them). Not acknowledged.
    Read {
        room: RoomName,
        seq: u64,
    },
    /// Is the connection alive? Answered with `pong` at once. Browsers cannot see the
    /// websocket's own pings, so a client that must notice a stalled network within
    /// seconds (not the kernel's minutes) asks, and reconnects when no answer comes.
    Ping,
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
        ServerFrame::error(self.code, &self.message, self.reference.as_deref()).to_bytes()
    }
}

/// A value that broke its rules is refused with the code its type gives.
impl From<NameError> for FrameError {
    fn from(e: NameError) -> Self {
        Self::new(e.code(), e.message())
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
    /// The message a change targets.
    seq: Option<u64>,
    emoji: Option<String>,
    reply_to: Option<u64>,
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
        let room = || Ok::<_, FrameError>(RoomName::parse(raw.room.as_deref().ok_or_else(|| missing("room"))?)?);
        let client_msg_id = || {
            Ok::<_, FrameError>(ClientMsgId::parse(
                raw.client_msg_id.as_deref().ok_or_else(|| missing("client_msg_id"))?,
            )?)
        };
        let emoji = || Ok::<_, FrameError>(Emoji::parse(raw.emoji.as_deref().ok_or_else(|| missing("emoji"))?)?);
        let change = |change: Change| {
            Ok(Self::Change {
                room: room()?,
                target_seq: raw.seq.ok_or_else(|| missing("seq"))?,
                change,
                client_msg_id: client_msg_id()?,
                traceparent: raw.traceparent.clone().filter(|tp| is_traceparent(tp)),
            })
        };
        match ty.as_str() {
            "join" => Ok(Self::Join {
                room: room()?,
                since_seq: raw.since_seq,
            }),
            "leave" => Ok(Self::Leave { room: room()? }),
            "ping" => Ok(Self::Ping),
            "typing" => Ok(Self::Typing { room: room()? }),
            "read" => Ok(Self::Read {
                room: room()?,
                seq: raw.seq.ok_or_else(|| missing("seq"))?,
            }),
            "send" => {
                let room = room()?;
                let client_msg_id = client_msg_id()?;
                let attachment = raw.attachment_id.map(UploadId::new).transpose()?;
                Ok(Self::Send {
                    room,
                    body: MessageBody::new(raw.text.clone(), attachment)?,
                    client_msg_id,
                    reply_to: raw.reply_to,
                    traceparent: raw.traceparent.clone().filter(|tp| is_traceparent(tp)),
                })
            }
            "edit" => {
                let text = MessageText::parse(raw.text.clone().ok_or_else(|| missing("text"))?)?;
                // Mentions are the gateway's to resolve, from the room's members.
                change(Change::Edit {
                    text: text.into_string(),
                    mentions: Vec::new(),
                })
            }
            "delete" => change(Change::Delete),
            "react" => change(Change::React { emoji: emoji()? }),
            "unreact" => change(Change::Unreact { emoji: emoji()? }),
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
        assert!(matches!(send, ClientFrame::Send { ref body, .. } if body.text.as_str() == "hi"));
        assert_eq!(ClientFrame::parse(r#"{"type":"ping"}"#).unwrap(), ClientFrame::Ping);
    }

    #[test]
    fn parses_each_change_and_a_reply() {
        let parse = |frame: &str| ClientFrame::parse(frame).unwrap();
        let change_of = |frame: &str| match parse(frame) {
            ClientFrame::Change {
                target_seq,
                change,
                client_msg_id,
                ..
            } => {
                assert_eq!((target_seq, client_msg_id.as_str()), (5, "e1"));
                change
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            change_of(r#"{"type":"edit","room":"x","seq":5,"text":"fixed","client_msg_id":"e1"}"#),
            Change::Edit {
                text: "fixed".into(),
                mentions: vec![]
            }
        );
        assert_eq!(
            change_of(r#"{"type":"delete","room":"x","seq":5,"client_msg_id":"e1"}"#),
            Change::Delete
        );
        let thumbs = Emoji::parse("👍").unwrap();
        assert_eq!(
            change_of(r#"{"type":"react","room":"x","seq":5,"emoji":":+1:","client_msg_id":"e1"}"#),
            Change::React { emoji: thumbs.clone() }
        );
        assert_eq!(
            change_of(r#"{"type":"unreact","room":"x","seq":5,"emoji":"👍","client_msg_id":"e1"}"#),
            Change::Unreact { emoji: thumbs }
        );
        let reply = parse(r#"{"type":"send","room":"x","text":"yes","client_msg_id":"a","reply_to":2}"#);
        assert!(matches!(reply, ClientFrame::Send { reply_to: Some(2), .. }));
    }

    #[test]
    fn a_bad_change_gets_its_code_and_names_its_client_msg_id() {
        for (frame, code) in [
            (
                r#"{"type":"edit","room":"x","text":"a","client_msg_id":"e1"}"#,
                ErrorCode::MissingField,
            ),
            (
                r#"{"type":"edit","room":"x","seq":1,"client_msg_id":"e1"}"#,
                ErrorCode::MissingField,
            ),
            (
                r#"{"type":"edit","room":"x","seq":1,"text":"  ","client_msg_id":"e1"}"#,
                ErrorCode::InvalidText,
            ),
            (
                r#"{"type":"delete","room":"x","seq":-1,"client_msg_id":"e1"}"#,
                ErrorCode::InvalidJson,
            ),
            (
                r#"{"type":"react","room":"x","seq":1,"emoji":"<b>","client_msg_id":"e1"}"#,
                ErrorCode::InvalidEmoji,
            ),
            (
                r#"{"type":"react","room":"x","seq":1,"client_msg_id":"e1"}"#,
                ErrorCode::MissingField,
            ),
            (
                r#"{"type":"unreact","room":"x","seq":1,"emoji":"👍"}"#,
                ErrorCode::MissingField,
            ),
        ] {
            let error = ClientFrame::parse(frame).unwrap_err();
            assert_eq!(error.code, code, "{frame}");
            if frame.contains("e1") && code != ErrorCode::InvalidJson {
                assert_eq!(error.reference.as_deref(), Some("e1"), "{frame}");
            }
        }
        let long = format!(
            r#"{{"type":"edit","room":"x","seq":1,"text":"{}","client_msg_id":"e1"}}"#,
            "a".repeat(4001)
        );
        assert_eq!(code_of(&long), ErrorCode::InvalidText);
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
