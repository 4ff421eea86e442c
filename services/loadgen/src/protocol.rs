//! The few frames of protocol v1 (docs/protocol.md) the load generator speaks.
//!
//! Incoming frames are parsed into one borrowed struct with only the fields we read: in a
//! big room the generator parses 100,000 frames a second, so it must not build a
//! `serde_json::Value` per frame.

use serde::Deserialize;
use std::borrow::Cow;

/// Any server frame; fields absent from a frame type stay `None`.
#[derive(Debug, Deserialize)]
pub struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub client_msg_id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub last_seq: Option<u64>,
    #[serde(default)]
    pub duplicate: Option<bool>,
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub message: Option<Cow<'a, str>>,
    #[serde(default, rename = "ref", borrow)]
    pub reference: Option<Cow<'a, str>>,
}

impl<'a> Incoming<'a> {
    /// Parses a text frame's payload as it came off the wire: serde_json checks the UTF-8
    /// of the strings it reads, so the frame is not validated twice.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(text: &'a T) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(text.as_ref())
    }
}

pub fn join(room: &str) -> String {
    serde_json::json!({"type": "join", "room": room}).to_string()
}

/// The `client_msg_id` of a sender's `n`th message: unique per author, which is the scope
/// of idempotency, and it gives `n` back from an ack.
pub fn client_msg_id(n: u64) -> String {
    format!("lg-{n}")
}

pub fn parse_client_msg_id(id: &str) -> Option<u64> {
    id.strip_prefix("lg-")?.parse().ok()
}

