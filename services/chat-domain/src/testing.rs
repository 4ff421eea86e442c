//! Values for the tests of the crates built on these types (feature `testing`): one valid
//! committed message, which a test changes where it matters with struct update syntax.

use crate::message::{Author, ChatMessage, MessageId, MessageKind};
use crate::names::{ClientMsgId, DisplayName, RoomName, UserId};

/// Message 7, seq 3 of `lobby`, by Ann (`guest:1`), with text that needs escaping.
pub fn message() -> ChatMessage {
    ChatMessage {
        id: MessageId::new(7).unwrap(),
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
        attachment_size: None,
        deleted: false,
        reply_to: None,
        mentions: Vec::new(),
        edited_at_ms: None,
        reactions: Vec::new(),
    }
}