/// A `send` frame. Room names and stamps are plain ASCII with nothing to escape, so the
/// frame is written directly; [`send_needs_no_escaping`] keeps that assumption honest.
pub fn send(room: &str, text: &str, client_msg_id: &str) -> String {
    debug_assert!(send_needs_no_escaping(room) && send_needs_no_escaping(text));
    format!(r#"{{"type":"send","room":"{room}","text":"{text}","client_msg_id":"{client_msg_id}"}}"#)
}

/// The `client_msg_id` of a reaction: who reacted (the room), its number, and when it was
/// sent, so that whoever receives the `reacted` frame can time it as a stamp times a message.
pub fn reaction_id(room: usize, n: u64, sent_at_nanos: u64) -> String {
    format!("lr-{room}-{n}-{sent_at_nanos}")
}

/// `(room, n, sent_at_nanos)` of a reaction's `client_msg_id`.
pub fn parse_reaction_id(id: &str) -> Option<(usize, u64, u64)> {
    let mut parts = id.strip_prefix("lr-")?.splitn(3, '-');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}

/// A `react` (or, with `back`, an `unreact`) frame: 👍 on the message at `seq`.
pub fn reaction(room: &str, seq: u64, back: bool, client_msg_id: &str) -> String {
    debug_assert!(send_needs_no_escaping(room) && send_needs_no_escaping(client_msg_id));
    let kind = if back { "unreact" } else { "react" };
    format!(r#"{{"type":"{kind}","room":"{room}","seq":{seq},"emoji":"👍","client_msg_id":"{client_msg_id}"}}"#)
}

/// `typing` in `room`: ephemeral, never answered.
pub fn typing(room: &str) -> String {
    debug_assert!(send_needs_no_escaping(room));
    format!(r#"{{"type":"typing","room":"{room}"}}"#)
}

fn send_needs_no_escaping(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaction_id_round_trips_and_its_frame_is_json() {
        let id = reaction_id(3, 17, 1_764_870_000_123_456_789);
        assert_eq!(parse_reaction_id(&id), Some((3, 17, 1_764_870_000_123_456_789)));
        assert_eq!(parse_reaction_id("lg-17"), None);
        let frame: serde_json::Value = serde_json::from_str(&reaction("r", 9, true, &id)).unwrap();
        assert_eq!(
            (frame["type"].as_str(), frame["seq"].as_u64(), frame["emoji"].as_str()),
            (Some("unreact"), Some(9), Some("👍"))
        );
        assert!(chat_domain::protocol::ClientFrame::parse(&reaction("r", 9, false, &id)).is_ok());
    }

    #[test]
    fn a_message_frame_gives_seq_and_text() {
        let raw = r#"{"type":"message","room":"r","seq":43,"id":1043,"user":{"id":"guest:1","name":"Ann"},
            "text":"lg:1:2:3","sent_at":"2025-06-01T10:15:09.871Z","client_msg_id":"lg-2","kind":"text"}"#;
        let frame = Incoming::parse(raw).unwrap();
        assert_eq!(frame.kind, "message");
        assert_eq!(frame.seq, Some(43));
        assert_eq!(frame.text.as_deref(), Some("lg:1:2:3"));
        assert_eq!(frame.client_msg_id.as_deref(), Some("lg-2"));
    }

    #[test]
    fn ack_joined_and_error_frames_parse() {
        let ack = Incoming::parse(
            r#"{"type":"ack","client_msg_id":"lg-7","room":"r","seq":9,"id":1,"sent_at":"x","duplicate":true}"#,
        )
        .unwrap();
        assert_eq!(
            (ack.kind.as_ref(), ack.seq, ack.duplicate),
            ("ack", Some(9), Some(true))
        );
        let joined =
            Incoming::parse(r#"{"type":"joined","room":"r","last_seq":5,"history":[],"has_more":false}"#).unwrap();
        assert_eq!(joined.last_seq, Some(5));
        let error =
            Incoming::parse(r#"{"type":"error","code":"rate_limited","message":"slow down","ref":"lg-3"}"#).unwrap();
        assert_eq!(error.code.as_deref(), Some("rate_limited"));
        assert_eq!(error.reference.as_deref(), Some("lg-3"));
    }

    /// The fields this borrowed view reads are the ones the server's own definition of its
    /// frames (`ServerFrame`) writes: each frame, built as the server builds it, reads back
    /// here with the values it carries.
    #[test]
    fn every_server_frame_reads_back_with_the_fields_it_carries() {
        use chat_domain::protocol::{HistoryItem, ServerFrame};
        use chat_domain::{
            Change, ChangeEvent, ChatMessage, ClientMsgId, Emoji, ErrorCode, MessageId, RoomName, TimelineEvent,
        };
        let room = RoomName::parse("lg-abc-1").unwrap();
        let message = ChatMessage {
            id: MessageId::new(1043).unwrap(),
            room: room.clone(),
            seq: 43,
            text: "lg:1:2:3 \"quoted\"".into(),
            client_msg_id: ClientMsgId::parse("lg-2").unwrap(),
            ..chat_domain::testing::message()
        };
        let reaction = TimelineEvent::Change(ChangeEvent {
            id: MessageId::new(1044).unwrap(),
            room: room.clone(),
            seq: 44,
            author: message.author.clone(),
            client_msg_id: ClientMsgId::parse("lg-3").unwrap(),
            at_ms: 0,
            target_seq: 43,
            change: Change::React {
                emoji: Emoji::parse("👍").unwrap(),
            },
        });
        let event = TimelineEvent::Message(message.clone());
        let frames = [
            ServerFrame::Message((&message).into()),
            ServerFrame::ack(&event, true),
            ServerFrame::joined(&room, 43, HistoryItem::messages(std::slice::from_ref(&message)), false),
            ServerFrame::error(ErrorCode::RateLimited, "slow down", Some("lg-3")),
            ServerFrame::left(&room),
            ServerFrame::notify(&(&message).into(), false),
            ServerFrame::from(HistoryItem::from(&reaction)),
            ServerFrame::room_deleted(&room),
        ];
        for frame in frames {
            let bytes = frame.to_bytes();
            let incoming = Incoming::parse(std::str::from_utf8(&bytes).unwrap()).unwrap();
            let kind = serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["type"].clone();
            assert_eq!(incoming.kind, kind.as_str().unwrap());
            match &frame {
                ServerFrame::Message(m) => assert_eq!(
                    (
                        incoming.seq,
                        incoming.text.as_deref(),
                        incoming.client_msg_id.as_deref()
                    ),
                    (Some(m.seq), Some(m.text.as_str()), Some(m.client_msg_id.as_str()))
                ),
                ServerFrame::Ack(a) => assert_eq!(
                    (incoming.seq, incoming.client_msg_id.as_deref(), incoming.duplicate),
                    (Some(a.seq), Some(a.client_msg_id.as_str()), Some(a.duplicate))
                ),
                ServerFrame::Joined { last_seq, .. } => assert_eq!(incoming.last_seq, Some(*last_seq)),
                ServerFrame::Reacted(r) => assert_eq!(
                    (incoming.seq, incoming.client_msg_id.as_deref()),
                    (Some(r.seq), Some(r.client_msg_id.as_str()))
                ),
                ServerFrame::Error {
                    code,
                    message,
                    reference,
                } => assert_eq!(
                    (
                        incoming.code.as_deref(),
                        incoming.message.as_deref(),
                        incoming.reference.as_deref()
                    ),
                    (Some(code.as_str()), Some(message.as_str()), reference.as_deref())
                ),
                _ => {}
            }
        }
    }

    #[test]
    fn escaped_text_still_parses() {
        let frame = Incoming::parse(r#"{"type":"message","seq":1,"text":"a \"quoted\" \u00e9"}"#).unwrap();
        assert_eq!(frame.text.as_deref(), Some("a \"quoted\" é"));
    }

    #[test]
    fn a_send_frame_is_valid_json_with_the_fields_of_the_protocol() {
        let frame: serde_json::Value = serde_json::from_str(&send("lg-abc-1", "lg:1:2:3", &client_msg_id(2))).unwrap();
        assert_eq!(
            frame,
            serde_json::json!({"type": "send", "room": "lg-abc-1", "text": "lg:1:2:3", "client_msg_id": "lg-2"})
        );
        assert_eq!(parse_client_msg_id("lg-2"), Some(2));
        assert_eq!(parse_client_msg_id("other"), None);
    }
}
